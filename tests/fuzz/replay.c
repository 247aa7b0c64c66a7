/* main() for a fuzz target outside libFuzzer: runs LLVMFuzzerTestOneInput once on
 * each file named, and on every file of each directory named (sorted by name),
 * printing how many. What libFuzzer does with file arguments, for builds without
 * clang (ctest fuzz.replay.*). */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "%s: cannot read\n", path);
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    int count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i])) return 1;
            count++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, NULL, NULL);
        if (n < 0) {
            perror(argv[i]);
            return 1;
        }
        char **paths = calloc((size_t)n + 1, sizeof *paths);
        int k = 0;
        for (int j = 0; j < n; j++) {
            if (names[j]->d_name[0] != '.') {
                paths[k] = malloc(strlen(argv[i]) + strlen(names[j]->d_name) + 2);
                sprintf(paths[k++], "%s/%s", argv[i], names[j]->d_name);
            }
            free(names[j]);
        }
        free(names);
        qsort(paths, (size_t)k, sizeof *paths, cmp);
        for (int j = 0; j < k; j++) {
            if (run_file(paths[j])) return 1;
            count++;
            free(paths[j]);
        }
        free(paths);
    }
    printf("%d inputs replayed\n", count);
    return 0;
}
