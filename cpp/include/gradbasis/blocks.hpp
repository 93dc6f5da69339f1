// Sample blocking shared by the whole-data kernels (kernels.cpp, gram.cpp).
#pragma once

#include <algorithm>

#include "gradbasis/engine.hpp"
#include "gradbasis/graph.hpp"
#include "gradbasis/threads.hpp"
#include "gradbasis/types.hpp"

namespace gradbasis {
namespace detail {

// Samples per block: large enough for GEMM efficiency, small enough for cache.
constexpr Index kBlock = 64;
// Reductions use at most this many partial sums (memory: kMaxChunks * num_params doubles).
constexpr Index kMaxChunks = 16;

inline Index num_blocks(Index m) { return (m + kBlock - 1) / kBlock; }

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
