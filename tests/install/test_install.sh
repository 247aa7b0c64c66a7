#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds the host program
# scripts/embed/regress.c against it with pkg-config (shared and static) and with
# CMake's find_package(Moonlight) (shared and static), runs each, and loads the
# installed Lua C module from a stock lua5.4.
#   test_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
P=$tmp/prefix
cmake --install "$build" --prefix "$P" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }

for f in include/moonlight.h lib/libmoonlight.a lib/libmoonlight.so bin/moonlight lib/libmoonlight_plot.so \
         lib/lua/5.4/moonlight.so share/lua/5.4/moonlight/init.lua \
         lib/pkgconfig/moonlight.pc lib/cmake/Moonlight/MoonlightConfig.cmake \
         lib/cmake/Moonlight/MoonlightConfigVersion.cmake; do
  [ -e "$P/$f" ] || { echo "install: $f is missing from the prefix"; exit 1; }
done

script=$src/scripts/embed/regress.lua
cc=${CC:-cc}
export PKG_CONFIG_PATH=$P/lib/pkgconfig
echo "== pkg-config: $(pkg-config --cflags --libs moonlight)"
# the core links Lua, OpenBLAS, zlib and cJSON only: plotting is a plugin
if pkg-config --cflags moonlight | grep -Eq "cairo|glib|freetype"; then
  echo "pkg-config --cflags moonlight names cairo/glib/freetype headers"; exit 1
fi
if ldd "$P/lib/libmoonlight.so" | grep -Eq "libcairo|libglib|libfreetype"; then
  echo "libmoonlight.so links cairo/glib/freetype"; exit 1
fi
$cc -std=c11 -O1 -o "$tmp/pc_shared" "$src/scripts/embed/regress.c" \
    $(pkg-config --cflags --libs moonlight) -lm -Wl,-rpath,"$P/lib"
# shellcheck disable=SC2046
$cc -std=c11 -O1 -o "$tmp/pc_static" "$src/scripts/embed/regress.c" $(pkg-config --cflags moonlight) \
    "$P/lib/libmoonlight.a" $(pkg-config --static --libs moonlight | sed 's/-lmoonlight\b//')
if ldd "$tmp/pc_static" | grep -q libmoonlight; then echo "pc_static links libmoonlight.so"; exit 1; fi
ldd "$tmp/pc_shared" | grep -q "$P/lib/libmoonlight.so" || { echo "pc_shared does not use the installed libmoonlight.so"; exit 1; }

echo "== cmake: find_package(Moonlight)"
cmake -S "$src/tests/install/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$P" \
      -DREGRESS_SRC="$src/scripts/embed/regress.c" -DCMAKE_BUILD_TYPE=Release >"$tmp/consumer.log" 2>&1 ||
  { cat "$tmp/consumer.log"; exit 1; }
cmake --build "$tmp/consumer" >>"$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; exit 1; }

for exe in "$tmp/pc_shared" "$tmp/pc_static" "$tmp/consumer/regress_shared" "$tmp/consumer/regress_static"; do
  echo "== run $(basename "$(dirname "$exe")")/$(basename "$exe")"
  "$exe" "$script" "$tmp/model.safetensors" | tail -n 2
done

echo "== stock lua5.4 with the installed module"
LUA_CPATH="$P/lib/lua/5.4/?.so" LUA_PATH="" lua5.4 -e '
  local ml = require "moonlight"
  assert(package.searchpath("moonlight", package.cpath):find("/lib/lua/5.4/moonlight.so", 1, true))
  local t = ml.tensor({{1, 2}, {3, 4}})
  assert(t:matmul(t):sum():item() == 54)
  print("lua5.4: moonlight " .. ml.version .. " ok")'
"$P/bin/moonlight" -e 'assert(ml.ones({3}):sum():item() == 3); print("installed CLI ok")'
printf 'epoch,step,train_loss,val_loss\n0,9,0.5,\n0,19,0.4,0.45\n' >"$tmp/metrics.csv"
"$P/bin/moonlight" plot "$tmp/metrics.csv" -o "$tmp/curves.png" # the plugin from the install
[ -s "$tmp/curves.png" ] || { echo "installed CLI: no plot written"; exit 1; }
