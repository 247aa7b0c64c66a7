# The emulated GPU (ML_CUDA_EMU=ON), for tests: kernels/*.cu compiled unchanged by
# the host C++ compiler into libmoonlight_cuda_emu.so, a CUDA plugin with the real
# plugin's entry point and ABI (src/cuda_plugin.h). Each block's threads run as
# fibers (emu/), cuBLAS is OpenBLAS, device memory is host memory. The core loads
# it as its CUDA backend when told to:
#   MOONLIGHT_CUDA_PLUGIN=build/libmoonlight_cuda_emu.so MOONLIGHT_CUDA_FORCE_LOAD=1
# Needs no CUDA toolkit. Included from CMakeLists.txt; the real CUDA build
# (cmake/cuda.cmake) is independent of it.
#
# The .cu/.cuh sources are first rewritten by emu/launch_rewrite.lua (k<<<...>>>()
# into a call, __shared__ into per-block statics) into build/emu/kernels/, which
# is the only kernel include directory, so common.cuh is the rewritten one too.
enable_language(CXX)
find_program(ML_LUA_INTERPRETER lua5.4 REQUIRED)
set(ML_EMU_REWRITE ${CMAKE_SOURCE_DIR}/emu/launch_rewrite.lua)

# ml_emu_rewrite(<out var> <dir> sources...): the rewritten copies of the sources
# in <dir>, a .cu becoming a .cu.cpp (so the compiler takes it for C++).
function(ml_emu_rewrite out_var dir)
  set(outs)
  foreach(src ${ARGN})
    get_filename_component(name ${src} NAME)
    if(name MATCHES "\\.cu$")
      set(out ${dir}/${name}.cpp)
    else()
      set(out ${dir}/${name})
    endif()
    add_custom_command(
      OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
      COMMAND ${ML_LUA_INTERPRETER} ${ML_EMU_REWRITE} ${src} ${out}
      DEPENDS ${src} ${ML_EMU_REWRITE}
      COMMENT "Rewriting ${name} for the emulated GPU" VERBATIM)
    list(APPEND outs ${out})
  endforeach()
  set(${out_var} ${outs} PARENT_SCOPE)
endfunction()

# flags of all emulated code: the sanitizer build's -O1 -g as the C code's
if(ML_SANITIZE)
  set(CMAKE_CXX_FLAGS_RELEASE "-O1 -g -fno-omit-frame-pointer")
endif()
set(ML_EMU_CXX_OPTIONS -fno-math-errno -Wno-unknown-pragmas)

# the runtime, cuBLAS and the scheduler (also linked by the emulator's own test)
add_library(ml_cuda_emu_rt STATIC
  ${CMAKE_SOURCE_DIR}/emu/src/runtime.cpp ${CMAKE_SOURCE_DIR}/emu/src/scheduler.cpp
  ${CMAKE_SOURCE_DIR}/emu/src/fiber.cpp ${CMAKE_SOURCE_DIR}/emu/src/cublas.cpp)
target_include_directories(ml_cuda_emu_rt PUBLIC ${CMAKE_SOURCE_DIR}/emu/include)
target_link_libraries(ml_cuda_emu_rt PUBLIC PkgConfig::OPENBLAS Threads::Threads)
target_compile_options(ml_cuda_emu_rt PRIVATE ${ML_EMU_CXX_OPTIONS})
set_target_properties(ml_cuda_emu_rt PROPERTIES
  CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON POSITION_INDEPENDENT_CODE ON
  CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)

file(GLOB ML_EMU_KERNELS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/*.cu ${CMAKE_SOURCE_DIR}/kernels/*.cuh)
ml_emu_rewrite(ML_EMU_KERNEL_SOURCES ${CMAKE_BINARY_DIR}/emu/kernels ${ML_EMU_KERNELS})

add_library(ml_cuda_emu SHARED ${ML_EMU_KERNEL_SOURCES})
target_include_directories(ml_cuda_emu PRIVATE ${CMAKE_BINARY_DIR}/emu/kernels ${CMAKE_SOURCE_DIR}/src)
target_compile_definitions(ml_cuda_emu PRIVATE ML_CUDA_EMU)
target_compile_options(ml_cuda_emu PRIVATE ${ML_EMU_CXX_OPTIONS})
target_link_libraries(ml_cuda_emu PRIVATE ml_cuda_emu_rt)
set_target_properties(ml_cuda_emu PROPERTIES
  OUTPUT_NAME moonlight_cuda_emu
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}   # beside the CLI and moonlight.so
  CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON LINKER_LANGUAGE CXX
  CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
# exported: ml_cuda_plugin_entry and the pinned-memory calls (emu/src/internal.h);
# -Bsymbolic: the plugin's own calls never bind to another library's cuda* symbols
target_link_options(ml_cuda_emu PRIVATE -Wl,-Bsymbolic -Wl,-z,nodelete)
target_compile_definitions(ml_objects PRIVATE ML_CUDA_PLUGIN_BUILT)
add_dependencies(moonlight ml_cuda_emu)
message(STATUS "moonlight: emulated GPU ON (libmoonlight_cuda_emu.so, kernels on CPU fibers)")
