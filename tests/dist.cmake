# Issue 19: data-parallel training with `mpirun -np 2` on this machine (label mpi;
# ~15 s): the 2-rank run against one process, rank 0's duties, the reduced
# metrics, a failing rank ending the job (tests/dist/run.sh). Needs the MPI
# engine and a launcher; scripts/deps installs OpenMPI.
if(TARGET ml_mpi AND ML_MPIEXEC)
  add_test(NAME dist.mpirun
           COMMAND ${CMAKE_SOURCE_DIR}/tests/dist/run.sh $<TARGET_FILE:moonlight> ${ML_MPIEXEC}
                   ${CMAKE_BINARY_DIR}/dist-test)
  set(ML_DIST_TEST_ENV "OMP_NUM_THREADS=1")
  if(ML_SANITIZE)
    # OpenMPI's own allocations that it keeps until exit (tests/lsan.supp)
    list(APPEND ML_DIST_TEST_ENV
         "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0")
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
