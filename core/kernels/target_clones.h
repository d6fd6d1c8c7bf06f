// Per-function ISA clones picked by the loader (ifunc), for the few loops outside the kernel
// tables. The clone names are x86 ISAs: other architectures compile the plain function.
#pragma once

#if defined(__x86_64__)
#define RTNQ_X86_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RTNQ_X86_CLONES
#endif
