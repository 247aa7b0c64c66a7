/* The core's ops from C: shapes and strides, broadcasting rules, views (and the
 * error of viewing a non-contiguous tensor), reductions, matmul against a naive
 * triple loop (transposed views and batches included), indexing, the generator,
 * every op of the elementwise lists through the CPU table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "autograd.h"
#include "backend.h"
#include "error.h"
#include "ops.h"

static ml_tensor *seq(int ndim, const int64_t *shape, ml_dtype dt) {
    int64_t n = ml_shape_numel(ndim, shape);
    ml_tensor *a = ml_arange(0, (double)n, 1, dt, ML_CPU);
    ml_tensor *v = ml_view(a, ndim, shape);
    ml_tensor_release(a);
    return v;
}

/* element at a multi-index of any view, as double */
static double at(const ml_tensor *t, const int64_t *idx) {
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) off += idx[i] * t->strides[i];
    switch (t->dtype) {
    case ML_F32: return ((const float *)ml_data(t))[off];
    case ML_F64: return ((const double *)ml_data(t))[off];
    case ML_I64: return (double)((const int64_t *)ml_data(t))[off];
    default: return ((const uint8_t *)ml_data(t))[off];
    }
}

static void test_strides_and_views(void **state) {
    (void)state;
    ml_tensor *x = seq(3, (int64_t[]){2, 3, 4}, ML_F32);
    assert_int_equal(x->strides[0], 12);
    ml_tensor *p = ml_permute(x, (int[]){2, 0, 1});
    assert_ptr_equal(p->storage, x->storage);
    assert_int_equal(p->shape[0], 4);
    assert_int_equal(p->strides[0], 1);
    assert_int_equal(p->strides[1], 12);
    assert_int_equal(p->strides[2], 4);
    assert_false(ml_is_contiguous(p));
    /* a view of a non-contiguous tensor that its strides cannot express */
    assert_null(ml_view(p, 1, (int64_t[]){24}));
    assert_non_null(strstr(ml_error(), "view: size and strides of the tensor (shape [4, 2, 3])"));
    /* ... that reshape copies */
    ml_tensor *r = ml_reshape(p, 1, (int64_t[]){24});
    assert_non_null(r);
    assert_ptr_not_equal(r->storage, x->storage);
    assert_float_equal(((float *)ml_data(r))[1], 4.0f, 0); /* p[0][0][1] = x[0][1][0] */
    /* a view that only splits a dim keeps sharing */
    ml_tensor *n = ml_narrow(x, 2, 1, 2);
    assert_int_equal(n->offset, 1);
    ml_tensor *s = ml_select(n, 0, 1);
    assert_int_equal(s->offset, 13);
    assert_float_equal(at(s, (int64_t[]){2, 1}), 22.0, 0);
    ml_tensor *u = ml_unsqueeze(x, -1);
    assert_int_equal(u->ndim, 4);
    assert_int_equal(u->shape[3], 1);
    ml_tensor *e = ml_expand(u, 4, (int64_t[]){2, 3, 4, 5});
    assert_int_equal(e->strides[3], 0);
    ml_tensor *bad = ml_reshape(x, 2, (int64_t[]){5, 5});
    assert_null(bad);
    assert_string_equal(ml_error(), "reshape: shape [5, 5] is invalid for input of size 24 (shape [2, 3, 4])");
    ml_tensor *all[] = {x, p, r, n, s, u, e};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ml_tensor_release(all[i]);
}

