# Issue 19: data-parallel training with `mpirun -np 2` on this machine (label mpi;
# ~15 s): the 2-rank run against one process, rank 0's duties, the reduced
# metrics, a failing rank ending the job (tests/dist/run.sh). Needs the MPI
# engine and a launcher; scripts/deps installs OpenMPI.
if(ML_SANITIZE AND TARGET ml_mpi)
  # dlclose as a no-op for the MPI tests, so that LeakSanitizer can name OpenMPI's
  # components in its reports (tests/sanitize/keep_modules.c)
  add_library(ml_keep_modules SHARED ${CMAKE_SOURCE_DIR}/tests/sanitize/keep_modules.c)
  set(ML_KEEP_MODULES $<TARGET_FILE:ml_keep_modules>)
  # the Lua spec that starts MPI in one process: the sanitizer runtimes first, then it
  if(TEST lua.distributed_spec)
    string(REPLACE "LD_PRELOAD=${ML_LIBASAN}:${ML_LIBUBSAN}"
           "LD_PRELOAD=${ML_LIBASAN}:${ML_LIBUBSAN}:${ML_KEEP_MODULES}" ML_DIST_SPEC_ENV "${ML_LUA_TEST_ENV}")
    set_tests_properties(lua.distributed_spec PROPERTIES ENVIRONMENT "${ML_DIST_SPEC_ENV}")
  endif()
endif()

if(TARGET ml_mpi AND ML_MPIEXEC)
  add_test(NAME dist.mpirun
           COMMAND ${CMAKE_SOURCE_DIR}/tests/dist/run.sh $<TARGET_FILE:moonlight> ${ML_MPIEXEC}
                   ${CMAKE_BINARY_DIR}/dist-test)
  set(ML_DIST_TEST_ENV "OMP_NUM_THREADS=1")
  if(ML_SANITIZE)
    # OpenMPI's own allocations that it keeps until exit (tests/lsan.supp)
    # (the preload goes to the moonlight processes, ASan's runtime first; mpirun
    # itself is not instrumented: tests/dist/run.sh)
    list(APPEND ML_DIST_TEST_ENV
         "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0"
         "ML_DIST_PRELOAD=${ML_LIBASAN}:${ML_KEEP_MODULES}"
         # the emulated GPU's dynamic TLS (tests/tests.cmake: intercept_tls_get_addr)
         "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:intercept_tls_get_addr=0")
  endif()
  # serial: two processes of their own, on a machine of two cores
  set_tests_properties(dist.mpirun PROPERTIES WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} LABELS mpi
                       RUN_SERIAL TRUE TIMEOUT 300 ENVIRONMENT "${ML_DIST_TEST_ENV}")
endif()

# The same on the emulated GPU (kernels/*.cu on the CPU): the reducer's buckets on
# device memory, the ranks sharing the one device, so collectives go through host
# memory and MPI (file order only, ~15 s)
if(TARGET ml_mpi AND ML_MPIEXEC AND TARGET ml_cuda_emu)
  add_test(NAME dist.mpirun_cuda_emu
           COMMAND ${CMAKE_SOURCE_DIR}/tests/dist/run.sh $<TARGET_FILE:moonlight> ${ML_MPIEXEC}
                   ${CMAKE_BINARY_DIR}/dist-test-emu quick)
  set_tests_properties(dist.mpirun_cuda_emu PROPERTIES WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                       LABELS "mpi;cuda-emu" RUN_SERIAL TRUE TIMEOUT 300
                       ENVIRONMENT "${ML_DIST_TEST_ENV};DIST_TEST_ACCELERATOR=cuda;MOONLIGHT_CUDA_FORCE_LOAD=1;MOONLIGHT_CUDA_PLUGIN=$<TARGET_FILE:ml_cuda_emu>")
endif()
