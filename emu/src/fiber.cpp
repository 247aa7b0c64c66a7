/* The emulated GPU's context switch (see fiber.h). */
#include "fiber.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define ML_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ML_EMU_ASAN 1
#endif
#endif
#ifdef ML_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if ML_EMU_ASM_SWITCH
/* ml_emu_switch(void **save_sp, void *load_sp): pushes the callee-saved registers,
 * stores rsp in *save_sp, loads load_sp and pops the same from there; the ret then
 * continues the other context. The SSE and x87 control words, callee-saved too,
 * are left alone: every context runs on one host thread and nothing in a kernel
 * changes the rounding or exception modes, so they are the same in all of them
 * (saving them, ldmxcsr and fldcw, made a switch half again as slow).
 * ml_emu_trampoline: where a made context's first ret lands; calls r13(r12). */
extern "C" void ml_emu_switch(void **save_sp, void *load_sp);
extern "C" void ml_emu_trampoline(void);
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".hidden ml_emu_switch\n"
    ".globl ml_emu_switch\n"
    ".type ml_emu_switch, @function\n"
    "ml_emu_switch:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size ml_emu_switch, .-ml_emu_switch\n"
    ".p2align 4\n"
    ".hidden ml_emu_trampoline\n"
    ".globl ml_emu_trampoline\n"
    ".type ml_emu_trampoline, @function\n"
    "ml_emu_trampoline:\n"
    "    .cfi_startproc\n"
    "    .cfi_undefined rip\n"
    "    movq %r12, %rdi\n"
    "    callq *%r13\n"
    "    ud2\n"
    "    .cfi_endproc\n"
    ".size ml_emu_trampoline, .-ml_emu_trampoline\n");
#endif

namespace ml_emu {
namespace {

#ifdef ML_EMU_ASAN
/* The context that switched last on this thread: the one a resumed context came
 * from, whose stack bounds ASan reports to it. */
thread_local fiber_context *switching_from;

void asan_leave(fiber_context *from, const fiber_context *to, bool exits) {
    __sanitizer_start_switch_fiber(exits ? nullptr : &from->fake_stack, to->stack_bottom, to->stack_size);
    switching_from = from;
}
void asan_arrive(fiber_context *self) {
    const void *bottom = nullptr;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(self ? self->fake_stack : nullptr, &bottom, &size);
    if (switching_from) {
        switching_from->stack_bottom = bottom;
        switching_from->stack_size = size;
    }
}
#else
void asan_leave(fiber_context *, const fiber_context *, bool) {}
void asan_arrive(fiber_context *) {}
#endif

/* The first frame of every made context. */
void begin(fiber_context *ctx) {
    asan_arrive(nullptr);
    ctx->entry(ctx->arg);
    fprintf(stderr, "ml_emu: a fiber's entry returned\n");
    abort();
}

#if !ML_EMU_ASM_SWITCH
thread_local fiber_context *starting;
void begin_ucontext(void) { begin(starting); }
#endif

} // namespace

void context_make(fiber_context *ctx, char *stack, size_t size, void (*entry)(void *), void *arg) {
    ctx->entry = entry;
    ctx->arg = arg;
    ctx->stack_bottom = stack;
    ctx->stack_size = size;
    ctx->fake_stack = nullptr;
#if ML_EMU_ASM_SWITCH
    /* what ml_emu_switch pops, lowest first: r15, r14, r13 = begin, r12 = ctx,
     * rbx, rbp = 0 (the end of the frame chain), and the return address, the
     * trampoline, at an address = 8 mod 16 so that rsp is 16-aligned at its
     * call, as the ABI wants */
    uintptr_t top = ((uintptr_t)(stack + size) - 64) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 56);
    sp[0] = sp[1] = 0;
    sp[2] = (uint64_t)(uintptr_t)&begin;
    sp[3] = (uint64_t)(uintptr_t)ctx;
    sp[4] = sp[5] = 0;
    sp[6] = (uint64_t)(uintptr_t)&ml_emu_trampoline;
    ctx->sp = sp;
#else
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = stack;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = nullptr;
    makecontext(&ctx->uc, begin_ucontext, 0);
#endif
}

void context_switch(fiber_context *from, fiber_context *to, bool exits) {
    asan_leave(from, to, exits);
#if ML_EMU_ASM_SWITCH
    ml_emu_switch(&from->sp, to->sp);
#else
    starting = to;
    swapcontext(&from->uc, &to->uc);
#endif
    asan_arrive(from);
}

char *stack_alloc(size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *p = (char *)mmap(nullptr, size + page, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    mprotect(p, page, PROT_NONE); /* an overflow faults instead of corrupting */
    return p + page;
}

void stack_forget(char *stack, size_t size) {
#ifdef ML_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(stack, size);
#else
    (void)stack;
    (void)size;
#endif
}

} // namespace ml_emu
