// Thread counts of the OpenMP regions: every parallel kernel (graph engine, Gram matrices,
// induced solve) takes a requested n_threads and resolves it here, one convention for all.
#pragma once

#include <algorithm>

#include "gradbasis/types.hpp"

namespace gradbasis {

// The OpenMP thread count for a requested n_threads: n_threads itself when positive, every
// available thread when n_threads <= 0; 1 without OpenMP. Defined in kernels.cpp.
int resolve_threads(int n_threads);
// Sets the thread count that n_threads <= 0 resolves to, in the calling thread only (OpenMP's
// per-thread nthreads setting): processes running side by side each take their share.
void set_default_threads(int n_threads);
bool built_with_openmp();

namespace detail {

// Below about this many multiply-adds a parallel region costs more than it saves, and on a busy
// machine one descheduled thread stalls the whole region for a time slice: such calls run on one
// thread. Results do not depend on it (the pieces of work are fixed by the problem alone).
constexpr double kMinParallelWork = 1 << 20;

// Threads for `tasks` independent pieces of `work` multiply-adds in all: at most `requested`
// (<= 0: every available thread), at most one per task, one for small work.
inline int threads_for(int requested, Index tasks, double work) {
  if (work < kMinParallelWork) return 1;
  return static_cast<int>(std::max<Index>(1, std::min<Index>(resolve_threads(requested), tasks)));
}

}  // namespace detail
}  // namespace gradbasis
