#include "gradbasis/induced.hpp"

#include "gradbasis/threads.hpp"

#include <Eigen/Cholesky>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>

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
  ColMatrix W;                         // V = Q [W; 0] when reduced, else V = W
  Eigen::HouseholderQR<ColMatrix> qr;  // used only when reduced
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
  Index outputs() const { return d_; }
  Index samples() const { return m_; }

  double value(const Vector& F) const {
    double v = 0.0;
    for (Index i = 0; i < m_; ++i)
      v += w_[i] * loss_.value(F.data() + i * d_, Y_.row(i).data(), d_);
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
// in column panels, in parallel on up to n_threads threads: Eigen runs a product assigned to a
// triangle on one thread.
void lower_product(const Eigen::Ref<const ColMatrix>& A, const ColMatrix& B, ColMatrix& out,
                   int n_threads) {
  constexpr Index kPanel = 128;
  const Index r = A.cols();
  const Index panels = (r + kPanel - 1) / kPanel;
  const double work =
      0.5 * static_cast<double>(A.rows()) * static_cast<double>(r) * static_cast<double>(r);
  const int threads = detail::threads_for(n_threads, panels, work);
#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (Index p = 0; p < panels; ++p) {
    const Index j0 = p * kPanel, w = std::min(kPanel, r - j0);
    out.block(j0, j0, r - j0, w).noalias() = A.rightCols(r - j0).transpose() * B.middleCols(j0, w);
  }
}

// Removes each sample's mean output from every column: M <- P M, P = I - (1/d) blockdiag(1 1^T).
void centre(ColMatrix& M, Index d) {
  const Index m = M.rows() / d;
  for (Index j = 0; j < M.cols(); ++j)
    for (Index i = 0; i < m; ++i) {
      auto block = M.col(j).segment(i * d, d);
      block.array() -= block.mean();
    }
}

// Orthonormalises Z's columns in place (Z <- Z T^-1, T upper triangular): two rounds of
// Cholesky QR (the second restores orthogonality to rounding when the first left it within
// 1/2 of the identity), Householder QR when Z^T Z is not numerically positive definite.
void orthonormalise(ColMatrix& Z, int n_threads) {
  const Index k = Z.cols();
  if (k == 0) return;
  ColMatrix G(k, k);
  for (int round = 0; round < 2; ++round) {
    lower_product(Z, Z, G, n_threads);
    Eigen::LLT<ColMatrix> llt(G);
    const double drift =
        (G.triangularView<Eigen::Lower>().toDenseMatrix() - ColMatrix::Identity(k, k))
            .cwiseAbs()
            .maxCoeff();
    if (llt.info() != Eigen::Success || (round == 1 && drift > 0.5)) {
      Eigen::HouseholderQR<ColMatrix> qr(Z);
      Z = qr.householderQ() * ColMatrix::Identity(Z.rows(), k);
      return;
    }
    llt.matrixU().solveInPlace<Eigen::OnTheRight>(Z);
  }
}

// The space cross-entropy is solved in at each cut: Phi(F) = Phi(P F), so the per-sample
// constant shifts in span(U_r) are quotiented out and Newton runs on an orthonormal basis Z
// (n x k) of the centred span P span(U_r) = range(D_r), D_r = P U_r.
//
// Which directions of D_r count: P kills the per-sample-constant directions of the span, but a
// basis computed in floating point carries them with centred parts of its own rounding, and
// a direction with centred part sigma needs coefficients 1 / sigma to be used: rounding would
// turn into free O(1) moves. An SVD of B resolves its direction j to about eps s_max / s_j,
// so a right singular vector v of D_r (singular value sigma) is left out as rounding when
// sigma <= max(n, r) eps s_max ||diag(s_r)^-1 v|| (P B moves by at most max(n, r) eps s_max
// per unit of coefficients along it: the usual numerical-rank cut, applied to P B). A basis
// computed from K = B B^T with relative rounding gram_rounding resolves direction j only to
// about gram_rounding (s_max / s_j)^2, so v is then also left out when sigma <=
// gram_rounding s_max^2 ||diag(s_r)^-2 v||. Every other direction is kept, so the centred
// span is that of B at the cut, less rounding. D_r is used unscaled, so that directions with
// small singular values of B keep their centred parts to rounding.
//
// One Householder QR of D_rmax serves every cut, since the QR of a column prefix is the prefix
// of the QR (D_r = Q_r R_rr): each distinct r needs only the SVD of the r x r triangle R_rr.
// Z is centred once more and re-orthonormalised, so u - Z Z^T u keeps u's per-sample sums.
// to_y maps coordinates beta in Z to y = D_r^+ Z beta in U_r (over the kept directions):
// P U_r y = Z beta with ||U_r y|| smallest (the fitted outputs carry the smallest per-sample
// constants that make them a point of the span).
struct CentredSpace {
  ColMatrix Z;
  ColMatrix to_y;
};

