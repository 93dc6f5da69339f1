#include "gradbasis/activation.hpp"

#include <cmath>

namespace gradbasis {
namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

inline double sigmoid(double x) {
  // Split by sign so exp never overflows.
  if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

inline double softplus(double x) {
  return x > 0.0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

template <class F>
inline void map_elements(const double* src, double* dst, Index n, F f) {
  for (Index k = 0; k < n; ++k) dst[k] = f(src[k]);
}

}  // namespace

void activation_apply(const Activation& act, const double* pre, double* out, Index n) {
  const double s = act.negative_slope;
  switch (act.kind) {
    case ActivationKind::Identity:
      map_elements(pre, out, n, [](double x) { return x; });
      break;
    case ActivationKind::Relu:
      map_elements(pre, out, n, [](double x) { return x > 0.0 ? x : 0.0; });
      break;
    case ActivationKind::LeakyRelu:
      map_elements(pre, out, n, [s](double x) { return x > 0.0 ? x : s * x; });
      break;
    case ActivationKind::Tanh:
      map_elements(pre, out, n, [](double x) { return std::tanh(x); });
      break;
    case ActivationKind::Sigmoid:
      map_elements(pre, out, n, sigmoid);
      break;
    case ActivationKind::Softplus:
      map_elements(pre, out, n, softplus);
      break;
    case ActivationKind::Gelu:
      map_elements(pre, out, n, [](double x) { return 0.5 * x * std::erfc(-x * kInvSqrt2); });
      break;
  }
}

void activation_derivatives(const Activation& act, const double* x, const double* y, double* g,
                            double* h, Index n) {
  const double s = act.negative_slope;
  switch (act.kind) {
    case ActivationKind::Identity:
      for (Index k = 0; k < n; ++k) g[k] = 1.0;
      if (h)
        for (Index k = 0; k < n; ++k) h[k] = 0.0;
      break;
    case ActivationKind::Relu:
    case ActivationKind::LeakyRelu: {
      const double left = act.kind == ActivationKind::Relu ? 0.0 : s;
      // The derivative at exactly 0 is taken from the left, as PyTorch does.
      for (Index k = 0; k < n; ++k) g[k] = x[k] > 0.0 ? 1.0 : left;
      if (h)
        for (Index k = 0; k < n; ++k) h[k] = 0.0;
      break;
    }
    case ActivationKind::Tanh:
      for (Index k = 0; k < n; ++k) g[k] = 1.0 - y[k] * y[k];
      if (h)
        for (Index k = 0; k < n; ++k) h[k] = -2.0 * y[k] * g[k];
      break;
    case ActivationKind::Sigmoid:
      for (Index k = 0; k < n; ++k) g[k] = y[k] * (1.0 - y[k]);
      if (h)
        for (Index k = 0; k < n; ++k) h[k] = g[k] * (1.0 - 2.0 * y[k]);
      break;
    case ActivationKind::Softplus:
      for (Index k = 0; k < n; ++k) g[k] = sigmoid(x[k]);
      if (h)
        for (Index k = 0; k < n; ++k) h[k] = g[k] * (1.0 - g[k]);
      break;
    case ActivationKind::Gelu:
      for (Index k = 0; k < n; ++k) {
        const double phi = kInvSqrt2Pi * std::exp(-0.5 * x[k] * x[k]);
        g[k] = 0.5 * std::erfc(-x[k] * kInvSqrt2) + x[k] * phi;
        if (h) h[k] = phi * (2.0 - x[k] * x[k]);
      }
      break;
  }
}

}  // namespace gradbasis
