/* The emulated GPU's kernel launches: the blocks of a grid run one after another,
 * the threads of a block as fibers on the launching host thread.
 *
 * A block runs in rounds: each runnable thread runs, in order (thread 0 first, or
 * last with MOONLIGHT_EMU_REVERSE=1), until it returns, reaches __syncthreads()
 * or reaches a warp operation. Then the warp operations whose every lane has
 * arrived complete (results computed for every lane before any runs on, so no
 * lane overwrites a value another has yet to read), and when every thread waits
 * at __syncthreads() the barrier opens. When neither can happen and some threads
 * still wait, the kernel broke a rule (a barrier part of the block never
 * reaches, a warp operation a lane of its mask never joins): the launch stops
 * with cudaErrorLaunchFailure and the reason on stderr.
 *
 * Launches from different host threads are serialised (one mutex), so a
 * kernel's __shared__ variables can be plain statics, reused block after block,
 * and atomics plain read-modify-writes.
 *
 * Environment: MOONLIGHT_EMU_REVERSE=1 runs the threads of each round, and the
 * blocks of each grid, last first: a kernel that misses a barrier then reads
 * what its neighbours have not written yet. MOONLIGHT_EMU_TRACE=<file> appends a
 * line per launch (kernel, grid, block, shared memory, source line). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "fiber.h"
#include "internal.h"

namespace ml_emu {

uint3 thread_idx, block_idx;
dim3 block_dim, grid_dim;

namespace {

const int MAX_THREADS = 1024;
const size_t STACK_SIZE = (size_t)256 << 10; /* reserved; a kernel touches a few pages */
const size_t SHARED_DEFAULT = (size_t)48 << 10;
const size_t SHARED_OPTIN_MAX = (size_t)227 << 10;
const unsigned char GARBAGE = 0xff;          /* float/double NaN, integer -1 */

enum thread_state { RUNNABLE, AT_BARRIER, AT_WARP, DONE };

/* One thread of the running block. */
struct emu_thread {
    fiber_context ctx;
    uint3 idx;
    int linear;          /* x + y * bx + z * bx * by: its warp is linear / 32 */
    thread_state state;
    int pred;            /* at a barrier: the __syncthreads_count predicate */
    /* at a warp operation */
    warp_kind kind;
    unsigned mask;
    uint64_t value, result;
    int arg, width;
};

struct launch_state {
    const kernel_site *site;
    thread_body body;
    void *body_ctx;
    int nthreads;
    fiber_context scheduler;     /* the launching thread's own context */
    emu_thread *running;         /* the fiber now running, or NULL */
    cudaError_t error;           /* cudaSuccess until the launch fails */
    std::string why;
    unsigned char *dynamic_shared;
    size_t dynamic_bytes, static_bytes, shared_limit;
    std::vector<void *> shared_seen; /* the __shared__ variables this block reached */
    int barrier_count;
    int at_barrier, at_warp, done; /* how many of the block's threads are in each state */
};

std::mutex launch_mutex;
launch_state L;
emu_thread threads[MAX_THREADS];
char *stacks[MAX_THREADS];
bool stack_dirty[MAX_THREADS]; /* an abandoned fiber left frames on it */

/* Per kernel name: the dynamic shared memory it opted in to. */
std::mutex attr_mutex;
std::unordered_map<std::string, size_t> shared_optin;

bool env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

int reverse_setting = -1; /* -1: not read from the environment yet */

bool reverse_order(void) {
    if (reverse_setting < 0) reverse_setting = env_flag("MOONLIGHT_EMU_REVERSE");
    return reverse_setting != 0;
}

/* A kernel expression's name without template arguments or qualification. */
std::string base_name(const char *text) {
    std::string s(text, strcspn(text, "<(,"));
    while (!s.empty() && s.back() == ' ') s.pop_back();
    size_t colon = s.rfind("::");
    return colon == std::string::npos ? s : s.substr(colon + 2);
}

std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char *f, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

std::string where(void) {
    return fmt("kernel %s (%s:%d), block (%u,%u,%u)", L.site->name, L.site->file, L.site->line,
               block_idx.x, block_idx.y, block_idx.z);
}