class CentredSpaces {
 public:
  CentredSpaces(const Eigen::Ref<const ColMatrix>& U, ConstVectorRef scale, Index r_max, Index d,
                double gram_rounding, int n_threads)
      : scale_(scale), d_(d), n_(U.rows()), gram_rounding_(gram_rounding), n_threads_(n_threads) {
    if (r_max == 0) return;
    ColMatrix D = U.leftCols(r_max);
    centre(D, d);
    Eigen::HouseholderQR<Eigen::Ref<ColMatrix>> qr(D);  // in place: D holds the factor
    R_ = qr.matrixQR().topRows(r_max).triangularView<Eigen::Upper>();
    Q_ = qr.householderQ() * ColMatrix::Identity(n_, r_max);
  }

  // The centred space of span(U_r) (the same for every cut with this r).
  const CentredSpace& at(Index r) {
    if (r == space_rank_) return space_;
    space_rank_ = r;
    space_.Z.resize(n_, 0);
    space_.to_y.resize(r, 0);
    if (r == 0) return space_;
    Eigen::BDCSVD<ColMatrix> svd(R_.topLeftCorner(r, r), Eigen::ComputeFullU | Eigen::ComputeFullV);
    const double rounding =
        static_cast<double>(std::max(n_, r)) * std::numeric_limits<double>::epsilon();
    std::vector<Index> kept;
    const Vector inv_scale = scale_[0] * scale_.head(r).cwiseInverse();  // s_max / s_j >= 1
    for (Index j = 0; j < r; ++j) {
      const auto v = svd.matrixV().col(j);
      const double sigma = svd.singularValues()[j];
      const double svd_noise = rounding * v.cwiseProduct(inv_scale).norm();
      const double gram_noise = gram_rounding_ * v.cwiseProduct(inv_scale.cwiseAbs2()).norm();
      if (sigma > svd_noise && sigma > gram_noise) kept.push_back(j);
    }
    const Index k = static_cast<Index>(kept.size());
    if (k == 0) return space_;
    ColMatrix UR(r, k), VR(r, k);
    Vector inv(k);
    for (Index c = 0; c < k; ++c) {
      UR.col(c) = svd.matrixU().col(kept[c]);
      VR.col(c) = svd.matrixV().col(kept[c]);
      inv[c] = 1.0 / svd.singularValues()[kept[c]];
    }
    const ColMatrix Y = Q_.leftCols(r) * UR;  // D_r's kept left singular vectors
    space_.Z = Y;
    centre(space_.Z, d_);
    orthonormalise(space_.Z, n_threads_);
    ColMatrix coords(k, k);
    coords.noalias() = Y.transpose() * space_.Z;
    space_.to_y = VR * (inv.asDiagonal() * coords);
    return space_;
  }

 private:
  ConstVectorRef scale_;
  Index d_, n_;
  double gram_rounding_;
  int n_threads_;
  ColMatrix Q_, R_;
  Index space_rank_ = -1;
  CentredSpace space_;
};

