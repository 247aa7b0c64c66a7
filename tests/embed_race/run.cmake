# The build race check (ctest embed.race): a fresh configure and -j4 build of
# tests/embed_race/, ROUNDS times; each build must succeed and run the embedding
# step exactly once. Then a target that compiles the generated file without the
# owner target must be refused at configure time.
# cmake -DSRC=<source dir> -DWORK=<scratch dir> [-DGENERATOR=<name>] [-DROUNDS=3] -P run.cmake
if(NOT ROUNDS)
  set(ROUNDS 3)
endif()
set(gen_args)
if(GENERATOR)
  set(gen_args -G "${GENERATOR}")
endif()

foreach(round RANGE 1 ${ROUNDS})
  file(REMOVE_RECURSE "${WORK}")
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${SRC}/tests/embed_race" -B "${WORK}" ${gen_args}
                          -DMOONLIGHT_SOURCE_DIR=${SRC}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "round ${round}: configure failed:\n${out}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK}" -j 4
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "round ${round}: build failed:\n${out}")
  endif()
  string(REGEX MATCHALL "Embedding lua/moonlight" runs "${out}")
  list(LENGTH runs n)
  if(NOT n EQUAL 1)
    message(FATAL_ERROR "round ${round}: the embedding step ran ${n} times (expected once):\n${out}")
  endif()
  message(STATUS "round ${round}: built, embedding ran once")
endforeach()

file(REMOVE_RECURSE "${WORK}")
execute_process(COMMAND ${CMAKE_COMMAND} -S "${SRC}/tests/embed_race" -B "${WORK}" ${gen_args}
                        -DMOONLIGHT_SOURCE_DIR=${SRC} -DEMBED_RACE_UNGUARDED=ON
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
file(REMOVE_RECURSE "${WORK}")
if(rc EQUAL 0 OR NOT out MATCHES "target embed_unguarded compiles")
  message(FATAL_ERROR "a target compiling the embedded Lua without ml_lua_embed was not refused:\n${out}")
endif()
message(STATUS "a target without ml_lua_embed is refused at configure time")