static void test_broadcasting_rules(void **state) {
    (void)state;
    int nd;
    int64_t shape[ML_MAX_DIMS];
    assert_int_equal(ml_broadcast_shapes("f", 3, (int64_t[]){5, 1, 4}, 2, (int64_t[]){3, 1}, &nd, shape), 0);
    assert_int_equal(nd, 3);
    assert_int_equal(shape[0], 5);
    assert_int_equal(shape[1], 3);
    assert_int_equal(shape[2], 4);
    assert_int_equal(ml_broadcast_shapes("f", 0, NULL, 2, (int64_t[]){2, 3}, &nd, shape), 0);
    assert_int_equal(nd, 2);
    assert_int_equal(ml_broadcast_shapes("f", 2, (int64_t[]){2, 3}, 2, (int64_t[]){3, 2}, &nd, shape), -1);
    assert_string_equal(ml_error(), "f: shapes [2, 3] and [3, 2] cannot be broadcast (dim 1: 2 vs 3)");
    /* [3, 1, 2] * [4, 1] -> [3, 4, 2], checked element by element */
    ml_tensor *a = seq(3, (int64_t[]){3, 1, 2}, ML_F64), *b = seq(2, (int64_t[]){4, 1}, ML_F64);
    ml_tensor *c = ml_mul(a, b);
    assert_int_equal(c->ndim, 3);
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 4; j++)
            for (int64_t k = 0; k < 2; k++) {
                int64_t ix[ML_MAX_DIMS] = {i, j, k};
                assert_float_equal(at(c, ix), (double)(i * 2 + k) * (double)j, 0);
            }
    /* type promotion: int64 tensor + float32 0-dim -> float32; uint8 + int64 -> int64 */
    ml_tensor *li = seq(1, (int64_t[]){3}, ML_I64), *fs = ml_scalar(0.5, ML_F32, ML_CPU);
    ml_tensor *m = ml_add(li, fs);
    assert_int_equal(m->dtype, ML_F32);
    ml_tensor *u8 = ml_full(ML_U8, ML_CPU, 1, (int64_t[]){3}, 2);
    ml_tensor *s = ml_add(u8, li);
    assert_int_equal(s->dtype, ML_I64);
    ml_tensor *all[] = {a, b, c, li, fs, m, u8, s};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ml_tensor_release(all[i]);
}

static void test_reductions(void **state) {
    (void)state;
    ml_tensor *x = seq(3, (int64_t[]){2, 3, 4}, ML_F32);
    ml_tensor *s1 = ml_sum(x, 1, false), *s1k = ml_sum(x, 1, true), *all = ml_sum(x, ML_ALL_DIMS, false);
    assert_int_equal(s1->ndim, 2);
    assert_int_equal(s1k->ndim, 3);
    assert_int_equal(s1k->shape[1], 1);
    assert_int_equal(all->ndim, 0);
    assert_float_equal(*(float *)ml_data(all), 276.0f, 0);
    for (int64_t i = 0; i < 2; i++)
        for (int64_t k = 0; k < 4; k++) {
            double want = 0;
            for (int64_t j = 0; j < 3; j++) want += (double)(i * 12 + j * 4 + k);
            assert_float_equal(at(s1, (int64_t[]){i, k}), want, 0);
        }
    /* reductions of a transposed view match those of its contiguous copy */
    ml_tensor *t = ml_transpose(x, 0, 2), *tc = ml_contiguous_copy(t);
    ml_tensor *m = ml_mean(t, -1, false), *mc = ml_mean(tc, -1, false);
    for (int64_t i = 0; i < ml_numel(m); i++)
        assert_float_equal(((float *)ml_data(m))[i], ((float *)ml_data(mc))[i], 1e-6);
    ml_tensor *idx = NULL, *mx = ml_max(t, 1, false, &idx);
    assert_int_equal(idx->dtype, ML_I64);
    assert_int_equal(((int64_t *)ml_data(idx))[0], 2);
    assert_float_equal(((float *)ml_data(mx))[0], 8.0f, 0);
    assert_null(ml_sum(x, 3, false));
    assert_non_null(strstr(ml_error(), "sum: dim 4 out of range for a tensor of shape [2, 3, 4]"));
    ml_tensor *rel[] = {x, s1, s1k, all, t, tc, m, mc, idx, mx};
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) ml_tensor_release(rel[i]);
}

