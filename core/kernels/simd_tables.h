// Entry points of the per-ISA kernel files (each compiled with its own -m flags).
#pragma once

#include "core/kernels/kernels.h"

namespace rtnq {

/// AVX2 + FMA + F16C table. Call only when the CPU supports those.
const KernelTable& Avx2Kernels();
/// AVX-512 (F, BW, VL, DQ) table. Call only when the CPU supports those.
const KernelTable& Avx512Kernels();

}  // namespace rtnq
