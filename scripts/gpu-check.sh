#!/usr/bin/env bash
# The CUDA backend's checks on a GPU machine: parity of every CUDA op with the CPU,
# the allocator counters, and the GPU benchmark; logs into $OUT when it is set
# (else build-gpu/logs). Meant to finish inside 8 minutes.
#
# Procedure (a machine with an H200, the driver and the CUDA 13 libraries, but no
# package registry and no Debian -dev packages):
#   1. HERE: scripts/gpu-build.sh        -> build-gpu/dist (static Lua/OpenBLAS/cudart)
#      and build-gpu/dist.tar.xz (the same, ~5 MB: what fits the device tool's
#      64 MiB beside the tracked files)
#   2. copy the repo with build-gpu/dist.tar.xz to the GPU machine (with this
#      project's device tool: carry ["build-gpu/dist.tar.xz"]), and there, from the
#      repo root:   bash scripts/gpu-check.sh     (it unpacks the archive)
#   3. read $OUT/parity.log (one line per case, FAIL lines first in summary.txt),
#      $OUT/bench.log and $OUT/ratios.txt (moonlight / PyTorch per benchmark).
# When build-gpu/dist is missing and the machine has the build dependencies
# (pkg-config finds lua5.4 and openblas), the script builds it first.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build-gpu/logs}
mkdir -p "$out"
bin=build-gpu/dist/moonlight
start=$(date +%s)

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

# cuBLAS: the toolkit's, or the one PyTorch's wheels bring
if ! ldconfig -p 2>/dev/null | grep -q "libcublas.so.13"; then
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 \
           $(python3 -c 'import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], "lib"))' 2>/dev/null) \
           $(find / -xdev -name libcublas.so.13 -printf '%h\n' 2>/dev/null | head -1); do
    if [ -e "$d/libcublas.so.13" ]; then export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; break; fi
  done
fi
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" >"$out/env.txt"
nvidia-smi >>"$out/env.txt" 2>&1 || true
ldd "$bin" >>"$out/env.txt" 2>&1 || true

status=0
echo "== device =="
timeout 60 "$bin" -e 'print(ml.cuda.is_available(), ml.cuda.is_available() and ml.cuda.device_name() or
  select(2, pcall(ml.cuda.device_name)))' 2>&1 | tee "$out/device.log" || status=1

echo "== parity (scripts/gpu-parity.lua) =="
timeout 240 "$bin" scripts/gpu-parity.lua >"$out/parity.log" 2>&1 || status=1
{ grep -v '^ok ' "$out/parity.log"; } | tee "$out/summary.txt"

echo "== benchmark (scripts/bench/gpu.lua, scripts/bench/gpu_torch.py) =="
: >"$out/bench.log"
left=$((400 - ($(date +%s) - start)))
if [ "$left" -gt 30 ]; then
  timeout "$left" "$bin" scripts/bench/gpu.lua cuda cpu 2>&1 | tee -a "$out/bench.log"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi
left=$((470 - ($(date +%s) - start)))
py=$(command -v python3 || true)
if [ -n "$py" ] && [ "$left" -gt 30 ]; then
  timeout "$left" "$py" scripts/bench/gpu_torch.py 2>&1 | tee -a "$out/bench.log" || true
else
  echo "torch: SKIPPED (no python3 or no time left)" | tee -a "$out/bench.log"
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
echo "gpu-check: $( [ $status = 0 ] && echo passed || echo FAILED ) in $(($(date +%s) - start)) s; logs in $out"
exit $status