std::string thread_name(const emu_thread &t) {
    return fmt("thread (%u,%u,%u)", t.idx.x, t.idx.y, t.idx.z);
}

/* Marks the launch failed (the first reason wins). */
void fail(cudaError_t e, const std::string &why) {
    if (L.error != cudaSuccess) return;
    L.error = e;
    L.why = why;
}

/* The fiber calling a device function, or an abort when host code called it. */
emu_thread *running(const char *what) {
    if (!L.running) {
        report("%s called outside a kernel", what);
        abort();
    }
    return L.running;
}

/* Switches from the running fiber to the scheduler; returns when it is resumed. */
void yield(emu_thread *t) { context_switch(&t->ctx, &L.scheduler, false); }

/* Fails the launch from inside a fiber, which never resumes; the message names
 * the kernel, block and thread, then says what the thread did (printf's format).
 * Nothing on the heap may outlive the call's scope: the frame is abandoned. */
[[noreturn]] void fail_here(cudaError_t e, const char *f, ...) __attribute__((format(printf, 2, 3)));
void fail_here(cudaError_t e, const char *f, ...) {
    emu_thread *t = running("a failing device call");
    {
        char what[512];
        va_list ap;
        va_start(ap, f);
        vsnprintf(what, sizeof what, f, ap);
        va_end(ap);
        fail(e, where() + ": " + thread_name(*t) + " " + what);
    }
    stack_dirty[t - threads] = true;
    context_switch(&t->ctx, &L.scheduler, true);
    abort();
}

void thread_main(void *arg) {
    emu_thread *t = static_cast<emu_thread *>(arg);
    L.body(L.body_ctx);
    t->state = DONE;
    L.done++;
    context_switch(&t->ctx, &L.scheduler, true);
}

/* --- the launch configuration --- */

size_t shared_limit_of(const char *name) {
    std::lock_guard<std::mutex> g(attr_mutex);
    auto it = shared_optin.find(base_name(name));
    return it == shared_optin.end() ? SHARED_DEFAULT : it->second;
}

/* Why cfg is beyond an H100's limits, or "" when it is not. */
std::string config_problem(const launch_config &cfg, size_t shared_limit) {
    const dim3 &b = cfg.block, &g = cfg.grid;
    if (b.x == 0 || b.y == 0 || b.z == 0 || g.x == 0 || g.y == 0 || g.z == 0)
        return fmt("a zero size: grid (%u,%u,%u), block (%u,%u,%u)", g.x, g.y, g.z, b.x, b.y, b.z);
    if (b.x > 1024 || b.y > 1024 || b.z > 64 || (uint64_t)b.x * b.y * b.z > 1024)
        return fmt("block (%u,%u,%u): at most 1024 threads, (1024,1024,64) per dim", b.x, b.y, b.z);
    if (g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535)
        return fmt("grid (%u,%u,%u): grid.x < 2^31, grid.y and grid.z <= 65535", g.x, g.y, g.z);
    if (cfg.shmem > shared_limit)
        return fmt("%zu bytes of dynamic shared memory, %zu allowed (cudaFuncSetAttribute with "
                   "cudaFuncAttributeMaxDynamicSharedMemorySize opts in to up to 227 KiB)",
                   cfg.shmem, shared_limit);
    return "";
}

void trace(const launch_config &cfg, const kernel_site &site) {
    static FILE *f = [] {
        const char *path = getenv("MOONLIGHT_EMU_TRACE");
        return path && *path ? fopen(path, "a") : nullptr;
    }();
    if (!f) return;
    fprintf(f, "launch %s:%d grid %u,%u,%u block %u,%u,%u shmem %zu kernel %s\n", site.file, site.line,
            cfg.grid.x, cfg.grid.y, cfg.grid.z, cfg.block.x, cfg.block.y, cfg.block.z, cfg.shmem,
            site.name);
    fflush(f);
}

/* --- a block --- */

