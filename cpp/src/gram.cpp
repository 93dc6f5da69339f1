#include "gradbasis/gram.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "gradbasis/blocks.hpp"
#include "gradbasis/engine.hpp"

namespace gradbasis {
namespace {

using detail::for_each_block;

// Layer inputs H (m x d_in) and output cotangents D (m d_y x d_out) of every dense node.
struct NodeFactors {
  int node = -1;
  RowMatrix H;
  RowMatrix D;
  double cw = 1.0;
  double cb = 0.0;  // 0 without a bias
};

std::vector<int> dense_nodes(const Graph& g) {
  std::vector<int> out;
  for (int k = 1; k < g.num_nodes(); ++k)
    if (g.node(k).kind == NodeKind::Dense) out.push_back(k);
  return out;
}

void check_weights(const Graph& g, const GramWeights& weights) {
  if (weights.size() != 2 * dense_nodes(g).size())
    throw std::invalid_argument("gram: need two weights (weight block, bias block) per dense node");
}

// One forward and one d_y-row reverse sweep per block of samples, keeping each dense node's
// inputs and cotangents.
std::vector<NodeFactors> factors(const Graph& g, const double* theta, ConstRowMatrixRef X,
                                 const GramWeights& weights, int n_threads) {
  const Index r = g.output_dim();
  const Index m = X.rows();
  std::vector<NodeFactors> out;
  const std::vector<int> nodes = dense_nodes(g);
  for (size_t q = 0; q < nodes.size(); ++q) {
    const Node& n = g.node(nodes[q]);
    NodeFactors f;
    f.node = nodes[q];
    f.H.resize(m, g.node(n.src).dim);
    f.D.resize(m * r, n.dim);
    f.cw = weights[2 * q];
    f.cb = n.bias_offset >= 0 ? weights[2 * q + 1] : 0.0;
    out.push_back(std::move(f));
  }
  detail::for_each_block(g, m, r, kDerivative | kCotangent, n_threads,
                         [&](Workspace& ws, Index i0, Index B) {
                           block_forward(g, theta, X.row(i0).data(), B, ws, 1);
                           block_seed_unit_cotangents(g, ws, B);
                           block_reverse(g, theta, ws, B);
                           for (NodeFactors& f : out) {
                             f.H.middleRows(i0, B) = ws.value(g.node(f.node).src, B);
                             f.D.middleRows(i0 * r, B * r) = ws.cot(f.node, B);
                           }
                         });
  return out;
}

// Tiles of about this many Jacobian rows: big enough for efficient GEMMs, small enough that
// a thread's tile buffers stay in cache and there are tiles for every thread.
constexpr Index kTileRows = 256;

}  // namespace

void gram(const Graph& g, const double* theta, ConstRowMatrixRef X1, const ConstRowMatrixRef* X2,
          const GramWeights& weights, double* K, int n_threads) {
  check_weights(g, weights);
  const Index r = g.output_dim();
  const bool symmetric = X2 == nullptr;
  const std::vector<NodeFactors> F1 = factors(g, theta, X1, weights, n_threads);
  const std::vector<NodeFactors> F2 =
      symmetric ? std::vector<NodeFactors>() : factors(g, theta, *X2, weights, n_threads);
  const std::vector<NodeFactors>& G2 = symmetric ? F1 : F2;
  const Index m1 = X1.rows();
  const Index m2 = symmetric ? m1 : X2->rows();
  const Index ld = m2 * r;
  const Index ts = std::max<Index>(1, kTileRows / r);  // samples per tile
  const Index t1 = (m1 + ts - 1) / ts;
  const Index t2 = (m2 + ts - 1) / ts;
  std::vector<std::pair<Index, Index>> pairs;
  for (Index a = 0; a < t1; ++a)
    for (Index b = symmetric ? a : 0; b < t2; ++b) pairs.emplace_back(a, b);
  double width = 0.0;  // sum over dense nodes of (inputs + outputs): the GEMMs' inner sizes
  for (const NodeFactors& f : F1) width += static_cast<double>(f.H.cols() + f.D.cols());
  const int threads =
      detail::threads_for(n_threads, static_cast<Index>(pairs.size()),
                          static_cast<double>(m1 * r) * static_cast<double>(m2 * r) * width);
#pragma omp parallel num_threads(threads)
  {
    RowMatrix acc, G, A;
#pragma omp for schedule(dynamic, 1)
    for (Index p = 0; p < static_cast<Index>(pairs.size()); ++p) {
      const Index i0 = pairs[static_cast<size_t>(p)].first * ts;
      const Index j0 = pairs[static_cast<size_t>(p)].second * ts;
      const Index bi = std::min(ts, m1 - i0);
      const Index bj = std::min(ts, m2 - j0);
      acc.setZero(bi * r, bj * r);
      for (size_t q = 0; q < F1.size(); ++q) {
        const NodeFactors& f = F1[q];
        const NodeFactors& h = G2[q];
        G.noalias() = f.D.middleRows(i0 * r, bi * r) * h.D.middleRows(j0 * r, bj * r).transpose();
        A.noalias() = f.cw * (f.H.middleRows(i0, bi) * h.H.middleRows(j0, bj).transpose());
        A.array() += f.cb;
        for (Index i = 0; i < bi; ++i)
          for (Index k = 0; k < r; ++k) {
            double* dst = acc.row(i * r + k).data();
            const double* src = G.row(i * r + k).data();
            for (Index j = 0; j < bj; ++j) {
              const double a = A(i, j);
              for (Index l = 0; l < r; ++l) dst[j * r + l] += a * src[j * r + l];
            }
          }
      }
      if (symmetric && i0 == j0)  // exact symmetry: GEMM may round (a, b) and (b, a) differently
        for (Index row = 0; row < bi * r; ++row)
          for (Index col = 0; col < row; ++col) acc(row, col) = acc(col, row);
      for (Index row = 0; row < bi * r; ++row)
        std::copy(acc.row(row).data(), acc.row(row).data() + bj * r,
                  K + (i0 * r + row) * ld + j0 * r);
      if (symmetric && i0 != j0)
        for (Index col = 0; col < bj * r; ++col)
          for (Index row = 0; row < bi * r; ++row)
            K[(j0 * r + col) * ld + i0 * r + row] = acc(row, col);
    }
  }
}

void gram_diagonal(const Graph& g, const double* theta, ConstRowMatrixRef X,
                   const GramWeights& weights, double* out, int n_threads) {
  check_weights(g, weights);
  const Index r = g.output_dim();
  const std::vector<int> nodes = dense_nodes(g);
  for_each_block(g, X.rows(), r, kDerivative | kCotangent, n_threads,
                 [&](Workspace& ws, Index i0, Index B) {
                   block_forward(g, theta, X.row(i0).data(), B, ws, 1);
                   block_seed_unit_cotangents(g, ws, B);
                   block_reverse(g, theta, ws, B);
                   Eigen::Map<Vector> d(out + i0 * r, B * r);
                   d.setZero();
                   for (size_t q = 0; q < nodes.size(); ++q) {
                     const Node& n = g.node(nodes[q]);
                     const double cb = n.bias_offset >= 0 ? weights[2 * q + 1] : 0.0;
                     const Vector hh = ws.value(n.src, B).rowwise().squaredNorm();
                     const Vector dd = ws.cot(nodes[q], B).rowwise().squaredNorm();
                     for (Index s = 0; s < B; ++s)
                       for (Index k = 0; k < r; ++k)
                         d(s * r + k) += (weights[2 * q] * hh(s) + cb) * dd(s * r + k);
                   }
                 });
}

}  // namespace gradbasis
