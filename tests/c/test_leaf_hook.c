/* The autograd leaf hook (autograd.h) that data-parallel training starts its
 * all-reduces from, and the gradient reducer in a world of one (dist.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "autograd.h"
#include "dist.h"
#include "error.h"
#include "ops.h"

#define MAX_CALLS 16

typedef struct {
    int n;
    ml_tensor *leaf[MAX_CALLS];
    float grad0[MAX_CALLS]; /* the leaf's first gradient element when reported */
    int fail_at;            /* report number that fails, or -1 */
} record;

static int on_leaf(void *ctx, ml_tensor *leaf) {
    record *r = ctx;
    if (r->n == r->fail_at) return ml_error_set("hook: a failure on purpose");
    r->leaf[r->n] = leaf;
    r->grad0[r->n] = leaf->grad ? ((float *)ml_data(leaf->grad))[0] : -1.0f;
    r->n++;
    return 0;
}

static ml_tensor *leaf_of(float v) {
    int64_t shape[1] = {2};
    ml_tensor *t = ml_full(ML_F32, ML_CPU, 1, shape, v);
    t->requires_grad = true;
    return t;
}

/* loss = sum(a * b + a) + sum(c): a is used by two nodes, its gradient is final
 * only after the second; each leaf is reported once, with its final gradient */
static void test_each_leaf_once_when_final(void **state) {
    (void)state;
    ml_tensor *a = leaf_of(2), *b = leaf_of(3), *c = leaf_of(5);
    ml_tensor *ab = ml_mul(a, b), *s1 = ml_add(ab, a), *l1 = ml_sum(s1, ML_ALL_DIMS, false);
    ml_tensor *l2 = ml_sum(c, ML_ALL_DIMS, false), *loss = ml_add(l1, l2);
    record r = {.fail_at = -1};
    ml_autograd_set_leaf_hook(on_leaf, &r);
    assert_int_equal(ml_backward(loss, NULL), 0);
    ml_autograd_set_leaf_hook(NULL, NULL);
    assert_int_equal(r.n, 3);
    int seen_a = 0, seen_b = 0, seen_c = 0;
    for (int i = 0; i < r.n; i++) {
        if (r.leaf[i] == a) { seen_a++; assert_float_equal(r.grad0[i], 4.0f, 0); } /* b + 1 */
        if (r.leaf[i] == b) { seen_b++; assert_float_equal(r.grad0[i], 2.0f, 0); } /* a */
        if (r.leaf[i] == c) { seen_c++; assert_float_equal(r.grad0[i], 1.0f, 0); }
    }
    assert_int_equal(seen_a, 1);
    assert_int_equal(seen_b, 1);
    assert_int_equal(seen_c, 1);
    ml_tensor *all[] = {a, b, c, ab, s1, l1, l2, loss};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ml_tensor_release(all[i]);
}

/* a hook's error fails backward; no hook set costs nothing and reports nothing */
static void test_hook_error_fails_backward(void **state) {
    (void)state;
    ml_tensor *a = leaf_of(1), *b = leaf_of(2);
    ml_tensor *ab = ml_mul(a, b), *loss = ml_sum(ab, ML_ALL_DIMS, false);
    record r = {.fail_at = 0};
    ml_autograd_set_leaf_hook(on_leaf, &r);
    assert_int_equal(ml_backward(loss, NULL), -1);
    ml_autograd_set_leaf_hook(NULL, NULL);
    assert_non_null(strstr(ml_error(), "a failure on purpose"));
    ml_tensor_release(ab);
    ml_tensor_release(loss);
    ml_tensor_release(a);
    ml_tensor_release(b);
}

/* a root that is itself the leaf is reported at once */
static void test_root_leaf(void **state) {
    (void)state;
    int64_t shape[1] = {1};
    ml_tensor *x = ml_full(ML_F32, ML_CPU, 1, shape, 3);
    x->requires_grad = true;
    record r = {.fail_at = -1};
    ml_autograd_set_leaf_hook(on_leaf, &r);
    assert_int_equal(ml_backward(x, NULL), 0);
    ml_autograd_set_leaf_hook(NULL, NULL);
    assert_int_equal(r.n, 1);
    assert_ptr_equal(r.leaf[0], x);
    ml_tensor_release(x);
}

/* in a world of one the reducer leaves the gradients as backward made them */
static void test_reducer_world_of_one(void **state) {
    (void)state;
    ml_tensor *a = leaf_of(2), *b = leaf_of(3);
    ml_tensor *params[] = {a, b};
    ml_ddp *d = ml_ddp_new(2, params, 1 << 20);
    assert_non_null(d);
    ml_ddp_stats st;
    ml_ddp_get_stats(d, &st);
    assert_int_equal(st.buckets, 1);
    assert_int_equal(st.elements, 4);
    ml_tensor *ab = ml_mul(a, b), *loss = ml_sum(ab, ML_ALL_DIMS, false);
    assert_int_equal(ml_ddp_prepare(d), 0);
    assert_int_equal(ml_ddp_prepare(d), -1); /* twice without finish */
    assert_int_equal(ml_backward(loss, NULL), 0);
    assert_int_equal(ml_ddp_finish(d, true), 0);
    assert_int_equal(ml_ddp_finish(d, true), -1); /* without prepare */
    assert_float_equal(((float *)ml_data(a->grad))[1], 3.0f, 0);
    assert_float_equal(((float *)ml_data(b->grad))[0], 2.0f, 0);
    ml_ddp_free(d);
    /* nothing to average: an error that says so */
    ml_tensor *frozen = ml_zeros(ML_F32, ML_CPU, 1, (int64_t[]){3});
    assert_null(ml_ddp_new(1, &frozen, 0));
    assert_non_null(strstr(ml_error(), "no parameter requires grad"));
    ml_tensor *all[] = {a, b, ab, loss, frozen};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ml_tensor_release(all[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_leaf_once_when_final),
        cmocka_unit_test(test_hook_error_fails_backward),
        cmocka_unit_test(test_root_leaf),
        cmocka_unit_test(test_reducer_world_of_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
