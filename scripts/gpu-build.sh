#!/usr/bin/env bash
# Builds build-gpu/dist/: a moonlight CLI that runs on a GPU machine which has the
# NVIDIA driver and the CUDA toolkit's libraries but no Debian -dev packages and no
# package registry (the H200 machines lent to this project).
#
# Run HERE (where the -dev packages are): scripts/gpu-build.sh
#  - Lua 5.4, OpenBLAS and zlib are linked statically (liblua5.4.a from
#    liblua5.4-dev, libopenblas.a from libopenblas-dev's pthread variant, libz.a
#    from zlib1g-dev; libopenblas.a needs libgfortran, linked too);
#  - cudart is static (CUDA::cudart_static) and the kernels are sm_90 + PTX;
#  - the C code is built for x86-64-v3 (AVX2), not -march=native, so it runs on
#    that machine's CPU;
#  - the shared libraries left that are neither glibc's nor the C++ runtime's
#    (libgomp, cJSON, cairo and its dependencies) are copied into dist/lib, found
#    through DT_RPATH $ORIGIN/lib (not RUNPATH, which would not apply to the
#    copied libraries' own dependencies);
#    libcublas is not copied (over 500 MB with cublasLt): gpu-check.sh finds the
#    GPU machine's own.
# Then carry build-gpu/dist.tar.xz (the same, compressed) to the GPU machine and run
# scripts/gpu-check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-gpu
libdir=/usr/lib/x86_64-linux-gnu
openblas_a=$(readlink -f "$libdir/libopenblas.a")
for f in "$libdir/liblua5.4.a" "$openblas_a" "$libdir/libz.a"; do
  [ -f "$f" ] || { echo "gpu-build: missing $f (install liblua5.4-dev libopenblas-dev zlib1g-dev)" >&2; exit 1; }
done
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
extra_libs="-lgfortran -lpthread -lm -ldl"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Portable \
  -DCMAKE_C_FLAGS_PORTABLE="-O3 -march=x86-64-v3 -mtune=generic -DNDEBUG" \
  -DCMAKE_CUDA_FLAGS_PORTABLE="-O3 -DNDEBUG" \
  -DML_CUDA=ON -DML_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
  "-Dpkgcfg_lib_LUA_lua5.4=$libdir/liblua5.4.a" \
  "-Dpkgcfg_lib_OPENBLAS_openblas=$openblas_a" \
  "-DZLIB_LIBRARY=$libdir/libz.a" \
  "-DCMAKE_C_STANDARD_LIBRARIES=$extra_libs" "-DCMAKE_CUDA_STANDARD_LIBRARIES=$extra_libs" \
  '-DCMAKE_BUILD_RPATH=$ORIGIN/lib' -DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags \
  >"$dir.configure.log" 2>&1 ||
  { cat "$dir.configure.log"; exit 1; }
grep -q "CUDA backend ON" "$dir.configure.log" || { echo "gpu-build: CMake did not enable CUDA" >&2; cat "$dir.configure.log"; exit 1; }
# distributed training's engines (issue 19) when this machine's CMake found MPI /
# NCCL: small plugins; the GPU machine must bring its own MPI (mpirun, libmpi) and
# libnccl (gpu-check.sh looks for them and skips the distributed test without)
engines=$(cmake --build "$dir" --target help | awk '/ml_mpi|ml_nccl/ {print $2}' | tr '\n' ' ')
cmake --build "$dir" -j "$(nproc)" --target moonlight ml_cuda $engines

dist=$dir/dist
rm -rf "$dist"
mkdir -p "$dist/lib"
cp "$dir/moonlight" "$dist/moonlight"
strip "$dist/moonlight"
# the CUDA backend is a plugin the CLI loads from beside itself on first use
cp "$dir/libmoonlight_cuda.so" "$dist/libmoonlight_cuda.so"
strip --strip-unneeded "$dist/libmoonlight_cuda.so"
for engine in libmoonlight_mpi.so libmoonlight_nccl.so; do
  [ -f "$dir/$engine" ] && cp "$dir/$engine" "$dist/$engine" && strip --strip-unneeded "$dist/$engine"
done
# copy what the loader needs beyond glibc and the CUDA libraries of the GPU machine
{ ldd "$dir/moonlight"; ldd "$dir/libmoonlight_cuda.so"; } | sort -u | awk '/=> \// {print $1, $3}' | while read -r name path; do
  case "$name" in
    # glibc, the C++ runtime every Linux with a compiler has (a newer one serves an
    # older build; an older copy could break the GPU machine's libcublas), cuBLAS
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++*|libgcc_s*|libcublas*) ;;
    *) cp -L "$path" "$dist/lib/$name" ;;
  esac
done
# moonlight's own NEEDED entries (libz.so may still come in through libpng, for cairo)
if readelf -d "$dir/moonlight" | grep NEEDED | grep -E "liblua|libopenblas|libz\.so"; then
  echo "gpu-build: Lua/OpenBLAS/zlib were linked dynamically" >&2; exit 1
fi
# DT_RPATH (not RUNPATH): it also finds the copied libraries' own dependencies
# (cairo's pixman, freetype, ...) in dist/lib
readelf -d "$dir/moonlight" | grep -q "(RPATH).*\$ORIGIN/lib" ||
  { echo "gpu-build: no DT_RPATH \$ORIGIN/lib on moonlight" >&2; exit 1; }
echo "gpu-build: $(du -sh "$dist" | cut -f1) in $dist:"; ls -la "$dist" "$dist/lib"
# What travels to the GPU machine: the device tool's 64 MiB limit counts the whole
# working tree (tracked files, data/mnist included) plus the carried paths, and
# dist itself is ~43 MB (static OpenBLAS has kernels for every x86 CPU), so the
# carried form is an xz archive (~5 MB) that gpu-check.sh unpacks.
tar -C "$dir" -cf - dist | xz -T0 -6 >"$dir/dist.tar.xz"
tracked=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
archive=$(stat -c %s "$dir/dist.tar.xz")
total=$((tracked + archive))
echo "gpu-build: $dir/dist.tar.xz is $archive bytes; with the tracked files ($tracked bytes)" \
     "$total of the 67108864 bytes (64 MiB) a device call may carry"
if [ "$total" -gt 67108864 ]; then echo "gpu-build: too large to carry" >&2; exit 1; fi
