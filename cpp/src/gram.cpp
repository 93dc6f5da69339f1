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
  double cb = 0.0;    // 0 without a bias
  bool unit = false;  // D's rows are the unit vectors e_k (the output node's seed)
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

// Row q of D is exactly e_(q mod r): then <D_(i,k), D_(j,l)> = delta_kl and the node's GEMM is
// skipped (the product would give exactly these ones and zeros).
bool unit_rows(const RowMatrix& D, Index r) {
  if (D.cols() != r) return false;
  for (Index q = 0; q < D.rows(); ++q)
    for (Index l = 0; l < r; ++l)
      if (D(q, l) != (l == q % r ? 1.0 : 0.0)) return false;
  return true;
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
  for (NodeFactors& f : out) f.unit = unit_rows(f.D, r);
  return out;
}

// Tiles of about this many Jacobian rows: big enough for efficient GEMMs, small enough that
// a thread's tile buffers stay in its L2 cache and there are tiles for every thread.
constexpr Index kTileRows = 256;

// Splits n items into parts of at most `target` items, as even as possible: part p is
// [bounds[p], bounds[p + 1]). Depends on n and target only (never on the thread count).
std::vector<Index> split(Index n, Index target) {
  const Index parts = (n + target - 1) / target;  // none for n = 0
  std::vector<Index> bounds(static_cast<size_t>(parts + 1));
  for (Index p = 0; p <= parts; ++p) bounds[static_cast<size_t>(p)] = p * n / parts;
  return bounds;
}

using TileMap = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;

namespace in = Eigen::internal;
using Traits = in::gebp_traits<double, double>;
using LhsMapper = in::const_blas_data_mapper<double, Index, Eigen::RowMajor>;
using RhsMapper = in::const_blas_data_mapper<double, Index, Eigen::ColMajor>;
using ResMapper = in::blas_data_mapper<double, Index, Eigen::ColMajor, Eigen::Unaligned, 1>;
using AlignedBuffer = std::vector<double, Eigen::aligned_allocator<double>>;

// Products of tile factors, G = X_a X_b^T (rows of two row-major factor matrices), on Eigen's
// GEMM kernel with the packing done here: a thread keeps the packed X_b of the tile column it
// works on (tiles are visited column by column, so consecutive tiles share X_b), and packing
// buffers are allocated once per thread (a plain product allocates, and the OS zeroes, them
// on every tile). The depth blocking comes from the largest tile and depth only, so every tile
// is summed in the same order whichever thread computes it.
class TileProducts {
 public:
  TileProducts(Index max_rows, Index max_depth, size_t slots)
      : blocking_(max_rows, max_rows, max_depth, 1, false), cached_(slots), key_(slots, -1) {
    blocking_.allocateAll();
    kc_ = std::max<Index>(1, blocking_.kc());
  }

  // G (row-major, na x nb) = Xa Xb^T for na rows Xa and nb rows Xb (leading dimension ld);
  // the packed Xb stays in `slot` until a product with another `key` uses that slot.
  void product(const double* Xa, Index na, const double* Xb, Index nb, Index ld, Index depth,
               int slot, Index key, TileMap& G) {
    // Column-major view: G^T (nb x na) = Xb Xa^T, lhs Xb (row-major), rhs Xa^T (column-major).
    const Index pb = (nb + 7) / 8 * 8;
    const Index pa = (na + 7) / 8 * 8;
    AlignedBuffer& lhs = cached_[static_cast<size_t>(slot)];
    if (key_[static_cast<size_t>(slot)] != key) {
      lhs.resize(static_cast<size_t>(pb * depth));
      const LhsMapper map(Xb, ld);
      for (Index k2 = 0; k2 < depth; k2 += kc_)
        pack_lhs_(lhs.data() + k2 * pb, map.getSubMapper(0, k2), std::min(kc_, depth - k2), nb);
      key_[static_cast<size_t>(slot)] = key;
    }
    rhs_.resize(static_cast<size_t>(pa * depth));
    const RhsMapper rmap(Xa, ld);
    for (Index k2 = 0; k2 < depth; k2 += kc_)
      pack_rhs_(rhs_.data() + k2 * pa, rmap.getSubMapper(k2, 0), std::min(kc_, depth - k2), na);
    G.setZero();
    const ResMapper res(G.data(), G.outerStride());
    for (Index k2 = 0; k2 < depth; k2 += kc_)
      gebp_(res, lhs.data() + k2 * pb, rhs_.data() + k2 * pa, nb, std::min(kc_, depth - k2), na,
            1.0);
  }

