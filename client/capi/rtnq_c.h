/* rtnq's C API (librtnq_c.so): the client library's checkpoint rules and the core, for other
 * languages (the Python package loads it with ctypes). It links no gRPC or protobuf, so it can
 * live in a process next to another gRPC runtime: transport stays with the caller, which plugs
 * into whole-checkpoint runs through callbacks.
 *
 * Conventions: every fallible function returns 0 (OK) or an absl/gRPC canonical status code and
 * then sets *error to a message naming the tensor, field or value; strings returned through
 * out-parameters are allocated here and released with rtnq_free. Structured values cross as
 * UTF-8 JSON text. Nothing here throws or aborts on bad input. */
#ifndef RTNQ_CLIENT_CAPI_RTNQ_C_H_
#define RTNQ_CLIENT_CAPI_RTNQ_C_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bumped whenever a signature or JSON field below changes meaning. */
#define RTNQ_C_ABI_VERSION 1

int rtnq_abi_version(void);
/** The project version ("0.1.0"). Static storage. */
const char* rtnq_version(void);
/** Releases a string or buffer returned by this library. NULL is fine. */
void rtnq_free(void* p);

/* ---- Planning ------------------------------------------------------------------------------
 * request: {"config": <session config: JSON object or JSON text>, "format": "fake"|"inc"|"gptq"
 *   (any format the client library knows), "gptq_format": null|"v1"|"v2", "compression_dim": 1,
 *   "include": [patterns], "exclude": [patterns], "tensors": [{"name", "dtype" (safetensors
 *   spelling), "shape"}, ...]}
 * reply: {"format", "output_form" (the rtnq.v1 OutputForm value's name), "gptq_format"
 *   ("gptq"|"gptq_v2"), "gptq_format_wire" (GptqFormat value's name), "compression_dim",
 *   "config_json" (the session config as text, to send as SessionConfig.config_json),
 *   "tensors": [{"name", "action": "quantize"|"skip"|"copy", "reason", "decided_by",
 *   "match_kind", "config" (quantize: the resolved config), "outputs": [{"name", "dtype",
 *   "shape"}], "bias_to_f16"}], "record_key", "record", "metadata", "bytes_before",
 *   "bytes_after"}
 * A bad config, pattern, format or a tensor the format cannot hold fails here, naming it. */
int rtnq_plan(const char* request_json, char** reply_json, char** error);

/* ---- Local quantization (the core in this process) --------------------------------------- */
typedef struct rtnq_local rtnq_local;
typedef struct rtnq_session rtnq_session;
typedef struct rtnq_result rtnq_result;

/** threads 0 = all cores; kernels NULL or "" = best for the CPU, else "reference"|"avx2"|"avx512".
 */
int rtnq_local_create(int threads, const char* kernels, rtnq_local** out, char** error);
void rtnq_local_destroy(rtnq_local* local);
/** "local (avx2, 8 threads)"; release with rtnq_free. */
char* rtnq_local_describe(const rtnq_local* local);

/** spec: {"config_json": text, "format", "gptq_format": "v1"|"v2", "compression_dim"}. */
int rtnq_local_open(rtnq_local* local, const char* spec_json, rtnq_session** out, char** error);
void rtnq_session_destroy(rtnq_session* session);

/** One tensor as the caller holds it; `data` is borrowed for the call. */
typedef struct rtnq_tensor {
  const char* name;
  const char* dtype; /* safetensors spelling: "F32", "F16", "BF16", ... */
  const int64_t* shape;
  int32_t ndim;
  const void* data;
  uint64_t size;
  uint32_t crc32c; /* CRC32C of data, valid when has_crc32c */
  int32_t has_crc32c;
} rtnq_tensor;

/** Quantizes one tensor in the session; *out holds the outputs until rtnq_result_destroy. */
int rtnq_session_quantize(rtnq_session* session, const rtnq_tensor* tensor, rtnq_result** out,
                          char** error);
/** {"name", "quantized", "skip_reason", "config", "decided_by", "match_kind", "served_by",
 *  "attempts", "metrics": {...}, "outputs": [{"name", "dtype", "shape", "bytes"}]}; owned by the
 *  result. */
const char* rtnq_result_json(const rtnq_result* result);
/** Output `index`'s bytes, owned by the result. */
int rtnq_result_output(const rtnq_result* result, int32_t index, const void** data, uint64_t* size,
                       char** error);
