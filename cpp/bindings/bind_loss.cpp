#include "bindings.hpp"

#include "gradbasis/loss.hpp"

namespace gradbasis::bindings {

void bind_loss(py::module_& m) {
  py::enum_<LossKind>(m, "LossKind")
      .value("squared", LossKind::Squared)
      .value("cross_entropy", LossKind::CrossEntropy)
      .value("smoothed_hinge", LossKind::SmoothedHinge);

  py::enum_<LossQuantity>(m, "LossQuantity")
      .value("value", LossQuantity::Value)
      .value("gradient", LossQuantity::Gradient)
      .value("hessian", LossQuantity::Hessian)
      .value("conjugate", LossQuantity::Conjugate);

  py::class_<Loss>(m, "Loss")
      .def(py::init([](LossKind kind, double p) { return Loss{kind, p}; }), py::arg("kind"),
           py::arg("p") = 2.0)
      .def_property_readonly("kind", [](const Loss& l) { return l.kind; })
      .def_readonly("p", &Loss::p)
      .def(
          "rows",
          [](const Loss& loss, LossQuantity what, ConstRowMatrixRef Q, ConstRowMatrixRef Y,
             py::array_t<double, py::array::c_style> out) {
            double* dst = out.mutable_data();
            py::gil_scoped_release release;
            loss_rows(loss, what, Q, Y, dst);
          },
          py::arg("what"), py::arg("Q").noconvert(), py::arg("Y").noconvert(), py::arg("out"),
          "Per-sample value, gradient, Hessian or conjugate written into out (caller sizes it).");
}

}  // namespace gradbasis::bindings
