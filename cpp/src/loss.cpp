#include "gradbasis/loss.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gradbasis {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Softmax of q into out; returns log-sum-exp(q). Shifted by the max so exp never overflows.
double softmax(const double* q, Index d, double* out) {
  const double top = *std::max_element(q, q + d);
  double total = 0.0;
  for (Index k = 0; k < d; ++k) {
    out[k] = std::exp(q[k] - top);
    total += out[k];
  }
  for (Index k = 0; k < d; ++k) out[k] /= total;
  return top + std::log(total);
}

double sum(const double* a, Index d) {
  double s = 0.0;
  for (Index k = 0; k < d; ++k) s += a[k];
  return s;
}

// Smoothed hinge in the margin t = y q: phi(t) = max(0, 1 - t)^p, returns phi^(order)(t).
double hinge_derivative(double p, double t, int order) {
  const double w = 1.0 - t;
  if (w <= 0.0) return 0.0;
  switch (order) {
    case 0: return std::pow(w, p);
    case 1: return -p * std::pow(w, p - 1.0);
    default: return p * (p - 1.0) * std::pow(w, p - 2.0);
  }
}

}  // namespace

double Loss::value(const double* q, const double* y, Index d) const {
  switch (kind) {
    case LossKind::Squared: {
      double s = 0.0;
      for (Index k = 0; k < d; ++k) s += (q[k] - y[k]) * (q[k] - y[k]);
      return s;
    }
    case LossKind::CrossEntropy: {
      // -sum_k y_k log softmax(q)_k = lse(q) sum(y) - <y, q>.
      const double top = *std::max_element(q, q + d);
      double total = 0.0, yq = 0.0;
      for (Index k = 0; k < d; ++k) {
        total += std::exp(q[k] - top);
        yq += y[k] * (q[k] - top);
      }
      return std::log(total) * sum(y, d) - yq;
    }
    case LossKind::SmoothedHinge: return hinge_derivative(p, y[0] * q[0], 0);
  }
  return 0.0;
}

void Loss::gradient(const double* q, const double* y, Index d, double* out) const {
  switch (kind) {
    case LossKind::Squared:
      for (Index k = 0; k < d; ++k) out[k] = 2.0 * (q[k] - y[k]);
      break;
    case LossKind::CrossEntropy: {
      softmax(q, d, out);
      const double mass = sum(y, d);
      for (Index k = 0; k < d; ++k) out[k] = out[k] * mass - y[k];
      break;
    }
    case LossKind::SmoothedHinge: out[0] = y[0] * hinge_derivative(p, y[0] * q[0], 1); break;
  }
}

void Loss::hessian(const double* q, const double* y, Index d, double* out) const {
  switch (kind) {
    case LossKind::Squared:
      for (Index a = 0; a < d; ++a)
        for (Index b = 0; b < d; ++b) out[a * d + b] = a == b ? 2.0 : 0.0;
      break;
    case LossKind::CrossEntropy: {
      // sum(y) (diag(s) - s s^T), s = softmax(q); the first d entries of out hold s meanwhile.
      softmax(q, d, out);
      Eigen::VectorXd s = Eigen::Map<const Eigen::VectorXd>(out, d);
      const double mass = sum(y, d);
      for (Index a = 0; a < d; ++a)
        for (Index b = 0; b < d; ++b) out[a * d + b] = mass * ((a == b ? s[a] : 0.0) - s[a] * s[b]);
      break;
    }
    case LossKind::SmoothedHinge: out[0] = hinge_derivative(p, y[0] * q[0], 2); break;
  }
}

void Loss::hessian_vector(const double* q, const double* y, Index d, const double* v,
                          double* out) const {
  switch (kind) {
    case LossKind::Squared:
      for (Index k = 0; k < d; ++k) out[k] = 2.0 * v[k];
      break;
    case LossKind::CrossEntropy: {
      softmax(q, d, out);
      const double mass = sum(y, d);
      double sv = 0.0;
      for (Index k = 0; k < d; ++k) sv += out[k] * v[k];
      for (Index k = 0; k < d; ++k) out[k] = mass * out[k] * (v[k] - sv);
      break;
    }
    case LossKind::SmoothedHinge: out[0] = hinge_derivative(p, y[0] * q[0], 2) * v[0]; break;
  }
}

double Loss::conjugate(const double* s, const double* y, Index d) const {
  switch (kind) {
    case LossKind::Squared: {
      // sup_q <s,q> - |q-y|^2 is attained at q = y + s/2.
      double v = 0.0;
      for (Index k = 0; k < d; ++k) v += s[k] * y[k] + 0.25 * s[k] * s[k];
      return v;
    }
    case LossKind::CrossEntropy: {
      // l(q) = lse(q) - <y,q> for a probability vector y, so l*(s) = negentropy(s + y)
      // on the simplex and +inf off it.
      double total = 0.0, v = 0.0;
      for (Index k = 0; k < d; ++k) {
        const double pk = s[k] + y[k];
        if (pk < -kConjugateSlack) return kInf;
        total += pk;
        if (pk > 0.0) v += pk * std::log(pk);
      }
      return std::abs(total - 1.0) <= kConjugateSlack ? v : kInf;
    }
    case LossKind::SmoothedHinge: {
      // l(q) = phi(y q) with y^2 = 1, so l*(s) = phi*(y s); phi*(r) = +inf for r > 0 and
      // r + (1 - 1/p)|r| (|r|/p)^(1/(p-1)) for r <= 0.
      const double r = y[0] * s[0];
      if (r > 0.0) return kInf;
      const double a = -r;
      return r + (1.0 - 1.0 / p) * a * std::pow(a / p, 1.0 / (p - 1.0));
    }
  }
  return kInf;
}

}  // namespace gradbasis

namespace gradbasis {

void loss_rows(const Loss& loss, LossQuantity what, ConstRowMatrixRef Q, ConstRowMatrixRef Y, double* out) {
  const Index d = Q.cols();
  for (Index i = 0; i < Q.rows(); ++i) {
    const double* q = Q.row(i).data();
    const double* y = Y.row(i).data();
    switch (what) {
      case LossQuantity::Value: out[i] = loss.value(q, y, d); break;
      case LossQuantity::Gradient: loss.gradient(q, y, d, out + i * d); break;
      case LossQuantity::Hessian: loss.hessian(q, y, d, out + i * d * d); break;
      case LossQuantity::Conjugate: out[i] = loss.conjugate(q, y, d); break;
    }
  }
}

}  // namespace gradbasis
