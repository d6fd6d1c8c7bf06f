#include "client/remote/quantize_stream.h"

#include <algorithm>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/remote/channel.h"
#include "core/tensor_text.h"
#include "proto/quant_config_conversion.h"
#include "proto/status_conversion.h"

namespace rtnq::client {

QuantizeStream::QuantizeStream(int64_t chunk_bytes, AttemptDeadline& deadline)
    : chunk_bytes_(std::max<int64_t>(1, chunk_bytes)),
      deadline_(deadline),
      opened_(std::chrono::steady_clock::now()) {}

absl::StatusOr<std::unique_ptr<QuantizeStream>> QuantizeStream::Open(
    v1::Quantizer::Stub& stub, const std::string& token, const v1::SessionConfig& config,
    bool wait_for_ready, int64_t chunk_bytes, AttemptDeadline& deadline) {
  std::unique_ptr<QuantizeStream> s(new QuantizeStream(chunk_bytes, deadline));
  SetupCall(s->ctx_, token);
  s->ctx_.set_wait_for_ready(wait_for_ready);
  deadline.Arm(&s->ctx_);
  s->stream_ = stub.Quantize(&s->ctx_);
  v1::QuantizeRequest req;
  *req.mutable_config() = config;
  // The config is read first thing by the server, so writing before reading cannot block here.
  const bool ok = s->stream_->Write(req) && s->stream_->Read(&s->response_);
  const bool fired = deadline.Disarm();
  if (!ok) {
    const absl::Status st = s->Finish(/*cancelled_here=*/fired);
    if (fired) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no server answered the session config within the deadline (", st.message(), ")"));
    }
    return st;
  }
  if (!s->response_.has_started()) {
    return absl::InternalError("server did not answer the session config with SessionStarted");
  }
  s->peer_ = s->ctx_.peer();
  return s;
}

QuantizeStream::~QuantizeStream() {
  if (finished_) return;
  ctx_.TryCancel();
  (void)stream_->Finish();
}

absl::Status QuantizeStream::Finish(bool cancelled_here) {
  finished_ = true;
  const absl::Status st = FromGrpcStatus(stream_->Finish());
  if (st.ok()) return absl::UnavailableError("the stream ended before the tensor's answer");
  // The server cancels its streams when it shuts down: the tensor is worth sending elsewhere.
  if (st.code() == absl::StatusCode::kCancelled && !cancelled_here) {
    return absl::UnavailableError(absl::StrCat("the server cancelled the stream: ", st.message()));
  }
  return st;
}

TensorAttempt QuantizeStream::Quantize(const TensorInput& tensor, uint32_t crc, ResultSink& sink) {
  ++tensors_;
  names_.insert(tensor.name);
  bytes_ += static_cast<int64_t>(tensor.data.size());
  bool sent = false;
  std::thread writer;
  try {
    writer = std::thread([&] { sent = Send(tensor, crc); });
  } catch (const std::system_error& e) {  // no thread could be made: nothing was sent
    return {absl::ResourceExhaustedError(
                absl::StrCat(tensor.name, ": cannot start the writer thread: ", e.what())),
            true};
  }
  deadline_.Arm(&ctx_);
  Answer a = Receive(tensor.name, sink);
  // A broken call fails the writer's next Write by itself; one given up here needs a cancel.
  // After a TensorError the server reads (and drops) the rest of the tensor, so the writer ends.
  if (a.after == After::kAbandoned) ctx_.TryCancel();
  writer.join();
  const bool fired = deadline_.Disarm();
  switch (a.after) {
    case After::kBroken: {
      absl::Status st = Finish(/*cancelled_here=*/fired);
      if (fired) {
        st = absl::DeadlineExceededError(
            absl::StrCat(tensor.name, ": no complete answer within the deadline"));
      }
      return {st, false};
    }
    case After::kAbandoned:
      (void)Finish(/*cancelled_here=*/true);
      return {std::move(a.result), false};
    case After::kUsable:
      break;
  }
  // The answer is complete (or a TensorError), but the call may have ended right after it.
  return {std::move(a.result), sent && !fired};
}

bool QuantizeStream::Send(const TensorInput& t, uint32_t crc) {
  v1::QuantizeRequest req;
  v1::TensorHeader* h = req.mutable_header();
  h->set_name(t.name);
  h->set_dtype(ElemTypeName(t.dtype));
  for (int64_t d : t.shape) h->add_shape(d);
  h->set_total_bytes(static_cast<int64_t>(t.data.size()));
  h->set_crc32c(crc);
  if (!stream_->Write(req)) return false;
  const size_t chunk = static_cast<size_t>(chunk_bytes_);
  std::string* data = req.mutable_chunk()->mutable_data();  // reused for every chunk
  for (size_t off = 0; off < t.data.size(); off += chunk) {
    const size_t n = std::min(chunk, t.data.size() - off);
    data->assign(reinterpret_cast<const char*>(t.data.data()) + off, n);
    if (!stream_->Write(req)) return false;
  }
  return true;
}

