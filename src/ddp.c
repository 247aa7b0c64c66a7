/* The gradient reducer of data-parallel training (dist.h, "gradient reduction").
 *
 * Layout: the parameters, last first, are cut into buckets of one device and
 * dtype; each bucket is one contiguous tensor on that device, and each
 * parameter a slice of it. Backward reports each finished leaf (the autograd
 * leaf hook); its gradient is copied into its slice, and once every slice of a
 * bucket is in, the bucket is all-reduced without blocking: MPI_Iallreduce for
 * host memory, NCCL on its own stream for CUDA memory (or, where ranks share a
 * GPU, a blocking copy through host memory). Buckets start strictly in order
 * (0, 1, 2, ...), on every rank the same: collectives are matched by order, and
 * a bucket finished out of order waits for its predecessors. Every report also
 * tests the requests in flight, since an MPI library without a progress thread
 * moves a non-blocking collective forward only inside MPI calls.
 *
 * ml_ddp_finish then starts what backward left (parameters it never reached
 * count as zeros), waits, divides each bucket by the world size (a sum, then
 * one multiplication: exact for a power of two) and copies the slices into the
 * gradients. Why copies rather than gradients living in the buckets (PyTorch's
 * gradient_as_bucket_view): backward hands each leaf a fresh tensor it owns,
 * and a copy of a few hundred KB per step costs microseconds. */
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "cuda_api.h"
#include "dist.h"
#include "error.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/shape.h"
#include "threads.h"

typedef struct {
    ml_tensor *param;   /* retained */
    int bucket;
    int64_t offset, numel;
    bool ready;         /* this backward's gradient is in the bucket */
} slot;

typedef struct {
    ml_tensor *flat;    /* [numel] on the bucket's device */
    int first, count;   /* its slots */
    int ready;          /* slots in so far */
    bool started, done;
    ml_mpi_request *req;/* in flight (host memory) */
} bucket;

struct ml_ddp {
    int n_slots, n_buckets;
    slot *slots;        /* in bucket order (the parameters reversed) */
    bucket *buckets;
    ml_tensor **by_ptr; /* the parameters sorted by address, for the hook's lookup */
    int *slot_of;       /* by_ptr[i]'s slot */
    int next_start;     /* the next bucket to start */
    bool armed;
    int world;          /* 1: nothing to do (a world of one) */
    const ml_nccl_plugin *nccl;
    ml_ddp_stats stats;
};


static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (ml_tensor *const *)a, y = (uintptr_t) * (ml_tensor *const *)b;
    return x < y ? -1 : x > y;
}

void ml_ddp_free(ml_ddp *d) {
    if (!d) return;
    if (d->armed && d->world > 1) ml_autograd_set_leaf_hook(NULL, NULL);
    const ml_mpi_plugin *mpi = ml_distributed_mpi_engine();
    for (int b = 0; b < d->n_buckets; b++) {
        if (d->buckets[b].req && mpi) mpi->wait(d->buckets[b].req);
        ml_tensor_release(d->buckets[b].flat);
    }
    for (int i = 0; i < d->n_slots; i++) ml_tensor_release(d->slots[i].param);
    free(d->slots);
    free(d->buckets);
    free(d->by_ptr);
    free(d->slot_of);
    free(d);
}

