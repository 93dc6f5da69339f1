#include "gradbasis/induced.hpp"

#include "gradbasis/blocks.hpp"

#include <Eigen/Cholesky>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace gradbasis {
namespace {

// The number of leading entries of the non-increasing scale s above cut * s[0] (0 when s[0] <= 0).
Index leading_above(ConstVectorRef s, double cut) {
  Index r = 0;
  if (s.size() == 0 || !(s[0] > 0.0)) return r;
  while (r < s.size() && s[r] > cut * s[0]) ++r;
  return r;
}

// Thin SVD of B = U diag(s) V^T with U (n x k), k = min(n, p). When p > n, B^T is first
// reduced by Householder QR (B^T = Q R) so the SVD runs on the small n x n factor R^T.
struct RangeBasis {
  ColMatrix U;
  Vector s;
  ColMatrix W;                          // V = Q [W; 0] when reduced, else V = W
  Eigen::HouseholderQR<ColMatrix> qr;   // used only when reduced
  bool reduced = false;

  explicit RangeBasis(ConstRowMatrixRef B) {
    const Index n = B.rows(), p = B.cols();
    if (p > n) {
      reduced = true;
      qr.compute(B.transpose());
      const ColMatrix Rt = qr.matrixQR().topRows(n).triangularView<Eigen::Upper>().transpose();
      Eigen::BDCSVD<ColMatrix> svd(Rt, Eigen::ComputeFullU | Eigen::ComputeFullV);
      U = svd.matrixU();
      s = svd.singularValues();
      W = svd.matrixV();
    } else {
      Eigen::BDCSVD<ColMatrix> svd(B, Eigen::ComputeThinU | Eigen::ComputeThinV);
      U = svd.matrixU();
      s = svd.singularValues();
      W = svd.matrixV();
    }
  }

  Index rank_at(double cut) const { return leading_above(s, cut); }

  // Minimum-norm a with B a = U_r beta.
  Vector coefficients(const Vector& beta, Index p) const {
    const Index r = beta.size();
    const Vector z = W.leftCols(r) * beta.cwiseQuotient(s.head(r));
    if (!reduced) return z;
    Vector a = Vector::Zero(p);
    a.head(z.size()) = z;
    return qr.householderQ() * a;
  }
};

// Phi and its derivatives at fitted outputs F (n-vector, sample-major).
class Objective {
 public:
  Objective(const Loss& loss, ConstRowMatrixRef Y, const double* w)
      : loss_(loss), Y_(Y), w_(w), m_(Y.rows()), d_(Y.cols()) {}

  LossKind loss_kind() const { return loss_.kind; }

  double value(const Vector& F) const {
    double v = 0.0;
    for (Index i = 0; i < m_; ++i) v += w_[i] * loss_.value(F.data() + i * d_, Y_.row(i).data(), d_);
    return v;
  }
  // g_i = w_i grad l(F_i)
  void gradient(const Vector& F, Vector& g) const {
    for (Index i = 0; i < m_; ++i) {
      loss_.gradient(F.data() + i * d_, Y_.row(i).data(), d_, g.data() + i * d_);
      g.segment(i * d_, d_) *= w_[i];
    }
  }
  // HQ = blockdiag(w_i hess l(F_i)) Q
  void hessian_times(const Vector& F, const Eigen::Ref<const ColMatrix>& Q, ColMatrix& HQ) const {
    RowMatrix h(d_, d_);
    for (Index i = 0; i < m_; ++i) {
      loss_.hessian(F.data() + i * d_, Y_.row(i).data(), d_, h.data());
      HQ.middleRows(i * d_, d_).noalias() = w_[i] * h * Q.middleRows(i * d_, d_);
    }
  }
  // u_i <- w_i clip(u_i / w_i): the nearest-ish point of the conjugates' domain.
  void clip_to_domain(Vector& u) const {
    Vector s(d_);
    for (Index i = 0; i < m_; ++i) {
      s = u.segment(i * d_, d_) / w_[i];
      loss_.clip_to_domain(s.data(), Y_.row(i).data(), d_);
      u.segment(i * d_, d_) = w_[i] * s;
    }
  }

  // -sum_i w_i l*(u_i / w_i): the weak-duality lower bound for u orthogonal to the span
  // (-inf when u is outside the conjugates' domain). u = 0 is always feasible.
  double dual(const Vector& u) const {
    double v = 0.0;
    Vector s(d_);
    for (Index i = 0; i < m_; ++i) {
      s = u.segment(i * d_, d_) / w_[i];
      const double c = loss_.conjugate(s.data(), Y_.row(i).data(), d_);
      if (!std::isfinite(c)) return -std::numeric_limits<double>::infinity();
      v -= w_[i] * c;
    }
    return v;
  }

