# The `rtnq` binary (client/cli/): one file per command over the client library. Argument
# parsing and the flags are a small library of their own so that tests can drive them.
add_library(rtnq_cli_flags STATIC
  ${CMAKE_CURRENT_LIST_DIR}/cli/args.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli/flags.cc)
target_link_libraries(rtnq_cli_flags
  PUBLIC rtnq_client_api absl::flags absl::flags_reflection absl::strings
  PRIVATE rtnq_warnings)

add_executable(rtnq
  ${CMAKE_CURRENT_LIST_DIR}/cli/command.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli/health_command.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli/info_command.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli/inspect_command.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli/main.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli/plan_command.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli/quantize_command.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli/synth_command.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli/verify_command.cc)
set_target_properties(rtnq PROPERTIES OUTPUT_NAME rtnq)
target_link_libraries(rtnq PRIVATE rtnq_cli_flags rtnq_client rtnq_synth rtnq_client_remote
                           rtnq_client_plan_remote rtnq_warnings)
