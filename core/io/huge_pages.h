// Large buffers: asking the kernel to back them with transparent huge pages.
#pragma once

#include <cstddef>
#include <vector>

namespace rtnq {

/// Advises the kernel (madvise MADV_HUGEPAGE) that the 2 MiB-aligned part of [p, p + bytes)
/// should use transparent huge pages, before it is first written: one page fault per 2 MiB
/// instead of per 4 KiB. Only a hint: does nothing for small buffers, where THP is disabled,
/// or off Linux.
void AdviseHugePages(const void* p, size_t bytes);

/// Gives `v` (old contents are not kept) capacity for `n` elements in memory advised with
/// AdviseHugePages, for a buffer that is then filled by appending.
template <class T>
void ReserveInHugePages(std::vector<T>& v, size_t n) {
  std::vector<T>().swap(v);
  v.reserve(n);
  AdviseHugePages(v.data(), n * sizeof(T));
}

/// Resizes `v` (empty: its old contents are not kept) to `n` value-initialized elements in
/// memory advised with AdviseHugePages before the zeroing touches it. For the large per-tensor
/// outputs: above glibc's mmap threshold (32 MiB) every allocation gets fresh pages, and their
/// 4 KiB page faults cost more than the quantization that fills them.
template <class T>
void ResizeInHugePages(std::vector<T>& v, size_t n) {
  ReserveInHugePages(v, n);
  v.resize(n);
}

}  // namespace rtnq
