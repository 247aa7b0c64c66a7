/* A temporary directory for a cmocka test group, shared by the tests that write
 * files: make_dir (the group's setup) creates /tmp/<TMP_DIR_PREFIX>XXXXXX and
 * puts its path in dir; remove_dir (the teardown) removes it and all inside it;
 * in_dir(name) is dir/name. Define TMP_DIR_PREFIX (a string literal), and
 * _DEFAULT_SOURCE or _POSIX_C_SOURCE 200809L (for mkdtemp), before including. */
#ifndef ML_TESTS_TMP_DIR_H
#define ML_TESTS_TMP_DIR_H

#include <stdio.h>
#include <stdlib.h>

static char dir[64];

static int make_dir(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/" TMP_DIR_PREFIX "XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* dir/name, in one of 4 buffers used in turn: copy a path that must live longer */
static inline const char *in_dir(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

#endif