/* c[b] = a[b] @ bm[b] by a triple loop over any strides (batch dims broadcast) */
static void naive_check(const ml_tensor *a, const ml_tensor *b, const ml_tensor *c) {
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], n = b->shape[b->ndim - 1];
    int64_t batch = ml_shape_numel(c->ndim - 2, c->shape);
    for (int64_t bi = 0; bi < batch; bi++) {
        int64_t ia[ML_MAX_DIMS] = {0}, ib[ML_MAX_DIMS] = {0}, ic[ML_MAX_DIMS] = {0};
        int64_t r = bi;
        for (int d = c->ndim - 3; d >= 0; d--) {
            int64_t cd = r % c->shape[d];
            r /= c->shape[d];
            ic[d] = cd;
            int da = d - (c->ndim - a->ndim), db = d - (c->ndim - b->ndim);
            if (da >= 0) ia[da] = a->shape[da] == 1 ? 0 : cd;
            if (db >= 0) ib[db] = b->shape[db] == 1 ? 0 : cd;
        }
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0;
                for (int64_t p = 0; p < k; p++) {
                    ia[a->ndim - 2] = i;
                    ia[a->ndim - 1] = p;
                    ib[b->ndim - 2] = p;
                    ib[b->ndim - 1] = j;
                    acc += at(a, ia) * at(b, ib);
                }
                ic[c->ndim - 2] = i;
                ic[c->ndim - 1] = j;
                assert_float_equal(at(c, ic), acc, 1e-3 * (1 + fabs(acc)));
            }
    }
}

