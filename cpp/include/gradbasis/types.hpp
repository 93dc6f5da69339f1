// Shared Eigen aliases: the Python layer hands C-contiguous float64 arrays, so
// sample-major matrices are row-major; parameter blocks inside theta are
// column-major (the paper's vec), so they map onto Eigen's default order.
#pragma once

#include <Eigen/Core>

namespace gradbasis {

using Index = Eigen::Index;
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ColMatrix = Eigen::MatrixXd;
using Vector = Eigen::VectorXd;

using RowMatrixRef = Eigen::Ref<RowMatrix>;
using ConstRowMatrixRef = Eigen::Ref<const RowMatrix>;
using VectorRef = Eigen::Ref<Vector>;
using ConstVectorRef = Eigen::Ref<const Vector>;

}  // namespace gradbasis
