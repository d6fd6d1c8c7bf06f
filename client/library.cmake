# The client library (rtnq_client): tensor selection, session config, local backend, the resume
# journal, reports and RunQuantize, which plans a checkpoint, streams its tensors through any
# Backend and writes the quantized checkpoint. The CLI and other C++ programs embed it.
add_library(rtnq_client STATIC
  ${CMAKE_CURRENT_LIST_DIR}/checkpoint_util.cc
  ${CMAKE_CURRENT_LIST_DIR}/expert_plan.cc
  ${CMAKE_CURRENT_LIST_DIR}/fp8_input.cc
  ${CMAKE_CURRENT_LIST_DIR}/journal.cc
  ${CMAKE_CURRENT_LIST_DIR}/local_backend.cc
  ${CMAKE_CURRENT_LIST_DIR}/manifest.cc
  ${CMAKE_CURRENT_LIST_DIR}/progress.cc
  ${CMAKE_CURRENT_LIST_DIR}/quantize_run.cc
  ${CMAKE_CURRENT_LIST_DIR}/report.cc
  ${CMAKE_CURRENT_LIST_DIR}/run_plan.cc
  ${CMAKE_CURRENT_LIST_DIR}/session_config.cc
  ${CMAKE_CURRENT_LIST_DIR}/tensor_file_sink.cc
  ${CMAKE_CURRENT_LIST_DIR}/tensor_selection.cc
  ${CMAKE_CURRENT_LIST_DIR}/verify.cc)
target_link_libraries(rtnq_client
  PUBLIC rtnq_client_api rtnq_core nlohmann_json::nlohmann_json
  PRIVATE $<BUILD_INTERFACE:rtnq_warnings>)
set_target_properties(rtnq_client PROPERTIES EXPORT_NAME client)
add_library(rtnq::client ALIAS rtnq_client)
# Synthetic Llama- and MoE-shaped checkpoints (`rtnq synth`, tests, benchmarks): not part of the
# quantizer, so not in core.
add_library(rtnq_synth STATIC ${CMAKE_CURRENT_LIST_DIR}/synth/synth_checkpoint.cc)
target_link_libraries(rtnq_synth PUBLIC rtnq_core PRIVATE rtnq_warnings)
