// Happens-before marks for ThreadSanitizer, where the synchronization that orders two threads lives
// in a library TSan does not instrument (Debian's oneTBB and gRPC). In other builds they are
// empty. A mark names what oneTBB or gRPC guarantees; it must never stand in for a lock of ours.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define RTNQ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RTNQ_TSAN 1
#endif
#endif

#ifdef RTNQ_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace rtnq {

/// What this thread did so far happens before whatever follows a MarkHappensAfter(token).
inline void MarkHappensBefore(const void* token) {
#ifdef RTNQ_TSAN
  __tsan_release(const_cast<void*>(token));
#else
  (void)token;
#endif
}

/// What follows happens after every earlier MarkHappensBefore(token).
inline void MarkHappensAfter(const void* token) {
#ifdef RTNQ_TSAN
  __tsan_acquire(const_cast<void*>(token));
#else
  (void)token;
#endif
}

}  // namespace rtnq
