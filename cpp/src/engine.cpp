#include "gradbasis/engine.hpp"

#include <cstring>

#if defined(__x86_64__) && defined(__SSE2__)
#include <immintrin.h>
#define GRADBASIS_STREAM_STORES 1
#endif

namespace gradbasis {
namespace {

// Jacobians are written once and not read back soon, and they are often far larger than the
// caches: non-temporal stores skip the read-for-ownership of every destination line.
inline void store_stream(double* dst, double value) {
#ifdef GRADBASIS_STREAM_STORES
  long long bits;
  std::memcpy(&bits, &value, sizeof bits);
  _mm_stream_si64(reinterpret_cast<long long*>(dst), bits);
#else
  *dst = value;
#endif
}

inline void stream_fence() {
#ifdef GRADBASIS_STREAM_STORES
  _mm_sfence();
#endif
}

ConstColMap weight(const Graph& g, const Node& n, const double* theta) {
  return ConstColMap(theta + n.weight_offset, n.dim, g.node(n.src).dim);
}

// Rows s*r .. s*r+r-1 of `target` += the same rows of `source`, each scaled elementwise by
// row s of `scale` (the per-sample activation derivative shared by the sample's r rows).
void add_scaled_rows(RowMap target, const RowMap& source, const RowMap& scale, Index B, Index r) {
  if (r == 1) {
    target.array() += source.array() * scale.array();
    return;
  }
  for (Index s = 0; s < B; ++s) {
    const auto factor = scale.row(s).array();
    for (Index k = s * r; k < (s + 1) * r; ++k)
      target.row(k).array() += source.row(k).array() * factor;
  }
}

}  // namespace

Workspace::Workspace(const Graph& graph, Index capacity, Index rows_per_sample, unsigned needs)
    : capacity_(capacity), rows_per_sample_(rows_per_sample) {
  const size_t count = static_cast<size_t>(graph.num_nodes());
  value_.resize(count);
  d1_.resize(count);
  d2_.resize(count);
  cot_.resize(count);
  tangent_.resize(count);
  dcot_.resize(count);
  for (int k = 0; k < graph.num_nodes(); ++k) {
    const Node& n = graph.node(k);
    const size_t i = static_cast<size_t>(k);
    value_[i].resize(capacity, n.dim);
    if (!n.depends_on_params) continue;  // nothing flows back into parameter-free nodes
    const bool activation = n.kind == NodeKind::Activation;
    if (activation && (needs & kDerivative)) d1_[i].resize(capacity, n.dim);
    if (activation && (needs & kSecondDerivative)) d2_[i].resize(capacity, n.dim);
    if (needs & kCotangent) cot_[i].resize(capacity * rows_per_sample, n.dim);
    if (needs & kTangent) tangent_[i].resize(capacity, n.dim);
    if (needs & kCotangentTangent) dcot_[i].resize(capacity, n.dim);
  }
}

void block_forward(const Graph& g, const double* theta, const double* X, Index B, Workspace& ws,
                   int derivative_order) {
  std::memcpy(ws.value(0, B).data(), X, sizeof(double) * static_cast<size_t>(B * g.input_dim()));
  for (int k = 1; k < g.num_nodes(); ++k) {
    const Node& n = g.node(k);
    RowMap out = ws.value(k, B);
    switch (n.kind) {
      case NodeKind::Input:
        break;
      case NodeKind::Dense:
        out.noalias() = ws.value(n.src, B) * weight(g, n, theta).transpose();
        if (n.bias_offset >= 0)
          out.rowwise() += Eigen::Map<const Eigen::RowVectorXd>(theta + n.bias_offset, n.dim);
        break;
      case NodeKind::Activation: {
        const RowMap pre = ws.value(n.src, B);
        activation_apply(n.activation, pre.data(), out.data(), out.size());
        if (derivative_order >= 1 && n.depends_on_params)
          activation_derivatives(n.activation, pre.data(), out.data(), ws.d1(k, B).data(),
                                 derivative_order >= 2 ? ws.d2(k, B).data() : nullptr, out.size());
        break;
      }
      case NodeKind::Sum:
        out.noalias() = ws.value(n.src, B) + ws.value(n.src2, B);
        break;
    }
  }
}

void block_seed_unit_cotangents(const Graph& g, Workspace& ws, Index B) {
  const Index r = g.output_dim();
  RowMap seed = ws.cot(g.output(), B);
  seed.setZero();
  for (Index q = 0; q < B * r; ++q) seed(q, q % r) = 1.0;
}

void block_reverse(const Graph& g, const double* theta, Workspace& ws, Index B) {
  const Index r = ws.rows_per_sample();
  const int last = g.num_nodes() - 1;
  for (int k = 1; k < last; ++k)
    if (g.node(k).depends_on_params) ws.cot(k, B).setZero();
  for (int k = last; k >= 1; --k) {
    const Node& n = g.node(k);
    if (!n.depends_on_params) continue;
    const RowMap c = ws.cot(k, B);
    const bool into_src = g.node(n.src).depends_on_params;
    switch (n.kind) {
      case NodeKind::Input:
        break;
      case NodeKind::Dense:
        if (into_src) ws.cot(n.src, B).noalias() += c * weight(g, n, theta);
        break;
      case NodeKind::Activation:
        if (into_src) add_scaled_rows(ws.cot(n.src, B), c, ws.d1(k, B), B, r);
        break;
      case NodeKind::Sum:
        if (into_src) ws.cot(n.src, B) += c;
        if (g.node(n.src2).depends_on_params) ws.cot(n.src2, B) += c;
        break;
    }
  }
}

void block_tangent(const Graph& g, const double* theta, const double* v, Workspace& ws, Index B) {
  for (int k = 1; k < g.num_nodes(); ++k) {
    const Node& n = g.node(k);
    if (!n.depends_on_params) continue;
    RowMap t = ws.tangent(k, B);
    const bool from_src = g.node(n.src).depends_on_params;
    switch (n.kind) {
      case NodeKind::Input:
        break;
      case NodeKind::Dense:
        // d(W h + b) = dW h + W dh + db
        t.noalias() = ws.value(n.src, B) * weight(g, n, v).transpose();
        if (from_src) t.noalias() += ws.tangent(n.src, B) * weight(g, n, theta).transpose();
        if (n.bias_offset >= 0)
          t.rowwise() += Eigen::Map<const Eigen::RowVectorXd>(v + n.bias_offset, n.dim);
        break;
      case NodeKind::Activation:
        // An activation node depends on parameters only through its source.
        t.array() = ws.d1(k, B).array() * ws.tangent(n.src, B).array();
        break;
      case NodeKind::Sum:
        t.setZero();
        if (from_src) t += ws.tangent(n.src, B);
        if (g.node(n.src2).depends_on_params) t += ws.tangent(n.src2, B);
        break;
    }
  }
}

void block_reverse_tangent(const Graph& g, const double* theta, const double* v, Workspace& ws,
                           Index B) {
  const int last = g.num_nodes() - 1;
  for (int k = 1; k < last; ++k) {
    if (!g.node(k).depends_on_params) continue;
    ws.cot(k, B).setZero();
    ws.dcot(k, B).setZero();
  }
  for (int k = last; k >= 1; --k) {
    const Node& n = g.node(k);
    if (!n.depends_on_params) continue;
    const RowMap c = ws.cot(k, B);
    const RowMap dc = ws.dcot(k, B);
    const bool into_src = g.node(n.src).depends_on_params;
    switch (n.kind) {
      case NodeKind::Input:
        break;
      case NodeKind::Dense:
        // c_src = c W, so d c_src = dc W + c dW.
        if (into_src) {
          ws.cot(n.src, B).noalias() += c * weight(g, n, theta);
          ws.dcot(n.src, B).noalias() += dc * weight(g, n, theta) + c * weight(g, n, v);
        }
        break;
      case NodeKind::Activation: {
        // c_pre = c * s'(pre), so d c_pre = dc * s'(pre) + c * s''(pre) * d pre.
        const auto d1 = ws.d1(k, B).array();
        ws.cot(n.src, B).array() += c.array() * d1;
        ws.dcot(n.src, B).array() +=
            dc.array() * d1 + c.array() * ws.d2(k, B).array() * ws.tangent(n.src, B).array();
        break;
      }
      case NodeKind::Sum:
        if (into_src) {
          ws.cot(n.src, B) += c;
          ws.dcot(n.src, B) += dc;
        }
        if (g.node(n.src2).depends_on_params) {
          ws.cot(n.src2, B) += c;
          ws.dcot(n.src2, B) += dc;
        }
        break;
    }
  }
}

void block_accumulate_gradient(const Graph& g, Workspace& ws, Index B, double* grad) {
  for (int k = 1; k < g.num_nodes(); ++k) {
    const Node& n = g.node(k);
    if (n.kind != NodeKind::Dense) continue;
    const RowMap c = ws.cot(k, B);
    Eigen::Map<ColMatrix>(grad + n.weight_offset, n.dim, g.node(n.src).dim).noalias() +=
        c.transpose() * ws.value(n.src, B);
    if (n.bias_offset >= 0)
      Eigen::Map<Eigen::RowVectorXd>(grad + n.bias_offset, n.dim) += c.colwise().sum();
  }
}

void block_accumulate_hvp(const Graph& g, Workspace& ws, Index B, double* hv) {
  for (int k = 1; k < g.num_nodes(); ++k) {
    const Node& n = g.node(k);
    if (n.kind != NodeKind::Dense) continue;
    const RowMap dc = ws.dcot(k, B);
    // d (c^T h) = dc^T h + c^T dh
    auto block = Eigen::Map<ColMatrix>(hv + n.weight_offset, n.dim, g.node(n.src).dim);
    block.noalias() += dc.transpose() * ws.value(n.src, B);
    if (g.node(n.src).depends_on_params)
      block.noalias() += ws.cot(k, B).transpose() * ws.tangent(n.src, B);
    if (n.bias_offset >= 0)
      Eigen::Map<Eigen::RowVectorXd>(hv + n.bias_offset, n.dim) += dc.colwise().sum();
  }
}

void block_write_jacobian(const Graph& g, Workspace& ws, Index B, double* J_block, Index ld) {
  const Index r = ws.rows_per_sample();
  for (int k = 1; k < g.num_nodes(); ++k) {
    const Node& n = g.node(k);
    if (n.kind != NodeKind::Dense) continue;
    const RowMap c = ws.cot(k, B);
    const RowMap h = ws.value(n.src, B);
    const Index d_out = n.dim;
    const Index d_in = h.cols();
    for (Index s = 0; s < B; ++s) {
      const double* x = h.row(s).data();
      for (Index q = s * r; q < (s + 1) * r; ++q) {
        const double* delta = c.row(q).data();
        double* row = J_block + q * ld;
        // d f / d W[a, b] = delta[a] * x[b], stored column-major: index a + b * d_out.
        double* dst = row + n.weight_offset;
        for (Index b = 0; b < d_in; ++b, dst += d_out) {
          const double xb = x[b];
          for (Index a = 0; a < d_out; ++a) store_stream(dst + a, xb * delta[a]);
        }
        if (n.bias_offset >= 0)
          for (Index a = 0; a < d_out; ++a) store_stream(row + n.bias_offset + a, delta[a]);
      }
    }
  }
  stream_fence();
}

}  // namespace gradbasis
