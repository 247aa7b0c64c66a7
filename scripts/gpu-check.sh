#!/usr/bin/env bash
# The CUDA backend's checks on a GPU machine: parity of every CUDA op with the CPU,
# the allocator counters, compute-sanitizer's memcheck and racecheck over a subset
# of the parity cases (where the tool exists), the GPU benchmark, and two
# processes training with strategy "ddp" on CUDA (NCCL; where the machine has MPI); logs into
# $OUT when it is set (else build-gpu/logs). A machine may be lent for 15 minutes,
# start-up included, and a rerun must fit too: the whole script stops within about
# 8 minutes (each step has a time limit; the benchmark gets at most 3 minutes).
#
# Procedure (a machine with an H200, the driver and the CUDA 13 libraries, but no
# package registry and no Debian -dev packages):
#   1. HERE: scripts/gpu-build.sh        -> build-gpu/dist (static Lua/OpenBLAS/cudart)
#      and build-gpu/dist.tar.xz (the same, ~5 MB: what fits the device tool's
#      64 MiB beside the tracked files)
#   2. copy the repo with build-gpu/dist.tar.xz to the GPU machine (with this
#      project's device tool: carry ["build-gpu/dist.tar.xz"]), and there, from the
#      repo root:   bash scripts/gpu-check.sh     (it unpacks the archive)
#   3. read the verdict lines at the end (parity, sanitizers and benchmark each
#      have their own), $OUT/summary.txt (the first failure first: later ones may
#      be echoes of a sticky CUDA error), $OUT/parity.log, $OUT/bench.log and
#      $OUT/ratios.txt (moonlight / PyTorch per benchmark).
# The exit status is the parity's and the sanitizers': a slow or failed benchmark
# has its own verdict line and does not fail the check.
# When build-gpu/dist is missing and the machine has the build dependencies
# (pkg-config finds lua5.4 and openblas), the script builds it first.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build-gpu/logs}
mkdir -p "$out"
bin=build-gpu/dist/moonlight
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
# seconds left before the script's deadline (8 minutes), at most $1
budget() { local left=$((470 - $(elapsed))); [ "$left" -lt "$1" ] && echo "$left" || echo "$1"; }

if [ ! -x "$bin" ] && [ -f build-gpu/dist.tar.xz ]; then
  tar -C build-gpu -xJf build-gpu/dist.tar.xz 2>/dev/null ||
    python3 -c 'import tarfile; tarfile.open("build-gpu/dist.tar.xz").extractall("build-gpu")' ||
    { echo "gpu-check: cannot unpack build-gpu/dist.tar.xz (no xz, no python3)" >&2; exit 1; }
fi
if [ ! -x "$bin" ]; then
  if pkg-config --exists lua5.4 openblas 2>/dev/null; then
    echo "== building build-gpu/dist =="
    scripts/gpu-build.sh >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
  else
    echo "gpu-check: no $bin and no Lua/OpenBLAS to build it: run scripts/gpu-build.sh on a" \
         "machine with the -dev packages and carry build-gpu/dist here" >&2
    exit 1
  fi
fi

# cuBLAS: the toolkit's, or the one PyTorch's wheels bring; a search of the disk
# only when none of the likely places has it, and then for 30 seconds at most
find_cublas() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 \
           /usr/local/cuda-13*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu \
           $(python3 -c 'import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], "lib"))' 2>/dev/null); do
    [ -e "$d/libcublas.so.13" ] && { echo "$d"; return; }
  done
  timeout 30 find / -xdev -name libcublas.so.13 -printf '%h\n' -quit 2>/dev/null
}
if ! ldconfig -p 2>/dev/null | grep -q "libcublas.so.13"; then
  d=$(find_cublas)
  [ -n "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-} (found in $(elapsed) s)" >"$out/env.txt"
timeout 20 nvidia-smi >>"$out/env.txt" 2>&1 || true
ldd "$bin" >>"$out/env.txt" 2>&1 || true

echo "== device =="
timeout 30 "$bin" -e 'print(ml.cuda.is_available(), ml.cuda.is_available() and ml.cuda.device_name() or
  select(2, pcall(ml.cuda.device_name)))' 2>&1 | tee "$out/device.log"

echo "== parity (scripts/gpu-parity.lua) =="
timeout "$(budget 150)" "$bin" scripts/gpu-parity.lua >"$out/parity.log" 2>&1
parity_rc=$?
passed=$(grep -c '^ok ' "$out/parity.log")
first=$(grep -m1 '^FAIL' "$out/parity.log")
{
  [ -n "$first" ] && echo "first failure: ${first#FAIL }"
  grep -v '^ok ' "$out/parity.log"
} | tee "$out/summary.txt"
if [ "$parity_rc" = 0 ]; then parity="PASSED ($passed checks)"
elif [ "$parity_rc" = 124 ]; then parity="FAILED (timed out after $passed passing checks)"
else parity="FAILED (${first:-no result}; $passed checks passed)"; fi

echo "== benchmark (scripts/bench/gpu.lua, scripts/bench/gpu_torch.py; 3 minutes at most) =="
: >"$out/bench.log"
bench="done"
bench_end=$(($(elapsed) + 180))
t=$(budget 110)
if [ "$t" -gt 20 ]; then
  timeout "$t" "$bin" scripts/bench/gpu.lua cuda cpu 2>&1 | tee -a "$out/bench.log"
  rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && bench="moonlight TIMED OUT after $t s"
  [ "$rc" != 0 ] && [ "$rc" != 124 ] && bench="moonlight FAILED (status $rc)"
