#include "gradbasis/nullspace.hpp"

#include <Eigen/SVD>
#include <stdexcept>

namespace gradbasis {

NullBasis null_basis(ConstRowMatrixRef A, double rtol) {
  if (!(rtol >= 0.0 && rtol < 1.0))
    throw std::invalid_argument("null_basis: rtol must lie in [0, 1)");
  const Index c = A.cols();
  NullBasis out;
  if (c == 0) {
    out.basis = ColMatrix(0, 0);
    out.singular_values = Vector(0);
    return out;
  }
  if (A.rows() == 0) {
    out.basis = ColMatrix::Identity(c, c);
    out.singular_values = Vector(0);
    return out;
  }
  // Full V is c x c; c is a layer width (+1), so this stays small even for many samples.
  Eigen::BDCSVD<ColMatrix> svd(ColMatrix(A), Eigen::ComputeFullV);
  out.singular_values = svd.singularValues();
  const double smax = out.singular_values.size() ? out.singular_values(0) : 0.0;
  out.cutoff = rtol * smax;
  Index rank = 0;
  for (Index k = 0; k < out.singular_values.size(); ++k)
    if (out.singular_values(k) > out.cutoff && out.singular_values(k) > 0.0) ++rank;
  out.rank = rank;
  out.basis = svd.matrixV().rightCols(c - rank);
  return out;
}

}  // namespace gradbasis
