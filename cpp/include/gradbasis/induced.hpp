// The induced convex model: minimise Phi(B a) = sum_i w_i l((B a)_i, y_i) over a, for a
// basis matrix B (n = m * d_y rows ordered like a Jacobian, p columns).
//
// The span of B is numerical: an SVD gives an orthonormal basis U of range(B) and the
// problem is solved by damped Newton in coordinates of the leading r columns of U, for
// every relative singular-value cut asked for (the profile). Working in orthonormal
// coordinates means the conditioning of B never slows or spoils the solve.
//
// Certificates: `value` is Phi at the returned point (an upper bound on the infimum over
// the span); `lower` is the weak-duality bound -sum_i w_i l*(u_i / w_i) at a dual point u
// orthogonal to the span (exactly, up to rounding).
//
// induced_minimum_orthonormal skips the SVD for a caller that already has an orthonormal
// basis of the span (the Gram strategy gets one from a factorisation of K = B B^T).
#pragma once

#include <vector>

#include "gradbasis/loss.hpp"
#include "gradbasis/types.hpp"

namespace gradbasis {

struct InducedOptions {
  double rank_tol = 0.0;      // relative cut of the main result (sigma > rank_tol * sigma_max)
  std::vector<double> cuts;   // further relative cuts for the profile
  double tol = 1e-12;         // Newton stops when decrement / 2 <= tol * max(1, |Phi|)
  int max_iter = 200;         // Newton iterations per cut
};

struct InducedSolve {
  double cut = 0.0;
  Index rank = 0;
  double value = 0.0;
  double lower = 0.0;
  int iterations = 0;
  double gradient_norm = 0.0;  // of Phi in the orthonormal coordinates at the returned point
  bool converged = false;
  bool attained = false;       // converged with a final step that is negligible
};

struct InducedResult {
  InducedSolve main;
  std::vector<InducedSolve> profile;  // sorted by cut, largest cut (smallest rank) first
  Vector alpha;                       // minimum-norm coefficients of the main solution
  RowMatrix fitted;                   // B alpha as (m x d_y)
  Vector singular_values;             // of B, descending
};

InducedResult induced_minimum(ConstRowMatrixRef B, const Loss& loss, ConstRowMatrixRef Y,
                              const double* weights, const InducedOptions& options);

// The same solve over range(Q) for Q (n x k) with orthonormal columns, nested by `scale`:
// at a cut c the span is that of the leading columns j with scale[j] > c * scale[0] (scale
// non-increasing, e.g. singular values or pivots). `alpha` holds the coordinates in Q's
// columns (zero past the main rank) and `singular_values` is `scale`.
InducedResult induced_minimum_orthonormal(const Eigen::Ref<const ColMatrix>& Q, ConstVectorRef scale,
                                          const Loss& loss, ConstRowMatrixRef Y, const double* weights,
                                          const InducedOptions& options);

}  // namespace gradbasis
