// Core quantization throughput, in bytes of input per second, next to a memory-read baseline over
// the same buffer with the same thread count, measured in the same run. `mem_ratio` is a plain
// ratio: the benchmark's bytes/s over the baseline's bytes/s (1.0 = as fast as reading the input).
//
//   build-bench/bench/rtnq_core_bench --benchmark_counters_tabular=true   (or bench/run_core.sh)
//
// Kernel benchmarks call the dispatched row kernel into preallocated outputs (codes, scales,
// zero points: what the packers consume); tensor benchmarks run QuantizeTensor end to end,
// allocation included. Case 5 (tensor only) is the service's GPTQ path: QuantizeTensor int4 sym
// g32 codes, then PackGptq; BM_GptqPack times PackGptq alone on codes computed once, and
// BM_LayoutPack the compressed-tensors and AWQ packers on int4 asym g32 codes. Every
// figure counts bytes of the float input, so all cases compare directly.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <thread>
#include <utility>

#include "core/dtype.h"
#include "core/engine.h"
#include "core/kernels/kernels.h"
#include "core/layout/awq.h"
#include "core/layout/compressed_tensors.h"
#include "core/layout/gptq.h"
#include "core/quantize.h"
#include "core/row_pass.h"

namespace rtnq {
namespace {

struct Shape {
  int64_t rows, cols;
};
constexpr Shape kShapes[] = {{4096, 4096}, {11008, 4096}};

// Heavy-tailed weights like a trained LLM's, generated once per shape and dtype.
const std::vector<uint8_t>& Weights(int shape_index, ElemType dtype) {
  static std::vector<uint8_t> cache[2][2];
  std::vector<uint8_t>& buf = cache[shape_index][dtype == ElemType::kF32 ? 0 : 1];
  if (buf.empty()) {
    const Shape s = kShapes[shape_index];
    const int64_t n = s.rows * s.cols;
    std::mt19937 rng(42);
    std::student_t_distribution<float> t(4.0f);
    std::vector<float> f(n);
    for (auto& v : f) v = 0.02f * t(rng);
    if (dtype == ElemType::kF32) {
      buf.resize(n * 4);
      std::memcpy(buf.data(), f.data(), n * 4);
    } else {
      buf.resize(n * 2);
      auto* h = reinterpret_cast<uint16_t*>(buf.data());
      for (int64_t i = 0; i < n; ++i) h[i] = FloatToBf16(f[i]);
    }
  }
  return buf;
}

const Engine& EngineWith(int threads) {
  static std::unique_ptr<Engine> engines[2];
  auto& e = engines[threads == 1 ? 0 : 1];
  if (!e) {
    // RTNQ_BENCH_KERNELS=reference|avx2|avx512 measures a table other than the CPU's best.
    const char* forced = std::getenv("RTNQ_BENCH_KERNELS");
    auto created = Engine::Create({.threads = threads, .kernels = forced ? forced : ""});
    if (!created.ok()) {
      std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
      std::exit(2);
    }
    e = std::move(*created);
  }
  return *e;
}

// XORs words [begin, end) of `p` so that the compiler cannot drop the reads.
void ReadWords(const uint64_t* p, size_t begin, size_t end) {
  uint64_t acc[8] = {};
  for (size_t i = begin; i + 8 <= end; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] ^= p[i + k];
  }
  benchmark::DoNotOptimize(acc);
}

// Reads `buf` once, in 4 MiB blocks spread over the engine's threads (serially with 1 thread).
void ReadOnce(const std::vector<uint8_t>& buf, const Engine& engine) {
  constexpr size_t kBlockWords = (size_t{4} << 20) / 8;
  const auto* p = reinterpret_cast<const uint64_t*>(buf.data());
  const size_t words = buf.size() / 8;
  const auto blocks = static_cast<int64_t>((words + kBlockWords - 1) / kBlockWords);
  (void)engine.ParallelFor(blocks, [&](int64_t b) {
    ReadWords(p, b * kBlockWords, std::min(words, (b + 1) * kBlockWords));
  });
}

// Best of several reads of `buf`: the memory bandwidth the engine's threads see. Measured once per
// buffer and thread count, the first time a benchmark needs it.
double MemoryReadBytesPerSecond(const std::vector<uint8_t>& buf, const Engine& engine) {
  static std::map<std::pair<const void*, int>, double> cache;
  const auto key = std::make_pair(static_cast<const void*>(buf.data()), engine.threads());
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    ReadOnce(buf, engine);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, buf.size() / s);
  }
  cache[key] = best;
  return best;
}

