#include "bindings.hpp"

#include "gradbasis/nullspace.hpp"

namespace gradbasis::bindings {

void bind_nullspace(py::module_& m) {
  py::class_<NullBasis>(m, "NullBasis")
      .def_readonly("basis", &NullBasis::basis)
      .def_readonly("singular_values", &NullBasis::singular_values)
      .def_readonly("rank", &NullBasis::rank)
      .def_readonly("cutoff", &NullBasis::cutoff);
  m.def(
      "null_basis",
      [](ConstRowMatrixRef A, double rtol) {
        py::gil_scoped_release release;
        return null_basis(A, rtol);
      },
      py::arg("A").noconvert(), py::arg("rtol"),
      "Orthonormal basis of {b : A b = 0} (singular values <= rtol * sigma_max count as zero).");
}

}  // namespace gradbasis::bindings