QuantizeStream::Answer QuantizeStream::Receive(const std::string& name, ResultSink& sink) {
  auto broken = [&](absl::Status st) { return Answer{std::move(st), After::kAbandoned}; };
  TensorResult result;
  result.name = name;
  result.served_by = peer_;
  std::vector<uint64_t> filled, sizes;
  bool have_header = false;
  while (true) {
    if (!stream_->Read(&response_)) return {absl::UnknownError("read failed"), After::kBroken};
    const v1::QuantizeResponse& resp = response_;
    if (resp.has_error()) {
      return {StatusFromCode(resp.error().code(), resp.error().message()), After::kUsable};
    }
    if (resp.has_result()) {
      if (have_header) return broken(absl::InternalError(absl::StrCat(name, ": two results")));
      const v1::ResultHeader& rh = resp.result();
      result.quantized = rh.quantized();
      result.skip_reason = rh.skip_reason();
      result.decided_by = rh.decided_by();
      result.match_kind = rh.match_kind();
      if (rh.has_config()) {
        absl::StatusOr<QuantConfig> cfg = ConfigFromProto(rh.config(), "server result config");
        if (!cfg.ok()) return broken(cfg.status());
        result.config = *cfg;
      }
      for (const v1::OutputTensor& o : rh.outputs()) {
        absl::StatusOr<ElemType> dt = ParseElemType(o.dtype());
        if (!dt.ok()) return broken(dt.status());
        TensorSpec spec{o.name(), *dt, {o.shape().begin(), o.shape().end()}};
        absl::StatusOr<int64_t> n = CheckedNumElements(spec.shape);
        if (!n.ok() || o.total_bytes() != *n * ElemSize(*dt)) {
          return broken(absl::DataLossError(absl::StrCat(
              name, ": output ", o.name(), " of ", o.total_bytes(), " bytes does not match its ",
              o.dtype(), " shape ", ShapeString(spec.shape))));
        }
        sizes.push_back(static_cast<uint64_t>(o.total_bytes()));
        result.outputs.push_back(std::move(spec));
      }
      filled.assign(sizes.size(), 0);
      have_header = true;
      if (absl::Status st = sink.Begin(result.outputs); !st.ok()) return broken(st);
    } else if (resp.has_chunk()) {
      const v1::OutputChunk& c = resp.chunk();
      const size_t idx = c.output_index();
      if (!have_header || idx >= sizes.size() || c.offset() < 0 ||
          static_cast<uint64_t>(c.offset()) != filled[idx] ||
          c.data().size() > sizes[idx] - filled[idx]) {
        return broken(
            absl::DataLossError(absl::StrCat(name, ": output chunk out of order or range (index ",
                                             idx, ", offset ", c.offset(), ")")));
      }
      const auto* bytes = reinterpret_cast<const uint8_t*>(c.data().data());
      if (absl::Status st = sink.Write(idx, filled[idx], {bytes, c.data().size()}); !st.ok()) {
        return broken(st);
      }
      filled[idx] += c.data().size();
    } else if (resp.has_metrics()) {
      if (!have_header || filled != sizes) {
        return broken(absl::DataLossError(absl::StrCat(name, ": the answer is incomplete")));
      }
      const v1::TensorMetrics& m = resp.metrics();
      result.metrics.elements = m.elements();
      result.metrics.groups = m.groups();
      result.metrics.mse = m.mse();
      result.metrics.max_abs_error = m.max_abs_error();
      result.metrics.snr_db = m.snr_db();
      result.metrics.clip_ratio = m.clip_ratio();
      result.metrics.seconds = m.quantize_seconds();
      result.server_seconds = m.server_seconds();
      return {std::move(result), After::kUsable};
    } else {
      return broken(absl::InternalError(absl::StrCat(name, ": unexpected response from server")));
    }
  }
}

void QuantizeStream::End() {
  if (finished_) return;
  deadline_.Arm(&ctx_);
  stream_->WritesDone();
  while (stream_->Read(&response_)) {
  }
  finished_ = true;
  (void)stream_->Finish();
  (void)deadline_.Disarm();
}

}  // namespace rtnq::client