bool stacks_ready(int n) {
    for (int i = 0; i < n; i++) {
        if (!stacks[i] && !(stacks[i] = stack_alloc(STACK_SIZE))) return false;
        if (stack_dirty[i]) {
            stack_forget(stacks[i], STACK_SIZE);
            stack_dirty[i] = false;
        }
    }
    return true;
}

void start_block(const dim3 &b) {
    L.shared_seen.clear();
    L.static_bytes = 0;
    L.at_barrier = L.at_warp = L.done = 0;
    if (L.dynamic_bytes) memset(L.dynamic_shared, GARBAGE, L.dynamic_bytes);
    for (int i = 0; i < L.nthreads; i++) {
        emu_thread &t = threads[i];
        t.linear = i;
        t.idx = make_uint3(i % b.x, i / b.x % b.y, i / (b.x * b.y));
        t.state = RUNNABLE;
        context_make(&t.ctx, stacks[i], STACK_SIZE, thread_main, &t);
    }
}

void run_thread(emu_thread *t) {
    L.running = t;
    thread_idx = t->idx;
    context_switch(&L.scheduler, &t->ctx, false);
    L.running = nullptr;
}

/* Runs every runnable thread until it blocks or ends; false if the launch failed. */
bool round_robin(void) {
    const bool rev = reverse_order();
    for (int k = 0; k < L.nthreads; k++) {
        emu_thread *t = &threads[rev ? L.nthreads - 1 - k : k];
        if (t->state != RUNNABLE) continue;
        run_thread(t);
        if (L.error != cudaSuccess) return false;
    }
    return true;
}

/* The lane whose value lane l of a completed shuffle reads. */
int source_lane(const emu_thread &t, int l) {
    int w = t.width, seg = l & ~(w - 1), src = l;
    switch (t.kind) {
    case SHFL_IDX: src = seg + (t.arg & (w - 1)); break;
    case SHFL_UP: src = l - t.arg >= seg ? l - t.arg : l; break;
    case SHFL_DOWN: src = l + t.arg < seg + w ? l + t.arg : l; break;
    case SHFL_XOR: src = (l ^ t.arg) < seg + w ? l ^ t.arg : l; break;
    default: break;
    }
    return src;
}

/* Completes the operation of warp w's lanes in mask (all arrived). */
void complete_warp_op(int w, unsigned mask) {
    emu_thread *lane = &threads[w * 32];
    uint64_t ballot = 0;
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1 && lane[l].value) ballot |= 1ull << l;
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1)) continue;
        emu_thread &t = lane[l];
        if (t.kind == VOTE_BALLOT) t.result = ballot;
        else if (t.kind == WARP_SYNC) t.result = 0;
        else {
            int src = source_lane(t, l);
            if (src != l && !(mask >> src & 1))
                fail(cudaErrorLaunchFailure,
                     fmt("%s: %s (lane %d) shuffles from lane %d, which is not in its mask 0x%08x",
                         where().c_str(), thread_name(t).c_str(), l, src, mask));
            t.result = lane[src & 31].value;
        }
    }
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1) lane[l].state = RUNNABLE;
    L.at_warp -= __builtin_popcount(mask);
}

/* True when every lane of t's mask waits at a warp operation with the same mask
 * and kind. */
bool warp_op_ready(const emu_thread &t, int w) {
    for (int l = 0; l < 32; l++) {
        if (!(t.mask >> l & 1)) continue;
        int i = w * 32 + l;
        if (i >= L.nthreads) return false;
        const emu_thread &u = threads[i];
        if (u.state != AT_WARP || u.mask != t.mask || u.kind != t.kind) return false;
    }
    return true;
}

/* Completes every warp operation whose lanes have all arrived; true if any did. */
bool open_warp_ops(void) {
    bool any = false;
    if (L.at_warp == 0) return false;
    for (int i = 0; i < L.nthreads; i++) {
        const emu_thread &t = threads[i];
        if (t.state == AT_WARP && warp_op_ready(t, i / 32)) {
            complete_warp_op(i / 32, t.mask);
            any = true;
        }
    }
    return any;
}

