# ctest -j runs tests side by side, one per core: each runs single-threaded, since
# an OpenMP team sharing a core with another process stalls at every barrier.
#
# Tests: every tests/c/test_*.c is a cmocka program, every tests/lua/*_spec.lua a
# busted spec run by the stock lua5.4 interpreter against the built Lua module.
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)

file(GLOB ML_C_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/c/test_*.c)
foreach(src ${ML_C_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE moonlight_static PkgConfig::CMOCKA)
  add_test(NAME c.${name} COMMAND ${name})
  set_tests_properties(c.${name} PROPERTIES WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                       ENVIRONMENT "OMP_NUM_THREADS=1")
endforeach()

find_program(LUA54 lua5.4 REQUIRED)
find_program(BUSTED busted REQUIRED)
set(ML_LUA_TEST_ENV
  "LUA_CPATH=${CMAKE_BINARY_DIR}/?.so\;\;"
  "LUA_PATH=${CMAKE_SOURCE_DIR}/tests/lua/?.lua\;\;"
  "MOONLIGHT_BIN=$<TARGET_FILE:moonlight>"
  "MOONLIGHT_BUILD_DIR=${CMAKE_BINARY_DIR}"
  "OMP_NUM_THREADS=1")
if(ML_SANITIZE)
  # the stock interpreter is not instrumented: the runtime must come first
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                  OUTPUT_VARIABLE ML_LIBASAN OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libubsan.so
                  OUTPUT_VARIABLE ML_LIBUBSAN OUTPUT_STRIP_TRAILING_WHITESPACE)
  # (moonlight.so is linked with -z nodelete, so lua_close never unloads it and
  # leaks, if any, are reported with symbols)
  # intercept_tls_get_addr=0: gcc 12's LeakSanitizer tracks the dynamic TLS of
  # dlopened modules (moonlight.so, the emulated GPU plugin) through __tls_get_addr
  # and, depending on the heap's layout, read a stale slot at exit ("DTLS 9 at
  # 0xb3-0x10000011b5", then "Tracer caught signal 11"): emu.cuda_parity died so
  # after every case had passed once branch l3 added its cases. Without the
  # interception LSan skips dynamic TLS, which holds no heap pointers here.
  list(APPEND ML_LUA_TEST_ENV "LD_PRELOAD=${ML_LIBASAN}:${ML_LIBUBSAN}"
       "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:intercept_tls_get_addr=0"
       "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0"
       "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endif()

file(GLOB ML_LUA_SPECS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/lua/*_spec.lua)
foreach(spec ${ML_LUA_SPECS})
  get_filename_component(name ${spec} NAME_WE)
  add_test(NAME lua.${name}
           COMMAND ${LUA54} ${BUSTED} --lpath=${CMAKE_SOURCE_DIR}/tests/lua/?.lua
                   --output=utfTerminal ${spec})
  set_tests_properties(lua.${name} PROPERTIES WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                       ENVIRONMENT "${ML_LUA_TEST_ENV}")
endforeach()
include(${CMAKE_SOURCE_DIR}/tests/embed.cmake)
include(${CMAKE_SOURCE_DIR}/tests/bench.cmake)
include(${CMAKE_SOURCE_DIR}/tests/dist.cmake)
if(TARGET ml_cuda_emu)
  include(${CMAKE_SOURCE_DIR}/tests/emu.cmake)
endif()

# issue 16 (l3): the Transformer example trains for seconds in release builds,
# minutes under the sanitizers
if(TEST lua.example_transformer_spec)
  set_tests_properties(lua.example_transformer_spec PROPERTIES LABELS slow)
endif()

# `ctest -L cuda` runs the CUDA backend's tests (they report pending without a GPU)
if(TEST lua.cuda_parity_spec)
  set_tests_properties(lua.cuda_parity_spec PROPERTIES LABELS cuda)
endif()

# Issue 17: SIGKILL at random moments while a run writes checkpoints and metrics.csv,
# 50 times; after each, metrics.csv reads and the last checkpoint loads and resumes
# (about 25 s, mostly waiting for the kills)
add_test(NAME crash.sigkill COMMAND ${CMAKE_SOURCE_DIR}/tests/crash/run.sh $<TARGET_FILE:moonlight> 50 250)
set_tests_properties(crash.sigkill PROPERTIES WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} LABELS crash
                     TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1")

# Issue 14: a seeded run's numbers do not depend on the thread count or the load
# (serial: it keeps a core busy on purpose; slow: not under the sanitizers)
add_test(NAME determinism.reference
         COMMAND ${CMAKE_SOURCE_DIR}/tests/determinism/run.sh $<TARGET_FILE:moonlight> 300)
set_tests_properties(determinism.reference PROPERTIES WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                     RUN_SERIAL TRUE LABELS "determinism;slow")
