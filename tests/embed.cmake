# The embedding API's tests beyond tests/c/: the host program scripts/embed/regress.c,
# the install test (tests/install/), and the valgrind leak check.
add_executable(embed_regress ${CMAKE_SOURCE_DIR}/scripts/embed/regress.c)
target_link_libraries(embed_regress PRIVATE moonlight_static)
add_test(NAME embed.regress
         COMMAND embed_regress ${CMAKE_SOURCE_DIR}/scripts/embed/regress.lua
                 ${CMAKE_BINARY_DIR}/regress.safetensors)
set_tests_properties(embed.regress PROPERTIES WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                     ENVIRONMENT "OMP_NUM_THREADS=1")

# The build race (issue 14): ml_lua_embed alone owns the embedded-Lua file. Fresh
# -j4 configure + builds of tests/embed_race/ (wired as this project, four targets
# compiling the file) must succeed and run the embedding step once, three times
# over; a target compiling the file without the owner is refused at configure
# time. About 10 s.
add_test(NAME embed.race
         COMMAND ${CMAKE_COMMAND} -DSRC=${CMAKE_SOURCE_DIR} -DWORK=${CMAKE_BINARY_DIR}/embed_race
                 "-DGENERATOR=${CMAKE_GENERATOR}" -P ${CMAKE_SOURCE_DIR}/tests/embed_race/run.cmake)

# The install test: not under the sanitizers (an outside host would need their runtime).
if(NOT ML_SANITIZE)
  add_test(NAME embed.install
           COMMAND ${CMAKE_SOURCE_DIR}/tests/install/test_install.sh ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  # alone: it failed twice beside other tests under ctest -j (cause not found; its
  # script now prints the install log when it fails)
  set_tests_properties(embed.install PROPERTIES LABELS "install" ENVIRONMENT "OMP_NUM_THREADS=1"
                       RUN_SERIAL TRUE)
endif()

# The LuaRocks package (tests/install/test_luarocks.sh): luarocks make into a
# temporary tree, require "moonlight" from stock lua5.4. Its CMake build dir is
# kept in this build dir (the first run compiles the module, ~1 min on two idle
# cores; later runs are incremental). Alone, as embed.install: it compiles.
if(NOT ML_SANITIZE)
  add_test(NAME install.luarocks
           COMMAND ${CMAKE_SOURCE_DIR}/tests/install/test_luarocks.sh ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
  set_tests_properties(install.luarocks PROPERTIES LABELS "install" RUN_SERIAL TRUE TIMEOUT 900
                       SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_NUM_THREADS=1")
endif()

# valgrind: ml_open / run / ml_close 100 times, no leak. Valgrind reports no
# AVX-512, so the CPU backend runs its avx2 kernels there (src/cpu/capability.h).
# Skipped (77) without valgrind.
find_program(VALGRIND valgrind)
if(NOT ML_SANITIZE)
  add_executable(embed_open_close EXCLUDE_FROM_ALL ${CMAKE_SOURCE_DIR}/tests/valgrind/open_close.c)
  target_link_libraries(embed_open_close PRIVATE moonlight_static)
  if(VALGRIND)
    # built only when valgrind is there to run it
    set_target_properties(embed_open_close PROPERTIES EXCLUDE_FROM_ALL OFF)
    add_test(NAME embed.valgrind
             COMMAND ${VALGRIND} --quiet --leak-check=full --show-leak-kinds=definite,indirect
                     --errors-for-leak-kinds=definite,indirect --error-exitcode=1
                     $<TARGET_FILE:embed_open_close> ${CMAKE_BINARY_DIR}/open_close.safetensors 100)
  else()
    add_test(NAME embed.valgrind COMMAND ${CMAKE_COMMAND} -E echo "valgrind not found: skipped")
    set_tests_properties(embed.valgrind PROPERTIES SKIP_REGULAR_EXPRESSION "skipped")
  endif()
  set_tests_properties(embed.valgrind PROPERTIES LABELS "valgrind" WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                       ENVIRONMENT "OMP_NUM_THREADS=1")
endif()

# Issue 17's soaks, short (the full ones are benchmarks: docs/PERFORMANCE.md): the
# reference model trained 1,500 steps in one process and 150 ml_open/run/ml_close
# cycles, the resident set flat within 5 % after a warm-up. Not under the
# sanitizers (their allocators hold memory back on purpose).
add_executable(soak_embed ${CMAKE_SOURCE_DIR}/scripts/bench/soak_embed.c)
target_link_libraries(soak_embed PRIVATE moonlight_static)
if(NOT ML_SANITIZE)
  add_test(NAME soak.embed COMMAND soak_embed 150 50 25 0.05)
  add_test(NAME soak.train COMMAND $<TARGET_FILE:moonlight> ${CMAKE_SOURCE_DIR}/scripts/bench/soak_train.lua
                                   --steps 1500 --warmup 500 --every 250 --logs ${CMAKE_BINARY_DIR}/soak_logs)
  set_tests_properties(soak.embed soak.train PROPERTIES LABELS soak WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                       ENVIRONMENT "OMP_NUM_THREADS=1" SKIP_RETURN_CODE 77)
endif()
