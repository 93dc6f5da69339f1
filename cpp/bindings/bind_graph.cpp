#include "bindings.hpp"

#include <optional>

#include "gradbasis/gram.hpp"
#include "gradbasis/graph.hpp"
#include "gradbasis/kernels.hpp"

namespace gradbasis::bindings {

void bind_graph(py::module_& m) {
  py::enum_<NodeKind>(m, "NodeKind")
      .value("input", NodeKind::Input)
      .value("dense", NodeKind::Dense)
      .value("activation", NodeKind::Activation)
      .value("sum", NodeKind::Sum);

  py::enum_<ActivationKind>(m, "ActivationKind")
      .value("identity", ActivationKind::Identity)
      .value("relu", ActivationKind::Relu)
      .value("leaky_relu", ActivationKind::LeakyRelu)
      .value("tanh", ActivationKind::Tanh)
      .value("sigmoid", ActivationKind::Sigmoid)
      .value("softplus", ActivationKind::Softplus)
      .value("gelu", ActivationKind::Gelu);

  py::class_<Graph>(m, "Graph")
      .def(py::init<Index>(), py::arg("input_dim"))
      .def("add_dense", &Graph::add_dense, py::arg("src"), py::arg("out_dim"),
           py::arg("weight_offset"), py::arg("bias_offset"))
      .def(
          "add_activation",
          [](Graph& g, int src, ActivationKind kind, double negative_slope) {
            return g.add_activation(src, Activation{kind, negative_slope});
          },
          py::arg("src"), py::arg("kind"), py::arg("negative_slope") = 0.0)
      .def("add_sum", &Graph::add_sum, py::arg("a"), py::arg("b"))
      .def("finalize", &Graph::finalize, py::arg("output"), py::arg("num_params"))
      .def_property_readonly("num_nodes", &Graph::num_nodes)
      .def_property_readonly("input_dim", &Graph::input_dim)
      .def_property_readonly("output_dim", &Graph::output_dim)
      .def_property_readonly("num_params", &Graph::num_params)
      .def_property_readonly("has_kinks", &Graph::has_kinks)
      .def_property_readonly("output", &Graph::output)
      .def(
          "node_info",
          [](const Graph& g, int k) {
            if (k < 0 || k >= g.num_nodes()) throw py::index_error("no such node");
            const Node& n = g.node(k);
            py::dict d;
            d["kind"] = n.kind;
            d["dim"] = n.dim;
            d["src"] = n.src;
            d["src2"] = n.src2;
            d["weight_offset"] = n.weight_offset;
            d["bias_offset"] = n.bias_offset;
            d["activation"] = n.activation.kind;
            d["negative_slope"] = n.activation.negative_slope;
            return d;
          },
          py::arg("k"),
          "The node's kind (a NodeKind), size, sources and parameter offsets, and its activation "
          "(an ActivationKind; identity unless the node is an activation) with its negative slope.")
      .def(
          "node_values",
          [](const Graph& g, ConstVectorRef theta, ConstRowMatrixRef X, int node, RowMatrixRef out,
             int n_threads) {
            py::gil_scoped_release release;
            node_values(g, theta.data(), X, node, out, n_threads);
          },
          py::arg("theta").noconvert(), py::arg("X").noconvert(), py::arg("node"),
          py::arg("out").noconvert(), py::arg("n_threads"))
      .def(
          "forward",
          [](const Graph& g, ConstVectorRef theta, ConstRowMatrixRef X, RowMatrixRef out,
             int n_threads) {
            py::gil_scoped_release release;
            forward(g, theta.data(), X, out, n_threads);
          },
          py::arg("theta").noconvert(), py::arg("X").noconvert(), py::arg("out").noconvert(),
          py::arg("n_threads"))
      .def(
          "jacobian",
          [](const Graph& g, ConstVectorRef theta, ConstRowMatrixRef X,
             py::array_t<double, py::array::c_style> out, int n_threads) {
            double* dst = out.mutable_data();
            py::gil_scoped_release release;
            jacobian(g, theta.data(), X, dst, n_threads);
          },
          py::arg("theta").noconvert(), py::arg("X").noconvert(), py::arg("out").noconvert(),
          py::arg("n_threads"))
      .def(
          "jvp",
          [](const Graph& g, ConstVectorRef theta, ConstRowMatrixRef X, ConstVectorRef v,
             RowMatrixRef out, int n_threads) {
            py::gil_scoped_release release;
            jvp(g, theta.data(), X, v.data(), out, n_threads);
          },
          py::arg("theta").noconvert(), py::arg("X").noconvert(), py::arg("v").noconvert(),
          py::arg("out").noconvert(), py::arg("n_threads"))
      .def(
          "vjp",
          [](const Graph& g, ConstVectorRef theta, ConstRowMatrixRef X, ConstRowMatrixRef U,
             VectorRef out, int n_threads) {
            py::gil_scoped_release release;
            vjp(g, theta.data(), X, U, out.data(), n_threads);
          },
          py::arg("theta").noconvert(), py::arg("X").noconvert(), py::arg("U").noconvert(),
          py::arg("out").noconvert(), py::arg("n_threads"))
      .def(
          "gram",
          [](const Graph& g, ConstVectorRef theta, ConstRowMatrixRef X1,
             std::optional<ConstRowMatrixRef> X2, const std::vector<double>& weights,
             py::array_t<double, py::array::c_style> out, int n_threads) {
            double* dst = out.mutable_data();
            py::gil_scoped_release release;
            if (X2) {
              const ConstRowMatrixRef& x2 = *X2;
              gram(g, theta.data(), X1, &x2, weights, dst, n_threads);
            } else {
              gram(g, theta.data(), X1, nullptr, weights, dst, n_threads);
            }
          },
          py::arg("theta").noconvert(), py::arg("X1").noconvert(), py::arg("X2").noconvert(),
          py::arg("weights"), py::arg("out").noconvert(), py::arg("n_threads"))
      .def(
          "gram_diagonal",
          [](const Graph& g, ConstVectorRef theta, ConstRowMatrixRef X,
             const std::vector<double>& weights, VectorRef out, int n_threads) {
            py::gil_scoped_release release;
            gram_diagonal(g, theta.data(), X, weights, out.data(), n_threads);
          },
          py::arg("theta").noconvert(), py::arg("X").noconvert(), py::arg("weights"),
          py::arg("out").noconvert(), py::arg("n_threads"))
      .def(
          "kink_margin",
          [](const Graph& g, ConstVectorRef theta, ConstRowMatrixRef X, int n_threads) {
            py::gil_scoped_release release;
            return kink_margin(g, theta.data(), X, n_threads);
          },
          py::arg("theta").noconvert(), py::arg("X").noconvert(), py::arg("n_threads"))
      .def(
          "objective",
          [](const Graph& g, const Loss& loss, ConstVectorRef theta, ConstRowMatrixRef X,
             ConstRowMatrixRef Y, ConstVectorRef w, int n_threads) {
            py::gil_scoped_release release;
            return objective(g, loss, theta.data(), X, Y, w.data(), nullptr, n_threads);
          },
          py::arg("loss"), py::arg("theta").noconvert(), py::arg("X").noconvert(),
          py::arg("Y").noconvert(), py::arg("weights").noconvert(), py::arg("n_threads"),
          "Returns L(theta).")
      .def(
          "objective_gradient",
          [](const Graph& g, const Loss& loss, ConstVectorRef theta, ConstRowMatrixRef X,
             ConstRowMatrixRef Y, ConstVectorRef w, VectorRef grad, int n_threads) {
            py::gil_scoped_release release;
            return objective(g, loss, theta.data(), X, Y, w.data(), grad.data(), n_threads);
          },
          py::arg("loss"), py::arg("theta").noconvert(), py::arg("X").noconvert(),
          py::arg("Y").noconvert(), py::arg("weights").noconvert(), py::arg("grad").noconvert(),
          py::arg("n_threads"), "Returns L(theta) and writes its gradient into grad.")
      .def(
          "objective_hvp",
          [](const Graph& g, const Loss& loss, ConstVectorRef theta, ConstRowMatrixRef X,
             ConstRowMatrixRef Y, ConstVectorRef w, ConstVectorRef v, VectorRef out,
             int n_threads) {
            py::gil_scoped_release release;
            objective_hvp(g, loss, theta.data(), X, Y, w.data(), v.data(), out.data(), n_threads);
          },
          py::arg("loss"), py::arg("theta").noconvert(), py::arg("X").noconvert(),
          py::arg("Y").noconvert(), py::arg("weights").noconvert(), py::arg("v").noconvert(),
          py::arg("out").noconvert(), py::arg("n_threads"));
}

}  // namespace gradbasis::bindings