else
  bench="moonlight SKIPPED (no time left)"
fi
py=$(command -v python3 || true)
t=$(budget $((bench_end - $(elapsed))))
if [ -n "$py" ] && [ "$t" -gt 20 ]; then
  timeout "$t" "$py" scripts/bench/gpu_torch.py 2>&1 | tee -a "$out/bench.log"
  rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && bench="$bench; torch TIMED OUT after $t s"
  [ "$rc" != 0 ] && [ "$rc" != 124 ] && bench="$bench; torch FAILED (status $rc)"
else
  echo "torch: SKIPPED (no python3 or no time left)" | tee -a "$out/bench.log"
  bench="$bench; torch SKIPPED"
fi
# moonlight / PyTorch, from the RESULT lines (below 1: moonlight is faster)
awk '$1 == "RESULT" { v[$2] = $3 }
  END {
    n = split("mlp_epoch_ms large_mlp_step_ms_highest large_mlp_step_ms_high", k, " ")
    for (i = 1; i <= n; i++) {
      m = v["cuda_" k[i]]; t = v["torch_" k[i]]
      if (m != "" && t != "" && t > 0) printf "ratio %s: moonlight %.2f / torch %.2f = %.2f\n", k[i], m, t, m / t
      else printf "ratio %s: missing (moonlight %s, torch %s)\n", k[i], m, t
    }
    printf "memory growth over 10,000 steps: moonlight %s bytes, torch %s bytes\n",
           v["cuda_memory_growth_bytes"], v["torch_memory_growth_bytes"]
  }' "$out/bench.log" | tee "$out/ratios.txt"

# compute-sanitizer over every 8th parity case: out-of-bounds and misaligned
# accesses (memcheck), shared-memory races between a block's threads (racecheck)
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
            /usr/local/cuda-13*/bin/compute-sanitizer 2>/dev/null | head -1)
sanitizers=""
sanitizer_rc=0
for tool in memcheck racecheck; do
  t=$(budget 60)
  if [ -z "$sanitizer" ]; then sanitizers="$sanitizers $tool SKIPPED (no compute-sanitizer);"; continue; fi
  if [ "$t" -lt 20 ]; then sanitizers="$sanitizers $tool SKIPPED (no time left);"; continue; fi
  echo "== compute-sanitizer --tool $tool (every 8th parity case) =="
  timeout "$t" "$sanitizer" --tool "$tool" --error-exitcode 3 --print-limit 20 \
    "$bin" scripts/gpu-parity.lua --every 8 >"$out/$tool.log" 2>&1
  rc=$?
  tail -5 "$out/$tool.log"
  case $rc in
    0) sanitizers="$sanitizers $tool PASSED;" ;;
    124) sanitizers="$sanitizers $tool TIMED OUT after $t s (not a failure);" ;;
    *) sanitizers="$sanitizers $tool FAILED (status $rc, see $tool.log);"; sanitizer_rc=1 ;;
  esac
done

# distributed training (issue 19): tests/dist/run.sh with two processes training on
# CUDA (file order: the 2-rank run against one process within 1e-5, rank 0's
# duties, reduced metrics). NCCL when the machine has a GPU per rank; with one
# GPU, NCCL refuses two ranks on it and the gradients go through host memory and
# MPI (dist.log says which). Needs the machine's own mpirun and, for NCCL, libnccl
# (PyTorch's nvidia.nccl wheel is looked at).
dist_rc=0
if ! command -v mpirun >/dev/null; then dist="SKIPPED (no mpirun on this machine)"
elif [ ! -f build-gpu/dist/libmoonlight_mpi.so ]; then dist="SKIPPED (the build has no MPI engine)"
elif [ "$(budget 90)" -lt 40 ]; then dist="SKIPPED (no time left)"
else
  nccl_dir=$([ -n "$py" ] && timeout 20 "$py" -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
  [ -n "$nccl_dir" ] && export LD_LIBRARY_PATH="$nccl_dir:${LD_LIBRARY_PATH:-}"
  t=$(budget 90)
  DIST_TEST_ACCELERATOR=cuda timeout "$t" bash tests/dist/run.sh "$bin" mpirun "$out/dist" quick >"$out/dist.log" 2>&1
  dist_rc=$?
  tail -4 "$out/dist.log"
  engine=$(grep -o "collectives on CUDA tensors go through host memory[^)]*)" "$out/dist.log" | head -1)
  case $dist_rc in
    0) dist="PASSED (${engine:-NCCL})" ;;
    124) dist="FAILED (timed out after $t s)" ;;
    *) dist="FAILED (status $dist_rc, see dist.log)" ;;
  esac
fi

echo "gpu-check: parity $parity"
echo "gpu-check: distributed $dist"
echo "gpu-check: compute-sanitizer${sanitizers%;}"
echo "gpu-check: benchmark $bench (ratios.txt)"
status=$([ "$parity_rc" = 0 ] && [ "$sanitizer_rc" = 0 ] && [ "$dist_rc" = 0 ] && echo 0 || echo 1)
echo "gpu-check: $( [ "$status" = 0 ] && echo passed || echo FAILED ) in $(elapsed) s; logs in $out"
exit "$status"
