#!/usr/bin/env bash
# The speed-up of data-parallel training on this machine (issue 19): one training
# epoch (global batch 128) of the reference experiment's MLP and of the layers
# issue's MNIST CNN (scripts/bench/ddp_train.lua), each as
#   1 process, 1 thread      (OMP_NUM_THREADS=1)
#   1 process, 2 threads     (what one process does with this machine's 2 cores)
#   2 processes, 1 thread each, strategy "ddp", 64 samples per rank
# run interleaved --repeats times (3 by default); prints each run's BENCH line and
# the medians. Usage: scripts/bench/ddp.sh [build/moonlight] [repeats] [models: "mlp cnn"]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-build/moonlight}
repeats=${2:-3}
models=${3:-mlp cnn}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
for model in $models; do
echo "== $model =="
out=$(mktemp)
for r in $(seq "$repeats"); do
  OMP_NUM_THREADS=1 "$bin" scripts/bench/ddp_train.lua single "$model" | grep BENCH | sed 's/^/single-1t /' | tee -a "$out"
  OMP_NUM_THREADS=2 "$bin" scripts/bench/ddp_train.lua single "$model" | grep BENCH | sed 's/^/single-2t /' | tee -a "$out"
  OMP_NUM_THREADS=1 mpirun -np 2 --bind-to none "$bin" scripts/bench/ddp_train.lua ddp "$model" | grep BENCH |
    sed 's/^/ddp-2x1t /' | tee -a "$out"
done
echo "== $model: medians (epoch seconds) =="
for k in single-1t single-2t ddp-2x1t; do
  grep "^$k " "$out" | sed 's/.*epoch_s=\([0-9.]*\).*/\1/' | sort -n | awk -v k="$k" '
    {v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%-10s %.3f s\n", k, m}'
done | tee "$out.med"
awk -v model="$model" 'NR == FNR {t[$1] = $2; next} END {
  printf "%s: speed-up of 2 processes: %.2fx over 1 process x 1 thread, %.2fx over 1 process x 2 threads\n",
    model, t["single-1t"] / t["ddp-2x1t"], t["single-2t"] / t["ddp-2x1t"] }' "$out.med" "$out.med"
rm -f "$out" "$out.med"
done
