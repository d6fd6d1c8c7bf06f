// Core quantization throughput, in bytes of input per second, next to a memory-read baseline over
// the same buffer measured in the same run (the `mem_ratio` counter is throughput / baseline).
//
//   build/bench/rtnq_core_bench --benchmark_counters_tabular=true
//
// Kernel benchmarks call the dispatched row kernel into preallocated outputs (codes, scales,
// zero points: what the packers consume); tensor benchmarks run QuantizeTensor end to end,
// allocation included.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include "core/dtype.h"
#include "core/engine.h"
#include "core/kernels/kernels.h"
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
  if (!e) e = std::move(*Engine::Create({.threads = threads, .kernels = ""}));
  return *e;
}

// Best-of-several sequential read of a buffer: the memory bandwidth one core sees.
double MemoryReadBytesPerSecond(const std::vector<uint8_t>& buf) {
  static std::map<const void*, double> cache;
  if (auto it = cache.find(buf.data()); it != cache.end()) return it->second;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto* p = reinterpret_cast<const uint64_t*>(buf.data());
    uint64_t acc[8] = {};
    for (size_t i = 0; i + 8 <= buf.size() / 8; i += 8) {
      for (int k = 0; k < 8; ++k) acc[k] ^= p[i + k];
    }
    benchmark::DoNotOptimize(acc);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, buf.size() / s);
  }
  cache[buf.data()] = best;
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
  }
  return cfg;
}

void SetCounters(benchmark::State& state, const std::vector<uint8_t>& buf, const Engine& engine) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * buf.size());
  state.counters["mem_ratio"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * buf.size() / MemoryReadBytesPerSecond(buf),
      benchmark::Counter::kIsRate);
  state.SetLabel(std::string(engine.kernels().name));
}

// Args: shape index, dtype (0 f32, 1 bf16), case, threads (1 or 0 = all).
void BM_MemoryRead(benchmark::State& state) {
  const auto& buf = Weights(state.range(0), state.range(1) ? ElemType::kBF16 : ElemType::kF32);
  for (auto _ : state) {
    const auto* p = reinterpret_cast<const uint64_t*>(buf.data());
    uint64_t acc[8] = {};
    for (size_t i = 0; i + 8 <= buf.size() / 8; i += 8) {
      for (int k = 0; k < 8; ++k) acc[k] ^= p[i + k];
    }
    benchmark::DoNotOptimize(acc);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * buf.size());
}

void BM_Kernel(benchmark::State& state) {
  const int si = state.range(0);
  const ElemType dtype = state.range(1) ? ElemType::kBF16 : ElemType::kF32;
  const QuantConfig cfg = CaseConfig(state.range(2));
  const Engine& engine = EngineWith(state.range(3));
  const auto& buf = Weights(si, dtype);
  const Shape s = kShapes[si];
  internal::RowPass pass;
  pass.kernels = &engine.kernels();
  pass.params = MakeKernelParams(cfg);
  pass.quantile = 1.0f;
  pass.cols = s.cols;
  pass.group_size = EffectiveGroupSize(cfg.group_size, s.cols);
  pass.groups_per_row = GroupsPerRow(s.cols, pass.group_size);
  pass.in_dtype = dtype;
  std::vector<uint8_t> codes(s.rows * s.cols);
  std::vector<float> scales(s.rows * pass.groups_per_row);
  std::vector<int32_t> zeros(scales.size());
  const int64_t per_block = internal::RowsPerBlock(s.cols);
  const int64_t row_bytes = s.cols * ElemSize(dtype);
  // The MSE case runs the search's hot loop (40 ratios per row) before quantizing.
  std::array<float, 40> ratios;
  for (int i = 0; i < 40; ++i) ratios[i] = static_cast<float>(1.0 - i / 200.0);
  const bool mse = cfg.enable_mse_search;
  for (auto _ : state) {
    (void)engine.ParallelFor((s.rows + per_block - 1) / per_block, [&](int64_t b) {
      internal::RowScratch& scratch = internal::ThreadScratch(s.cols);
      std::array<double, 40> loss{};
      for (int64_t r = b * per_block; r < std::min(s.rows, (b + 1) * per_block); ++r) {
        const float* x = pass.AsFloat(buf.data() + r * row_bytes, scratch);
        if (mse) {
          pass.kernels->row_loss(x, s.cols, pass.group_size, pass.params, ratios.data(), 40,
                                 loss.data());
        }
        pass.Quantize(x, codes.data() + r * s.cols, scales.data() + r * pass.groups_per_row,
                      zeros.data() + r * pass.groups_per_row, nullptr);
      }
      benchmark::DoNotOptimize(loss);
    });
    benchmark::ClobberMemory();
  }
  SetCounters(state, buf, engine);
}

void BM_Tensor(benchmark::State& state) {
  const int si = state.range(0);
  const ElemType dtype = state.range(1) ? ElemType::kBF16 : ElemType::kF32;
  const QuantConfig cfg = CaseConfig(state.range(2));
  const Engine& engine = EngineWith(state.range(3));
  const auto& buf = Weights(si, dtype);
  const TensorInput in{"w", dtype, {kShapes[si].rows, kShapes[si].cols}, buf};
  QuantizeOptions opts;
  opts.codes = true;
  opts.fake_quant = false;
  for (auto _ : state) {
    auto q = QuantizeTensor(in, cfg, opts, engine);
    if (!q.ok()) state.SkipWithError(q.status().ToString().c_str());
    benchmark::DoNotOptimize(q);
  }
  SetCounters(state, buf, engine);
}

void KernelArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "bf16", "case", "threads"});
  for (int shape : {0, 1}) {
    for (int bf16 : {0, 1}) {
      for (int c : {0, 1, 2, 3, 4}) {
        for (int threads : {1, 0}) b->Args({shape, bf16, c, threads});
      }
    }
  }
}

BENCHMARK(BM_MemoryRead)
    ->ArgNames({"shape", "bf16"})
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Kernel)->Apply(KernelArgs)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Tensor)->Apply(KernelArgs)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace rtnq

BENCHMARK_MAIN();