static void test_matmul_against_naive(void **state) {
    (void)state;
    ml_manual_seed(3);
    struct { int na; int64_t sa[4]; int nb; int64_t sb[4]; bool ta, tb; } cases[] = {
        {2, {3, 5}, 2, {5, 4}, false, false},
        {2, {5, 3}, 2, {5, 4}, true, false},   /* a given as a transposed view */
        {2, {3, 5}, 2, {4, 5}, false, true},   /* b transposed */
        {2, {5, 3}, 2, {4, 5}, true, true},
        {3, {2, 3, 5}, 3, {2, 5, 4}, false, false},
        {3, {2, 5, 3}, 2, {5, 4}, true, false},
        {4, {2, 1, 3, 4}, 3, {3, 4, 2}, false, false},
        {3, {2, 64, 33}, 3, {2, 33, 17}, false, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        ml_tensor *a0 = ml_randn(ML_F32, ML_CPU, cases[c].na, cases[c].sa, 0, 1);
        ml_tensor *b0 = ml_randn(ML_F32, ML_CPU, cases[c].nb, cases[c].sb, 0, 1);
        ml_tensor *a = cases[c].ta ? ml_transpose(a0, -1, -2) : ml_tensor_retain(a0);
        ml_tensor *b = cases[c].tb ? ml_transpose(b0, -1, -2) : ml_tensor_retain(b0);
        ml_tensor *out = ml_matmul(a, b);
        assert_non_null(out);
        naive_check(a, b, out);
        ml_tensor *rel[] = {a0, b0, a, b, out};
        for (size_t i = 0; i < 5; i++) ml_tensor_release(rel[i]);
    }
    /* linear = x @ w^T + b */
    ml_tensor *x = ml_randn(ML_F32, ML_CPU, 2, (int64_t[]){6, 5}, 0, 1);
    ml_tensor *w = ml_randn(ML_F32, ML_CPU, 2, (int64_t[]){4, 5}, 0, 1);
    ml_tensor *bias = ml_randn(ML_F32, ML_CPU, 1, (int64_t[]){4}, 0, 1);
    ml_tensor *y = ml_linear(x, w, bias), *wt = ml_transpose(w, 0, 1), *p = ml_matmul(x, wt);
    for (int64_t i = 0; i < 6; i++)
        for (int64_t j = 0; j < 4; j++)
            assert_float_equal(at(y, (int64_t[]){i, j}),
                               at(p, (int64_t[]){i, j}) + ((float *)ml_data(bias))[j], 1e-5);
    ml_tensor *bad = ml_matmul(x, x);
    assert_null(bad);
    assert_string_equal(ml_error(), "matmul: shapes [6, 5] and [6, 5] cannot be multiplied (inner dims 5 and 6 differ)");
    ml_tensor *rel[] = {x, w, bias, y, wt, p};
    for (size_t i = 0; i < 6; i++) ml_tensor_release(rel[i]);
}

static void test_index_ops(void **state) {
    (void)state;
    ml_tensor *x = seq(2, (int64_t[]){3, 4}, ML_F32);
    ml_tensor *idx = ml_tensor_empty(ML_I64, ML_CPU, 2, (int64_t[]){3, 2});
    int64_t iv[6] = {3, 0, 1, 1, 0, 2};
    memcpy(ml_data(idx), iv, sizeof iv);
    ml_tensor *g = ml_gather(x, 1, idx);
    float want[6] = {3, 0, 5, 5, 8, 10};
    for (int i = 0; i < 6; i++) assert_float_equal(((float *)ml_data(g))[i], want[i], 0);
    /* scatter_add is gather's adjoint: <gather(x), s> == <x, scatter_add(0, s)> */
    ml_tensor *s = ml_full(ML_F32, ML_CPU, 2, (int64_t[]){3, 2}, 1.0);
    ml_tensor *sc = ml_scatter_add_new(2, x->shape, 1, idx, s);
    assert_float_equal(((float *)ml_data(sc))[5], 2.0f, 0); /* row 1, col 1 hit twice */
    /* index_select over dim 0 with a repeat, index_add back */
    ml_tensor *sel = ml_tensor_empty(ML_I64, ML_CPU, 1, (int64_t[]){3});
    int64_t sv[3] = {2, 2, 0};
    memcpy(ml_data(sel), sv, sizeof sv);
    ml_tensor *r = ml_index_select(x, 0, sel);
    assert_int_equal(r->shape[0], 3);
    assert_float_equal(at(r, (int64_t[]){1, 3}), 11.0, 0);
    ml_tensor *ones = ml_full(ML_F32, ML_CPU, 2, (int64_t[]){3, 4}, 1.0);
    ml_tensor *ia = ml_index_add_new(2, x->shape, 0, sel, ones);
    assert_float_equal(at(ia, (int64_t[]){2, 0}), 2.0, 0);
    assert_float_equal(at(ia, (int64_t[]){1, 0}), 0.0, 0);
    /* range errors */
    ((int64_t *)ml_data(sel))[1] = 3;
    assert_null(ml_index_select(x, 0, sel));
    assert_string_equal(ml_error(), "index_select: index 3 out of range for dim 1 of size 3 "
                                    "(index values are 0-based positions, 0..2)");
    ml_tensor *oh = ml_one_hot(idx, -1);
    assert_int_equal(oh->ndim, 3);
    assert_int_equal(oh->shape[2], 4);
    assert_int_equal(((int64_t *)ml_data(oh))[3], 1);
    ml_tensor *rel[] = {x, idx, g, s, sc, sel, r, ones, ia, oh};
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) ml_tensor_release(rel[i]);
}

static void test_max_backward_routes_to_index(void **state) {
    (void)state;
    ml_tensor *x = ml_randn(ML_F64, ML_CPU, 2, (int64_t[]){3, 5}, 0, 1);
    x->requires_grad = true;
    ml_tensor *idx = NULL, *v = ml_max(x, 1, false, &idx), *s = ml_sum(v, ML_ALL_DIMS, false);
    assert_int_equal(ml_backward(s, NULL), 0);
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 5; j++)
            assert_float_equal(at(x->grad, (int64_t[]){i, j}),
                               ((int64_t *)ml_data(idx))[i] == j ? 1.0 : 0.0, 0);
    ml_tensor_release(idx);
    ml_tensor_release(v);
    ml_tensor_release(s);
    ml_tensor_release(x);
}