  // The upper triangle (on and above the diagonal) of G = X X^T, X = na rows.
  void upper(const double* X, Index na, Index ld, Index depth, TileMap& G) {
    for (Index row = 0; row < na; ++row)
      std::fill(G.row(row).data() + row, G.row(row).data() + na, 0.0);
    in::general_matrix_matrix_triangular_product<Index, double, Eigen::RowMajor, false, double,
                                                 Eigen::ColMajor, false, Eigen::RowMajor, 1,
                                                 Eigen::Upper>::run(na, depth, X, ld, X, ld,
                                                                    G.data(), 1, G.outerStride(),
                                                                    1.0, blocking_);
  }

 private:
  in::gemm_blocking_space<Eigen::RowMajor, double, double, Eigen::Dynamic, Eigen::Dynamic,
                          Eigen::Dynamic, 1, false>
      blocking_;
  Index kc_ = 1;
  std::vector<AlignedBuffer> cached_;
  std::vector<Index> key_;
  AlignedBuffer rhs_;
  in::gemm_pack_lhs<double, Index, LhsMapper, Traits::mr, Traits::LhsProgress,
                    typename Traits::LhsPacket4Packing, Eigen::RowMajor>
      pack_lhs_;
  in::gemm_pack_rhs<double, Index, RhsMapper, Traits::nr, Eigen::ColMajor> pack_rhs_;
  in::gebp_kernel<double, double, Index, ResMapper, Traits::mr, Traits::nr, false, false> gebp_;
};

// acc (+)= (c_W A + c_b) (x) G on a tile of bi x bj samples (rows i r + k, columns j r + l);
// with `upper` only the entries on and above the diagonal. ex holds bj r expanded weights.
void hadamard_update(TileMap& acc, const TileMap& G, const TileMap& A, double cw, double cb,
                     Index r, bool upper, bool assign, double* ex) {
  const Index bi = A.rows();
  const Index bj = A.cols();
  const Index cols = bj * r;
  for (Index i = 0; i < bi; ++i) {
    for (Index j = upper ? i : 0; j < bj; ++j) {  // upper: columns j r + l >= i r only
      const double a = cw * A(i, j) + cb;
      for (Index l = 0; l < r; ++l) ex[j * r + l] = a;
    }
    for (Index k = 0; k < r; ++k) {
      const Index row = i * r + k;
      const Index c0 = upper ? row : 0;
      double* __restrict d = acc.row(row).data();
      const double* __restrict s = G.row(row).data();
      if (assign) {
        for (Index c = c0; c < cols; ++c) d[c] = ex[c] * s[c];
      } else {
        for (Index c = c0; c < cols; ++c) d[c] += ex[c] * s[c];
      }
    }
  }
}

// acc (+)= (c_W A + c_b) (x) [delta_kl]: the output node, whose cotangents are the unit seeds.
void unit_update(TileMap& acc, const TileMap& A, double cw, double cb, Index r, bool upper,
                 bool assign) {
  const Index bi = A.rows();
  const Index bj = A.cols();
  if (assign)
    for (Index row = 0; row < bi * r; ++row)
      std::fill(acc.row(row).data() + (upper ? row : 0), acc.row(row).data() + bj * r, 0.0);
  for (Index i = 0; i < bi; ++i)
    for (Index j = upper ? i : 0; j < bj; ++j) {
      const double a = cw * A(i, j) + cb;
      for (Index k = 0; k < r; ++k) acc(i * r + k, j * r + k) += a;
    }
}

// Writes the tile at (R0, C0) of K and, for off-diagonal tiles of a symmetric K, its mirror.
bool store_tile(TileMap& acc, double* K, Index ld, Index R0, Index C0, Index rows, Index cols,
                bool diagonal, bool mirror) {
  if (diagonal)  // exact symmetry from the upper triangle
    for (Index row = 1; row < rows; ++row)
      for (Index col = 0; col < row; ++col) acc(row, col) = acc(col, row);
  double probe[8] = {};  // x * 0 is 0 for finite x: the lanes stay 0 unless an inf or NaN
  for (Index row = 0; row < rows; ++row) {
    const double* src = acc.row(row).data();
    double* dst = K + (R0 + row) * ld + C0;
    std::copy(src, src + cols, dst);
    Index col = 0;
    for (; col + 8 <= cols; col += 8)
      for (int t = 0; t < 8; ++t) probe[t] += src[col + t] * 0.0;
    for (; col < cols; ++col) probe[0] += src[col] * 0.0;
  }
  for (int t = 1; t < 8; ++t) probe[0] += probe[t];
  if (mirror) {
    constexpr Index kStrip = 8;  // columns of the tile per pass: 8 sequential output rows
    for (Index c0 = 0; c0 < cols; c0 += kStrip) {
      const Index cn = std::min(kStrip, cols - c0);
      for (Index row = 0; row < rows; ++row) {
        const double* src = acc.row(row).data() + c0;
        for (Index t = 0; t < cn; ++t) K[(C0 + c0 + t) * ld + R0 + row] = src[t];
      }
    }
  }
  return probe[0] == 0.0;
}

}  // namespace

