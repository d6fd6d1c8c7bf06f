# `cmake --install`: the programs (component `runtime`, what the container image ships), the
# static libraries rtnq::core and rtnq::client with their headers and the CMake package
# (find_package(rtnq)) that imports them (component `development`). Headers keep their
# repository layout under <prefix>/include ("core/...", "client/...", "rtnq/version.h").
include(CMakePackageConfigHelpers)
set(RTNQ_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/rtnq)

foreach(program rtnq-server rtnq)
  if(TARGET ${program})
    install(TARGETS ${program} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
  endif()
endforeach()

install(TARGETS rtnq_core rtnq_client_api rtnq_client EXPORT rtnqTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/core/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/core
        COMPONENT development FILES_MATCHING PATTERN "*.h")
# client/*.h only: the remote backend, CLI, planning and C API stay out of rtnq::client.
file(GLOB rtnq_client_headers ${PROJECT_SOURCE_DIR}/client/*.h)
install(FILES ${rtnq_client_headers} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/client
        COMPONENT development)
install(FILES ${PROJECT_BINARY_DIR}/generated/rtnq/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/rtnq COMPONENT development)

install(EXPORT rtnqTargets NAMESPACE rtnq:: DESTINATION ${RTNQ_CMAKE_DIR}
        COMPONENT development)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/rtnqConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/rtnqConfig.cmake
                              INSTALL_DESTINATION ${RTNQ_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/rtnqConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/rtnqConfig.cmake ${PROJECT_BINARY_DIR}/rtnqConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindISAL.cmake
        DESTINATION ${RTNQ_CMAKE_DIR} COMPONENT development)
