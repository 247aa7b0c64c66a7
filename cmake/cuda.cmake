# The CUDA backend: every kernels/*.cu compiled for Hopper (sm_90 machine code plus
# compute_90 PTX, so a newer GPU can JIT it), into the plugin libmoonlight_cuda.so
# that the core loads on first use (src/cuda_loader.c, src/cuda_plugin.h): a CPU run
# never maps cudart or cuBLAS. Included from CMakeLists.txt when
# ML_CUDA is ON and CMake finds nvcc and the toolkit; the C sources then see
# ML_HAVE_CUDA (src/backend.c and src/cuda.c keep their fallbacks otherwise).
#
# cudart is linked statically (CUDA::cudart_static), so a binary built here needs
# only the driver on the GPU machine; cuBLAS statically too when the toolkit has
# libcublas_static.a (with culibos), else the shared libcublas.so (the toolkit on a
# GPU machine has it; scripts/gpu-check.sh finds it).
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 90)   # "90" = sm_90 SASS + compute_90 PTX
endif()
if(NOT DEFINED CMAKE_CUDA_HOST_COMPILER AND CMAKE_C_COMPILER_ID STREQUAL "GNU")
  # the host compiler of the C sources (g++ beside gcc), so both agree on the ABI
  string(REGEX REPLACE "gcc([^/]*)$" "g++\\1" ML_CUDA_HOST_CXX "${CMAKE_C_COMPILER}")
  if(EXISTS "${ML_CUDA_HOST_CXX}")
    set(CMAKE_CUDA_HOST_COMPILER "${ML_CUDA_HOST_CXX}")
  endif()
endif()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)

file(GLOB ML_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/*.cu)
add_library(ml_cuda SHARED ${ML_CUDA_SOURCES})
target_include_directories(ml_cuda PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/kernels)
set_target_properties(ml_cuda PROPERTIES
  OUTPUT_NAME moonlight_cuda
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}   # beside the CLI and moonlight.so, where the loader looks
  POSITION_INDEPENDENT_CODE ON
  CUDA_RUNTIME_LIBRARY Static
  CUDA_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden C_VISIBILITY_PRESET hidden)
# only ml_cuda_plugin_entry is exported; cudart's own symbols stay inside
target_link_options(ml_cuda PRIVATE -Wl,--exclude-libs,ALL -Wl,-z,nodelete)
target_compile_options(ml_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra --expt-relaxed-constexpr -lineinfo>
  $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<NOT:$<CONFIG:Debug>>>:-O3>)

if(TARGET CUDA::cublas_static AND TARGET CUDA::culibos)
  set(ML_CUBLAS CUDA::cublas_static CUDA::cublasLt_static CUDA::culibos)
  set(ML_CUBLAS_KIND "static")
else()
  set(ML_CUBLAS CUDA::cublas)
  set(ML_CUBLAS_KIND "shared (no libcublas_static.a in this toolkit)")
endif()
# the kernels' host code is C++: its runtime comes with them
target_link_libraries(ml_cuda PUBLIC CUDA::cudart_static ${ML_CUBLAS} stdc++)
target_compile_definitions(ml_objects PRIVATE ML_CUDA_PLUGIN_BUILT)
message(STATUS "moonlight: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
               "architectures ${CMAKE_CUDA_ARCHITECTURES}, cuBLAS ${ML_CUBLAS_KIND})")
