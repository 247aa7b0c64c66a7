#!/usr/bin/env bash
# The LuaRocks package (issue 18 item 6): `luarocks make` of rockspecs/ into a
# fresh temporary tree, then `require "moonlight"` from the stock lua5.4 with
# only that tree on its paths, a tensor op and a backward, the Lua half read
# from the tree's files and the core from the tree's moonlight/core.so.
#   test_luarocks.sh SOURCE_DIR WORK_DIR
# The rock's CMake build directory is WORK_DIR/luarocks-build and is kept between
# runs (the first builds the C module from scratch, ~1 min on two idle cores;
# later ones only what changed). Exits 77 (skipped) without luarocks.
set -euo pipefail
src=$1
work=$2
command -v luarocks >/dev/null || { echo "luarocks is not installed (scripts/deps installs it)"; exit 77; }
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
spec=$(ls "$src"/rockspecs/moonlight-*.rockspec | tail -n 1)
luarocks lint "$spec"
cd "$src"
if ! ML_ROCK_BUILD_DIR="$work/luarocks-build" luarocks --lua-version 5.4 --tree "$tree" make "$spec" \
     >"$tree/make.log" 2>&1; then
  cat "$tree/make.log"
  echo "FAIL: luarocks make"
  exit 1
fi
luarocks --lua-version 5.4 --tree "$tree" list --porcelain | grep -q '^moonlight	0\.1\.0-1' ||
  { echo "FAIL: moonlight not listed in the tree"; exit 1; }
# only the tree's paths (and the system's), never the test build's moonlight.so
eval "$(luarocks --lua-version 5.4 --tree "$tree" path)"
cd "$tree"
lua5.4 - "$tree" <<'LUA'
local tree = ...
local ml = require "moonlight"
local x = ml.tensor({{1, 2}, {3, 4}}, {requires_grad = true})
local y = (x * x):sum()
y:backward()
assert(y:item() == 30, "sum of squares: " .. y:item())
assert(x.grad:eq(x:detach() * 2):sum():item() == 4, "gradient")
local core = package.searchpath("moonlight.core", package.cpath)
assert(core == tree .. "/lib/lua/5.4/moonlight/core.so", "core from " .. tostring(core))
local src = debug.getinfo(ml.data.DataLoader, "S").source
assert(src:find(tree .. "/share/lua/5.4/moonlight/data.lua", 1, true), "data.lua from " .. src)
print("require \"moonlight\" from the rock tree: ok (" .. ml.version .. ")")
LUA
luarocks --lua-version 5.4 --tree "$tree" remove moonlight >/dev/null
[ ! -e "$tree/lib/lua/5.4/moonlight/core.so" ] || { echo "FAIL: remove left core.so"; exit 1; }
echo "PASS"