/* Opens the barrier when every thread waits at it; true if it did. */
bool open_barrier(void) {
    if (L.at_barrier != L.nthreads) return false;
    int count = 0;
    for (int i = 0; i < L.nthreads; i++) {
        count += threads[i].pred;
        threads[i].state = RUNNABLE;
    }
    L.barrier_count = count;
    L.at_barrier = 0;
    return true;
}

const char *warp_op_name(warp_kind k) {
    switch (k) {
    case WARP_SYNC: return "__syncwarp";
    case SHFL_IDX: return "__shfl_sync";
    case SHFL_UP: return "__shfl_up_sync";
    case SHFL_DOWN: return "__shfl_down_sync";
    case SHFL_XOR: return "__shfl_xor_sync";
    case VOTE_BALLOT: return "a vote (__ballot_sync, __all_sync, __any_sync)";
    }
    return "?";
}

/* Why the lanes of t's warp operation cannot all arrive. */
std::string stuck_warp_op(const emu_thread &t) {
    int w = t.linear / 32;
    for (int l = 0; l < 32; l++) {
        if (!(t.mask >> l & 1)) continue;
        int i = w * 32 + l;
        std::string head = fmt("%s: %s waits at %s (mask 0x%08x) but lane %d", where().c_str(),
                               thread_name(t).c_str(), warp_op_name(t.kind), t.mask, l);
        if (i >= L.nthreads) return head + " is beyond the block's last thread";
        const emu_thread &u = threads[i];
        if (u.state == DONE) return head + fmt(" (%s) has exited", thread_name(u).c_str());
        if (u.state == AT_BARRIER) return head + fmt(" (%s) waits at __syncthreads()", thread_name(u).c_str());
        if (u.mask != t.mask || u.kind != t.kind)
            return head + fmt(" (%s) waits at %s with mask 0x%08x", thread_name(u).c_str(),
                              warp_op_name(u.kind), u.mask);
    }
    return where() + ": a warp operation cannot complete";
}

/* Why the block cannot go on: a warp operation or a partial barrier. */
std::string stuck_block(void) {
    int waiting = 0, exited = -1;
    for (int i = 0; i < L.nthreads; i++) {
        if (threads[i].state == AT_WARP) return stuck_warp_op(threads[i]);
        if (threads[i].state == AT_BARRIER) waiting++;
        if (threads[i].state == DONE && exited < 0) exited = i;
    }
    return fmt("%s: %d of %d threads wait at __syncthreads() but %s has exited (a barrier that "
               "only part of the block reaches)", where().c_str(), waiting, L.nthreads,
               thread_name(threads[exited < 0 ? 0 : exited]).c_str());
}

void run_block(const dim3 &b) {
    start_block(b);
    for (;;) {
        if (!round_robin()) return;
        if (L.done == L.nthreads) return;
        if (open_warp_ops()) {
            if (L.error != cudaSuccess) return;
            continue;
        }
        if (open_barrier()) continue;
        fail(cudaErrorLaunchFailure, stuck_block());
        return;
    }
}

/* Every block of the grid, x fastest (or the reverse order). */
void run_grid(const launch_config &cfg) {
    const dim3 &g = cfg.grid;
    uint64_t nblocks = (uint64_t)g.x * g.y * g.z;
    for (uint64_t k = 0; k < nblocks && L.error == cudaSuccess; k++) {
        uint64_t i = reverse_order() ? nblocks - 1 - k : k;
        block_idx = make_uint3((unsigned)(i % g.x), (unsigned)(i / g.x % g.y), (unsigned)(i / ((uint64_t)g.x * g.y)));
        run_block(cfg.block);
    }
    if (L.error != cudaSuccess)
        for (int i = 0; i < L.nthreads; i++)
            if (threads[i].state != DONE) stack_dirty[i] = true;
}

} // namespace

/* --- called by kernels --- */

int block_barrier(int pred) {
    emu_thread *t = running("__syncthreads()");
    t->pred = pred;
    t->state = AT_BARRIER;
    L.at_barrier++;
    yield(t);
    return L.barrier_count;
}

