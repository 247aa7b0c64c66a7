/* Errors from the core: a failing function returns NULL or -1 and leaves a
 * message here. The message is per thread, so two runtimes in two threads never
 * see each other's errors. The Lua binding turns it into a Lua error. */
#ifndef ML_ERROR_H
#define ML_ERROR_H

#if defined(__GNUC__)
#define ML_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ML_PRINTF(a, b)
#endif

/* Sets the message (printf style); always returns -1 so callers can
 * `return ml_error_set(...)`. */
int ml_error_set(const char *fmt, ...) ML_PRINTF(1, 2);
/* The last message set on this thread ("" when none). */
const char *ml_error(void);
void ml_error_clear(void);

#endif
