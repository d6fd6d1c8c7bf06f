// Worst-case cost of the parsers a peer controls (issue 13): session configs, tensor-name
// resolution and safetensors headers, per input byte. Prints one table row per case: input
// bytes, best time of REPS runs, time per byte, and peak heap growth per byte (counted by the
// global operator new/delete below). Linear behaviour shows as flat per-byte columns down a
// group of sizes. Times are CPU time of the thread. Run: build/bench/rtnq_hostile_parsers_bench
// [REPS].
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/input_limits.h"
#include "core/config/weight_config.h"
#include "core/io/safetensors_header.h"
#include "tests/testing/safetensors_bytes.h"

namespace {

// Heap accounting: current and peak bytes held through operator new (a size header per block).
std::atomic<int64_t> g_current{0};
std::atomic<int64_t> g_peak{0};

void* Allocate(size_t n) {
  void* p = std::malloc(n + 16);
  if (p == nullptr) throw std::bad_alloc();
  *static_cast<size_t*>(p) = n;
  const int64_t now = g_current += static_cast<int64_t>(n);
  int64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
  return static_cast<char*>(p) + 16;
}

void Release(void* p) {
  if (p == nullptr) return;
  char* base = static_cast<char*>(p) - 16;
  g_current -= static_cast<int64_t>(*reinterpret_cast<size_t*>(base));
  std::free(base);
}

}  // namespace

void* operator new(size_t n) { return Allocate(n); }
void* operator new[](size_t n) { return Allocate(n); }
void operator delete(void* p) noexcept { Release(p); }
void operator delete[](void* p) noexcept { Release(p); }
void operator delete(void* p, size_t) noexcept { Release(p); }
void operator delete[](void* p, size_t) noexcept { Release(p); }

namespace rtnq {
namespace {

int g_reps = 3;

struct Measured {
  double seconds;
  int64_t peak_heap;
};

double CpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// Best CPU time of g_reps runs (wall time on a shared machine mostly measures the other
// processes), and the largest heap peak above the starting level.
Measured Measure(const std::function<void()>& f) {
  Measured m{1e300, 0};
  for (int i = 0; i < g_reps; ++i) {
    const int64_t base = g_current.load();
    g_peak = base;
    const double start = CpuSeconds();
    f();
    m.seconds = std::min(m.seconds, CpuSeconds() - start);
    m.peak_heap = std::max(m.peak_heap, g_peak.load() - base);
  }
  return m;
}

void Row(const std::string& what, size_t bytes, const Measured& m) {
  std::printf("| %s | %zu | %.3f ms | %.1f ns | %.1f |\n", what.c_str(), bytes, m.seconds * 1e3,
              m.seconds * 1e9 / static_cast<double>(bytes),
              static_cast<double>(m.peak_heap) / static_cast<double>(bytes));
}

void Header(const char* title, const char* unit) {
  std::printf(
      "\n%s\n\n| case | %s | best CPU time | time per byte | peak heap per byte |\n"
      "|---|---|---|---|---|\n",
      title, unit);
}

void Require(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "unexpected result: %s\n", what.c_str());
    std::exit(1);
  }
}

std::string ConfigWithEntries(size_t n, size_t key_bytes) {
  std::string s = R"({"bits": 4, "group_size": 128, "weight_config": {)";
  for (size_t i = 0; i < n; ++i) {
    std::string key = absl::StrCat("model.layers.", i, ".mlp.down_proj");
    if (key.size() < key_bytes) key.insert(0, key_bytes - key.size(), 'm');
    absl::StrAppend(&s, i ? "," : "", "\"", key, "\":{\"bits\":8,\"group_size\":64}");
  }
  return s + "}}";
}

