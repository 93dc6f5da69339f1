#include "gradbasis/loss.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gradbasis {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Softmax of q, kept accurate when one logit dominates: with j the largest logit and
// rest = sum_{k != j} exp(q_k - q_j), the probabilities are exp(q_k - q_j) / (1 + rest) and
// log-sum-exp is q_j + log1p(rest). `rest` carries the tiny complement 1 - p_j exactly, which
// a plain 1 - p_j would round to 0 once the losses of separable data fall below 1e-16.
struct Softmax {
  Index top = 0;
  double rest = 0.0;  // sum of exp(q_k - q_top) over k != top
  double lse = 0.0;   // log-sum-exp of q
};

Softmax softmax(const double* q, Index d, double* p) {
  Softmax sm;
  sm.top = static_cast<Index>(std::max_element(q, q + d) - q);
  for (Index k = 0; k < d; ++k) {
    p[k] = k == sm.top ? 1.0 : std::exp(q[k] - q[sm.top]);
    if (k != sm.top) sm.rest += p[k];
  }
  for (Index k = 0; k < d; ++k) p[k] /= 1.0 + sm.rest;
  sm.lse = q[sm.top] + std::log1p(sm.rest);
  return sm;
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
    case 0:
      return std::pow(w, p);
    case 1:
      return -p * std::pow(w, p - 1.0);
    default:
      return p * (p - 1.0) * std::pow(w, p - 2.0);
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
      // -sum_k y_k log softmax(q)_k = sum_k y_k (q_top - q_k + log1p(rest)), every term >= 0.
      const Index top = static_cast<Index>(std::max_element(q, q + d) - q);
      double rest = 0.0, v = 0.0;
      for (Index k = 0; k < d; ++k)
        if (k != top) rest += std::exp(q[k] - q[top]);
      const double log_total = std::log1p(rest);
      for (Index k = 0; k < d; ++k) v += y[k] * (q[top] - q[k] + log_total);
      return v;
    }
    case LossKind::SmoothedHinge:
      return hinge_derivative(p, y[0] * q[0], 0);
  }
  return 0.0;
}

void Loss::gradient(const double* q, const double* y, Index d, double* out) const {
  switch (kind) {
    case LossKind::Squared:
      for (Index k = 0; k < d; ++k) out[k] = 2.0 * (q[k] - y[k]);
      break;
    case LossKind::CrossEntropy: {
      // sum(y) softmax(q) - y, with the top entry written as (sum(y) - y_top) - sum(y) * rest / (1
      // + rest) so that a confident, correct prediction keeps its tiny gradient.
      const Softmax sm = softmax(q, d, out);
      const double mass = sum(y, d);
      for (Index k = 0; k < d; ++k) out[k] = out[k] * mass - y[k];
      out[sm.top] = (mass - y[sm.top]) - mass * sm.rest / (1.0 + sm.rest);
      break;
    }
    case LossKind::SmoothedHinge:
      out[0] = y[0] * hinge_derivative(p, y[0] * q[0], 1);
      break;
  }
}

void Loss::hessian(const double* q, const double* y, Index d, double* out) const {
  switch (kind) {
    case LossKind::Squared:
      for (Index a = 0; a < d; ++a)
        for (Index b = 0; b < d; ++b) out[a * d + b] = a == b ? 2.0 : 0.0;
      break;
    case LossKind::CrossEntropy: {
      // sum(y) (diag(s) - s s^T), s = softmax(q); diagonal s_a (1 - s_a) with 1 - s_top = rest / (1
      // + rest).
      Eigen::VectorXd s(d);
      const Softmax sm = softmax(q, d, s.data());
      const double mass = sum(y, d);
      for (Index a = 0; a < d; ++a)
        for (Index b = 0; b < d; ++b) out[a * d + b] = -mass * s[a] * s[b];
      for (Index a = 0; a < d; ++a) {
        const double complement = a == sm.top ? sm.rest / (1.0 + sm.rest) : 1.0 - s[a];
        out[a * d + a] = mass * s[a] * complement;
      }
      break;
    }
    case LossKind::SmoothedHinge:
      out[0] = hinge_derivative(p, y[0] * q[0], 2);
      break;
  }
}

