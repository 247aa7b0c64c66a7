# The embedding API's tests beyond tests/c/: the host program scripts/embed/regress.c,
# the install test (tests/install/), and the valgrind leak check.
add_executable(embed_regress ${CMAKE_SOURCE_DIR}/scripts/embed/regress.c)
target_link_libraries(embed_regress PRIVATE moonlight_static)
add_test(NAME embed.regress
         COMMAND embed_regress ${CMAKE_SOURCE_DIR}/scripts/embed/regress.lua
                 ${CMAKE_BINARY_DIR}/regress.safetensors)
set_tests_properties(embed.regress PROPERTIES WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                     ENVIRONMENT "OMP_NUM_THREADS=2")
