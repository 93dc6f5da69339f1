#include "bindings.hpp"

#include "gradbasis/threads.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "gradbasis C++ core: graph models, losses, Jacobians and objective kernels";
  m.attr("with_openmp") = gradbasis::built_with_openmp();
  m.def(
      "max_threads", [] { return gradbasis::resolve_threads(0); },
      "Threads used when n_threads is None.");
  m.def(
      "set_max_threads",
      [](int n) {
        if (n < 1) throw py::value_error("set_max_threads: n must be at least 1");
        gradbasis::set_default_threads(n);
      },
      py::arg("n"), "Set the threads used when n_threads is None, in the calling thread.");
  // Losses first: the graph's objective methods take one, and their signatures name its type.
  gradbasis::bindings::bind_loss(m);
  gradbasis::bindings::bind_graph(m);
  gradbasis::bindings::bind_induced(m);
  gradbasis::bindings::bind_nullspace(m);
}