// Damped, regularised Newton with Armijo backtracking on phi(beta) = Phi(Q beta) for Q (n x k)
// with orthonormal columns. Stops when the duality gap is closed to tol, when no step
// decreases phi at working precision, or at max_iter.
//
// noise[j] is the relative accuracy to which Q's column j lies in the span: rounding for an
// SVD of B, more for a basis from K = B B^T (basis_noise). The gradient's component along
// column j carries rounding of about noise[j] ||g||, which is all there is along directions of
// zero curvature (hinge samples past the margin, separable cross-entropy).
//
// Step: z = (Q^T H Q + R)^{-1} Q^T g with the diagonal ridge R = max(1e-13 h, mu h) + 1e3
// ||g|| diag(noise) for the losses whose curvature can vanish, h the largest diagonal entry of
// Q^T H Q. The last term is regularised Newton with a ridge proportional to the gradient:
// rounding in the gradient, divided by it, moves F by at most 1e-3 along a flat direction,
// while directions with curvature above it (~1e-11 ||g|| for an SVD) are solved as by Newton
// and quadratic convergence is kept. mu is a Levenberg-Marquardt factor: 0 while full steps
// succeed; when a line search finds no decrease it grows (x100, up to 1e8) and the step is
// retried, turning into a short gradient-like step. The squared loss, whose Hessian is
// constant, keeps the 1e-13 h floor alone and is solved exactly in one step. Only strict
// decreases are accepted, so the iterates never wander on a plateau of equal values.
//
// Dual point: u = g - H Q z with g = grad Phi(F), H its (block-diagonal) Hessian: the
// gradient predicted after one more Newton step. Per-sample sums are kept (1^T H_i = 0 for
// cross-entropy) and each entry moves in proportion to its own curvature, so a probability
// that has underflowed to 0 or a hinge sample past the margin stays where it is and u stays
// in the conjugates' domain (a plain projection g - Q Q^T g would push such entries outside).
// Entries outside the domain by rounding are clipped back, and u counts as orthogonal to the
// span when |(Q^T u)_j| <= noise[j] ||u|| for every j (as orthogonal as Q's own accuracy
// allows); otherwise Q^T u (the ridge's remainder R z) is projected out exactly and the
// clipping and test are repeated. u = 0 is the last resort. When the infimum is approached
// only at infinity no such u is feasible and the bound falls back to u = 0; a tight bound
// there needs a dual solve.
InducedSolve newton(const Objective& phi, const Eigen::Ref<const ColMatrix>& Q, double cut,
                    const Vector& noise, const InducedOptions& opt, Vector& beta) {
  const Index n = Q.rows(), r = Q.cols();
  InducedSolve out;
  out.cut = cut;
  out.solve_rank = r;
  Vector F = Q * beta, g(n), grad(r), z(r), diag(r), step(n), trial_F(n), u(n), Qtu(r);
  ColMatrix HQ(n, r), H(r, r);
  Eigen::LLT<ColMatrix> llt;
  double value = phi.value(F);
  const double trivial_lower = phi.dual(Vector::Zero(n));  // u = 0 is always feasible
  constexpr double kRidgeFloor = 1e-13, kMuStart = 1e-10, kMuMax = 1e8, kFlatStep = 1e-3;
  const bool adaptive = phi.loss_kind() != LossKind::Squared;
  double mu = 0.0, h = 0.0, gradient_ridge = 0.0;
  // z from H + R (H's lower triangle; its diagonal restored from diag).
  auto solve_step = [&]() {
    for (;;) {
      H.diagonal() = diag.array() + std::max(kRidgeFloor, mu) * h + gradient_ridge * noise.array();
      llt.compute(H);
      if (llt.info() == Eigen::Success || mu >= kMuMax) break;
      mu = std::max(100.0 * mu, kMuStart);  // not positive definite at working precision
    }
    z = llt.solve(grad);
  };
  // Whether u is orthogonal to the span as far as Q's accuracy allows.
  auto orthogonal = [&](const Vector& Qtu, double unorm) {
    return (Qtu.array().abs() <= noise.array() * unorm).all();
  };
  auto certify = [&]() {
    phi.gradient(F, g);
    if (r == 0) {  // the span is {0}, or only shifts Phi ignores: g (summing to 0 per sample) is
                   // orthogonal to it
      out.lower = std::max(phi.dual(g), trivial_lower);
      return;
    }
    grad.noalias() = Q.transpose() * g;
    phi.hessian_times(F, Q, HQ);
    lower_product(Q, HQ, H, opt.n_threads);
    diag = H.diagonal();
    h = std::max(diag.maxCoeff(), std::numeric_limits<double>::min());
    gradient_ridge = adaptive ? g.norm() / kFlatStep : 0.0;
    solve_step();
    u = g;
    u.noalias() -= HQ * z;
    double lower = -std::numeric_limits<double>::infinity();
    for (int k = 0; k < 64; ++k) {
      phi.clip_to_domain(u);
      Qtu.noalias() = Q.transpose() * u;
      if (orthogonal(Qtu, u.norm())) {
        lower = phi.dual(u);
        break;
      }
      u.noalias() -= Q * Qtu;
    }
    out.lower = std::max(lower, trivial_lower);
  };
  // Cross-entropy's infimum may lie at infinity (separable samples). Centred logits (Q spans
  // centred outputs for cross-entropy, so F has no per-sample shift to cap) beyond this size
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
    bool accepted = false;
    double accepted_t = 0.0;
    for (;;) {
      const double decrement = grad.dot(z);
      at_cap = false;  // only the last line search decides whether the cap stopped the iteration
      step.noalias() = Q * z;
      double t = 1.0;
      for (int k = 0; k < 60 && decrement > 0.0; ++k, t *= 0.5) {
        trial_F = F;
        trial_F.noalias() -= t * step;
        if (capped_loss && trial_F.lpNorm<Eigen::Infinity>() > kMaxLogit) {
          at_cap = true;
          continue;  // a shorter step may still stay inside
        }
        const double trial = phi.value(trial_F);
        if (trial < value && trial <= value - 1e-4 * t * decrement) {
          beta -= t * z;
          F = trial_F;
          value = trial;
          accepted = true;
          accepted_t = t;
          break;
        }
      }
      // No retry where even the predicted decrease is below the rounding of Phi: no step can
      // show a strict decrease there.
      const bool hopeless =
          decrement <= 4.0 * std::numeric_limits<double>::epsilon() * std::abs(value);
      if (accepted || !adaptive || at_cap || hopeless || mu >= kMuMax) break;
      mu = std::max(100.0 * mu, kMuStart);  // a shorter, more gradient-like step
      solve_step();
    }
    if (!accepted) {  // no decrease left at working precision (or only beyond the cap)
      out.converged = !at_cap;
      break;
    }
    if (accepted_t == 1.0) mu = mu > 10.0 * kRidgeFloor ? 0.1 * mu : 0.0;
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
  // stays comparable to the value itself (for log(1 + e^-t) they are equal) and the Newton
  // step keeps moving some logit by about 1 (the step in t is 1 + e^-t), while at an attained
  // minimum both are negligible (decrement ~ gap, step ~ sqrt(gap / curvature)). The step
  // test catches samples heading to infinity next to others that pin the value away from 0.
  // A value of exactly 0 is underflow.
  const double decrement = grad.dot(z);
  double step_size = 0.0;
  if (r > 0) {
    step.noalias() = Q * z;
    step_size = step.lpNorm<Eigen::Infinity>();
  }
  const bool settles = phi.loss_kind() != LossKind::CrossEntropy ||
                       (value > 0.0 && decrement <= 1e-6 * value && step_size <= 1e-2);
  out.attained = out.converged && settles && !at_cap;
  out.lower =
      std::min(out.lower, value);  // never an inverted interval: the dual bound holds below Phi(F)
  return out;
}

