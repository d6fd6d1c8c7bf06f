# rtnq_generate_grpc(<out_var> <proto>...)
#   Generates <name>.pb.{h,cc} and <name>.grpc.pb.{h,cc} for each .proto (paths relative to the
#   calling directory) with Debian's protoc and grpc_cpp_plugin, into the calling directory's
#   build tree (includes are rooted there, e.g. "rtnq/v1/rtnq.pb.h"), and returns the sources in
#   ${out_var}.
function(rtnq_generate_grpc out_var)
  set(generated)
  foreach(proto ${ARGN})
    get_filename_component(dir ${proto} DIRECTORY)
    get_filename_component(stem ${proto} NAME_WE)
    set(base ${CMAKE_CURRENT_BINARY_DIR}/${dir}/${stem})
    add_custom_command(
      OUTPUT ${base}.pb.cc ${base}.pb.h ${base}.grpc.pb.cc ${base}.grpc.pb.h
      COMMAND protobuf::protoc
        --proto_path=${CMAKE_CURRENT_SOURCE_DIR}
        --cpp_out=${CMAKE_CURRENT_BINARY_DIR}
        --grpc_out=${CMAKE_CURRENT_BINARY_DIR}
        --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>
        ${CMAKE_CURRENT_SOURCE_DIR}/${proto}
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${proto} protobuf::protoc gRPC::grpc_cpp_plugin
      COMMENT "protoc ${proto}"
      VERBATIM)
    list(APPEND generated ${base}.pb.cc ${base}.grpc.pb.cc)
  endforeach()
  set(${out_var} ${generated} PARENT_SCOPE)
endfunction()