static void test_generator_repeatable(void **state) {
    (void)state;
    int64_t shape[1] = {1000};
    ml_manual_seed(123);
    ml_tensor *a = ml_randn(ML_F32, ML_CPU, 1, shape, 0, 1);
    ml_tensor *p = ml_randperm(50);
    ml_manual_seed(123);
    ml_tensor *b = ml_randn(ML_F32, ML_CPU, 1, shape, 0, 1);
    ml_tensor *q = ml_randperm(50);
    assert_memory_equal(ml_data(a), ml_data(b), 1000 * sizeof(float));
    assert_memory_equal(ml_data(p), ml_data(q), 50 * sizeof(int64_t));
    /* a permutation, and normal-ish numbers */
    bool seen[50] = {false};
    for (int i = 0; i < 50; i++) seen[((int64_t *)ml_data(p))[i]] = true;
    for (int i = 0; i < 50; i++) assert_true(seen[i]);
    double mean = 0;
    for (int i = 0; i < 1000; i++) mean += ((float *)ml_data(a))[i];
    assert_true(fabs(mean / 1000) < 0.15);
    ml_manual_seed(124);
    ml_tensor *c = ml_randn(ML_F32, ML_CPU, 1, shape, 0, 1);
    assert_true(memcmp(ml_data(a), ml_data(c), 1000 * sizeof(float)) != 0);
    ml_tensor *rel[] = {a, b, c, p, q};
    for (size_t i = 0; i < 5; i++) ml_tensor_release(rel[i]);
}

static void test_large_elementwise_and_cache(void **state) {
    (void)state;
    /* above the parallel threshold and the allocator's cache size */
    int64_t shape[1] = {300000};
    for (int round = 0; round < 3; round++) {
        ml_tensor *a = ml_full(ML_F32, ML_CPU, 1, shape, 1.5), *b = ml_full(ML_F32, ML_CPU, 1, shape, 2.0);
        ml_tensor *c = ml_mul(a, b), *e = ml_unary(ML_UN_EXP, a), *s = ml_sum(c, ML_ALL_DIMS, false);
        assert_float_equal(((float *)ml_data(c))[299999], 3.0f, 0);
        assert_float_equal(((float *)ml_data(e))[12345], expf(1.5f), 1e-6);
        assert_float_equal(*(float *)ml_data(s), 900000.0f, 0.5);
        ml_tensor *rel[] = {a, b, c, e, s};
        for (size_t i = 0; i < 5; i++) ml_tensor_release(rel[i]);
    }
}

/* Every op of the elementwise lists through the CPU table: names and node names,
 * the domain (integers refused by float-only ops, taken by the others), the fused
 * backward of each op, and the check that the saved tensors match the rule. */
