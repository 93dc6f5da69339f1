// Umbrella header for the pybind11 layer; include first in every bind_*.cpp.
#pragma once

#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "gradbasis/types.hpp"

namespace py = pybind11;

namespace gradbasis::bindings {

void bind_graph(py::module_& m);
void bind_loss(py::module_& m);
void bind_induced(py::module_& m);
void bind_nullspace(py::module_& m);

}  // namespace gradbasis::bindings
