/* Loss curves to a PNG: core._plot_png(path, panels), panels =
 * {{title =, series = {{label =, x = {...}, y = {...}}, ...}}, ...}. Used by
 * `moonlight plot` and by the Trainer's plot option. This side reads the Lua
 * tables; the drawing is the plot plugin's (src/plot/plot_plugin.h), loaded on the
 * first plot, so the core does not link cairo. */
#include <stdio.h>

#include "../plot/plot_plugin.h"
#include "../plugin.h"
#include "../sandbox.h"
#include "binding.h"

/* The plugin, loaded once per process (NULL with the reason when it failed). */
static const ml_plot_plugin *plot_plugin(char *why, size_t n) {
    static const ml_plot_plugin *plugin;
    static char reason[1024];
    static int tried; /* a race only repeats the search: each finds the same */
    if (!tried) {
        char attempts[900];
        plugin = ml_plugin_load(ML_PLOT_PLUGIN_FILE, "MOONLIGHT_PLOT_PLUGIN", ML_PLOT_PLUGIN_ENTRY,
                                ML_PLOT_PLUGIN_ABI, NULL, attempts, sizeof attempts);
        if (!plugin)
            snprintf(reason, sizeof reason, "plot: the plot writer (%s) could not be loaded: %s",
                     ML_PLOT_PLUGIN_FILE, attempts);
        tried = 1;
    }
    if (!plugin) snprintf(why, n, "%s", reason);
    return plugin;
}

/* The numbers of table field `field` of the table at idx, in memory owned by a
 * userdata left on the stack (so an error frees it). */
static double *read_numbers(lua_State *L, int idx, const char *field, int *n) {
    if (lua_getfield(L, idx, field) != LUA_TTABLE)
        ml_lua_errorf(L, "plot: series.%s must be a table of numbers", field);
    *n = (int)luaL_len(L, -1);
    double *v = lua_newuserdatauv(L, sizeof(double) * (size_t)(*n > 0 ? *n : 1), 0);
    for (int i = 0; i < *n; i++) {
        lua_geti(L, -2, i + 1);
        v[i] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    lua_remove(L, -2); /* the table; the userdata stays */
    return v;
}

static int l_plot_png(lua_State *L) {
    luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    const char *path = ml_lua_check_path(L, 1, ML_ACCESS_WRITE, "plot");
    lua_replace(L, 1);
    const int np = (int)luaL_len(L, 2);
    if (np == 0) return ml_lua_errorf(L, "plot: nothing to plot");
    char why[1024];
    const ml_plot_plugin *plugin = plot_plugin(why, sizeof why);
    if (!plugin) return ml_lua_errorf(L, "%s", why);
    ml_plot_panel *panels = lua_newuserdatauv(L, sizeof *panels * (size_t)np, 0);
    for (int p = 0; p < np; p++) {
        lua_geti(L, 2, p + 1);
        const int pi = lua_gettop(L);
        lua_getfield(L, pi, "title");
        panels[p].title = lua_tostring(L, -1); /* kept alive by the panel table */
        lua_pop(L, 1);
        lua_getfield(L, pi, "series");
        const int si = lua_gettop(L);
        if (!lua_istable(L, si)) return ml_lua_errorf(L, "plot: panel %d has no series table", p + 1);
        int ns = (int)luaL_len(L, si);
        if (ns > ML_PLOT_MAX_SERIES) ns = ML_PLOT_MAX_SERIES;
        luaL_checkstack(L, 8 + 2 * ns, "plot: too many panels");
        ml_plot_series *s = lua_newuserdatauv(L, sizeof *s * (size_t)(ns > 0 ? ns : 1), 0);
        for (int k = 0; k < ns; k++) {
            lua_geti(L, si, k + 1);
            const int ki = lua_gettop(L);
            int nx, ny;
            s[k].x = read_numbers(L, ki, "x", &nx);
            s[k].y = read_numbers(L, ki, "y", &ny);
            s[k].n = nx < ny ? nx : ny;
            lua_getfield(L, ki, "label");
            s[k].label = lua_tostring(L, -1) ? lua_tostring(L, -1) : "";
            lua_pop(L, 1);
            lua_rotate(L, ki, -1); /* the series table above its two arrays... */
            lua_pop(L, 1);         /* ...and dropped: the panel table keeps it alive */
        }
        panels[p].series = s;
        panels[p].nseries = ns;
        /* leave the panel table, the series table and the arrays on the stack */
    }
    char err[1024];
    if (plugin->write_png(path, panels, np, err, sizeof err)) return ml_lua_errorf(L, "%s", err);
    lua_pushstring(L, path);
    return 1;
}

void ml_lua_open_plot(lua_State *L, int module, int methods) {
    (void)methods;
    lua_pushcfunction(L, l_plot_png);
    lua_setfield(L, module, "_plot_png");
}
