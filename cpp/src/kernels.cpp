#include "gradbasis/kernels.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <Eigen/StdVector>

#include "gradbasis/blocks.hpp"
#include "gradbasis/engine.hpp"
#include "gradbasis/threads.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace gradbasis {
namespace {

using detail::for_each_block;
using detail::kBlock;
using detail::kMaxChunks;
using detail::num_blocks;

// Sums body(ws, i0, B, partial_vector, partial_scalar) over all samples deterministically:
// blocks are grouped into chunks fixed by m alone, and chunk partials are added in order.
template <class Body>
double reduce_over_blocks(const Graph& g, Index m, unsigned needs, int n_threads, double* out,
                          Body body) {
  const Index P = g.num_params();
  const Index blocks = num_blocks(m);
  const Index chunks = std::min(kMaxChunks, blocks);
  // Every partial starts on a 64-byte boundary: Eigen's vectorised accumulation peels a
  // scalar head whose length depends on the target's alignment, and the scalar and packet
  // paths round differently (FMA), so an address-dependent layout would change results.
  const Index stride = (P + 7) / 8 * 8;
  std::vector<double, Eigen::aligned_allocator<double>> partial(
      out != nullptr ? static_cast<size_t>(chunks * stride) : 0, 0.0);
  std::vector<double> scalar(static_cast<size_t>(chunks), 0.0);
  const int threads =
      detail::threads_for(n_threads, chunks, static_cast<double>(m) * static_cast<double>(P));
#pragma omp parallel num_threads(threads)
  {
    Workspace ws(g, std::min(kBlock, m), 1, needs);
#pragma omp for schedule(dynamic, 1)
    for (Index c = 0; c < chunks; ++c) {
      double* vec = out != nullptr ? partial.data() + c * stride : nullptr;
      for (Index b = c * blocks / chunks; b < (c + 1) * blocks / chunks; ++b) {
        const Index i0 = b * kBlock;
        scalar[static_cast<size_t>(c)] += body(ws, i0, std::min(kBlock, m - i0), vec);
      }
    }
  }
  double total = 0.0;
  for (Index c = 0; c < chunks; ++c) total += scalar[static_cast<size_t>(c)];
  if (out != nullptr) {
    Eigen::Map<Vector> result(out, P);
    result.setZero();
    for (Index c = 0; c < chunks; ++c)
      result += Eigen::Map<const Vector>(partial.data() + c * stride, P);
  }
  return total;
}

}  // namespace

int resolve_threads(int n_threads) {
#ifdef _OPENMP
  return n_threads > 0 ? n_threads : omp_get_max_threads();
#else
  (void)n_threads;
  return 1;
#endif
}

void set_default_threads(int n_threads) {
#ifdef _OPENMP
  omp_set_num_threads(n_threads);
#else
  (void)n_threads;
#endif
}

bool built_with_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

void forward(const Graph& g, const double* theta, ConstRowMatrixRef X, RowMatrixRef out,
             int n_threads) {
  for_each_block(g, X.rows(), 1, 0u, n_threads, [&](Workspace& ws, Index i0, Index B) {
    block_forward(g, theta, X.row(i0).data(), B, ws, 0);
    out.middleRows(i0, B) = ws.value(g.output(), B);
  });
}

void node_values(const Graph& g, const double* theta, ConstRowMatrixRef X, int node,
                 RowMatrixRef out, int n_threads) {
  if (node < 0 || node >= g.num_nodes()) throw std::out_of_range("node_values: no such node");
  for_each_block(g, X.rows(), 1, 0u, n_threads, [&](Workspace& ws, Index i0, Index B) {
    block_forward(g, theta, X.row(i0).data(), B, ws, 0);
    out.middleRows(i0, B) = ws.value(node, B);
  });
}

void jacobian(const Graph& g, const double* theta, ConstRowMatrixRef X, double* J, int n_threads) {
  const Index r = g.output_dim();
  const Index P = g.num_params();
  for_each_block(g, X.rows(), r, kDerivative | kCotangent, n_threads,
                 [&](Workspace& ws, Index i0, Index B) {
                   block_forward(g, theta, X.row(i0).data(), B, ws, 1);
                   block_seed_unit_cotangents(g, ws, B);
                   block_reverse(g, theta, ws, B);
                   block_write_jacobian(g, ws, B, J + i0 * r * P, P);
                 });
}

