// Fuzzes a Quantize stream's request handling without the network: 1-3 streams on one small
// budget, fed configs, headers, chunks (valid or raw bytes), half-closes, cancellations, write
// completions, work steps and progress sweeps in the order the input chooses. Invariants: no
// crash, each stream finishes exactly once, the accounted bytes stay within memory_budget.h's
// bound and are back to 0 (with no reservation waiting and no stream registered) at the end.
//
// Input: 6 bytes of limits (streams, global budget, stream budget, max message, max tensor,
// max reservation), then operations of one byte (stream in the top 3 bits, kind in the low 5)
// with their arguments (tests/fuzz/make_server_messages_seeds.py writes the seed corpus).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "spdlog/spdlog.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/server/stream_driver.h"

namespace rtnq::server::testing {
namespace {

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t U16() { return static_cast<uint16_t>(U8() | (U8() << 8)); }
  std::string Bytes(size_t n) {
    n = std::min(n, size_ - std::min(pos_, size_));
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

v1::SessionConfig Config(uint8_t which) {
  v1::SessionConfig c;
  auto* d = c.mutable_default_config();
  switch (which % 13) {
    case 1:
      c.set_output_form(v1::OUTPUT_FORM_CODES);
      break;
    case 2:  // outputs larger than the input: weighted accounting
      c.set_output_form(v1::OUTPUT_FORM_CODES);
      d->set_group_size(1);
      break;
    case 3:
      c.set_output_form(v1::OUTPUT_FORM_PACKED_INC);
      break;
    case 4:
      c.set_output_form(v1::OUTPUT_FORM_PACKED_GPTQ);
      d->set_scheme(v1::SCHEME_SYM);
      d->set_group_size(-1);
      break;
    case 5:
      d->set_group_dim(0);
      break;
    case 6:
      d->set_enable_mse_search(true);
      break;
    case 7:
      d->set_double_quant_dtype(v1::QUANT_DTYPE_INT);
      break;
    case 8:
      c.set_output_form(v1::OUTPUT_FORM_CODES);
      c.set_metrics_only(true);
      break;
    case 9:
      c.set_pass_nonfinite(true);
      break;
    case 10: {
      auto* glob = c.add_weight_config();
      glob->set_key("t1*");
      glob->mutable_patch()->set_group_dim(0);
      auto* re = c.add_weight_config();
      re->set_key("re:t2\\..*");
      re->mutable_patch()->set_dtype(v1::QUANT_DTYPE_FP32);
      break;
    }
    case 11:
      d->set_bits(9);  // refused
      break;
    case 12:
      c.set_output_form(v1::OUTPUT_FORM_PACKED_INC);
      c.set_compression_dim(0);
      d->set_group_size(1);
      break;
    default:
      break;
  }
  return c;
}

v1::QuantizeRequest Header(Reader& in) {
  static const char* kDtypes[] = {"F32", "BF16", "F16", "I32", "X"};
  static const int64_t kCols[] = {1, 3, 8, 32, 64, 100, 256, 1000};
  const uint8_t name = in.U8(), dtype = in.U8(), rows = in.U8(), cols = in.U8(), mode = in.U8();
  v1::QuantizeRequest r;
  v1::TensorHeader* h = r.mutable_header();
  h->set_name(name % 17 == 16 ? "" : "t" + std::to_string(name % 16) + ".weight");
  const char* dt = kDtypes[dtype % 5];
  h->set_dtype(dt);
  const int64_t elem = dtype % 5 == 0 || dtype % 5 == 3 ? 4 : 2;
  std::vector<int64_t> shape{1 + rows % 8, kCols[cols % 8]};
  if (cols & 0x80) shape = {shape[0] * shape[1]};  // 1-D: passed through
  if (cols & 0x40) shape.push_back(2);
  int64_t n = elem;
  for (int64_t d : shape) {
    h->add_shape(d);
    n *= d;
  }
  switch (mode % 6) {
    case 1:
      n -= 1;
      break;
    case 2:
      n = 0;
      break;
    case 3:
      n = int64_t{1} << 40;
      break;
    case 4:
      n = -1;
      break;
    default:
      break;
  }
  h->set_total_bytes(n);
  if (mode & 0x80) h->set_crc32c(0x12345678);
  return r;
}

// Finite values whatever the tensor's dtype: each 16-bit word is a BF16 (and an F16) of
// magnitude 2^-7..2^-1, and a pair of them an F32 of the same magnitude. Optionally one NaN.
std::string ChunkData(size_t size, uint8_t seed, bool nan) {
  std::string data(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i + 2 <= size; i += 2) {
    x = x * 1664525u + 1013904223u;
    const uint16_t word = static_cast<uint16_t>((x >> 16 & 0x8000) | (0x3C00 + (x >> 8 & 0x2FF)));
    std::memcpy(&data[i], &word, 2);
  }
  if (nan && size >= 4) {
    const float q = __builtin_nanf("");
    std::memcpy(&data[size / 8 * 4], &q, 4);
  }
  return data;
}

void Run(const uint8_t* data, size_t size) {
  Reader in(data, size);
  ServerOptions o;
  const int n_streams = 1 + in.U8() % 3;
  o.memory_budget_bytes = int64_t{1024} << (in.U8() % 8);
  o.stream_budget_bytes = int64_t{512} << (in.U8() % 8);
  o.max_message_bytes = int64_t{256} << (in.U8() % 6);
  o.max_tensor_bytes = int64_t{1024} << (in.U8() % 8);
  const uint8_t reservation = in.U8();
  o.max_reservation_bytes = reservation % 4 == 0 ? 0 : int64_t{1024} << (reservation % 8);
  o.max_streams = 2;  // a third stream is refused
  o.idle_timeout_seconds = 5;
  o.min_bytes_per_second = 1024;
  o.min_rate_grace_seconds = 2;
  o.max_stream_seconds = 100;
  o.output_chunk_bytes = 300;

  DriverContext ctx(o);
  std::vector<std::unique_ptr<DrivenStream>> streams;
  for (int i = 0; i < n_streams; ++i) streams.push_back(std::make_unique<DrivenStream>(ctx));
  auto clock = std::chrono::steady_clock::now();

  int ops = 0;
  while (!in.empty() && ++ops < 400) {
    const uint8_t op = in.U8();
    DrivenStream& s = *streams[(op >> 5) % n_streams];
    switch (op & 31) {
      case 0:
        s.Deliver([&] {
          v1::QuantizeRequest r;
          *r.mutable_config() = Config(in.U8());
          return r;
        }());
        break;
      case 1:
        s.Deliver(Header(in));
        break;
      case 2:
      case 3: {
        const size_t n = std::min<size_t>(in.U16(), o.max_message_bytes);
        v1::QuantizeRequest r;
        r.mutable_chunk()->set_data(ChunkData(n, in.U8(), (op & 31) == 3));
        s.Deliver(r);
        break;
      }
      case 4:
        s.DeliverRaw(in.Bytes(in.U8()));
        break;
      case 5:
        s.Deliver(v1::QuantizeRequest());  // an empty chunk's neighbour: no field set
        break;
      case 6: {
        v1::QuantizeRequest r;
        r.mutable_chunk();  // an empty chunk
        s.Deliver(r);
        break;
      }
      case 7:
        s.HalfClose();
        break;
      case 8:
        s.Cancel();
        break;
      case 9:
      case 10:
      case 11:
        s.CompleteWrite(true);
        break;
      case 12:
        s.CompleteWrite(false);
        break;
      case 13:
        ctx.manual().RunAll();
        break;
      case 14:
        clock += std::chrono::milliseconds(100 * in.U8());
        for (auto& t : streams) t->CheckProgress(clock);
        break;
      case 15:
        s.OnMemoryAvailable();
        break;
      default:
        ctx.manual().RunOne();
        break;
    }
    for (auto& t : streams) {
      if (t->cancel_requested()) t->Cancel();
    }
  }

  // The clients go away: everything must end and give its memory back.
  for (auto& t : streams) {
    if (!t->finished()) t->Cancel();
  }
  for (int round = 0; round < 1000; ++round) {
    ctx.manual().RunAll();
    bool all_done = true;
    for (auto& t : streams) {
      t->CompleteWrite(false);
      all_done = t->Done() && all_done;
    }
    if (all_done && ctx.manual().pending() == 0) break;
  }
  const int64_t w = 5;  // the largest output/input ratio (CODES, group size 1, 16-bit input)
  const int64_t bound =
      std::max(o.memory_budget_bytes, MaxReservationBytes(o)) + n_streams * w * o.max_message_bytes;
  for (auto& t : streams) RTNQ_FUZZ_CHECK(t->finishes() == 1);
  RTNQ_FUZZ_CHECK(ctx.manual().pending() == 0);
  RTNQ_FUZZ_CHECK(ctx.memory().used() == 0);
  RTNQ_FUZZ_CHECK(ctx.memory().waiting() == 0);
  RTNQ_FUZZ_CHECK(ctx.memory().peak() <= bound);
  RTNQ_FUZZ_CHECK(ctx.streams().active() == 0);
}

}  // namespace
}  // namespace rtnq::server::testing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // One log line per stream (and protobuf's about invalid UTF-8) would drown the fuzzer's output.
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  rtnq::server::testing::Run(data, size);
  return 0;
}
