// Whole-data entry points: OpenMP over fixed blocks of samples.
//
// Reductions over samples (VJP, gradient, HVP, loss value) sum per-chunk partial results
// in chunk order, and the chunks depend only on m, never on the thread count, so results
// are bitwise identical for every n_threads (resolved by resolve_threads, threads.hpp).
#pragma once

#include "gradbasis/graph.hpp"
#include "gradbasis/loss.hpp"
#include "gradbasis/types.hpp"

namespace gradbasis {

void forward(const Graph& g, const double* theta, ConstRowMatrixRef X, RowMatrixRef out,
             int n_threads);
// Values of one node (e.g. a layer's input h^(l-1)) for every sample: out is m x dim(node).
void node_values(const Graph& g, const double* theta, ConstRowMatrixRef X, int node,
                 RowMatrixRef out, int n_threads);
// J is (m * d_y) x num_params row-major with leading dimension num_params.
void jacobian(const Graph& g, const double* theta, ConstRowMatrixRef X, double* J, int n_threads);
void jvp(const Graph& g, const double* theta, ConstRowMatrixRef X, const double* v,
         RowMatrixRef out, int n_threads);
void vjp(const Graph& g, const double* theta, ConstRowMatrixRef X, ConstRowMatrixRef U, double* out,
         int n_threads);
double kink_margin(const Graph& g, const double* theta, ConstRowMatrixRef X, int n_threads);

// L = sum_i w_i l(f(x_i), y_i); the gradient (when grad != nullptr) by one reverse sweep.
double objective(const Graph& g, const Loss& loss, const double* theta, ConstRowMatrixRef X,
                 ConstRowMatrixRef Y, const double* w, double* grad, int n_threads);
// Exact Hessian-vector product of L by forward-over-reverse differentiation.
void objective_hvp(const Graph& g, const Loss& loss, const double* theta, ConstRowMatrixRef X,
                   ConstRowMatrixRef Y, const double* w, const double* v, double* out,
                   int n_threads);

}  // namespace gradbasis