 private:
  const Loss& loss_;
  ConstRowMatrixRef Y_;
  const double* w_;
  Index m_, d_;
};

// The lower triangle of A^T B for n x r factors with a symmetric product (Q^T H Q: the
// Cholesky that follows reads only that triangle), half the flops of the full product. Computed
// in column panels, in parallel: Eigen runs a product assigned to a triangle on one thread.
void lower_product(const Eigen::Ref<const ColMatrix>& A, const ColMatrix& B, ColMatrix& out) {
  constexpr Index kPanel = 128;
  const Index r = A.cols();
  const Index panels = (r + kPanel - 1) / kPanel;
  const double work = 0.5 * static_cast<double>(A.rows()) * static_cast<double>(r) * static_cast<double>(r);
  const int threads = detail::threads_for(0, panels, work);
#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (Index p = 0; p < panels; ++p) {
    const Index j0 = p * kPanel, w = std::min(kPanel, r - j0);
    out.block(j0, j0, r - j0, w).noalias() = A.rightCols(r - j0).transpose() * B.middleCols(j0, w);
  }
}

// Damped Newton with Armijo backtracking on phi(beta) = Phi(Q beta), Q = U_r. Stops when the
// duality gap is closed to tol, when no step decreases phi at working precision, or at max_iter.
//
// Dual point: u = g - H Q z with g = grad Phi(F), H its (block-diagonal) Hessian and
// z = (Q^T H Q)^{-1} Q^T g: the gradient predicted after one more Newton step. Per-sample sums
// are kept (1^T H_i = 0 for cross-entropy) and each entry moves in proportion to its own
// curvature, so a probability that has underflowed to 0 or a hinge sample past the margin
// stays where it is and u stays in the conjugates' domain (a plain projection g - Q Q^T g
// would push such entries outside). The ridge's remainder is then projected out exactly.
// When the infimum is approached only at infinity no such u is feasible and the bound falls
// back to u = 0; a tight bound there needs a dual solve.
InducedSolve newton(const Objective& phi, const Eigen::Ref<const ColMatrix>& U, Index r, double cut, const InducedOptions& opt,
                    Vector& beta) {
  const Index n = U.rows();
  const auto Q = U.leftCols(r);
  InducedSolve out;
  out.cut = cut;
  out.rank = r;
  Vector F = Q * beta, g(n), grad(r), z(r), trial_F(n), u(n);
  ColMatrix HQ(n, r), H(r, r);
  Eigen::LLT<ColMatrix> llt;
  double value = phi.value(F);
  const double trivial_lower = phi.dual(Vector::Zero(n));  // u = 0 is always feasible
  auto certify = [&]() {
    phi.gradient(F, g);
    if (r == 0) {  // the span is {0}: every u is orthogonal to it, and g is in the domain
      out.lower = std::max(phi.dual(g), trivial_lower);
      return;
    }
    grad.noalias() = Q.transpose() * g;
    phi.hessian_times(F, Q, HQ);
    lower_product(Q, HQ, H);
    // A relative ridge keeps the solve defined where Phi is flat along the span (e.g. the
    // per-sample constant shifts that cross-entropy ignores, or hinge samples past the margin).
    const double ridge = 1e-13 * std::max(H.diagonal().maxCoeff(), std::numeric_limits<double>::min());
    H.diagonal().array() += ridge;
    llt.compute(H);
    z = llt.solve(grad);
    u = g;
    u.noalias() -= HQ * z;
    // The ridge leaves Q^T u = ridge * z. When that is above rounding (it matters when beta is
    // huge) remove it exactly; should this push entries near the domain's edge outside,
    // alternate clipping into the domain with the projection a few times. u = 0 is the last resort.
    double lower = -std::numeric_limits<double>::infinity();
    const double rounding = 64.0 * std::numeric_limits<double>::epsilon() * u.norm();
    if ((Q.transpose() * u).norm() <= rounding) lower = phi.dual(u);
    for (int k = 0; k < 64 && !std::isfinite(lower); ++k) {
      if (k > 0) phi.clip_to_domain(u);
      u.noalias() -= Q * (Q.transpose() * u);
      lower = phi.dual(u);
    }
    out.lower = std::max(lower, trivial_lower);
  };
  // Cross-entropy's infimum may lie at infinity (separable samples). Logits beyond this size
  // gain nothing (e^-4096 underflows long before) but carry rounding of eps * |F| into every
  // logit, which can push Phi below the true infimum; the iteration stops at the cap instead.
  constexpr double kMaxLogit = 4096.0;
  const bool capped_loss = phi.loss_kind() == LossKind::CrossEntropy;
  bool at_cap = false;
  int it = 0;
  for (;; ++it) {
    certify();
    if (value - out.lower <= opt.tol * std::max(1.0, std::abs(value))) {
      out.converged = true;
      break;
    }
    if (it >= opt.max_iter || r == 0) break;
    const double decrement = grad.dot(z);
    bool accepted = false;
    at_cap = false;  // only the last line search decides whether the cap stopped the iteration
    double t = 1.0;
    for (int k = 0; k < 60 && decrement > 0.0; ++k, t *= 0.5) {
      trial_F = F;
      trial_F.noalias() -= t * (Q * z);
      if (capped_loss && trial_F.lpNorm<Eigen::Infinity>() > kMaxLogit) {
        at_cap = true;
        continue;  // a shorter step may still stay inside
      }
      const double trial = phi.value(trial_F);
      if (trial <= value - 1e-4 * t * decrement) {
        beta -= t * z;
        F = trial_F;
        value = trial;
        accepted = true;
        break;
      }
    }
    if (!accepted) {  // no decrease left at working precision (or only beyond the cap)
      out.converged = !at_cap;
      break;
    }
  }
  // Phi at outputs exactly in the span (the running F carries the steps' rounding).
  F.noalias() = Q * beta;
  value = phi.value(F);
  out.iterations = it;
  out.value = value;
  out.gradient_norm = grad.norm();
  // Attained: squared and smoothed-hinge objectives always attain their infimum (each term
  // reaches its minimum at a finite argument, so no ray leads to a lower value at infinity).
  // Cross-entropy terms only approach 0: along a separating direction the Newton decrement
  // stays comparable to the value itself (for log(1 + e^-t) they are equal), while at an
  // attained minimum it is negligible next to it. A value of exactly 0 is underflow.
  const double decrement = grad.dot(z);
  const bool settles = phi.loss_kind() != LossKind::CrossEntropy || (value > 0.0 && decrement <= 1e-6 * value);
  out.attained = out.converged && settles && !at_cap;
  out.lower = std::min(out.lower, value);  // never an inverted interval: the dual bound holds below Phi(F)
  return out;
}