static void test_elementwise_lists(void **state) {
    (void)state;
    const ml_elementwise_ops *ew = ml_cpu_backend()->elementwise;
    int64_t shape[1] = {5};
    ml_tensor *x = ml_full(ML_F64, ML_CPU, 1, shape, 0.75), *g = ml_full(ML_F64, ML_CPU, 1, shape, 2);
    ml_tensor *xi = ml_full(ML_I64, ML_CPU, 1, shape, 3), *u8 = ml_full(ML_U8, ML_CPU, 1, shape, 3);
    for (int k = 0; k < ML_UN_COUNT; k++) {
        ml_unary_op op = (ml_unary_op)k;
        const char *name = ml_unary_name(op), *node = ml_unary_node_name(op);
        assert_string_not_equal(name, "?");
        assert_non_null(strstr(node, "Backward"));
        const bool mask = ml_unary_is_mask(op);
        ml_tensor *y = ml_tensor_empty(mask ? ML_U8 : ML_F64, ML_CPU, 1, shape);
        ml_tensor *gx = ml_tensor_empty_like(x);
        assert_int_equal(ew->unary(op, NULL, x, y), 0);
        /* the fused rule against the op itself: g * dy/dx by a central difference, at
         * the default parameters and at others (a parameter the rule ignores shows) */
        const ml_tensor *sx = ml_unary_saves_x(op) ? x : NULL, *sy = ml_unary_saves_y(op) ? y : NULL;
        const double other[ML_UN_MAX_PARAMS] = {0.5, 0.25};
        for (int with = 0; !mask && with < (ml_unary_n_params(op) ? 2 : 1); with++) {
            const double *params = with ? other : NULL;
            ml_tensor *yw = ml_unary_with(op, x, params);
            assert_int_equal(ew->unary_backward(op, params, g, sx, sy ? yw : NULL, gx), 0);
            ml_tensor *xp = ml_add_scalar(x, 1e-6), *xm = ml_add_scalar(x, -1e-6);
            ml_tensor *yp = ml_unary_with(op, xp, params), *ym = ml_unary_with(op, xm, params);
            double slope = (((double *)ml_data(yp))[0] - ((double *)ml_data(ym))[0]) / 2e-6;
            assert_float_equal(((double *)ml_data(gx))[0], 2 * slope, 1e-5);
            ml_tensor *rel[] = {yw, xp, xm, yp, ym};
            for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) ml_tensor_release(rel[i]);
        }
        /* giving the rule what it does not read (or not what it does) is an error; a
         * mask op has no rule */
        assert_int_equal(ew->unary_backward(op, NULL, g, sx ? NULL : x, sy, gx), -1);
        assert_non_null(strstr(ml_error(), mask ? "not differentiable" : "saved tensors"));
        /* integers: the float-only ops refuse them (ops/ casts to float32 first) */
        ml_tensor *yi = ml_tensor_empty(mask ? ML_U8 : ML_I64, ML_CPU, 1, shape);
        ml_tensor *yu = ml_tensor_empty_like(u8);
        int want = ml_unary_float_only(op) ? -1 : 0;
        assert_int_equal(ew->unary(op, NULL, xi, yi), want);
        assert_int_equal(ew->unary(op, NULL, u8, yu), want);
        if (want) assert_non_null(strstr(ml_error(), name));
        ml_tensor *rel[] = {y, gx, yi, yu};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) ml_tensor_release(rel[i]);
    }
    for (int k = 0; k < ML_BIN_COUNT; k++) {
        ml_binary_op op = (ml_binary_op)k;
        assert_string_not_equal(ml_binary_name(op), "?");
        ml_tensor *y = ml_tensor_empty(ml_binary_is_mask(op) ? ML_U8 : ML_F64, ML_CPU, 1, shape);
        assert_int_equal(ew->binary(op, x, g, y), 0);
        ml_tensor_release(y);
    }
    /* a 0-dim operand and an empty tensor go through the same driver */
    ml_tensor *s = ml_scalar(-2, ML_F32, ML_CPU), *e = ml_tensor_empty(ML_F32, ML_CPU, 1, (int64_t[]){0});
    ml_tensor *rs = ml_unary(ML_UN_RELU, s), *re = ml_unary(ML_UN_EXP, e);
    assert_float_equal(*(float *)ml_data(rs), 0.0f, 0);
    assert_int_equal(ml_numel(re), 0);
    ml_tensor *rel[] = {x, g, xi, u8, s, e, rs, re};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) ml_tensor_release(rel[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strides_and_views),
        cmocka_unit_test(test_broadcasting_rules),
        cmocka_unit_test(test_reductions),
        cmocka_unit_test(test_matmul_against_naive),
        cmocka_unit_test(test_index_ops),
        cmocka_unit_test(test_max_backward_routes_to_index),
        cmocka_unit_test(test_generator_repeatable),
        cmocka_unit_test(test_large_elementwise_and_cache),
        cmocka_unit_test(test_elementwise_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
