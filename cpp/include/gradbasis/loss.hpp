// Convex per-sample losses l(q, y) of DESIGN.md, with gradient, Hessian and
// convex conjugate l*(s, y) = sup_q <s, q> - l(q, y).
#pragma once

#include <limits>

#include "gradbasis/types.hpp"

namespace gradbasis {

enum class LossKind : int { Squared = 0, CrossEntropy = 1, SmoothedHinge = 2 };

struct Loss {
  LossKind kind = LossKind::Squared;
  double p = 2.0;  // smoothed hinge exponent, p >= 2

  // All take one sample: q, y (and s, v, out) point at d values; hessian writes d*d row-major.
  double value(const double* q, const double* y, Index d) const;
  void gradient(const double* q, const double* y, Index d, double* out) const;
  void hessian(const double* q, const double* y, Index d, double* out) const;
  void hessian_vector(const double* q, const double* y, Index d, const double* v,
                      double* out) const;
  // +inf outside the conjugate's domain. Cross-entropy with target mass M = sum_k y_k is
  // l(q) = M lse(q) - <y, q>, so l*(s) = sum_k p_k log(p_k / M) for p = s + y >= 0 (exactly)
  // with sum_k s_k = 0, the sum allowed a rounding-level slack (conjugate_sum_slack); the
  // smoothed hinge needs y s <= 0.
  double conjugate(const double* s, const double* y, Index d) const;

  // Moves s to a nearby point of the conjugate's domain (cross-entropy: s + y clipped to >= 0,
  // the excess taken off the largest entry; hinge: y s clipped to <= 0; squared: unchanged).
  void clip_to_domain(double* s, const double* y, Index d) const;

  // How far |sum_k s_k| may be from 0 in the cross-entropy conjugate: kConjugateSlack * d *
  // (M + sum_k |s_k|), rounding-level relative to the numbers summed (a sum of d terms
  // carries rounding of about d eps times their magnitudes).
  static constexpr double kConjugateSlack = 16.0 * std::numeric_limits<double>::epsilon();
  static double conjugate_sum_slack(const double* s, const double* y, Index d);
};

}  // namespace gradbasis

namespace gradbasis {

// Row-wise over samples: Q, Y (and S) are (m x d); out has m entries (value, conjugate),
// m x d (gradient) or m x d*d (hessian, each row a row-major d x d block).
enum class LossQuantity : int { Value = 0, Gradient = 1, Hessian = 2, Conjugate = 3 };
void loss_rows(const Loss& loss, LossQuantity what, ConstRowMatrixRef Q, ConstRowMatrixRef Y,
               double* out);

}  // namespace gradbasis
