/* Fibers for the emulated GPU's threads: a context switch that only saves what
 * the C ABI says a call preserves.
 *
 * swapcontext also saves and restores the signal mask, two sigprocmask system
 * calls per switch, and a block of 256 threads switches a few thousand times per
 * barrier round. On x86-64 a dozen instructions of assembly (fiber.cpp) push the
 * callee-saved registers on the running stack and load the other stack pointer;
 * elsewhere ucontext does it.
 *
 * Under AddressSanitizer every switch tells ASan which stack it moves to
 * (__sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber), so it
 * neither reports the fiber stacks' frames as wild accesses nor loses track of
 * the thread's real stack. */
#ifndef ML_EMU_FIBER_H
#define ML_EMU_FIBER_H

#include <stddef.h>

#if defined(__x86_64__)
#define ML_EMU_ASM_SWITCH 1
#else
#define ML_EMU_ASM_SWITCH 0
#include <ucontext.h>
#endif

namespace ml_emu {

struct fiber_context {
#if ML_EMU_ASM_SWITCH
    void *sp; /* the stack pointer while switched out */
#else
    ucontext_t uc;
#endif
    void (*entry)(void *);    /* what a made context runs first */
    void *arg;
    /* for ASan: the stack this context runs on (a thread's own stack is learned
     * when it first switches away) and its fake stack while switched out */
    const void *stack_bottom;
    size_t stack_size;
    void *fake_stack;
};

/* Makes ctx run entry(arg) on [stack, stack + size) when it is first switched to.
 * entry must never return: it ends by switching away with exits = true. */
void context_make(fiber_context *ctx, char *stack, size_t size, void (*entry)(void *), void *arg);

/* Saves the running context in from and resumes to; returns when something
 * switches back to from. exits: from never runs again (ASan may drop its fake
 * stack), so this call never returns. */
void context_switch(fiber_context *from, fiber_context *to, bool exits);

/* A stack of size bytes with a guard page below it (mmap), or NULL; never freed. */
char *stack_alloc(size_t size);

/* Clears ASan's marks on a stack whose fibers were abandoned mid-call (their
 * frames' redzones stay poisoned otherwise); nothing without ASan. */
void stack_forget(char *stack, size_t size);

} // namespace ml_emu

#endif
