#include "bindings.hpp"

#include "gradbasis/kernels.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "gradbasis C++ core: graph models, losses, Jacobians and objective kernels";
  m.attr("with_openmp") = gradbasis::built_with_openmp();
  m.def(
      "max_threads", [] { return gradbasis::resolve_threads(0); },
      "Threads used when n_threads is None.");
  gradbasis::bindings::bind_graph(m);
  gradbasis::bindings::bind_loss(m);
  gradbasis::bindings::bind_induced(m);
  gradbasis::bindings::bind_nullspace(m);
}