void jvp(const Graph& g, const double* theta, ConstRowMatrixRef X, const double* v,
         RowMatrixRef out, int n_threads) {
  for_each_block(g, X.rows(), 1, kDerivative | kTangent, n_threads,
                 [&](Workspace& ws, Index i0, Index B) {
                   block_forward(g, theta, X.row(i0).data(), B, ws, 1);
                   block_tangent(g, theta, v, ws, B);
                   out.middleRows(i0, B) = ws.tangent(g.output(), B);
                 });
}

void vjp(const Graph& g, const double* theta, ConstRowMatrixRef X, ConstRowMatrixRef U, double* out,
         int n_threads) {
  reduce_over_blocks(g, X.rows(), kDerivative | kCotangent, n_threads, out,
                     [&](Workspace& ws, Index i0, Index B, double* grad) {
                       block_forward(g, theta, X.row(i0).data(), B, ws, 1);
                       ws.cot(g.output(), B) = U.middleRows(i0, B);
                       block_reverse(g, theta, ws, B);
                       block_accumulate_gradient(g, ws, B, grad);
                       return 0.0;
                     });
}

double kink_margin(const Graph& g, const double* theta, ConstRowMatrixRef X, int n_threads) {
  const Index m = X.rows();
  std::vector<double> margins(static_cast<size_t>(num_blocks(m)),
                              std::numeric_limits<double>::infinity());
  for_each_block(g, m, 1, 0u, n_threads, [&](Workspace& ws, Index i0, Index B) {
    block_forward(g, theta, X.row(i0).data(), B, ws, 0);
    double best = std::numeric_limits<double>::infinity();
    for (int k = 1; k < g.num_nodes(); ++k) {
      const Node& n = g.node(k);
      if (n.kind == NodeKind::Activation && n.activation.has_kink())
        best = std::min(best, ws.value(n.src, B).cwiseAbs().minCoeff());
    }
    margins[static_cast<size_t>(i0 / kBlock)] = best;
  });
  return *std::min_element(margins.begin(), margins.end());
}

double objective(const Graph& g, const Loss& loss, const double* theta, ConstRowMatrixRef X,
                 ConstRowMatrixRef Y, const double* w, double* grad, int n_threads) {
  const Index d = g.output_dim();
  const unsigned needs = grad != nullptr ? (kDerivative | kCotangent) : 0u;
  return reduce_over_blocks(
      g, X.rows(), needs, n_threads, grad, [&](Workspace& ws, Index i0, Index B, double* partial) {
        block_forward(g, theta, X.row(i0).data(), B, ws, partial ? 1 : 0);
        const RowMap f = ws.value(g.output(), B);
        double value = 0.0;
        for (Index s = 0; s < B; ++s)
          value += w[i0 + s] * loss.value(f.row(s).data(), Y.row(i0 + s).data(), d);
        if (partial == nullptr) return value;
        RowMap c = ws.cot(g.output(), B);
        for (Index s = 0; s < B; ++s) {
          loss.gradient(f.row(s).data(), Y.row(i0 + s).data(), d, c.row(s).data());
          c.row(s) *= w[i0 + s];
        }
        block_reverse(g, theta, ws, B);
        block_accumulate_gradient(g, ws, B, partial);
        return value;
      });
}

void objective_hvp(const Graph& g, const Loss& loss, const double* theta, ConstRowMatrixRef X,
                   ConstRowMatrixRef Y, const double* w, const double* v, double* out,
                   int n_threads) {
  const Index d = g.output_dim();
  const unsigned needs =
      kDerivative | kSecondDerivative | kCotangent | kTangent | kCotangentTangent;
  reduce_over_blocks(
      g, X.rows(), needs, n_threads, out, [&](Workspace& ws, Index i0, Index B, double* hv) {
        block_forward(g, theta, X.row(i0).data(), B, ws, 2);
        block_tangent(g, theta, v, ws, B);
        const int o = g.output();
        const RowMap f = ws.value(o, B);
        const RowMap df = ws.tangent(o, B);
        RowMap c = ws.cot(o, B);
        RowMap dc = ws.dcot(o, B);
        // Output cotangent w_i grad l(f_i) and its derivative w_i hess l(f_i) df_i.
        for (Index s = 0; s < B; ++s) {
          const double* y = Y.row(i0 + s).data();
          loss.gradient(f.row(s).data(), y, d, c.row(s).data());
          loss.hessian_vector(f.row(s).data(), y, d, df.row(s).data(), dc.row(s).data());
          c.row(s) *= w[i0 + s];
          dc.row(s) *= w[i0 + s];
        }
        block_reverse_tangent(g, theta, v, ws, B);
        block_accumulate_hvp(g, ws, B, hv);
        return 0.0;
      });
}

}  // namespace gradbasis