void rtnq_result_destroy(rtnq_result* result);

/** A quantized layer's bias as GPTQ stores it (plan "bias_to_f16"): float16 values written to
 *  out (tensor->size / element size * 2 bytes). */
int rtnq_gptq_bias(const rtnq_tensor* tensor, void* out, uint64_t out_size, char** error);

/* ---- Whole-checkpoint runs (RunQuantize) with a caller's transport ----------------------- */
typedef struct rtnq_status rtnq_status;
typedef struct rtnq_result_builder rtnq_result_builder;

/** Marks a callback as failed with a canonical code and message. */
void rtnq_status_set(rtnq_status* status, int32_t code, const char* message);

/** header: {"quantized", "skip_reason", "config" (INC key names), "decided_by", "match_kind",
 *  "served_by", "attempts", "metrics": {"elements", "groups", "mse", "max_abs_error",
 *  "snr_db", "clip_ratio", "quantize_seconds", "server_seconds"}} (any field may be absent). */
int rtnq_builder_set(rtnq_result_builder* builder, const char* header_json, char** error);
/** Appends an output tensor of `size` bytes and returns where to write them (valid until the
 *  quantize callback returns), or NULL with *error set. */
void* rtnq_builder_add_output(rtnq_result_builder* builder, const char* name, const char* dtype,
                              const int64_t* shape, int32_t ndim, uint64_t size, char** error);

/** The transport: sessions opened per worker, one tensor at a time each. Callbacks run on the
 *  run's worker threads (several at once) and report failures through `status`. */
typedef struct rtnq_backend_callbacks {
  void* user;
  /** Opens a session (spec as for rtnq_local_open plus "config_json" and the plan's wire names
   *  "output_form" and "gptq_format_wire"); returns an id passed to the other callbacks. */
  int64_t (*open_session)(void* user, const char* spec_json, rtnq_status* status);
  void (*quantize)(void* user, int64_t session, const rtnq_tensor* tensor,
                   rtnq_result_builder* result, rtnq_status* status);
  void (*close_session)(void* user, int64_t session, rtnq_status* status);
  /** What Describe() reports ("127.0.0.1:50051 (round_robin)"); may be NULL. */
  const char* describe;
} rtnq_backend_callbacks;

/** Progress of a run; any member may be NULL. Called from worker threads. */
typedef struct rtnq_progress_callbacks {
  void* user;
  void (*start)(void* user, int32_t tensors, uint64_t bytes);
  /** One tensor written (or reused): its report as JSON (the --report entry). */
  void (*tensor_done)(void* user, const char* report_json);
} rtnq_progress_callbacks;

/** Runs `rtnq quantize`: options {"input", "output", "config" (object or text), "format",
 *  "gptq_format": null|"v1"|"v2", "compression_dim", "include", "exclude", "streams", "resume",
 *  "report_path"}. Exactly one of `local` and `backend` is given. On success *outcome_json is
 *  the --report document {"summary", "tensors"}. */
int rtnq_run_quantize(const char* options_json, rtnq_local* local,
                      const rtnq_backend_callbacks* backend,
                      const rtnq_progress_callbacks* progress, char** outcome_json, char** error);

/* ---- Saving a quantized state_dict ------------------------------------------------------- */
/** One output tensor's bytes, borrowed for the call. */
typedef struct rtnq_buffer {
  const char* name;
  const void* data;
  uint64_t size;
} rtnq_buffer;

/** Writes a state_dict quantized with a plan request (rtnq_plan's request, whose "tensors" are
 *  the original inputs) as a checkpoint directory: request also holds "output" (a new or empty
 *  directory) and "model_config" (the model's config.json object, or null). The plan is made again
 *  and every output tensor it lists must be in `tensors` with its exact byte size; writes
 *  model.safetensors (the plan's metadata and manifest), config.json with the record and, for
 *  gptq, quantize_config.json. *reply_json: {"files": [...]}. */
int rtnq_save(const char* request_json, const rtnq_buffer* tensors, int64_t count,
              char** reply_json, char** error);

#ifdef __cplusplus
}
#endif

#endif /* RTNQ_CLIENT_CAPI_RTNQ_C_H_ */
