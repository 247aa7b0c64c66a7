/* Loss curves to a PNG with cairo: core._plot_png(path, panels, opts), panels =
 * {{title =, series = {{label =, x = {...}, y = {...}}, ...}}, ...}. One panel per
 * metric in a grid, axes with ticks, a legend. Used by `moonlight plot` and by the
 * Trainer's plot option. The file is written under a temporary name and renamed. */
#define _POSIX_C_SOURCE 200809L
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"

#define PANEL_W 560
#define PANEL_H 360
#define MARGIN_L 70
#define MARGIN_R 20
#define MARGIN_T 36
#define MARGIN_B 48

typedef struct {
    double *x, *y;
    int n;
    const char *label;
} series;

static const double palette[][3] = {
    {0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17},
    {0.84, 0.15, 0.16}, {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29},
};

static double *read_numbers(lua_State *L, int idx, const char *field, int *n) {
    lua_getfield(L, idx, field);
    if (!lua_istable(L, -1)) ml_lua_errorf(L, "plot: series.%s must be a table of numbers", field);
    *n = (int)luaL_len(L, -1);
    double *v = malloc(sizeof(double) * (size_t)(*n > 0 ? *n : 1));
    if (!v) ml_lua_errorf(L, "plot: out of memory");
    for (int i = 0; i < *n; i++) {
        lua_geti(L, -1, i + 1);
        v[i] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return v;
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about k ticks. */
static double nice_step(double range, int k) {
    if (range <= 0) return 1;
    double raw = range / k, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

static void draw_panel(cairo_t *cr, double ox, double oy, const char *title, series *s, int ns) {
    double x0 = ox + MARGIN_L, y0 = oy + MARGIN_T;
    double w = PANEL_W - MARGIN_L - MARGIN_R, h = PANEL_H - MARGIN_T - MARGIN_B;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i])) continue;
            xmin = fmin(xmin, s[k].x[i]);
            xmax = fmax(xmax, s[k].x[i]);
            ymin = fmin(ymin, s[k].y[i]);
            ymax = fmax(ymax, s[k].y[i]);
        }
    if (!isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
    if (xmax == xmin) xmax = xmin + 1;
    if (ymax == ymin) ymax = ymin + fabs(ymin) * 0.1 + 1e-9;
    double pad = (ymax - ymin) * 0.05, xpad = (xmax - xmin) * 0.02; /* keep end points inside */
    ymin -= pad;
    ymax += pad;
    xmin -= xpad;
    xmax += xpad;
#define PX(v) (x0 + ((v) - xmin) / (xmax - xmin) * w)
#define PY(v) (y0 + h - ((v) - ymin) / (ymax - ymin) * h)
    /* title */
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 14);
    cairo_text_extents_t te;
    cairo_text_extents(cr, title, &te);
    cairo_move_to(cr, x0 + w / 2 - te.width / 2, oy + 22);
    cairo_show_text(cr, title);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 11);
    /* grid and ticks */
    char buf[64];
    double ys = nice_step(ymax - ymin, 5), xs = nice_step(xmax - xmin, 6);
    cairo_set_line_width(cr, 1);
    for (double v = ceil(ymin / ys) * ys; v <= ymax; v += ys) {
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, x0, PY(v));
        cairo_line_to(cr, x0 + w, PY(v));
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        snprintf(buf, sizeof buf, "%.4g", fabs(v) < ys * 1e-6 ? 0.0 : v);
        cairo_text_extents(cr, buf, &te);
        cairo_move_to(cr, x0 - 6 - te.width, PY(v) + te.height / 2);
        cairo_show_text(cr, buf);
    }
    for (double v = ceil(xmin / xs) * xs; v <= xmax; v += xs) {
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, PX(v), y0);
        cairo_line_to(cr, PX(v), y0 + h);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        snprintf(buf, sizeof buf, "%.6g", v);
        cairo_text_extents(cr, buf, &te);
        cairo_move_to(cr, PX(v) - te.width / 2, y0 + h + 16);
        cairo_show_text(cr, buf);
    }
    cairo_text_extents(cr, "step", &te);
    cairo_move_to(cr, x0 + w / 2 - te.width / 2, y0 + h + 34);
    cairo_show_text(cr, "step");
    /* axes */
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, x0, y0, w, h);
    cairo_stroke(cr);
    /* curves */
    cairo_save(cr);
    cairo_rectangle(cr, x0, y0, w, h);
    cairo_clip(cr);
    cairo_set_line_width(cr, 1.8);
    for (int k = 0; k < ns; k++) {
        const double *c = palette[k % 6];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        int started = 0;
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i])) continue;
            if (!started) cairo_move_to(cr, PX(s[k].x[i]), PY(s[k].y[i]));
            else cairo_line_to(cr, PX(s[k].x[i]), PY(s[k].y[i]));
            started = 1;
        }
        cairo_stroke(cr);
        for (int i = 0; s[k].n <= 20 && i < s[k].n; i++) { /* few points: mark them */
            cairo_arc(cr, PX(s[k].x[i]), PY(s[k].y[i]), 3, 0, 2 * 3.14159265358979);
            cairo_fill(cr);
        }
    }
    cairo_restore(cr);
    /* legend */
    for (int k = 0; k < ns; k++) {
        const double *c = palette[k % 6];
        double ly = y0 + 14 + 16 * k;
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_rectangle(cr, x0 + w - 150, ly - 8, 18, 4);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, x0 + w - 126, ly - 2);
        cairo_show_text(cr, s[k].label);
    }