// The relative accuracy to which a solve basis lies in the span, per column: rounding,
// max(64, 2 sqrt(n)) eps (what Q^T u keeps after an exact projection), for an SVD of B; a
// basis from K = B B^T with relative rounding gram_rounding resolves its direction j only to
// about gram_rounding (s_max / s_j)^2 on top. A column that mixes U_r's columns with
// coefficients y (the centred basis) carries sum_j |y_j| of their errors.
Vector basis_noise(ConstVectorRef scale, Index n, Index r, double gram_rounding,
                   const ColMatrix* mix) {
  const double base = std::max(64.0, 2.0 * std::sqrt(static_cast<double>(n))) *
                      std::numeric_limits<double>::epsilon();
  const Index k = mix ? mix->cols() : r;
  Vector noise = Vector::Constant(k, base);
  if (gram_rounding <= 0.0 || r == 0) return noise;
  const Vector error = gram_rounding * (scale[0] * scale.head(r).cwiseInverse()).cwiseAbs2();
  if (mix)
    noise.array() += (error.transpose() * mix->cwiseAbs()).transpose().array();
  else
    noise += error;
  return noise;
}

// Every cut from the largest down (each span contains the previous one, so its optimum
// warm-starts the next; so may options.start). Returns the main cut's coordinates y in U's
// leading columns (fitted = U_r y) and sets result.main, result.profile and result.fitted.
Vector solve_cuts(const Objective& phi, const Eigen::Ref<const ColMatrix>& U, ConstVectorRef scale,
                  const std::function<Index(double)>& rank_at, const InducedOptions& options,
                  InducedResult& result) {
  std::vector<double> cuts = options.cuts;
  cuts.push_back(options.rank_tol);
  std::sort(cuts.begin(), cuts.end(), std::greater<double>());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  const Index n = U.rows();
  const bool centred = phi.loss_kind() == LossKind::CrossEntropy;
  const bool has_start = options.start.size() > 0;
  std::unique_ptr<CentredSpaces> spaces;
  if (centred)
    spaces = std::make_unique<CentredSpaces>(U, scale, rank_at(cuts.back()), phi.outputs(),
                                             options.gram_rounding, options.n_threads);
  Vector beta(0);                     // the previous cut's coordinates in its solve basis
  Vector previous = Vector::Zero(n);  // the previous cut's point in its solve space
  Vector main_y(0), main_F = Vector::Zero(n);
  for (double cut : cuts) {
    const Index r = rank_at(cut);
    const auto Ur = U.leftCols(r);
    const CentredSpace* space = centred ? &spaces->at(r) : nullptr;
    const Eigen::Ref<const ColMatrix> Q =
        centred ? Eigen::Ref<const ColMatrix>(space->Z) : Eigen::Ref<const ColMatrix>(Ur);
    Vector start(Q.cols());
    if (centred) {
      start.noalias() = Q.transpose() * previous;
    } else {
      start.setZero();
      const Index keep = std::min<Index>(r, beta.size());
      start.head(keep) = beta.head(keep);
    }
    // The warm start's projection onto span(U_r), and its coordinates in the solve basis.
    Vector start_y, start_F;
    double start_value = std::numeric_limits<double>::infinity();
    bool from_start = false;
    if (has_start) {
      start_y.noalias() = Ur.transpose() * options.start;
      start_F.noalias() = Ur * start_y;
      start_value = phi.value(start_F);
      Vector candidate(Q.cols());
      if (centred)
        candidate.noalias() = Q.transpose() * start_F;
      else
        candidate = start_y;
      if (phi.value(Q * candidate) < phi.value(Q * start)) {
        start = candidate;
        from_start = true;
      }
    }
    beta = start;
    const Vector noise =
        basis_noise(scale, n, r, options.gram_rounding, centred ? &space->to_y : nullptr);
    InducedSolve solve = newton(phi, Q, cut, noise, options, beta);
    solve.rank = r;
    solve.from_start = from_start;
    Vector y = centred ? Vector(space->to_y * beta) : beta;
    Vector F = Ur * y;
    double value = phi.value(F);
    if (has_start && !(value <= start_value)) {  // rounding only: Newton never accepts an increase
      y = start_y;
      F = start_F;
      value = start_value;
      if (centred)
        beta.noalias() = Q.transpose() * start_F;
      else
        beta = start_y;
    }
    solve.value = value;
    solve.lower = std::min(solve.lower, value);
    if (centred) previous.noalias() = Q * beta;
    if (cut == options.rank_tol) {
      result.main = solve;
      main_y = y;
      main_F = F;
    }
    result.profile.push_back(solve);
  }
  result.fitted = Eigen::Map<const RowMatrix>(main_F.data(), phi.samples(), phi.outputs());
  return main_y;
}

}  // namespace

InducedResult induced_minimum(ConstRowMatrixRef B, const Loss& loss, ConstRowMatrixRef Y,
                              const double* weights, const InducedOptions& options) {
  const RangeBasis basis(B);
  const Objective phi(loss, Y, weights);
  InducedResult result;
  result.singular_values = basis.s;
  const Vector y = solve_cuts(
      phi, basis.U, basis.s, [&](double cut) { return basis.rank_at(cut); }, options, result);
  result.alpha = basis.coefficients(y, B.cols());
  return result;
}

InducedResult induced_minimum_orthonormal(const Eigen::Ref<const ColMatrix>& Q,
                                          ConstVectorRef scale, const Loss& loss,
                                          ConstRowMatrixRef Y, const double* weights,
                                          const InducedOptions& options) {
  const Objective phi(loss, Y, weights);
  InducedResult result;
  result.singular_values = scale;
  const Vector y = solve_cuts(
      phi, Q, scale, [&](double cut) { return leading_above(scale, cut); }, options, result);
  result.alpha = Vector::Zero(Q.cols());
  result.alpha.head(y.size()) = y;
  return result;
}

}  // namespace gradbasis
