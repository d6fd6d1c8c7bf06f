# librtnq_c.so: the C API over the client library's planning, writing and local quantization
# (client/capi/rtnq_c.h), for other languages' clients (python/ loads it with ctypes). It links
# no gRPC or protobuf, so it can share a process with another gRPC runtime; only the rtnq_*
# symbols are exported (the static libraries inside stay private).
set_target_properties(rtnq_client PROPERTIES POSITION_INDEPENDENT_CODE ON)
add_library(rtnq_c SHARED
  ${CMAKE_CURRENT_LIST_DIR}/capi_util.cc
  ${CMAKE_CURRENT_LIST_DIR}/rtnq_c.cc
  ${CMAKE_CURRENT_LIST_DIR}/run.cc)
target_link_libraries(rtnq_c PRIVATE rtnq_client rtnq_core rtnq_warnings)
set(rtnq_c_exports ${CMAKE_CURRENT_LIST_DIR}/exports.map)
target_link_options(rtnq_c PRIVATE -Wl,--version-script=${rtnq_c_exports})
# Every symbol resolved at link time, except in sanitizer builds: clang links its sanitizer
# runtime into executables only, so an instrumented shared library leaves those symbols open.
if(NOT RTNQ_SANITIZE)
  target_link_options(rtnq_c PRIVATE -Wl,--no-undefined)
endif()
set_target_properties(rtnq_c PROPERTIES LINK_DEPENDS ${rtnq_c_exports})
