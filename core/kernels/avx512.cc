// PLACEHOLDER: avx512 kernels (to be written). Until then the table reuses the reference twin.
#include "core/kernels/simd_tables.h"

namespace rtnq {

const KernelTable& Avx512Kernels() {
  static const KernelTable table = [] {
    KernelTable t = ReferenceKernels();
    t.name = "avx512";
    return t;
  }();
  return table;
}

}  // namespace rtnq
