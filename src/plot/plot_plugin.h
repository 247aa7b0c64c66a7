/* The seam between the core and the plot writer, a plugin (libmoonlight_plot.so,
 * src/plot/png.c) loaded on first use by src/lua/plot.c (src/plugin.h): cairo and
 * the libraries it brings (glib, freetype, pixman, ...) stay out of the core.
 * Plain C data only; the core keeps the Lua side. */
#ifndef ML_PLOT_PLUGIN_H
#define ML_PLOT_PLUGIN_H

#include <stddef.h>

#define ML_PLOT_PLUGIN_ABI 1
#define ML_PLOT_PLUGIN_FILE "libmoonlight_plot.so"
#define ML_PLOT_PLUGIN_ENTRY "ml_plot_plugin_entry"

/* One curve: n points (x[i], y[i]); points with a non-finite value are skipped. */
typedef struct {
    const double *x, *y;
    int n;
    const char *label;
} ml_plot_series;

/* One panel: its title and curves (at most ML_PLOT_MAX_SERIES are drawn). */
#define ML_PLOT_MAX_SERIES 16
typedef struct {
    const char *title;
    const ml_plot_series *series;
    int nseries;
} ml_plot_panel;

typedef struct ml_plot_plugin {
    int abi;
    /* Draws the panels in a grid (two columns) into a PNG at path, written under a
     * temporary name beside it and renamed. 0, or -1 with a message in err. */
    int (*write_png)(const char *path, const ml_plot_panel *panels, int npanels, char *err,
                     size_t errlen);
} ml_plot_plugin;

/* The plugin's entry point (host is unused: NULL). */
typedef const ml_plot_plugin *(*ml_plot_plugin_entry_fn)(const void *host);

#endif
