#include "bindings.hpp"

#include "gradbasis/induced.hpp"

#include <optional>
#include <stdexcept>

namespace gradbasis::bindings {
namespace {

// The optional warm start: None, or n = m * d_y finite values in sample-major order.
Vector start_vector(const std::optional<Vector>& start, Index n) {
  if (!start) return Vector(0);
  if (start->size() != n) throw std::invalid_argument("start must have m * d_y values");
  if (!start->allFinite()) throw std::invalid_argument("start must be finite");
  return *start;
}

}  // namespace

void bind_induced(py::module_& m) {
  py::class_<InducedSolve>(m, "InducedSolve")
      .def_readonly("cut", &InducedSolve::cut)
      .def_readonly("rank", &InducedSolve::rank)
      .def_readonly("solve_rank", &InducedSolve::solve_rank)
      .def_readonly("value", &InducedSolve::value)
      .def_readonly("lower", &InducedSolve::lower)
      .def_readonly("iterations", &InducedSolve::iterations)
      .def_readonly("gradient_norm", &InducedSolve::gradient_norm)
      .def_readonly("converged", &InducedSolve::converged)
      .def_readonly("attained", &InducedSolve::attained)
      .def_readonly("from_start", &InducedSolve::from_start);

  py::class_<InducedResult>(m, "InducedResult")
      .def_readonly("main", &InducedResult::main)
      .def_readonly("profile", &InducedResult::profile)
      .def_readonly("alpha", &InducedResult::alpha)
      .def_readonly("fitted", &InducedResult::fitted)
      .def_readonly("singular_values", &InducedResult::singular_values);

  m.def(
      "induced_minimum",
      [](ConstRowMatrixRef B, const Loss& loss, ConstRowMatrixRef Y, ConstVectorRef w,
         double rank_tol, std::vector<double> cuts, double tol, int max_iter,
         std::optional<Vector> start, int n_threads) {
        if (B.rows() != Y.rows() * Y.cols())
          throw std::invalid_argument("B must have m * d_y rows");
        InducedOptions options;
        options.rank_tol = rank_tol;
        options.cuts = std::move(cuts);
        options.tol = tol;
        options.max_iter = max_iter;
        options.start = start_vector(start, B.rows());
        options.n_threads = n_threads;
        py::gil_scoped_release release;
        return induced_minimum(B, loss, Y, w.data(), options);
      },
      py::arg("B").noconvert(), py::arg("loss"), py::arg("Y").noconvert(),
      py::arg("weights").noconvert(), py::arg("rank_tol"), py::arg("cuts"), py::arg("tol"),
      py::arg("max_iter"), py::arg("start") = py::none(), py::arg("n_threads") = 0,
      "Minimise sum_i w_i l((B a)_i, y_i) over the numerical span of B (see induced.hpp); "
      "n_threads <= 0: every available thread.");

  m.def(
      "induced_minimum_orthonormal",
      [](Eigen::Ref<const ColMatrix> Q, ConstVectorRef scale, const Loss& loss, ConstRowMatrixRef Y,
         ConstVectorRef w, double rank_tol, std::vector<double> cuts, double tol, int max_iter,
         std::optional<Vector> start, double gram_rounding, int n_threads) {
        if (scale.size() != Q.cols())
          throw std::invalid_argument("scale must have one entry per column of Q");
        if (Q.rows() != Y.rows() * Y.cols())
          throw std::invalid_argument("Q must have m * d_y rows");
        InducedOptions options;
        options.rank_tol = rank_tol;
        options.cuts = std::move(cuts);
        options.tol = tol;
        options.max_iter = max_iter;
        options.start = start_vector(start, Q.rows());
        options.gram_rounding = gram_rounding;
        options.n_threads = n_threads;
        py::gil_scoped_release release;
        return induced_minimum_orthonormal(Q, scale, loss, Y, w.data(), options);
      },
      py::arg("Q").noconvert(), py::arg("scale").noconvert(), py::arg("loss"),
      py::arg("Y").noconvert(), py::arg("weights").noconvert(), py::arg("rank_tol"),
      py::arg("cuts"), py::arg("tol"), py::arg("max_iter"), py::arg("start") = py::none(),
      py::arg("gram_rounding") = 0.0, py::arg("n_threads") = 0,
      "The induced solve over range(Q) for Q with orthonormal columns nested by scale (see "
      "induced.hpp); n_threads <= 0: every available thread.");
}

}  // namespace gradbasis::bindings
