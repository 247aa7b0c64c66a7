#!/usr/bin/env bash
# Issue 14's determinism test: the shortened reference experiment
# (reference_run.lua: 300 seeded steps, one validation) on 1 thread, on 2, and on
# 2 while another process keeps a core busy must write byte-identical metrics.csv
# and weights. Threads and load decide only who computes a block, never the order
# of an addition (src/cpu/parallel.h).
#   run.sh MOONLIGHT_BIN [STEPS]
set -euo pipefail
bin=$1 steps=${2:-300}
tmp=$(mktemp -d)
busy=""
trap '[ -n "$busy" ] && kill "$busy" 2>/dev/null; rm -rf "$tmp"' EXIT

run() { # name threads
  OMP_NUM_THREADS=$2 "$bin" tests/determinism/reference_run.lua "$tmp/$1" "$steps" >/dev/null
}
run one 1
run two 2
(while :; do :; done) & busy=$!
run busy 2
kill "$busy"; busy=""

status=0
for name in two busy; do
  for f in run/version_0/metrics.csv weights.safetensors; do
    if ! cmp -s "$tmp/one/$f" "$tmp/$name/$f"; then
      echo "determinism: $f differs between 1 thread and '$name'"
      diff "$tmp/one/$f" "$tmp/$name/$f" | head -5 || true
      status=1
    fi
  done
done
[ $status = 0 ] && echo "determinism: metrics.csv and weights identical on 1 thread, 2, and 2 beside a busy core ($steps steps)"
exit $status
