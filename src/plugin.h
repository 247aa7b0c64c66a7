/* Libraries moonlight loads on first use (plugins): the CUDA backend
 * (libmoonlight_cuda.so) and the plot writer (libmoonlight_plot.so). Keeping them
 * out of the core keeps its dependencies to Lua, OpenBLAS, zlib and cJSON, and a
 * run that never plots or never uses a GPU never maps cairo or cudart.
 *
 * A plugin talks to the core through a table of plain C functions with an ABI
 * number, never through the core's symbols: a library dlopened by a Lua module
 * cannot see the module's symbols. */
#ifndef ML_PLUGIN_H
#define ML_PLUGIN_H

#include <stddef.h>

/* dlopens the plugin `file`, looked for in $env_var (when env_var is not NULL and
 * the variable is set), beside the object holding the core (the CLI, moonlight.so
 * or libmoonlight.so), in ../lib from there, in the install's libdir, and on the
 * loader's path. Then calls its entry point `entry`, a function
 * `const void *entry(const void *host)` given `host` (the core's side of the seam,
 * or NULL), whose result begins with an int ABI number, and accepts it when that
 * number is `abi`. Returns what the entry returned, or NULL with every attempt
 * described in `tried` (n bytes). A plugin found is never unloaded. */
const void *ml_plugin_load(const char *file, const char *env_var, const char *entry, int abi,
                           const void *host, char *tried, size_t n);

#endif
