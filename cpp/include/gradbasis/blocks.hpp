// Sample blocking shared by the whole-data kernels (kernels.cpp, gram.cpp).
#pragma once

#include <algorithm>

#include "gradbasis/engine.hpp"
#include "gradbasis/graph.hpp"
#include "gradbasis/types.hpp"

namespace gradbasis {

int resolve_threads(int n_threads);

namespace detail {

// Samples per block: large enough for GEMM efficiency, small enough for cache.
constexpr Index kBlock = 64;
// Reductions use at most this many partial sums (memory: kMaxChunks * num_params doubles).
constexpr Index kMaxChunks = 16;

inline Index num_blocks(Index m) { return (m + kBlock - 1) / kBlock; }

// Below about this many multiply-adds a parallel region costs more than it saves, and on a busy
// machine one descheduled thread stalls the whole region for a time slice: such calls run on one
// thread. Results do not depend on it (blocks and reduction order are fixed by m alone).
constexpr double kMinParallelWork = 1 << 20;

// Threads for `tasks` independent pieces of `work` multiply-adds in all: at most `requested`
// (0 = every available thread), at most one per task, one for small work.
inline int threads_for(int requested, Index tasks, double work) {
  if (work < kMinParallelWork) return 1;
  return static_cast<int>(std::max<Index>(1, std::min<Index>(resolve_threads(requested), tasks)));
}

// Runs body(ws, i0, B) over every block of samples, one workspace per thread.
template <class Body>
inline void for_each_block(const Graph& g, Index m, Index rows_per_sample, unsigned needs,
                           int n_threads, Body body) {
  const Index blocks = num_blocks(m);
  const double work = static_cast<double>(m) * static_cast<double>(rows_per_sample) *
                      static_cast<double>(g.num_params());
  const int threads = threads_for(n_threads, blocks, work);
#pragma omp parallel num_threads(threads)
  {
    Workspace ws(g, std::min(kBlock, m), rows_per_sample, needs);
#pragma omp for schedule(static)
    for (Index b = 0; b < blocks; ++b) {
      const Index i0 = b * kBlock;
      body(ws, i0, std::min(kBlock, m - i0));
    }
  }
}

}  // namespace detail
}  // namespace gradbasis