bool gram(const Graph& g, const double* theta, ConstRowMatrixRef X1, const ConstRowMatrixRef* X2,
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
  const Index ts = std::max<Index>(1, kTileRows / r);  // at most this many samples per tile
  const std::vector<Index> s1 = split(m1, ts);
  const std::vector<Index> s2 = symmetric ? s1 : split(m2, ts);
  const Index t1 = static_cast<Index>(s1.size()) - 1;
  const Index t2 = static_cast<Index>(s2.size()) - 1;
  std::vector<std::pair<Index, Index>> pairs;  // column by column (see TileProducts)
  for (Index b = 0; b < t2; ++b)
    for (Index a = 0; a < (symmetric ? b + 1 : t1); ++a) pairs.emplace_back(a, b);
  Index max_b = 0;
  for (Index a = 0; a < t1; ++a) max_b = std::max(max_b, s1[a + 1] - s1[a]);
  for (Index b = 0; b < t2; ++b) max_b = std::max(max_b, s2[b + 1] - s2[b]);
  // Tile buffers' leading dimension: a multiple of 8 doubles (64-byte rows), never a power of
  // two (rows of a power-of-two stride share cache sets).
  const Index ldt = (max_b * r + 7) / 8 * 8 + 8;
  Index max_depth = 1;
  for (const NodeFactors& f : F1) max_depth = std::max({max_depth, f.H.cols(), f.D.cols()});
  double width = 0.0;  // sum over dense nodes of (inputs + outputs): the GEMMs' inner sizes
  for (const NodeFactors& f : F1) width += static_cast<double>(f.H.cols() + f.D.cols());
  const int threads =
      detail::threads_for(n_threads, static_cast<Index>(pairs.size()),
                          static_cast<double>(m1 * r) * static_cast<double>(m2 * r) * width);
  bool finite = true;
#pragma omp parallel num_threads(threads) reduction(&& : finite)
  {
    RowMatrix acc_buf(max_b * r, ldt), G_buf(max_b * r, ldt), A_buf(max_b, ldt);
    std::vector<double> ex(static_cast<size_t>(ldt));
    TileProducts gemm(max_b * r, max_depth, 2 * F1.size());
#pragma omp for schedule(dynamic, 1)
    for (Index p = 0; p < static_cast<Index>(pairs.size()); ++p) {
      const Index a = pairs[static_cast<size_t>(p)].first;
      const Index b = pairs[static_cast<size_t>(p)].second;
      const Index i0 = s1[a], bi = s1[a + 1] - i0;
      const Index j0 = s2[b], bj = s2[b + 1] - j0;
      const bool diagonal = symmetric && a == b;
      TileMap acc(acc_buf.data(), bi * r, bj * r, Eigen::OuterStride<>(ldt));
      TileMap G(G_buf.data(), bi * r, bj * r, Eigen::OuterStride<>(ldt));
      TileMap A(A_buf.data(), bi, bj, Eigen::OuterStride<>(ldt));
      bool assign = true;
      for (size_t q = 0; q < F1.size(); ++q) {
        const NodeFactors& f = F1[q];
        const NodeFactors& h = G2[q];
        const int slot = 2 * static_cast<int>(q);
        if (diagonal)
          gemm.upper(f.H.row(i0).data(), bi, f.H.cols(), f.H.cols(), A);
        else
          gemm.product(f.H.row(i0).data(), bi, h.H.row(j0).data(), bj, f.H.cols(), f.H.cols(), slot,
                       b, A);
        if (f.unit && h.unit) {
          unit_update(acc, A, f.cw, f.cb, r, diagonal, assign);
        } else {
          const Index d = f.D.cols();
          if (diagonal)
            gemm.upper(f.D.row(i0 * r).data(), bi * r, d, d, G);
          else
            gemm.product(f.D.row(i0 * r).data(), bi * r, h.D.row(j0 * r).data(), bj * r, d, d,
                         slot + 1, b, G);
          hadamard_update(acc, G, A, f.cw, f.cb, r, diagonal, assign, ex.data());
        }
        assign = false;
      }
      if (assign) acc.setZero();  // no dense nodes
      finite = store_tile(acc, K, ld, i0 * r, j0 * r, bi * r, bj * r, diagonal,
                          symmetric && !diagonal) &&
               finite;
    }
  }
  return finite;
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
