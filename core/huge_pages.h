// Large buffers: asking the kernel to back them with transparent huge pages.
#pragma once

#include <cstddef>

namespace rtnq {

/// Advises the kernel (madvise MADV_HUGEPAGE) that the 2 MiB-aligned part of [p, p + bytes)
/// should use transparent huge pages, before it is first written: one page fault per 2 MiB
/// instead of per 4 KiB. Only a hint: does nothing for small buffers, where THP is disabled,
/// or off Linux.
void AdviseHugePages(const void* p, size_t bytes);

}  // namespace rtnq
