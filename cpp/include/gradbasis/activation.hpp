// Elementwise activations with first and second derivatives.
#pragma once

#include <cmath>

#include "gradbasis/types.hpp"

namespace gradbasis {

enum class ActivationKind : int {
  Identity = 0,
  Relu = 1,
  LeakyRelu = 2,
  Tanh = 3,
  Sigmoid = 4,
  Softplus = 5,
  Gelu = 6,
};

struct Activation {
  ActivationKind kind = ActivationKind::Identity;
  double negative_slope = 0.0;  // used by LeakyRelu only

  // True when the derivative jumps somewhere (at 0): relu, leaky relu with slope != 1.
  bool has_kink() const {
    return kind == ActivationKind::Relu ||
           (kind == ActivationKind::LeakyRelu && negative_slope != 1.0);
  }
  // True when sigma'' vanishes everywhere it exists (piecewise linear units).
  bool piecewise_linear() const {
    return kind == ActivationKind::Identity || kind == ActivationKind::Relu ||
           kind == ActivationKind::LeakyRelu;
  }
};

// out[k] = sigma(pre[k]) for k < n.
void activation_apply(const Activation& act, const double* pre, double* out, Index n);
// d1 = sigma'(pre), d2 = sigma''(pre) (d2 may be null when not needed); out = sigma(pre)
// lets tanh and sigmoid reuse their values.
void activation_derivatives(const Activation& act, const double* pre, const double* out, double* d1,
                            double* d2, Index n);

}  // namespace gradbasis
