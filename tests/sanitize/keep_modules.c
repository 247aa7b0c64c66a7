/* A preload for the sanitizer suite's MPI tests: dlclose does nothing.
 *
 * Why: LeakSanitizer names the module of a leak's frames only while that module
 * is loaded. OpenMPI dlcloses its components (mca_*.so) in MPI_Finalize, so the
 * allocations they keep until exit (OpenMPI's, not ours) show up as frames in
 * "<unknown module>", which no suppression can name. With the components left
 * loaded, tests/lsan.supp's `leak:mca_` and friends match them, and a leak of
 * Moonlight's own still fails the test. Used only by tests (tests/dist.cmake). */
int dlclose(void *handle);

int dlclose(void *handle) {
    (void)handle;
    return 0;
}