QuantConfig CaseConfig(int c) {
  QuantConfig cfg;
  switch (c) {
    case 0:  // int4 asym g32
      break;
    case 1:  // int4 sym g128
      cfg.scheme = Scheme::kSym;
      cfg.group_size = 128;
      break;
    case 2:  // int8 sym per-channel
      cfg.bits = 8;
      cfg.scheme = Scheme::kSym;
      cfg.group_size = -1;
      break;
    case 3:  // nf4 g64
      cfg.dtype = QuantDtype::kNf4;
      cfg.group_size = 64;
      break;
    case 4:  // int4 asym g32 with MSE search
      cfg.enable_mse_search = true;
      break;
    case 5:  // int4 sym g32 codes, packed in the GPTQ layout
      cfg.scheme = Scheme::kSym;
      break;
  }
  return cfg;
}

constexpr int kGptqCase = 5;

// `seconds` is the wall time of the whole timing loop, so the ratio is independent of how the
// library accounts CPU time over threads.
void SetCounters(benchmark::State& state, const std::vector<uint8_t>& buf, const Engine& engine,
                 double seconds) {
  const double bytes = static_cast<double>(state.iterations()) * buf.size();
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["mem_ratio"] = (bytes / seconds) / MemoryReadBytesPerSecond(buf, engine);
  state.SetLabel(std::string(engine.kernels().name));
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Args: shape index, dtype (0 f32, 1 bf16), threads (1 or 0 = all).
void BM_MemoryRead(benchmark::State& state) {
  const auto& buf = Weights(state.range(0), state.range(1) ? ElemType::kBF16 : ElemType::kF32);
  const Engine& engine = EngineWith(state.range(2));
  for (auto _ : state) ReadOnce(buf, engine);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * buf.size());
}

// Args: shape index, dtype (0 f32, 1 bf16), case, threads (1 or 0 = all).
void BM_Kernel(benchmark::State& state) {
  const int si = state.range(0);
  const ElemType dtype = state.range(1) ? ElemType::kBF16 : ElemType::kF32;
  const QuantConfig cfg = CaseConfig(state.range(2));
  const Engine& engine = EngineWith(state.range(3));
  const auto& buf = Weights(si, dtype);
  const Shape s = kShapes[si];
  const internal::RowPass pass =
      internal::RowPass::For(cfg, engine.kernels(), s.cols, dtype, ElemType::kF32);
  std::vector<uint8_t> codes(s.rows * s.cols);
  std::vector<float> scales(s.rows * pass.groups_per_row);
  std::vector<int32_t> zeros(scales.size());
  const int64_t per_block = internal::RowsPerBlock(s.cols);
  const int64_t row_bytes = s.cols * ElemSize(dtype);
  // The MSE case runs the search's hot loop (40 ratios per row) before quantizing.
  std::array<float, 40> ratios;
  for (int i = 0; i < 40; ++i) ratios[i] = static_cast<float>(1.0 - i / 200.0);
  const bool mse = cfg.enable_mse_search;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    (void)engine.ParallelFor((s.rows + per_block - 1) / per_block, [&](int64_t b) {
      internal::RowScratch& scratch = internal::ThreadScratch(s.cols);
      std::array<double, 40> loss{};
      RoughLossTerms terms;
      for (int64_t r = b * per_block; r < std::min(s.rows, (b + 1) * per_block); ++r) {
        const float* x = pass.AsFloat(buf.data() + r * row_bytes, scratch);
        if (mse) {
          if (pass.kernels->row_loss_rough) {
            pass.kernels->row_loss_rough(x, s.cols, pass.group_size, pass.params, ratios.data(), 40,
                                         loss.data(), &terms);
          } else {
            pass.kernels->row_loss(x, s.cols, pass.group_size, pass.params, ratios.data(), 40,
                                   loss.data());
          }
        }
        pass.Quantize(x, codes.data() + r * s.cols, scales.data() + r * pass.groups_per_row,
                      zeros.data() + r * pass.groups_per_row, nullptr);
      }
      benchmark::DoNotOptimize(loss);
    });
    benchmark::ClobberMemory();
  }
  SetCounters(state, buf, engine, SecondsSince(t0));
}

