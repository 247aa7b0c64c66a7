#!/usr/bin/env bash
# Issue 17's crash test: a training run (train.lua: a checkpoint every epoch, a
# metrics.csv row every step) is killed with SIGKILL at random moments, KILLS
# times; each run resumes from the last checkpoint of the one before. After each
# kill, check.lua reads every metrics.csv up to its last complete row and loads
# the last checkpoint, whose epoch must never go back. Then the chain is run to
# three epochs past its last checkpoint, and its weights must equal, bit for bit,
# those of a run to the same epoch that was never killed.
#   run.sh MOONLIGHT_BIN [KILLS] [MAX_DELAY_MS]
set -euo pipefail
bin=$1 kills=${2:-50} max_ms=${3:-300}
here=$(dirname "$0")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chain=$tmp/chain

prev=-1 progressed=0
for ((i = 1; i <= kills; i++)); do
  "$bin" "$here/train.lua" "$chain" 1000000 >/dev/null 2>"$tmp/err" &
  pid=$!
  # from 10 ms (start-up) to max_ms: kills land in start-up, steps, rows, checkpoints
  ms=$((10 + RANDOM % max_ms))
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  if ! kill -9 "$pid" 2>/dev/null; then
    echo "crash: run $i ended before its kill:"; cat "$tmp/err"; exit 1
  fi
  wait "$pid" 2>/dev/null || true
  if ! out=$("$bin" "$here/check.lua" "$chain" 2>&1); then
    echo "crash: after kill $i ($ms ms): $out"; exit 1
  fi
  epoch=${out#epoch }
  if ((epoch < prev)); then
    echo "crash: after kill $i the last checkpoint went back from epoch $prev to $epoch"; exit 1
  fi
  ((epoch > prev)) && progressed=$((progressed + 1))
  prev=$epoch
done
if ((prev < 0)); then echo "crash: no checkpoint in $kills runs (too slow a machine?)"; exit 1; fi

# the chain to three epochs past its last checkpoint, and a run never killed
end=$((prev + 4))
a=$("$bin" "$here/train.lua" "$chain" "$end" | grep '^weights')
b=$("$bin" "$here/train.lua" "$tmp/whole" "$end" fresh | grep '^weights')
if [ "$a" != "$b" ]; then
  echo "crash: the resumed chain's weights differ from an uninterrupted run's ($end epochs)"
  echo "  chain: $a"; echo "  whole: $b"; exit 1
fi
tmps=$(find "$chain" -name '*.tmp*' | wc -l)
echo "crash: $kills kills, $progressed of them after new checkpoints; metrics.csv read and the last" \
     "checkpoint loaded after each; resumed to epoch $((end - 1)), weights equal to an uninterrupted run" \
     "($tmps temporary files left by kills)"
