#!/usr/bin/env bash
# Data-parallel training across processes (issue 19), with `mpirun -np 2` on this
# machine over loopback / shared memory.
# Usage: run.sh MOONLIGHT MPIRUN [WORKDIR [quick]]   (quick: file order only, no
# failing rank; DIST_TEST_ACCELERATOR=cuda trains on the GPU)
#   1. equivalence: the reference MLP, global batch 128, in one process and in
#      2 ranks of 64 (strategy "ddp"), in file order and shuffled: the same
#      weights within 1e-5 (tests/dist/compare.lua);
#   2. rank 0 alone logs and checkpoints; evaluation and sync_dist metrics are
#      reduced over the ranks (tests/dist/check.lua);
#   3. a rank that raises an error ends the whole job, non-zero, within 30 s
#      (MPI_Abort from the Trainer's error path), where the other rank would
#      wait forever in the gradient all-reduce.
# About 15 s here. OpenMPI settings for a container, as root: every rank on this
# node (shared memory and TCP over loopback), oversubscribed (2 ranks on any
# number of cores), no single-copy transfers (CMA needs ptrace rights a
# container may not give).
set -euo pipefail
bin=$1
mpirun=$2
work=${3:-$(mktemp -d)}
orders="file shuffle"
[ "${4:-}" = quick ] && orders=file
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
here=$(cd "$(dirname "$0")" && pwd)
# ML_DIST_PRELOAD (sanitizer builds, tests/dist.cmake): LD_PRELOAD for the moonlight
# processes only, mpirun being uninstrumented
preload=()
[ -n "${ML_DIST_PRELOAD:-}" ] && preload=(-x "LD_PRELOAD=$ML_DIST_PRELOAD")
mpi() { timeout 120 "$mpirun" --oversubscribe -np 2 "${preload[@]}" "$@"; }
one() { if [ -n "${ML_DIST_PRELOAD:-}" ]; then LD_PRELOAD=$ML_DIST_PRELOAD "$@"; else "$@"; fi; }

for order in $orders; do
  rm -rf "$work/$order" && mkdir -p "$work/$order/single" "$work/$order/ddp"
  one "$bin" "$here/train.lua" single "$work/$order/single" "$order" >/dev/null
  mpi "$bin" "$here/train.lua" ddp "$work/$order/ddp" "$order" >/dev/null
  echo "== $order order"
  one "$bin" "$here/compare.lua" "$work/$order/single/weights.safetensors" "$work/$order/ddp/weights.safetensors" 1e-5
  one "$bin" "$here/check.lua" "$work/$order/single" "$work/$order/ddp"
done

[ "${4:-}" = quick ] && { echo "dist: all passed"; exit 0; }
echo "== a rank fails"
rm -rf "$work/fail" && mkdir -p "$work/fail"
start=$(date +%s)
set +e
mpi "$bin" "$here/train.lua" fail "$work/fail" >"$work/fail/out.txt" 2>&1
rc=$?
set -e
elapsed=$(( $(date +%s) - start ))
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || [ "$elapsed" -gt 30 ]; then
  cat "$work/fail/out.txt"
  echo "FAIL: the job with a failing rank exited $rc after ${elapsed} s (expected non-zero within 30 s)"
  exit 1
fi
grep -q "rank 1 of 2.*a failure on purpose" "$work/fail/out.txt" ||
  { cat "$work/fail/out.txt"; echo "FAIL: the failing rank's message is missing"; exit 1; }
echo "a failing rank ended the job: exit $rc after ${elapsed} s"
echo "dist: all passed"