ml_ddp *ml_ddp_new(int n, ml_tensor *const *params, size_t bucket_bytes) {
    if (ml_distributed_ensure()) return NULL;
    if (bucket_bytes == 0) bucket_bytes = 25u << 20;
    ml_ddp *d = calloc(1, sizeof *d);
    if (!d) goto oom;
    d->world = ml_distributed_is_initialized() ? ml_distributed_world_size() : 1;
    d->slots = calloc((size_t)(n > 0 ? n : 1), sizeof *d->slots);
    d->buckets = calloc((size_t)(n > 0 ? n : 1), sizeof *d->buckets);
    d->by_ptr = calloc((size_t)(n > 0 ? n : 1), sizeof *d->by_ptr);
    d->slot_of = calloc((size_t)(n > 0 ? n : 1), sizeof *d->slot_of);
    if (!d->slots || !d->buckets || !d->by_ptr || !d->slot_of) goto oom;
    /* last parameter first: backward finishes the last layers first */
    int64_t in_bucket = 0;
    size_t cap = bucket_bytes < (1u << 20) ? bucket_bytes : (1u << 20); /* the first bucket: 1 MiB */
    bucket *cur = NULL;
    for (int i = n - 1; i >= 0; i--) {
        ml_tensor *p = params[i];
        if (!p->requires_grad || p->grad_fn) continue;
        for (int j = 0; j < d->n_slots; j++) {
            if (d->slots[j].param == p) {
                ml_error_set("ddp: parameter %d is given twice", i + 1);
                ml_ddp_free(d);
                return NULL;
            }
        }
        size_t bytes = (size_t)ml_numel(p) * ml_dtype_size(p->dtype);
        slot *prev = d->n_slots ? &d->slots[d->n_slots - 1] : NULL;
        bool new_bucket = !cur || prev->param->dtype != p->dtype ||
                          prev->param->storage->device != p->storage->device ||
                          (in_bucket > 0 && (size_t)in_bucket + bytes > cap);
        if (new_bucket) {
            if (cur) cap = bucket_bytes;
            cur = &d->buckets[d->n_buckets++];
            cur->first = d->n_slots;
            in_bucket = 0;
        }
        slot *s = &d->slots[d->n_slots++];
        s->param = ml_tensor_retain(p);
        s->bucket = (int)(cur - d->buckets);
        s->offset = cur->count ? d->slots[d->n_slots - 2].offset + d->slots[d->n_slots - 2].numel : 0;
        s->numel = ml_numel(p);
        cur->count++;
        in_bucket += (int64_t)bytes;
    }
    if (d->n_slots == 0) {
        ml_error_set("ddp: no parameter requires grad: there is nothing to average");
        ml_ddp_free(d);
        return NULL;
    }
    for (int b = 0; b < d->n_buckets; b++) {
        bucket *bk = &d->buckets[b];
        slot *last = &d->slots[bk->first + bk->count - 1];
        int64_t numel = last->offset + last->numel;
        bk->flat = ml_zeros(last->param->dtype, last->param->storage->device, 1, &numel);
        if (!bk->flat) {
            ml_ddp_free(d);
            return NULL;
        }
        d->stats.elements += numel;
    }
    d->stats.buckets = d->n_buckets;
    for (int i = 0; i < d->n_slots; i++) d->by_ptr[i] = d->slots[i].param;
    qsort(d->by_ptr, (size_t)d->n_slots, sizeof *d->by_ptr, cmp_ptr);
    for (int i = 0; i < d->n_slots; i++)
        for (int j = 0; j < d->n_slots; j++)
            if (d->slots[j].param == d->by_ptr[i]) d->slot_of[i] = j;
    return d;
oom:
    ml_error_set("ddp: out of host memory");
    ml_ddp_free(d);
    return NULL;
}

/* The slice of s in its bucket (a new reference, the parameter's shape). */
static ml_tensor *slice(ml_ddp *d, slot *s) {
    ml_tensor *flat = d->buckets[s->bucket].flat;
    int64_t strides[ML_MAX_DIMS];
    ml_contiguous_strides(s->param->ndim, s->param->shape, strides);
    return ml_view_raw(flat, s->param->ndim, s->param->shape, strides, flat->offset + s->offset);
}

/* Copies the parameter's gradient (zeros without one) into its slice. */
static int gather_slot(ml_ddp *d, slot *s) {
    ml_tensor *v = slice(d, s);
    if (!v) return -1;
    int rc = s->param->grad ? ml_copy_(v, s->param->grad) : ml_fill_(v, 0.0);
    ml_tensor_release(v);
    if (rc == 0) {
        s->ready = true;
        d->buckets[s->bucket].ready++;
    }
    return rc;
}

/* Starts bucket b's all-reduce (a sum). */
static int start(ml_ddp *d, int b) {
    bucket *bk = &d->buckets[b];
    bk->started = true;
    void *data = ml_data(bk->flat);
    int64_t count = ml_numel(bk->flat);
    if (bk->flat->storage->device == ML_CUDA) {
        if (!d->nccl) d->nccl = ml_distributed_nccl_engine();
        if (d->nccl) return d->nccl->all_reduce(data, count, bk->flat->dtype, ML_DIST_SUM, ml_cuda_stream());
        bk->done = true; /* ranks sharing a GPU: through host memory, blocking */
        return ml_distributed_all_reduce(bk->flat, ML_DIST_SUM);
    }
    const ml_mpi_plugin *mpi = ml_distributed_mpi_engine();
    return mpi->iall_reduce(data, count, bk->flat->dtype, ML_DIST_SUM, &bk->req);
}

/* Starts every bucket that is complete and whose predecessors have started. */
static int start_ready(ml_ddp *d, bool early) {
    while (d->next_start < d->n_buckets &&
           d->buckets[d->next_start].ready == d->buckets[d->next_start].count) {
        if (start(d, d->next_start)) return -1;
        if (early) d->stats.started_early++;
        d->next_start++;
    }
    return 0;
}