void Configs() {
  Header("Session configs: ParseSessionConfigJson (parse, duplicate check, resolver build)",
         "config bytes");
  ConfigLimits limits;
  for (const size_t n : {1'000, 10'000, 100'000}) {
    const std::string text = ConfigWithEntries(n, 0);
    Row(absl::StrCat(n, " entries"), text.size(),
        Measure([&] { Require(ParseSessionConfigJson(text, limits).ok(), "config"); }));
  }
  {  // Longest keys, up to the size limit.
    const std::string text = ConfigWithEntries(kMaxConfigBytes / 4150, kMaxWeightConfigKeyBytes);
    Row(absl::StrCat(kMaxConfigBytes / 4150, " entries with 4 KiB keys"), text.size(),
        Measure([&] { Require(ParseSessionConfigJson(text, limits).ok(), "long keys"); }));
  }
  {  // A duplicate as the very last key of 100k.
    std::string text = ConfigWithEntries(100'000, 0);
    text.insert(text.size() - 2, ",\"model.layers.0.mlp.down_proj\":{}");
    Row("100000 entries, duplicate last", text.size(),
        Measure([&] { Require(!ParseSessionConfigJson(text, limits).ok(), "duplicate"); }));
  }
  {  // Nesting: rejected at the depth limit, whatever follows.
    const std::string text = std::string(1 << 20, '[');
    Row("1 MiB of `[`", text.size(),
        Measure([&] { Require(!ParseSessionConfigJson(text, limits).ok(), "deep"); }));
  }
  {  // The most regexes, with the pattern budget nearly full.
    std::string text = R"({"weight_config": {)";
    for (size_t i = 0; i < kMaxWeightConfigRegexes; ++i) {
      absl::StrAppend(&text, i ? "," : "", "\"re:(a|aa)*(b|", std::string(48, 'c'), ")", i,
                      "\":{\"bits\":8}");
    }
    text += "}}";
    Row("64 regexes of ~60 instructions", text.size(),
        Measure([&] { Require(ParseSessionConfigJson(text, limits).ok(), "regexes"); }));
  }
}

// Names against configs: a realistic one, and the worst this code knows for each kind of
// pattern, with the pattern budget (4,096) full.
void Names() {
  Header("Tensor names: WeightConfigResolver::Resolve (time and heap per name byte)", "name bytes");
  struct Config {
    std::string what;
    std::vector<WeightConfigEntry> entries;
  };
  std::vector<Config> configs;
  {
    Config c{"realistic: 20 patterns + 1000 layer names", {}};
    for (int i = 0; i < 10; ++i) {
      c.entries.push_back({absl::StrCat("model.layers.", i, ".*"), {}});
      c.entries.push_back({absl::StrCat("re:model\\.layers\\.", i, "\\d\\.(q|k|v)_proj"), {}});
    }
    for (int i = 0; i < 1000; ++i) c.entries.push_back({absl::StrCat("x.layers.", i, ".mlp"), {}});
    configs.push_back(std::move(c));
  }
  {
    Config c{"worst globs: 4 x `*a{1022}b` (4 KiB)", {}};
    for (size_t i = 0; i < 4; ++i) {
      c.entries.push_back({"*" + std::string(1022 - i, 'a') + "b", {}});
    }
    configs.push_back(std::move(c));
  }
  {
    // A DFA for `.*a.{N}b` needs 2^N states: RE2 falls back to its NFA, every instruction per
    // byte. 2 of them (~2,000 instructions each) fill the pattern budget.
    Config c{"worst regexes: 2 x `.*a.{1000}b` (~4 K instructions)", {}};
    for (size_t i = 0; i < 2; ++i) {
      c.entries.push_back({absl::StrCat("re:.*a.{", 1000 - 8 * i, "}b"), {}});
    }
    configs.push_back(std::move(c));
  }
  for (const Config& c : configs) {
    absl::StatusOr<WeightConfigResolver> r = WeightConfigResolver::Create({}, c.entries);
    Require(r.ok(), c.what);
    for (const size_t n : {size_t{64}, size_t{1024}, kMaxTensorNameBytes}) {
      // Dots make a layer name (a second match attempt per pattern); no pattern matches.
      std::string name(n, 'a');
      name[n / 2] = '.';
      Row(absl::StrCat(c.what, ", name of ", n), n,
          Measure([&] { Require(r->Resolve(name).ok(), "resolve"); }));
    }
  }
}

void Headers() {
  Header("Safetensors headers: ParseSafetensorsLayout", "header bytes");
  for (const size_t n : {size_t{1'000}, size_t{16'000}, size_t{50'000}, size_t{200'000}}) {
    const std::string f = testing::ManyTensorsFile(n);
    const auto span = absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(f.data()), f.size());
    Row(absl::StrCat(n, " tensors"), f.size() - 4 * n,
        Measure([&] { Require(ParseSafetensorsLayout("bench", span).ok(), "header"); }));
  }
  const std::string deep = "{\"a\":{\"shape\":" + std::string(1'000'000, '[');
  const std::string f = testing::RawSafetensorsFile(deep, "");
  const auto span = absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(f.data()), f.size());
  Row("`shape` nested 1M deep", deep.size(),
      Measure([&] { Require(!ParseSafetensorsLayout("bench", span).ok(), "deep header"); }));
}

}  // namespace
}  // namespace rtnq

int main(int argc, char** argv) {
  if (argc > 1) rtnq::g_reps = std::max(1, std::atoi(argv[1]));
  rtnq::Configs();
  rtnq::Names();
  rtnq::Headers();
  return 0;
}
