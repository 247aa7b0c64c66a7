/* The plot writer plugin (plot_plugin.h): loss curves to a PNG with cairo, one
 * panel per metric in a grid of two columns, axes with ticks, a legend. Built as
 * libmoonlight_plot.so; only ml_plot_plugin_entry is exported. */
#define _POSIX_C_SOURCE 200809L
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plot_plugin.h"

/* A panel has about 6 ticks an axis; more than this (a step lost in the rounding
 * of values far larger than their spread) would never end. */
#define MAX_TICKS 64

#define PANEL_W 560
#define PANEL_H 360
#define MARGIN_L 70
#define MARGIN_R 20
#define MARGIN_T 36
#define MARGIN_B 48

static const double palette[][3] = {
    {0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17},
    {0.84, 0.15, 0.16}, {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29},
};

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about k ticks. */
static double nice_step(double range, int k) {
    if (range <= 0) return 1;
    double raw = range / k, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

static void draw_panel(cairo_t *cr, double ox, double oy, const char *title,
                       const ml_plot_series *s, int ns) {
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
    /* a flat range (or one lost in the rounding of large values) gets a width */
    if (!(xmax > xmin)) xmax = xmin + fmax(1, fabs(xmin) * 1e-6);
    if (!(ymax > ymin)) ymax = ymin + fmax(fabs(ymin) * 0.1, 1e-9);
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
    for (int t = 0; t <= MAX_TICKS; t++) {
        const double v = (ceil(ymin / ys) + t) * ys;
        if (v > ymax) break;
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
    for (int t = 0; t <= MAX_TICKS; t++) {
        const double v = (ceil(xmin / xs) + t) * xs;
        if (v > xmax) break;
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
            if (!isfinite(s[k].y[i])) continue;
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

static int write_png(const char *path, const ml_plot_panel *panels, int np, char *err,
                     size_t errlen) {
    if (np <= 0) {
        snprintf(err, errlen, "plot: nothing to plot");
        return -1;
    }
    const int cols = np < 2 ? np : 2, rows = (np + cols - 1) / cols;
    cairo_surface_t *surf =
        cairo_image_surface_create(CAIRO_FORMAT_RGB24, cols * PANEL_W, rows * PANEL_H);
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    for (int p = 0; p < np; p++) {
        const int ns = panels[p].nseries < ML_PLOT_MAX_SERIES ? panels[p].nseries : ML_PLOT_MAX_SERIES;
        draw_panel(cr, (p % cols) * PANEL_W, (p / cols) * PANEL_H,
                   panels[p].title ? panels[p].title : "", panels[p].series, ns);
    }
    cairo_destroy(cr);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cairo_status_t st = cairo_surface_write_to_png(surf, tmp);
    cairo_surface_destroy(surf);
    if (st != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "plot: cannot write %s: %s", path, cairo_status_to_string(st));
        remove(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "plot: cannot rename %s to %s", tmp, path);
        remove(tmp);
        return -1;
    }
    return 0;
}

static const ml_plot_plugin plugin = {ML_PLOT_PLUGIN_ABI, write_png};

__attribute__((visibility("default"))) const ml_plot_plugin *ml_plot_plugin_entry(const void *host) {
    (void)host;
    return &plugin;
}
