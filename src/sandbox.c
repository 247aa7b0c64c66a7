/* The sandbox's path rules (see sandbox.h). */
#define _DEFAULT_SOURCE /* realpath */
#include "sandbox.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

struct ml_sandbox {
    int nread, nwrite;
    char **read, **write; /* resolved directories */
};

static void free_list(char **list, int n) {
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

void ml_sandbox_free(ml_sandbox *sb) {
    if (!sb) return;
    free_list(sb->read, sb->nread);
    free_list(sb->write, sb->nwrite);
    free(sb);
}

/* Resolves each directory of dirs (NULL-terminated, may be NULL) into *out. */
static int resolve_dirs(const char *const *dirs, char ***out, int *n, const char *what) {
    int count = 0;
    while (dirs && dirs[count]) count++;
    *n = 0;
    *out = calloc((size_t)count + 1, sizeof **out);
    if (!*out) return ml_error_set("ml_open: out of memory");
    for (int i = 0; i < count; i++) {
        char real[PATH_MAX];
        struct stat st;
        if (!realpath(dirs[i], real))
            return ml_error_set("ml_open: %s[%d] '%s' cannot be granted: %s", what, i, dirs[i],
                                strerror(errno));
        if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
            return ml_error_set("ml_open: %s[%d] '%s' is not a directory", what, i, dirs[i]);
        if (!((*out)[i] = strdup(real))) return ml_error_set("ml_open: out of memory");
        (*n)++;
    }
    return 0;
}

ml_sandbox *ml_sandbox_new(const char *const *read_dirs, const char *const *write_dirs) {
    ml_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) {
        ml_error_set("ml_open: out of memory");
        return NULL;
    }
    if (resolve_dirs(read_dirs, &sb->read, &sb->nread, "read_dirs") ||
        resolve_dirs(write_dirs, &sb->write, &sb->nwrite, "write_dirs")) {
        ml_sandbox_free(sb);
        return NULL;
    }
    return sb;
}

int ml_sandbox_resolve(const char *fname, const char *path, char *resolved, size_t n) {
    char abs[PATH_MAX], real[PATH_MAX];
    if (!path[0]) return ml_error_set("%s: the path is empty", fname);
    if (path[0] == '/') {
        if (strlen(path) >= sizeof abs) return ml_error_set("%s: the path is too long", fname);
        strcpy(abs, path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return ml_error_set("%s: '%s': the working directory is unknown: %s", fname, path,
                                strerror(errno));
        if ((size_t)snprintf(abs, sizeof abs, "%s/%s", cwd, path) >= sizeof abs)
            return ml_error_set("%s: the path is too long", fname);
    }
    if (realpath(abs, real)) {
        if (strlen(real) >= n) return ml_error_set("%s: the path is too long", fname);
        strcpy(resolved, real);
        return 0;
    }
    if (errno != ENOENT) return ml_error_set("%s: '%s': %s", fname, path, strerror(errno));
    /* The deepest ancestor that exists: cut components off the end until one
     * resolves. abs is absolute, so "/" ends the walk. */
    size_t len = strlen(abs);
    while (len > 1 && abs[len - 1] == '/') abs[--len] = '\0';
    char *rest = NULL;
    for (char *p = abs + len; p > abs;) {
        while (p > abs && p[-1] != '/') p--; /* p: the start of the last component */
        char *slash = p - 1;
        char keep = *slash;
        if (slash == abs) {
            if (!realpath("/", real)) return ml_error_set("%s: '/' cannot be resolved", fname);
        } else {
            *slash = '\0';
            bool ok = realpath(abs, real) != NULL;
            int err = errno;
            *slash = keep;
            if (!ok && err != ENOENT)
                return ml_error_set("%s: '%s': %s", fname, path, strerror(err));
            if (!ok) {
                p = slash;
                continue;
            }
        }
        rest = p;
        break;
    }
    if (!rest) return ml_error_set("%s: '%s' cannot be resolved", fname, path);
    /* What does not exist yet may hold no "." or "..", and its first component
     * must really be missing, not a dangling symlink. */
    size_t used = strlen(real);
    if (used >= n) return ml_error_set("%s: the path is too long", fname);
    strcpy(resolved, real);
    bool first = true;
    for (char *c = rest; *c;) {
        char *e = strchr(c, '/');
        size_t cl = e ? (size_t)(e - c) : strlen(c);
        if (cl > 0) {
            if ((cl == 1 && c[0] == '.') || (cl == 2 && c[0] == '.' && c[1] == '.'))
                return ml_error_set("%s: '%s': '%.*s' follows a directory that does not exist", fname,
                                    path, (int)cl, c);
            if (used + 1 + cl >= n) return ml_error_set("%s: the path is too long", fname);
            if (used > 1 || resolved[0] != '/') resolved[used++] = '/';
            memcpy(resolved + used, c, cl);
            used += cl;
            resolved[used] = '\0';
            if (first) {
                struct stat st;
                if (lstat(resolved, &st) == 0)
                    return ml_error_set("%s: '%s' leads through a symlink that points nowhere "
                                        "('%s')", fname, path, resolved);
                first = false;
            }
        }
        c = e ? e + 1 : c + cl;
    }
    return 0;
}

/* true when path is dir or lies below it (both resolved). */
static bool within(const char *dir, const char *path) {
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/') return true;
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int ml_sandbox_check(const ml_sandbox *sb, const char *fname, const char *path, int access,
                     char *resolved, size_t n) {
    if (ml_sandbox_resolve(fname, path, resolved, n)) return -1;
    for (int i = 0; i < sb->nwrite; i++)
        if (within(sb->write[i], resolved)) return 0;
    if (!(access & ML_ACCESS_WRITE))
        for (int i = 0; i < sb->nread; i++)
            if (within(sb->read[i], resolved)) return 0;
    /* name what was granted, as far as the message holds */
    char granted[600] = "";
    size_t g = 0;
    int listed = 0;
    for (int pass = 0; pass < 2; pass++) {
        char **list = pass ? sb->read : sb->write;
        int count = pass ? sb->nread : sb->nwrite;
        if (pass && (access & ML_ACCESS_WRITE)) break;
        for (int i = 0; i < count && g < sizeof granted; i++, listed++)
            g += (size_t)snprintf(granted + g, sizeof granted - g, "%s%s", listed ? ", " : "", list[i]);
    }
    const char *verb = (access & ML_ACCESS_WRITE) ? "write" : "read";
    if (!listed)
        return ml_error_set("%s: '%s' is outside the directories this runtime may %s (the host "
                            "granted none)", fname, path, verb);
    return ml_error_set("%s: '%s' is outside the directories this runtime may %s (%s)", fname, path,
                        verb, granted);
}