/* Moves the host requests in flight forward (MPI progresses inside its calls). */
static int progress(ml_ddp *d) {
    const ml_mpi_plugin *mpi = ml_distributed_mpi_engine();
    for (int b = 0; b < d->next_start; b++) {
        bucket *bk = &d->buckets[b];
        if (!bk->req || bk->done) continue;
        int done = 0;
        if (mpi->test(bk->req, &done)) return -1;
        if (done) {
            /* test completed it: wait returns at once and frees it */
            if (mpi->wait(bk->req)) return -1;
            bk->req = NULL;
            bk->done = true;
        }
    }
    return 0;
}

static int on_leaf(void *ctx, ml_tensor *leaf) {
    ml_ddp *d = ctx;
    ml_tensor **hit = bsearch(&leaf, d->by_ptr, (size_t)d->n_slots, sizeof *d->by_ptr, cmp_ptr);
    if (!hit) return 0; /* a leaf that is not one of ours (an input that requires grad) */
    slot *s = &d->slots[d->slot_of[hit - d->by_ptr]];
    if (s->ready) return 0;
    if (gather_slot(d, s) || start_ready(d, true)) return -1;
    return progress(d);
}

int ml_ddp_prepare(ml_ddp *d) {
    if (d->armed) return ml_error_set("ddp: prepare called twice without finish");
    for (int i = 0; i < d->n_slots; i++) d->slots[i].ready = false;
    for (int b = 0; b < d->n_buckets; b++) {
        bucket *bk = &d->buckets[b];
        if (bk->req) return ml_error_set("ddp: a bucket of the last step is still in flight");
        bk->ready = 0;
        bk->started = bk->done = false;
    }
    d->next_start = 0;
    d->armed = true;
    if (d->world > 1) ml_autograd_set_leaf_hook(on_leaf, d);
    return 0;
}

int ml_ddp_finish(ml_ddp *d, bool backward_ok) {
    if (!d->armed) return ml_error_set("ddp: finish called without prepare");
    d->armed = false;
    if (d->world == 1) return 0;
    ml_autograd_set_leaf_hook(NULL, NULL);
    const ml_mpi_plugin *mpi = ml_distributed_mpi_engine();
    int rc = 0;
    if (backward_ok) {
        for (int i = 0; rc == 0 && i < d->n_slots; i++)
            if (!d->slots[i].ready) rc = gather_slot(d, &d->slots[i]);
        if (rc == 0) rc = start_ready(d, false);
    }
    /* whatever happened, nothing may stay in flight: a request left behind
     * would be matched against the next step's */
    double t0 = ml_clock_seconds();
    bool nccl_used = false;
    for (int b = 0; b < d->n_buckets; b++) {
        bucket *bk = &d->buckets[b];
        if (bk->req) {
            int wrc = mpi->wait(bk->req);
            bk->req = NULL;
            if (rc == 0) rc = wrc;
        }
        if (bk->started && bk->flat->storage->device == ML_CUDA && d->nccl) nccl_used = true;
    }
    if (nccl_used) {
        int jrc = d->nccl->join(ml_cuda_stream());
        if (rc == 0) rc = jrc;
    }
    d->stats.wait_s += ml_clock_seconds() - t0;
    if (!backward_ok || rc != 0) return backward_ok ? rc : 0;
    int world = d->world;
    bool grad = ml_grad_enabled();
    ml_set_grad_enabled(false);
    for (int b = 0; rc == 0 && b < d->n_buckets; b++) {
        bucket *bk = &d->buckets[b];
        if (world > 1) {
            ml_tensor *avg = ml_mul_scalar(bk->flat, 1.0 / world);
            rc = avg ? ml_copy_(bk->flat, avg) : -1;
            ml_tensor_release(avg);
        }
        for (int i = bk->first; rc == 0 && i < bk->first + bk->count; i++) {
            slot *s = &d->slots[i];
            ml_tensor *v = slice(d, s);
            if (!v) {
                rc = -1;
                break;
            }
            if (s->param->grad) {
                rc = ml_copy_(s->param->grad, v);
            } else {
                s->param->grad = ml_contiguous_copy(v);
                if (!s->param->grad) rc = -1;
            }
            ml_tensor_release(v);
        }
    }
    ml_set_grad_enabled(grad);
    if (rc == 0) d->stats.steps++;
    return rc;
}

void ml_ddp_get_stats(const ml_ddp *d, ml_ddp_stats *out) { *out = d->stats; }
