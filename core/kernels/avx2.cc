// PLACEHOLDER: avx2 kernels (to be written). Until then the table reuses the reference twin.
#include "core/kernels/simd_tables.h"

namespace rtnq {

const KernelTable& Avx2Kernels() {
  static const KernelTable table = [] {
    KernelTable t = ReferenceKernels();
    t.name = "avx2";
    return t;
  }();
  return table;
}

}  // namespace rtnq
