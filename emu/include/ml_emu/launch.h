/* Kernel launches on the emulated GPU. emu/launch_rewrite.lua turns
 *     k<<<grid, block, shmem, stream>>>(a, b)
 * into
 *     ml_emu::launch(ml_emu::config(grid, block, shmem, stream), {"k", __FILE__, __LINE__},
 *                    [&](auto &...p) { k(p...); }, a, b);
 * The arguments are evaluated once, as a GPU copies them into the kernel's
 * parameter buffer; every thread of every block then calls the lambda on them, so
 * a kernel template deduces its arguments as it would from the <<<>>> call. */
#ifndef ML_EMU_LAUNCH_H
#define ML_EMU_LAUNCH_H

#include <stddef.h>

#include <tuple>
#include <type_traits>
#include <utility>

namespace ml_emu {

struct launch_config {
    dim3 grid, block;
    size_t shmem;        /* dynamic shared memory in bytes */
    cudaStream_t stream;
};

/* The <<<>>> arguments, with CUDA's defaults. */
inline launch_config config(dim3 grid, dim3 block, size_t shmem = 0, cudaStream_t stream = 0) {
    return launch_config{grid, block, shmem, stream};
}

/* Where a launch is written: the kernel expression's text and the source line. */
struct kernel_site {
    const char *name;
    const char *file;
    int line;
};

typedef void (*thread_body)(void *ctx);

/* Checks the configuration against an H100's limits (else the calling thread's
 * last error is cudaErrorInvalidConfiguration and nothing runs), then runs body(ctx)
 * as every thread of every block (emu/src/scheduler.cpp). A kernel that breaks a
 * barrier or warp rule stops the launch with cudaErrorLaunchFailure and a message
 * on stderr. */
void launch_erased(const launch_config &cfg, const kernel_site &site, thread_body body, void *ctx);

/* Records cudaFuncAttributeMaxDynamicSharedMemorySize for the kernels named text
 * (their name without template arguments): launches of that name may then use up
 * to value bytes of dynamic shared memory. */
cudaError_t func_set_attribute(const char *text, cudaFuncAttribute attr, int value);

/* The order threads (and blocks) run in: thread 0 first, or last when reverse.
 * MOONLIGHT_EMU_REVERSE=1 sets the default; the emulator's tests switch it. */
void set_reverse_order(bool reverse);

template <class Kernel, class... Args>
void launch(const launch_config &cfg, const kernel_site &site, Kernel kernel, Args &&...args) {
    std::tuple<typename std::decay<Args>::type...> params(std::forward<Args>(args)...);
    auto run = [&]() { std::apply(kernel, params); };
    launch_erased(cfg, site, [](void *ctx) { (*static_cast<decltype(run) *>(ctx))(); }, &run);
}

} // namespace ml_emu

/* The opt-in to more than 48 KiB of dynamic shared memory. A macro, since the
 * emulator knows a launched kernel only by the name written at the launch: the
 * attribute is kept per kernel name (template arguments aside). */
#define cudaFuncSetAttribute(...) ::ml_emu::func_set_attribute_text(#__VA_ARGS__, __VA_ARGS__)
namespace ml_emu {
template <class F>
inline cudaError_t func_set_attribute_text(const char *text, F *, cudaFuncAttribute attr, int value) {
    return func_set_attribute(text, attr, value);
}
} // namespace ml_emu

#endif
