/* The counting kernels under ml.metrics (torchmetrics' semantics; the option
 * handling and the stateful objects are in lua/moonlight/metrics.lua). They run on
 * the host: a metric reads a few thousand predictions once per step or epoch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../autograd.h"
#include "../error.h"
#include "../ops.h"
#include "binding.h"

/* A contiguous host copy of t in dtype dt, without autograd (caller releases). */
static ml_tensor *host_copy(lua_State *L, ml_tensor *t, ml_dtype dt) {
    bool was = ml_grad_enabled();
    ml_set_grad_enabled(false);
    ml_tensor *h = ml_to_device(t, ML_CPU);
    ml_tensor *c = h ? ml_cast(h, dt) : NULL;
    ml_tensor *cc = c ? ml_contiguous_copy(c) : NULL;
    ml_tensor_release(h);
    ml_tensor_release(c);
    ml_set_grad_enabled(was);
    if (!cc) ml_lua_error(L);
    return cc;
}

/* _confusion(preds_ids, target_ids, num_classes, ignore_index|nil, fname) -> int64 [C, C]
 * rows are targets, columns predictions, as torchmetrics. */
static int l_confusion(lua_State *L) {
    ml_tensor *p = ml_lua_check_tensor(L, 1), *t = ml_lua_check_tensor(L, 2);
    lua_Integer c = luaL_checkinteger(L, 3);
    bool has_ignore = !lua_isnoneornil(L, 4);
    lua_Integer ignore = has_ignore ? luaL_checkinteger(L, 4) : 0;
    const char *fname = luaL_optstring(L, 5, "metrics");
    if (ml_numel(p) != ml_numel(t)) {
        char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
        return ml_lua_errorf(L, "%s: preds %s and target %s hold different numbers of elements", fname,
                          ml_shape_str(p->ndim, p->shape, a, sizeof a), ml_shape_str(t->ndim, t->shape, b, sizeof b));
    }
    if (c <= 0) return ml_lua_errorf(L, "%s: num_classes must be positive, got %d", fname, (int)c);
    ml_tensor *ph = host_copy(L, p, ML_I64);
    ml_tensor *th = host_copy(L, t, ML_I64);
    int64_t shape[2] = {c, c};
    ml_tensor *cm = ml_zeros(ML_I64, ML_CPU, 2, shape);
    if (!cm) {
        ml_tensor_release(ph);
        ml_tensor_release(th);
        return ml_lua_error(L);
    }
    const int64_t *pp = ml_data(ph), *tp = ml_data(th);
    int64_t *m = ml_data(cm), n = ml_numel(ph);
    for (int64_t i = 0; i < n; i++) {
        if (has_ignore && tp[i] == ignore) continue;
        bool bad_target = tp[i] < 0 || tp[i] >= c, bad_pred = pp[i] < 0 || pp[i] >= c;
        if (bad_target || bad_pred) {
            long long v = (long long)(bad_target ? tp[i] : pp[i]);
            ml_tensor_release(ph);
            ml_tensor_release(th);
            ml_tensor_release(cm);
            return ml_lua_errorf(L, "%s: %s holds class %lld, outside [0, %d) (num_classes = %d)", fname,
                              bad_target ? "target" : "preds", v, (int)c, (int)c);
        }
        m[tp[i] * c + pp[i]]++;
    }
    ml_tensor_release(ph);
    ml_tensor_release(th);
    return ml_lua_push_tensor(L, cm);
}

/* _topk_correct(scores [N, C], target [N], k, ignore_index|nil) -> correct, total */
static int l_topk_correct(lua_State *L) {
    ml_tensor *s = ml_lua_check_tensor(L, 1), *t = ml_lua_check_tensor(L, 2);
    lua_Integer k = luaL_checkinteger(L, 3);
    bool has_ignore = !lua_isnoneornil(L, 4);
    lua_Integer ignore = has_ignore ? luaL_checkinteger(L, 4) : 0;
    if (s->ndim != 2 || t->ndim != 1 || s->shape[0] != t->shape[0])
        return ml_lua_errorf(L, "accuracy: top_k needs preds [N, C] scores and target [N] class ids");
    int64_t n = s->shape[0], c = s->shape[1];
    if (k < 1 || k > c) return ml_lua_errorf(L, "accuracy: top_k must be in [1, %d], got %d", (int)c, (int)k);
    ml_tensor *sh = host_copy(L, s, ML_F64), *th = host_copy(L, t, ML_I64);
    const double *sp = ml_data(sh);
    const int64_t *tp = ml_data(th);
    int64_t correct = 0, total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (has_ignore && tp[i] == ignore) continue;
        if (tp[i] < 0 || tp[i] >= c) {
            ml_tensor_release(sh);
            ml_tensor_release(th);
            return ml_lua_errorf(L, "accuracy: target holds class %lld, outside [0, %d)", (long long)tp[i], (int)c);
        }
        total++;
        /* the target is in the top k when fewer than k classes score higher
         * (ties broken towards the lower class id, as a stable sort does) */
        double v = sp[i * c + tp[i]];
        int64_t above = 0;
        for (int64_t j = 0; j < c; j++) {
            double u = sp[i * c + j];
            if (u > v || (u == v && j < tp[i])) above++;
        }
        if (above < k) correct++;
    }
    ml_tensor_release(sh);
    ml_tensor_release(th);
    lua_pushinteger(L, correct);
    lua_pushinteger(L, total);
    return 2;
}