uint64_t warp_op(warp_kind kind, unsigned mask, uint64_t value, int arg, int width) {
    emu_thread *t = running(warp_op_name(kind));
    int lane = t->linear & 31;
    if (!(mask >> lane & 1))
        fail_here(cudaErrorLaunchFailure, "calls %s with mask 0x%08x, which lacks its own lane %d",
                  warp_op_name(kind), mask, lane);
    if (width < 1 || width > 32 || (width & (width - 1)))
        fail_here(cudaErrorLaunchFailure, "calls %s with width %d (a power of 2 <= 32)",
                  warp_op_name(kind), width);
    t->kind = kind;
    t->mask = mask;
    t->value = value;
    t->arg = arg;
    t->width = width;
    t->state = AT_WARP;
    L.at_warp++;
    yield(t);
    return t->result;
}

unsigned active_mask(void) {
    emu_thread *t = running("__activemask()");
    int w = t->linear / 32;
    unsigned m = 0;
    for (int l = 0; l < 32 && w * 32 + l < L.nthreads; l++)
        if (threads[w * 32 + l].state != DONE) m |= 1u << l;
    return m;
}

bool shared_static(void *var, size_t bytes) {
    if (!L.running) return true; /* a namespace-scope variable, at load time */
    for (void *p : L.shared_seen)
        if (p == var) return true;
    L.shared_seen.push_back(var);
    L.static_bytes += bytes;
    if (L.static_bytes + L.dynamic_bytes > L.shared_limit)
        fail_here(cudaErrorInvalidConfiguration,
                  "reaches %zu bytes of static shared memory, with %zu of dynamic more than the "
                  "%zu allowed", L.static_bytes, L.dynamic_bytes, L.shared_limit);
    memset(var, GARBAGE, bytes);
    return true;
}

void *shared_dynamic(void) {
    (void)running("extern __shared__");
    return L.dynamic_shared;
}

void set_reverse_order(bool reverse) {
    std::lock_guard<std::mutex> g(launch_mutex);
    reverse_setting = reverse;
}

cudaError_t func_set_attribute(const char *text, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess; /* a hint */
    if (value < 0 || (size_t)value > SHARED_OPTIN_MAX) return set_last_error(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> g(attr_mutex);
    shared_optin[base_name(text)] = (size_t)value > SHARED_DEFAULT ? (size_t)value : SHARED_DEFAULT;
    return cudaSuccess;
}

void launch_erased(const launch_config &cfg, const kernel_site &site, thread_body body, void *ctx) {
    trace(cfg, site);
    size_t limit = shared_limit_of(site.name);
    std::string problem = config_problem(cfg, limit);
    if (!problem.empty()) {
        report("kernel %s (%s:%d): invalid configuration: %s", site.name, site.file, site.line,
               problem.c_str());
        set_last_error(cudaErrorInvalidConfiguration);
        return;
    }
    std::lock_guard<std::mutex> g(launch_mutex);
    flush_pending();
    L.site = &site;
    L.body = body;
    L.body_ctx = ctx;
    L.nthreads = (int)(cfg.block.x * cfg.block.y * cfg.block.z);
    L.error = cudaSuccess;
    L.why.clear();
    L.dynamic_bytes = cfg.shmem;
    L.shared_limit = limit;
    L.dynamic_shared = nullptr;
    void *dyn = nullptr; /* 16-aligned at least, as a GPU's; exact size, so ASan sees overruns */
    if (!stacks_ready(L.nthreads) || (cfg.shmem && posix_memalign(&dyn, 256, cfg.shmem) != 0)) {
        report("kernel %s: no host memory for the fibers' stacks or the shared memory", site.name);
        set_last_error(cudaErrorMemoryAllocation);
        return;
    }
    L.dynamic_shared = (unsigned char *)dyn;
    block_dim = cfg.block;
    grid_dim = cfg.grid;
    run_grid(cfg);
    free(L.dynamic_shared);
    L.dynamic_shared = nullptr;
    if (L.error != cudaSuccess) {
        report("%s", L.why.c_str());
        set_last_error(L.error);
    }
}

} // namespace ml_emu
