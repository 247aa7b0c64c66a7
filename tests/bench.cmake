# ctest -L bench: the benchmark harness in quick mode, Moonlight's half only, on a few
# batches (scripts/bench/run; tests/bench/smoke.sh checks what it reported, not times).
set(ML_BENCH_ENV "OMP_NUM_THREADS=2")
if(ML_SANITIZE)
  # the stock lua5.4 of the start-up measurement loads the instrumented module
  list(APPEND ML_BENCH_ENV
       "ML_BENCH_LUA_ENV=LD_PRELOAD=${ML_LIBASAN}:${ML_LIBUBSAN} ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp")
endif()
# serial: its two-thread runs and OpenBLAS peer beside another test (ctest -j) were
# slow enough to time out on a busy 2-core machine
add_test(NAME bench.smoke COMMAND ${CMAKE_SOURCE_DIR}/tests/bench/smoke.sh ${CMAKE_BINARY_DIR})
set_tests_properties(bench.smoke PROPERTIES WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} LABELS bench
                     TIMEOUT 180 RUN_SERIAL TRUE ENVIRONMENT "${ML_BENCH_ENV}")