typedef struct {
    double score;
    int positive;
} scored;

static int by_score_desc(const void *a, const void *b) {
    double x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* ROC AUC of scores against 0/1 labels: the trapezoid under the ROC curve over
 * distinct thresholds, so tied scores form one step (sklearn's and torchmetrics'
 * tie handling). NaN when one class is absent. */
static double auroc(const double *score, const int64_t *label, int64_t n, int64_t positive_class,
                    int64_t stride) {
    scored *v = malloc(sizeof *v * (size_t)(n > 0 ? n : 1));
    if (!v) return NAN;
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        v[i].score = score[i * stride];
        v[i].positive = label[i] == positive_class;
        pos += v[i].positive;
    }
    int64_t neg = n - pos;
    if (pos == 0 || neg == 0) {
        free(v);
        return NAN;
    }
    qsort(v, (size_t)n, sizeof *v, by_score_desc);
    double area = 0, tp = 0, fp = 0, prev_tp = 0, prev_fp = 0;
    for (int64_t i = 0; i < n; i++) {
        tp += v[i].positive;
        fp += !v[i].positive;
        if (i + 1 < n && v[i + 1].score == v[i].score) continue;
        area += (fp - prev_fp) * (tp + prev_tp) / 2;
        prev_tp = tp;
        prev_fp = fp;
    }
    free(v);
    return area / ((double)pos * (double)neg);
}

/* A tensor argument, or a Lua array of tensors joined along dim 1 (the chunks a
 * stateful metric gathered over an epoch) into one host tensor. */
static ml_tensor *joined(lua_State *L, int idx, ml_dtype dt) {
    ml_tensor *t = ml_lua_test_tensor(L, idx);
    if (t) return host_copy(L, t, dt);
    luaL_checktype(L, idx, LUA_TTABLE);
    int n = (int)luaL_len(L, idx);
    if (n == 0) ml_lua_errorf(L, "auroc: no samples were given (update was never called?)");
    int64_t rows = 0, row_len = 1, shape[ML_MAX_DIMS];
    int ndim = 0;
    for (int i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        ml_tensor *c = ml_lua_check_tensor(L, -1);
        if (i == 1) {
            ndim = c->ndim ? c->ndim : 1;
            for (int d = 0; d < c->ndim; d++) shape[d] = c->shape[d];
            if (c->ndim == 0) shape[0] = 1;
            row_len = ml_numel(c) / (shape[0] ? shape[0] : 1);
        }
        rows += c->ndim ? c->shape[0] : 1;
        lua_pop(L, 1);
    }
    shape[0] = rows;
    ml_tensor *out = ml_tensor_empty(dt, ML_CPU, ndim, shape);
    if (!out) ml_lua_error(L);
    size_t es = ml_dtype_size(dt), at = 0;
    for (int i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        ml_tensor *h = host_copy(L, ml_lua_check_tensor(L, -1), dt);
        if (ml_numel(h) % row_len != 0) {
            ml_tensor_release(h);
            ml_tensor_release(out);
            ml_lua_errorf(L, "auroc: the chunks disagree on the number of classes");
        }
        size_t nb = (size_t)ml_numel(h) * es;
        if (at + nb > (size_t)ml_numel(out) * es) {
            ml_tensor_release(h);
            ml_tensor_release(out);
            ml_lua_errorf(L, "auroc: the chunks disagree on their shapes");
        }
        memcpy((char *)ml_data(out) + at, ml_data(h), nb);
        at += nb;
        ml_tensor_release(h);
        lua_pop(L, 1);
    }
    return out;
}

/* _auroc(scores [N] or [N, C], target [N]) -> number (binary) or a Lua array of
 * per-class one-vs-rest numbers (multiclass); either may be an array of chunks */
static int l_auroc(lua_State *L) {
    ml_tensor *sh = joined(L, 1, ML_F64), *th = joined(L, 2, ML_I64);
    ml_tensor *s = sh, *t = th;
    int64_t n = t->ndim ? ml_numel(t) : 1;
    if (s->ndim == 2 ? s->shape[0] != n : ml_numel(s) != n)
        return ml_tensor_release(sh), ml_tensor_release(th),
               ml_lua_errorf(L, "auroc: preds and target disagree on the number of samples");
    const double *sp = ml_data(sh);
    const int64_t *tp = ml_data(th);
    if (s->ndim != 2) {
        lua_pushnumber(L, auroc(sp, tp, n, 1, 1));
    } else {
        int64_t c = s->shape[1];
        lua_createtable(L, (int)c, 0);
        for (int64_t k = 0; k < c; k++) {
            lua_pushnumber(L, auroc(sp + k, tp, n, k, c));
            lua_rawseti(L, -2, k + 1);
        }
    }
    ml_tensor_release(sh);
    ml_tensor_release(th);
    return 1;
}

void ml_lua_open_metrics(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg funcs[] = {{"_confusion", l_confusion}, {"_topk_correct", l_topk_correct},
                                     {"_auroc", l_auroc}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
