// A model as a small dataflow graph of dense layers, elementwise activations and sums.
//
// Every architecture of the paper (basis model, MLP of eq. 4.3, skip networks of
// Example 3, the ResNet of eq. 4.1 with MLP or pre-activation residual stacks) is such
// a graph; one engine then gives them all forward, JVP, VJP, Jacobian, gradient and
// Hessian-vector products. Nodes are stored in topological order (sources first).
#pragma once

#include <vector>

#include "gradbasis/activation.hpp"
#include "gradbasis/types.hpp"

namespace gradbasis {

enum class NodeKind : int { Input = 0, Dense = 1, Activation = 2, Sum = 3 };

struct Node {
  NodeKind kind = NodeKind::Input;
  Index dim = 0;
  int src = -1;   // Dense, Activation, Sum
  int src2 = -1;  // Sum
  // Dense: out = W src + b with W (dim x dim(src)) stored column-major at theta[weight_offset]
  // and b at theta[bias_offset] (-1: no bias).
  Index weight_offset = -1;
  Index bias_offset = -1;
  Activation activation;
  bool depends_on_params = false;  // some Dense node feeds this one (or is this one)
};

class Graph {
 public:
  explicit Graph(Index input_dim);

  int add_dense(int src, Index out_dim, Index weight_offset, Index bias_offset);
  int add_activation(int src, Activation activation);
  int add_sum(int a, int b);
  // Fixes the output node and checks that the Dense blocks tile theta exactly once.
  void finalize(int output, Index num_params);

  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(int k) const { return nodes_[static_cast<size_t>(k)]; }
  int num_nodes() const { return static_cast<int>(nodes_.size()); }
  int output() const { return output_; }
  Index input_dim() const { return nodes_[0].dim; }
  Index output_dim() const { return node(output_).dim; }
  Index num_params() const { return num_params_; }
  bool has_kinks() const;

 private:
  int push(Node n);
  void check_source(int src) const;

  std::vector<Node> nodes_;
  int output_ = -1;
  Index num_params_ = -1;
};

}  // namespace gradbasis