// Args: shape index, dtype (0 f32, 1 bf16), case, threads (1 or 0 = all).
void BM_Tensor(benchmark::State& state) {
  const int si = state.range(0);
  const ElemType dtype = state.range(1) ? ElemType::kBF16 : ElemType::kF32;
  const QuantConfig cfg = CaseConfig(state.range(2));
  const bool gptq = state.range(2) == kGptqCase;
  const Engine& engine = EngineWith(state.range(3));
  const auto& buf = Weights(si, dtype);
  const TensorInput in{"w", dtype, {kShapes[si].rows, kShapes[si].cols}, buf};
  QuantizeOptions opts;
  opts.codes = true;
  opts.fake_quant = false;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto q = QuantizeTensor(in, cfg, opts, engine);
    if (!q.ok()) {
      state.SkipWithError(q.status().ToString().c_str());
      break;
    }
    if (gptq) {
      auto packed = PackGptq(*q, "w", {}, engine);
      if (!packed.ok()) {
        state.SkipWithError(packed.status().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(packed);
    }
    benchmark::DoNotOptimize(q);
  }
  SetCounters(state, buf, engine, SecondsSince(t0));
}

// Times pack(q) alone on the codes of case `c` for the shape and dtype of args 0 and 1, computed
// once in `engine`'s arena; bytes are those of the float input the codes came from.
template <typename Pack>
void TimePacking(benchmark::State& state, int c, const Engine& engine, Pack pack) {
  const int si = state.range(0);
  const ElemType dtype = state.range(1) ? ElemType::kBF16 : ElemType::kF32;
  const auto& buf = Weights(si, dtype);
  const TensorInput in{"w", dtype, {kShapes[si].rows, kShapes[si].cols}, buf};
  QuantizeOptions opts;
  opts.codes = true;
  opts.fake_quant = false;
  auto q = QuantizeTensor(in, CaseConfig(c), opts, engine);
  if (!q.ok()) {
    state.SkipWithError(q.status().ToString().c_str());
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto packed = pack(*q);
    if (!packed.ok()) {
      state.SkipWithError(packed.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(packed);
  }
  SetCounters(state, buf, engine, SecondsSince(t0));
}

// PackGptq alone in the engine's arena, on int4 sym g32 codes. Args: shape index, dtype,
// threads (0 = all).
void BM_GptqPack(benchmark::State& state) {
  const Engine& engine = EngineWith(state.range(2));
  TimePacking(state, kGptqCase, engine,
              [&](const QuantizedTensor& q) { return PackGptq(q, "w", {}, engine); });
}

// PackCompressedTensors (awq 0) or PackAwq (awq 1) alone in the engine's arena, on int4 asym g32
// codes (case 0). Args: shape index, dtype, awq, threads (0 = all).
void BM_LayoutPack(benchmark::State& state) {
  const bool awq = state.range(2) == 1;
  const Engine& engine = EngineWith(state.range(3));
  TimePacking(state, 0, engine, [&](const QuantizedTensor& q) {
    return awq ? PackAwq(q, "w", &engine) : PackCompressedTensors(q, "w", &engine);
  });
}

// Cases 0-4 for the kernel benchmark; the tensor benchmark adds case 5 (quantize + PackGptq).
void CaseArgs(benchmark::internal::Benchmark* b, int cases) {
  b->ArgNames({"shape", "bf16", "case", "threads"});
  for (int shape : {0, 1}) {
    for (int bf16 : {0, 1}) {
      for (int c = 0; c < cases; ++c) {
        for (int threads : {1, 0}) b->Args({shape, bf16, c, threads});
      }
    }
  }
}

BENCHMARK(BM_MemoryRead)
    ->ArgNames({"shape", "bf16", "threads"})
    ->ArgsProduct({{0, 1}, {0, 1}, {1, 0}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Kernel)->Apply([](auto* b) { CaseArgs(b, 5); }) -> Unit(benchmark::kMillisecond)
    -> UseRealTime();
BENCHMARK(BM_Tensor)->Apply([](auto* b) { CaseArgs(b, 6); }) -> Unit(benchmark::kMillisecond)
    -> UseRealTime();
BENCHMARK(BM_GptqPack)
    ->ArgNames({"shape", "bf16", "threads"})
    ->ArgsProduct({{0, 1}, {0, 1}, {1, 0}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK(BM_LayoutPack)
    ->ArgNames({"shape", "bf16", "awq", "threads"})
    ->ArgsProduct({{0, 1}, {0, 1}, {0, 1}, {1, 0}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace rtnq

BENCHMARK_MAIN();
