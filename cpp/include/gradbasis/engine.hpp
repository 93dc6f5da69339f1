// Per-block kernels of the graph engine: a block is up to `capacity` consecutive samples,
// held as row-major (samples x units) matrices so every dense layer is one GEMM.
//
// Reverse sweeps carry `rows_per_sample` cotangent rows per sample: 1 for VJPs and
// gradients, d_y for Jacobians (one row per output, all pushed back in the same GEMM).
#pragma once

#include <vector>

#include "gradbasis/graph.hpp"
#include "gradbasis/types.hpp"

namespace gradbasis {

using RowMap = Eigen::Map<RowMatrix>;
using ConstColMap = Eigen::Map<const ColMatrix>;

enum WorkspaceNeeds : unsigned {
  kDerivative = 1u << 0,  // sigma' at activation nodes
  kSecondDerivative = 1u << 1,
  kCotangent = 1u << 2,
  kTangent = 1u << 3,
  kCotangentTangent = 1u << 4,  // directional derivative of the cotangents (HVP)
};

// Preallocated per-thread buffers, one matrix per node, sized for a full block.
class Workspace {
 public:
  Workspace(const Graph& graph, Index capacity, Index rows_per_sample, unsigned needs);

  Index capacity() const { return capacity_; }
  Index rows_per_sample() const { return rows_per_sample_; }

  RowMap value(int n, Index B) { return view(value_, n, B); }
  RowMap d1(int n, Index B) { return view(d1_, n, B); }
  RowMap d2(int n, Index B) { return view(d2_, n, B); }
  RowMap cot(int n, Index B) { return view(cot_, n, B * rows_per_sample_); }
  RowMap tangent(int n, Index B) { return view(tangent_, n, B); }
  RowMap dcot(int n, Index B) { return view(dcot_, n, B); }

 private:
  static RowMap view(std::vector<RowMatrix>& store, int n, Index rows) {
    RowMatrix& m = store[static_cast<size_t>(n)];
    return RowMap(m.data(), rows, m.cols());
  }

  Index capacity_;
  Index rows_per_sample_;
  std::vector<RowMatrix> value_, d1_, d2_, cot_, tangent_, dcot_;
};

// theta is the flat parameter vector; X points at row i0 of the data (B rows, row-major).
void block_forward(const Graph& g, const double* theta, const double* X, Index B, Workspace& ws,
                   int derivative_order);
// Seeds the output cotangents of a Jacobian sweep (rows_per_sample d_y): cotangent row
// s * d_y + k of sample s is the unit vector e_k, so block_reverse then carries the gradient of
// output k at sample s in that row of every node.
void block_seed_unit_cotangents(const Graph& g, Workspace& ws, Index B);
// Cotangent sweep from ws.cot(output) (filled by the caller) to every parameter-dependent node.
void block_reverse(const Graph& g, const double* theta, Workspace& ws, Index B);
// Forward-mode sweep: ws.tangent(n) = d value(n) / d theta . v.
void block_tangent(const Graph& g, const double* theta, const double* v, Workspace& ws, Index B);
// Second-order sweep for Hessian-vector products: needs block_tangent and both output
// cotangents (ws.cot and ws.dcot at the output) filled; rows_per_sample must be 1.
void block_reverse_tangent(const Graph& g, const double* theta, const double* v, Workspace& ws,
                           Index B);

// grad += sum over the block of the parameter gradient carried by ws.cot (rows_per_sample 1).
void block_accumulate_gradient(const Graph& g, Workspace& ws, Index B, double* grad);
// hv += the parameter part of the second-order sweep.
void block_accumulate_hvp(const Graph& g, Workspace& ws, Index B, double* hv);
// Writes the Jacobian rows of the block: row (s * r + k) of J_block, leading dimension ld.
void block_write_jacobian(const Graph& g, Workspace& ws, Index B, double* J_block, Index ld);

}  // namespace gradbasis
