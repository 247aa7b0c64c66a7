-- LuaRocks package: `luarocks make rockspecs/moonlight-0.1.0-1.rockspec` (from the
-- repository's root; add --tree DIR for a tree of your own) builds the C core with
-- CMake against the system's libraries (Lua 5.4 headers, OpenBLAS, zlib, cJSON;
-- scripts/deps installs them on Debian) and installs, into the tree:
--   lib/lua/5.4/moonlight/core.so     the C core (require "moonlight.core")
--   share/lua/5.4/moonlight/*.lua     the Lua half (require "moonlight")
-- and the plot plugin (and the CUDA plugin when the CUDA toolkit is found) beside
-- core.so, where the core looks for them. See scripts/rock for the two steps.
rockspec_format = "3.0"
package = "moonlight"
version = "0.1.0-1"
source = {
  url = "git+file:///moonlight",   -- `luarocks make` builds the checkout it runs in
}
description = {
  summary = "A neural-network training engine in C with a Lua 5.4 API (PyTorch/Lightning names)",
  detailed = [[
Tensors, autograd, nn modules, losses, optimizers, data loaders and a Lightning-style
Trainer; heavy work in C (OpenMP, OpenBLAS) and, when built with it, CUDA.]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
build = {
  type = "command",
  build_command = [[bash scripts/rock build]],
  install_command = [[bash scripts/rock install "$(LIBDIR)" "$(LUADIR)"]],
}
