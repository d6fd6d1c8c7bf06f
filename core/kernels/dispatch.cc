// Chooses the kernel table once from the CPU's features.
#include <cstdlib>
#include <string_view>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "core/kernels/kernels.h"
#include "core/kernels/simd_tables.h"

namespace rtnq {
namespace {

// clang 14 has no "f16c" for __builtin_cpu_supports (the fuzz build uses clang): ask CPUID.
bool CpuHasF16c() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
#else
  return false;
#endif
}

bool CpuHasAvx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && CpuHasF16c();
#else
  return false;
#endif
}

bool CpuHasAvx512() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return CpuHasAvx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

}  // namespace

const KernelTable* KernelsByName(std::string_view name) {
  if (name == "reference") return &ReferenceKernels();
#if defined(__x86_64__)
  if (name == "avx2") return CpuHasAvx2() ? &Avx2Kernels() : nullptr;
  if (name == "avx512") return CpuHasAvx512() ? &Avx512Kernels() : nullptr;
#endif
  return nullptr;
}

const KernelTable& BestKernels() {
  static const KernelTable* best = [] {
    // RTNQ_KERNELS lets operators pin a table (e.g. "reference") without a rebuild.
    if (const char* forced = std::getenv("RTNQ_KERNELS"); forced && *forced) {
      if (const KernelTable* t = KernelsByName(forced)) return t;
    }
    if (const KernelTable* t = KernelsByName("avx512")) return t;
    if (const KernelTable* t = KernelsByName("avx2")) return t;
    return &ReferenceKernels();
  }();
  return *best;
}

}  // namespace rtnq
