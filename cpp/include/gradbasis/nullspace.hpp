// Orthonormal null-space bases: the structural perturbation directions of Theorem 2
// (layer-input left null spaces, Null(W) of Theorem 3, chains of Theorem 4) all start here.
#pragma once

#include "gradbasis/types.hpp"

namespace gradbasis {

struct NullBasis {
  ColMatrix basis;         // (cols(A) x k), orthonormal columns spanning {b : A b ~ 0}
  Vector singular_values;  // all singular values of A, descending
  Index rank = 0;          // cols(A) - k
  double cutoff = 0.0;     // absolute cut: sigma <= cutoff counts as zero
};

// Right null space of A (r x c) by a full SVD: singular directions with
// sigma <= rtol * sigma_max (and every direction beyond min(r, c)) span it. A zero matrix
// has the whole space as null space.
NullBasis null_basis(ConstRowMatrixRef A, double rtol);

}  // namespace gradbasis
