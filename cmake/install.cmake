# `cmake --install build --prefix P`: the libraries (static and shared), the one
# public header, the CLI, the Lua C module (lib/lua/5.4/moonlight.so, for a stock
# lua5.4), the Lua half (share/lua/5.4/moonlight/, also embedded in the libraries),
# moonlight.pc and the CMake package (find_package(Moonlight)).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS moonlight_static moonlight_shared
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS moonlight RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET ml_cuda) # the CUDA plugin, loaded on first use from the libdir
  install(TARGETS ml_cuda LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
foreach(engine ml_mpi ml_nccl) # distributed training's engines, loaded on first use
  if(TARGET ${engine})
    install(TARGETS ${engine} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  endif()
endforeach()
install(TARGETS moonlight_lua LIBRARY DESTINATION lib/lua/5.4)
install(TARGETS ml_plot LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}) # loaded on the first plot
install(FILES ${CMAKE_SOURCE_DIR}/include/moonlight.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/lua/moonlight DESTINATION share/lua/5.4
        FILES_MATCHING PATTERN "*.lua")

file(RELATIVE_PATH ML_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(${CMAKE_SOURCE_DIR}/cmake/moonlight.pc.in ${CMAKE_BINARY_DIR}/moonlight.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/moonlight.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

set(ML_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Moonlight)
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/MoonlightConfig.cmake.in
  ${CMAKE_BINARY_DIR}/MoonlightConfig.cmake INSTALL_DESTINATION ${ML_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/MoonlightConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/MoonlightConfig.cmake ${CMAKE_BINARY_DIR}/MoonlightConfigVersion.cmake
        DESTINATION ${ML_CMAKE_DIR})
