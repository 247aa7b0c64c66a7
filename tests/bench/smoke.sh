#!/usr/bin/env bash
# ctest bench.smoke: the benchmark harness's Moonlight half in quick mode on a few
# batches, to keep the scripts working. Asserts that every part ran and reported
# (rows in bench.csv, sections in bench.md), never on times.
#   tests/bench/smoke.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: smoke.sh BUILD_DIR}
cd "$(dirname "$0")/../.."
out=$(mktemp -d /tmp/moonlight-bench-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT
scripts/bench/run --quick --only moonlight --limit_train_batches 5 --limit_val_batches 3 \
  --build "$build" --out "$out" > "$out/stdout" 2> "$out/stderr" || {
  cat "$out/stderr" "$out/stdout" >&2; exit 1; }
status=0
need() {  # need FILE PATTERN: a line matching the pattern
  if ! grep -qE -- "$2" "$out/$1"; then echo "smoke: no line matching '$2' in $1" >&2; status=1; fi
}
for m in wall_s train_epoch_s val_s peak_rss val_loss accuracy; do
  need bench.csv "^experiment,moonlight,$m,[0-9.e+-]+,"
done
need bench.csv "^experiment,moonlight,accuracy,0?\.[0-9]"
for s in moonlight_e lua_require; do need bench.csv "^startup,$s,wall_ms,[0-9.e+-]+,ms$"; done
for k in matmul.linear.784x64 matmul.linear.784x64.openblas elementwise.exp.memcpy \
         loss.cross_entropy.fwdbwd.128x10 loss.custom_mse.fwdbwd.128x10 adam.step limit.train_flops; do
  need bench.csv "^op,$k,median,[0-9.e+-]+,"
done
# the FLOP count is exact arithmetic on the shapes
need bench.csv "^limit,epoch,flops,13945600000,FLOP$"
for h in "### The reference experiment" "### Start-up" "### matmul" "### elementwise" "### losses" \
         "### The limit" "### Targets"; do
  need bench.md "^$h"
done
if grep -q "PyTorch" "$out/bench.csv"; then echo "smoke: --only moonlight ran PyTorch" >&2; status=1; fi
[[ $status == 0 ]] || { cat "$out/bench.md" >&2; }
exit $status
