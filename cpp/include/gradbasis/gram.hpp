// Structured Gram matrices (the empirical NTK) K = J1 C J2^T without forming J.
//
// For a dense node out = W h + b, d f_k(x_i) / d W[a, b] = delta_{ik}[a] h_i[b], so the node's
// share of K[(i,k), (j,k')] is (c_W <h_i, h_j> + c_b) <delta_{ik}, delta_{jk'}>: two GEMMs per
// node and tile of sample pairs, never the (m d_y x num_params) Jacobian. c_W, c_b are
// per-node weights on the weight and bias blocks (1 for the plain J J^T).
#pragma once

#include <vector>

#include "gradbasis/graph.hpp"
#include "gradbasis/types.hpp"

namespace gradbasis {

// Per dense node (in node order): {c_W, c_b}.
using GramWeights = std::vector<double>;

// K is (m1 d_y) x (m2 d_y), row-major, rows ordered like the Jacobian (i * d_y + k).
// With X2 == nullptr it is the symmetric K(X1, X1) (only tiles on and above the diagonal are
// computed; the rest is mirrored). Returns whether every entry of K is finite.
bool gram(const Graph& g, const double* theta, ConstRowMatrixRef X1, const ConstRowMatrixRef* X2,
          const GramWeights& weights, double* K, int n_threads);

// diag(K(X, X)), length m d_y.
void gram_diagonal(const Graph& g, const double* theta, ConstRowMatrixRef X,
                   const GramWeights& weights, double* out, int n_threads);

}  // namespace gradbasis
