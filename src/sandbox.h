/* File access confined to directories: the embedding API's sandbox (a runtime
 * opened without io, os and debug, include/moonlight.h). Moonlight's own file
 * access (ml.save/load, datasets, loggers, checkpoints, plots, ml._sys) asks it
 * before touching a path, and then uses the resolved path it returns.
 *
 * A path is resolved first, so that neither ".." nor a symlink leads out: the
 * whole path through realpath when it exists (every symlink followed); else its
 * deepest existing ancestor through realpath, plus the components that do not
 * exist yet, which may not be "." or "..", nor a dangling symlink (creating a file
 * through it would land wherever it points). The result must be a granted
 * directory or lie below one. */
#ifndef ML_SANDBOX_H
#define ML_SANDBOX_H

#include <stddef.h>

typedef struct ml_sandbox ml_sandbox;

enum { ML_ACCESS_READ = 1, ML_ACCESS_WRITE = 2 };

/* A sandbox granting reads below each of read_dirs and reads and writes below
 * each of write_dirs (NULL-terminated arrays; either may be NULL: none). Each
 * directory must exist; it is resolved now. NULL with ml_error set ("ml_open:
 * ...") when one does not resolve to a directory, or out of memory. */
ml_sandbox *ml_sandbox_new(const char *const *read_dirs, const char *const *write_dirs);
void ml_sandbox_free(ml_sandbox *sb);

/* Resolves path as above into resolved (n bytes; PATH_MAX is enough). 0, or -1
 * with ml_error set ("fname: 'path': ..."). */
int ml_sandbox_resolve(const char *fname, const char *path, char *resolved, size_t n);

/* 0 when sb lets `access` (ML_ACCESS_*) reach path, with the path to use in
 * resolved; else -1 with ml_error set: "fname: 'path' is outside the directories
 * this runtime may read (...)". */
int ml_sandbox_check(const ml_sandbox *sb, const char *fname, const char *path, int access,
                     char *resolved, size_t n);

#endif
