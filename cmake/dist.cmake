# Distributed training's engines (src/dist_plugin.h), each a plugin the core loads
# on first use, each optional:
#   libmoonlight_mpi.so   when CMake finds MPI (Debian: libopenmpi-dev, which
#                         scripts/deps installs); without it, strategy = "ddp" and
#                         ml.distributed's collectives say how to get it.
#   libmoonlight_nccl.so  when the CUDA backend is built and the toolkit has NCCL
#                         (nccl.h and libnccl, beside cudart); without it, CUDA
#                         tensors go through host memory and MPI.
# Included from CMakeLists.txt after the CUDA backend's section.
option(ML_MPI "Build the MPI engine of distributed training when MPI is found" ON)
if(ML_MPI)
  find_package(MPI COMPONENTS C QUIET)
endif()
if(MPI_C_FOUND)
  add_library(ml_mpi MODULE ${CMAKE_SOURCE_DIR}/src/dist/mpi.c)
  target_include_directories(ml_mpi PRIVATE ${CMAKE_SOURCE_DIR}/src)
  set_target_properties(ml_mpi PROPERTIES OUTPUT_NAME moonlight_mpi PREFIX "lib"
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}   # beside the CLI and moonlight.so
    C_VISIBILITY_PRESET hidden)
  target_link_libraries(ml_mpi PRIVATE MPI::MPI_C)
  target_compile_definitions(ml_objects PRIVATE ML_MPI_PLUGIN_BUILT)
  add_dependencies(moonlight_static ml_mpi)
  find_program(ML_MPIEXEC NAMES mpirun mpiexec HINTS ${MPIEXEC_EXECUTABLE})
  message(STATUS "moonlight: MPI engine ON (MPI ${MPI_C_VERSION}, ${MPI_C_LIB_NAMES})")
else()
  message(STATUS "moonlight: MPI engine OFF (no MPI found: apt-get install libopenmpi-dev openmpi-bin)")
endif()

if(TARGET ml_cuda)
  find_path(ML_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(ML_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(ML_NCCL_INCLUDE_DIR AND ML_NCCL_LIBRARY)
    add_library(ml_nccl MODULE ${CMAKE_SOURCE_DIR}/src/dist/nccl.c)
    target_include_directories(ml_nccl PRIVATE ${CMAKE_SOURCE_DIR}/src ${ML_NCCL_INCLUDE_DIR})
    set_target_properties(ml_nccl PROPERTIES OUTPUT_NAME moonlight_nccl PREFIX "lib"
      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}
      C_VISIBILITY_PRESET hidden)
    # the runtime statically, as the CUDA plugin (src/dist/nccl.c says why that is safe)
    target_link_libraries(ml_nccl PRIVATE CUDA::cudart_static ${ML_NCCL_LIBRARY})
    target_link_options(ml_nccl PRIVATE -Wl,--exclude-libs,ALL)
    target_compile_definitions(ml_objects PRIVATE ML_NCCL_PLUGIN_BUILT)
    add_dependencies(moonlight_static ml_nccl)
    message(STATUS "moonlight: NCCL engine ON (${ML_NCCL_LIBRARY})")
  else()
    message(STATUS "moonlight: NCCL engine OFF (no nccl.h / libnccl with the CUDA toolkit)")
  endif()
endif()
