# The CUDA backend's tests on the emulated GPU (ML_CUDA_EMU=ON), label cuda-emu
# (ctest -L cuda-emu): every kernel runs on the CPU. In the sanitizer build
# (ML_SANITIZE) they run under AddressSanitizer + UBSan, every device buffer being
# host memory there; the longer ones run in the release build only.
# Included from tests/tests.cmake when the emulated plugin is built.
set(ML_EMU_PLUGIN_ENV
  "MOONLIGHT_CUDA_PLUGIN=$<TARGET_FILE:ml_cuda_emu>" "MOONLIGHT_CUDA_FORCE_LOAD=1")

# the emulator's own checks: a CUDA source compiled like kernels/*.cu
ml_emu_rewrite(ML_EMU_CHECKS_SRC ${CMAKE_BINARY_DIR}/emu/tests ${CMAKE_SOURCE_DIR}/tests/emu/test_emu_checks.cu)
add_executable(test_emu_checks ${ML_EMU_CHECKS_SRC})
target_link_libraries(test_emu_checks PRIVATE ml_cuda_emu_rt PkgConfig::CMOCKA)
target_compile_options(test_emu_checks PRIVATE ${ML_EMU_CXX_OPTIONS})
set_target_properties(test_emu_checks PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
add_test(NAME emu.checks COMMAND test_emu_checks)

# a host program on the emulated device: pinned memory, matmuls from two threads
add_executable(test_emu_host ${CMAKE_SOURCE_DIR}/tests/emu/test_emu_host.c)
target_link_libraries(test_emu_host PRIVATE moonlight_static PkgConfig::CMOCKA ${CMAKE_DL_LIBS})
add_test(NAME emu.host COMMAND test_emu_host)
set_tests_properties(emu.host PROPERTIES ENVIRONMENT "${ML_EMU_PLUGIN_ENV};OMP_NUM_THREADS=1")

# busted specs with the emulated plugin as the CUDA backend
function(ml_emu_spec name spec)
  add_test(NAME ${name}
           COMMAND ${LUA54} ${BUSTED} --lpath=${CMAKE_SOURCE_DIR}/tests/lua/?.lua
                   --output=utfTerminal ${CMAKE_SOURCE_DIR}/tests/lua/${spec})
  set_tests_properties(${name} PROPERTIES WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                       ENVIRONMENT "${ML_LUA_TEST_ENV};${ML_EMU_PLUGIN_ENV};${ARGN}")
endfunction()
# the whole parity suite (tests/lua/cuda_parity.lua) against the CPU
ml_emu_spec(emu.cuda_parity cuda_parity_spec.lua)
ml_emu_spec(emu.cuda_kernels cuda_kernels_spec.lua
            "MOONLIGHT_EMU_TRACE=${CMAKE_BINARY_DIR}/emu/cuda_kernels_trace.txt")
set(ML_EMU_TESTS emu.checks emu.host emu.cuda_parity emu.cuda_kernels)

if(NOT ML_SANITIZE)
  # again with each block's threads (and the blocks) last first: a missing barrier shows
  ml_emu_spec(emu.cuda_parity_reverse cuda_parity_spec.lua "MOONLIGHT_EMU_REVERSE=1")
  # the reference experiment (scripts/mnist_custom_loss.lua) on the device
  add_test(NAME emu.reference_experiment
           COMMAND moonlight scripts/mnist_custom_loss.lua --accelerator cuda --epochs 1
                   --limit_batches 40 --logs ${CMAKE_BINARY_DIR}/emu/logs)
  set_tests_properties(emu.reference_experiment PROPERTIES WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                       ENVIRONMENT "${ML_EMU_PLUGIN_ENV};OMP_NUM_THREADS=1"
                       PASS_REGULAR_EXPRESSION "GPU available: True \\(cuda\\), used: True.*val_accuracy: 0\\.[3-9].*logs: ")
  list(APPEND ML_EMU_TESTS emu.cuda_parity_reverse emu.reference_experiment)
endif()
set_tests_properties(${ML_EMU_TESTS} PROPERTIES LABELS cuda-emu)
