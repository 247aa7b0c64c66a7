# The fuzz targets (tests/fuzz/fuzz_*.c, issue 17, 2).
#
# - In every build with tests: each target is also built with replay.c's main()
#   as fuzz_replay_<target>, and ctest fuzz.replay.<target> runs it over the seed
#   corpus (tests/fuzz/corpus/<target>/) and every crash fuzzing found
#   (tests/fuzz/regressions/<target>/): in the sanitizer build, under ASan and UBSan.
# - With -DML_FUZZ=ON and clang (scripts/fuzz): fuzz_<target>, libFuzzer programs,
#   the whole library instrumented for coverage and built with ASan and UBSan.
set(ML_FUZZ_TARGETS idx idx_gz safetensors metrics_csv tensor_table)
set(ML_FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)

foreach(t ${ML_FUZZ_TARGETS})
  set(srcs ${ML_FUZZ_DIR}/fuzz_${t}.c ${ML_FUZZ_DIR}/fuzz_common.c)
  if(ML_FUZZ)
    add_executable(fuzz_${t} ${srcs})
    target_link_libraries(fuzz_${t} PRIVATE moonlight_static)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    target_compile_definitions(fuzz_${t} PRIVATE ML_FUZZ_LIBFUZZER) # Lua line coverage
  endif()
  if(ML_TESTS)
    add_executable(fuzz_replay_${t} ${srcs} ${ML_FUZZ_DIR}/replay.c)
    target_link_libraries(fuzz_replay_${t} PRIVATE moonlight_static)
    set(inputs ${ML_FUZZ_DIR}/corpus/${t})
    if(EXISTS ${ML_FUZZ_DIR}/regressions/${t})
      list(APPEND inputs ${ML_FUZZ_DIR}/regressions/${t})
    endif()
    add_test(NAME fuzz.replay.${t} COMMAND fuzz_replay_${t} ${inputs})
    set_tests_properties(fuzz.replay.${t} PROPERTIES WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                         ENVIRONMENT "OMP_NUM_THREADS=1" LABELS fuzz)
  endif()
endforeach()