#undef PX
#undef PY
}

static int l_plot_png(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int np = (int)luaL_len(L, 2);
    if (np == 0) return ml_lua_errorf(L, "plot: nothing to plot");
    int cols = np < 2 ? np : 2, rows = (np + cols - 1) / cols;
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, cols * PANEL_W, rows * PANEL_H);
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    for (int p = 0; p < np; p++) {
        lua_geti(L, 2, p + 1);
        int pi = lua_gettop(L);
        lua_getfield(L, pi, "title");
        const char *title = lua_tostring(L, -1);
        lua_getfield(L, pi, "series");
        int si = lua_gettop(L);
        int ns = (int)luaL_len(L, si);
        series s[16];
        if (ns > 16) ns = 16;
        for (int k = 0; k < ns; k++) {
            lua_geti(L, si, k + 1);
            int nx, ny;
            s[k].x = read_numbers(L, -1, "x", &nx);
            s[k].y = read_numbers(L, -1, "y", &ny);
            s[k].n = nx < ny ? nx : ny;
            lua_getfield(L, -1, "label");
            s[k].label = lua_tostring(L, -1);
            lua_pop(L, 1); /* label string stays referenced by the series table */
            lua_pop(L, 1);
        }
        draw_panel(cr, (p % cols) * PANEL_W, (p / cols) * PANEL_H, title ? title : "", s, ns);
        for (int k = 0; k < ns; k++) {
            free(s[k].x);
            free(s[k].y);
        }
        lua_settop(L, 2);
    }
    cairo_destroy(cr);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cairo_status_t st = cairo_surface_write_to_png(surf, tmp);
    cairo_surface_destroy(surf);
    if (st != CAIRO_STATUS_SUCCESS) return ml_lua_errorf(L, "plot: cannot write %s: %s", path, cairo_status_to_string(st));
    if (rename(tmp, path) != 0) return ml_lua_errorf(L, "plot: cannot rename %s to %s", tmp, path);
    lua_pushstring(L, path);
    return 1;
}

void ml_lua_open_plot(lua_State *L, int module, int methods) {
    (void)methods;
    lua_pushcfunction(L, l_plot_png);
    lua_setfield(L, module, "_plot_png");
}
