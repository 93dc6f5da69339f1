// The induced convex model: minimise Phi(B a) = sum_i w_i l((B a)_i, y_i) over a, for a
// basis matrix B (n = m * d_y rows ordered like a Jacobian, p columns).
//
// The span of B is numerical: an SVD gives an orthonormal basis U of range(B) and the
// problem is solved by damped, regularised Newton in coordinates of the leading r columns of
// U, for every relative singular-value cut asked for (the profile). Working in orthonormal
// coordinates means the conditioning of B never slows or spoils the solve.
//
// Cross-entropy ignores per-sample constant shifts (Phi(F) = Phi(P F), P = I - (1/d)
// blockdiag(1 1^T)), so it is solved over the centred span P span(U_r) instead, with an
// orthonormal basis of P U_r's left singular vectors. Left out are only the directions P
// kills, which a computed basis keeps with centred parts of its own rounding: a right
// singular vector v of P U_r with singular value <= max(n, r) eps s_max ||diag(s_r)^-1 v||
// (P B moves by at most max(n, r) eps s_max per unit of coefficients along it: the
// numerical-rank cut applied to P B), or, for a basis computed from K = B B^T, <=
// options.gram_rounding s_max^2 ||diag(s_r)^-2 v||. The rank cut itself stays the one on
// B's singular values. The fitted outputs are then the point of span(U_r) with the smallest
// norm whose centred part is the centred optimum: they differ from it by a per-sample
// constant only.
//
// Certificates: `value` is Phi at the returned fitted outputs (an upper bound on the
// infimum over the span); `lower` is the weak-duality bound -sum_i w_i l*(u_i / w_i) at a
// dual point u orthogonal to the span (up to rounding; for a basis from K = B B^T, up to the
// accuracy gram_rounding gives it). For cross-entropy u sums to 0 over each sample, so u is
// orthogonal to the centred span iff it is orthogonal to the span.
//
// A warm start F0 (options.start, n values, ideally in the span, e.g. f_X(theta)) is
// projected onto the span at every cut; the solve there starts from whichever of that
// projection and the previous cut's optimum has the lower Phi, and never returns a value
// above Phi at the projection.
//
// induced_minimum_orthonormal skips the SVD for a caller that already has an orthonormal
// basis of the span (the Gram strategy gets one from a factorisation of K = B B^T).
#pragma once

#include <vector>

#include "gradbasis/loss.hpp"
#include "gradbasis/types.hpp"

namespace gradbasis {

struct InducedOptions {
  double rank_tol = 0.0;     // relative cut of the main result (sigma > rank_tol * sigma_max)
  std::vector<double> cuts;  // further relative cuts for the profile
  double tol = 1e-12;        // Newton stops when value - lower <= tol * max(1, |value|)
  int max_iter = 200;        // Newton iterations per cut
  Vector start;              // optional warm start F0 (n = m * d_y values); empty for none
  // The relative rounding of K = B B^T when the basis was computed from it: its direction j
  // is then resolved only to about gram_rounding (s_max / s_j)^2, which the cross-entropy
  // centring (above) and the dual point's orthogonality test allow for. 0 for an SVD of B.
  double gram_rounding = 0.0;
  // Threads of the parallel products (<= 0: every available thread, see resolve_threads).
  // Results do not depend on it: each thread computes whole panels of a product.
  int n_threads = 0;
};

struct InducedSolve {
  double cut = 0.0;
  Index rank = 0;
  Index solve_rank = 0;  // dimension Newton ran in: rank, or the centred span's (cross-entropy)
  double value = 0.0;
  double lower = 0.0;
  int iterations = 0;
  double gradient_norm = 0.0;  // of Phi in the orthonormal coordinates at the returned point
  bool converged = false;
  bool attained = false;    // converged with a final step that is negligible
  bool from_start = false;  // the solve began at the projection of options.start
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
InducedResult induced_minimum_orthonormal(const Eigen::Ref<const ColMatrix>& Q,
                                          ConstVectorRef scale, const Loss& loss,
                                          ConstRowMatrixRef Y, const double* weights,
                                          const InducedOptions& options);

}  // namespace gradbasis