void Loss::hessian_vector(const double* q, const double* y, Index d, const double* v,
                          double* out) const {
  switch (kind) {
    case LossKind::Squared:
      for (Index k = 0; k < d; ++k) out[k] = 2.0 * v[k];
      break;
    case LossKind::CrossEntropy: {
      // sum(y) s * (v - <s, v>), with v_top - <s, v> = v_top rest / (1 + rest) - sum_{k != top} s_k
      // v_k.
      const Softmax sm = softmax(q, d, out);
      const double mass = sum(y, d);
      double sv_rest = 0.0;
      for (Index k = 0; k < d; ++k)
        if (k != sm.top) sv_rest += out[k] * v[k];
      const double top_term = v[sm.top] * sm.rest / (1.0 + sm.rest) - sv_rest;
      const double sv = out[sm.top] * v[sm.top] + sv_rest;
      for (Index k = 0; k < d; ++k) out[k] = mass * out[k] * (k == sm.top ? top_term : v[k] - sv);
      break;
    }
    case LossKind::SmoothedHinge:
      out[0] = hinge_derivative(p, y[0] * q[0], 2) * v[0];
      break;
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
      // l(q) = M lse(q) - <y, q> with M = sum_k y_k (M = 1 for a probability vector, but
      // targets are accepted with M within a tolerance of 1), so l*(s) = sup_q <s + y, q> -
      // M lse(q) = sum_k p_k log(p_k / M) for p = s + y >= 0 with sum_k p_k = M, i.e.
      // sum_k s_k = 0, and +inf otherwise. Entries must be >= 0 exactly; only the sum, which
      // no floating-point vector meets exactly, gets a rounding-level slack.
      const double mass = sum(y, d);
      if (!(mass > 0.0)) return kInf;
      double total = 0.0, v = 0.0;
      for (Index k = 0; k < d; ++k) {
        const double pk = s[k] + y[k];
        if (pk < 0.0) return kInf;
        total += s[k];
        if (pk > 0.0) v += pk * std::log(pk / mass);
      }
      return std::abs(total) <= conjugate_sum_slack(s, y, d) ? v : kInf;
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

double Loss::conjugate_sum_slack(const double* s, const double* y, Index d) {
  double scale = 0.0;
  for (Index k = 0; k < d; ++k) scale += std::abs(y[k]) + std::abs(s[k]);
  return kConjugateSlack * static_cast<double>(d) * scale;
}

void Loss::clip_to_domain(double* s, const double* y, Index d) const {
  switch (kind) {
    case LossKind::Squared:
      break;
    case LossKind::CrossEntropy: {
      Index top = 0;
      double added = 0.0;
      for (Index k = 0; k < d; ++k) {
        if (s[k] + y[k] < 0.0) {
          added += -(s[k] + y[k]);
          s[k] = -y[k];
        }
        if (s[k] + y[k] > s[top] + y[top]) top = k;
      }
      s[top] -= added;
      break;
    }
    case LossKind::SmoothedHinge:
      if (y[0] * s[0] > 0.0) s[0] = 0.0;
      break;
  }
}

}  // namespace gradbasis

namespace gradbasis {

void loss_rows(const Loss& loss, LossQuantity what, ConstRowMatrixRef Q, ConstRowMatrixRef Y,
               double* out) {
  const Index d = Q.cols();
  for (Index i = 0; i < Q.rows(); ++i) {
    const double* q = Q.row(i).data();
    const double* y = Y.row(i).data();
    switch (what) {
      case LossQuantity::Value:
        out[i] = loss.value(q, y, d);
        break;
      case LossQuantity::Gradient:
        loss.gradient(q, y, d, out + i * d);
        break;
      case LossQuantity::Hessian:
        loss.hessian(q, y, d, out + i * d * d);
        break;
      case LossQuantity::Conjugate:
        out[i] = loss.conjugate(q, y, d);
        break;
    }
  }
}

}  // namespace gradbasis