// Every cut from the largest down (each span contains the previous one, so its optimum
// warm-starts the next); returns the main cut's coordinates in U's leading columns.
Vector solve_cuts(const Objective& phi, const Eigen::Ref<const ColMatrix>& U, const std::function<Index(double)>& rank_at,
                  const InducedOptions& options, InducedResult& result) {
  std::vector<double> cuts = options.cuts;
  cuts.push_back(options.rank_tol);
  std::sort(cuts.begin(), cuts.end(), std::greater<double>());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  Vector beta(0), main_beta(0);
  for (double cut : cuts) {
    const Index r = rank_at(cut);
    Vector start = Vector::Zero(r);
    start.head(std::min(r, beta.size())) = beta.head(std::min(r, beta.size()));
    beta = start;
    InducedSolve solve = newton(phi, U, r, cut, options, beta);
    if (cut == options.rank_tol) {
      result.main = solve;
      main_beta = beta;
    }
    result.profile.push_back(solve);
  }
  return main_beta;
}

void set_fitted(const Eigen::Ref<const ColMatrix>& U, const Vector& beta, ConstRowMatrixRef Y, InducedResult& result) {
  const Vector F = U.leftCols(beta.size()) * beta;
  result.fitted = Eigen::Map<const RowMatrix>(F.data(), Y.rows(), Y.cols());
}

}  // namespace

InducedResult induced_minimum(ConstRowMatrixRef B, const Loss& loss, ConstRowMatrixRef Y,
                              const double* weights, const InducedOptions& options) {
  const RangeBasis basis(B);
  const Objective phi(loss, Y, weights);
  InducedResult result;
  result.singular_values = basis.s;
  const Vector beta = solve_cuts(phi, basis.U, [&](double cut) { return basis.rank_at(cut); }, options, result);
  result.alpha = basis.coefficients(beta, B.cols());
  set_fitted(basis.U, beta, Y, result);
  return result;
}

InducedResult induced_minimum_orthonormal(const Eigen::Ref<const ColMatrix>& Q, ConstVectorRef scale,
                                          const Loss& loss, ConstRowMatrixRef Y, const double* weights,
                                          const InducedOptions& options) {
  const Objective phi(loss, Y, weights);
  InducedResult result;
  result.singular_values = scale;
  const Vector beta = solve_cuts(phi, Q, [&](double cut) { return leading_above(scale, cut); }, options, result);
  result.alpha = Vector::Zero(Q.cols());
  result.alpha.head(beta.size()) = beta;
  set_fitted(Q, beta, Y, result);
  return result;
}

}  // namespace gradbasis
