#include "gradbasis/graph.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

namespace gradbasis {

Graph::Graph(Index input_dim) {
  if (input_dim <= 0) throw std::invalid_argument("input_dim must be positive");
  Node input;
  input.dim = input_dim;
  nodes_.push_back(input);
}

void Graph::check_source(int src) const {
  if (src < 0 || src >= num_nodes())
    throw std::invalid_argument("graph source node " + std::to_string(src) + " does not exist");
  if (output_ >= 0) throw std::logic_error("graph is already finalized");
}

int Graph::push(Node n) {
  nodes_.push_back(n);
  return num_nodes() - 1;
}

int Graph::add_dense(int src, Index out_dim, Index weight_offset, Index bias_offset) {
  check_source(src);
  if (out_dim <= 0 || weight_offset < 0) throw std::invalid_argument("bad dense layer");
  Node n;
  n.kind = NodeKind::Dense;
  n.dim = out_dim;
  n.src = src;
  n.weight_offset = weight_offset;
  n.bias_offset = bias_offset;
  n.depends_on_params = true;
  return push(n);
}

int Graph::add_activation(int src, Activation activation) {
  check_source(src);
  Node n;
  n.kind = NodeKind::Activation;
  n.dim = node(src).dim;
  n.src = src;
  n.activation = activation;
  n.depends_on_params = node(src).depends_on_params;
  return push(n);
}

int Graph::add_sum(int a, int b) {
  check_source(a);
  check_source(b);
  if (node(a).dim != node(b).dim) throw std::invalid_argument("summed nodes differ in size");
  Node n;
  n.kind = NodeKind::Sum;
  n.dim = node(a).dim;
  n.src = a;
  n.src2 = b;
  n.depends_on_params = node(a).depends_on_params || node(b).depends_on_params;
  return push(n);
}

void Graph::finalize(int output, Index num_params) {
  check_source(output);
  // The engine's reverse sweeps start at the last node.
  if (output != num_nodes() - 1) throw std::invalid_argument("the output must be the last node");
  if (!node(output).depends_on_params) throw std::invalid_argument("the output has no parameters");
  // The parameter blocks must cover [0, num_params) exactly once.
  std::vector<std::pair<Index, Index>> blocks;
  for (const Node& n : nodes_) {
    if (n.kind != NodeKind::Dense) continue;
    blocks.emplace_back(n.weight_offset, n.dim * node(n.src).dim);
    if (n.bias_offset >= 0) blocks.emplace_back(n.bias_offset, n.dim);
  }
  std::sort(blocks.begin(), blocks.end());
  Index next = 0;
  for (const auto& [start, size] : blocks) {
    if (start != next) throw std::invalid_argument("parameter blocks do not tile theta");
    next = start + size;
  }
  if (next != num_params) throw std::invalid_argument("parameter count does not match the layers");
  output_ = output;
  num_params_ = num_params;
}

bool Graph::has_kinks() const {
  return std::any_of(nodes_.begin(), nodes_.end(), [](const Node& n) {
    return n.kind == NodeKind::Activation && n.activation.has_kink();
  });
}

}  // namespace gradbasis
