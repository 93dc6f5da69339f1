"""Build an MLP, its Jacobian, the training objective and its gradient."""

import numpy as np

import gradbasis as gb

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 8))  # 200 samples, 8 features
Y = np.eye(3)[rng.integers(0, 3, size=200)]  # one-hot labels, 3 classes

model = gb.MLP([8, 32, 32, 3], activation="tanh")  # eq. 4.3, biases on
theta = model.init(seed=0)  # flat, layer by layer, vec column-major

J = model.jacobian(theta, X)  # (200*3, num_params); row i*3+k = d f_k(x_i)
print(model, "Jacobian", J.shape, "rank", np.linalg.matrix_rank(J))

obj = gb.Objective(model, gb.CrossEntropyLoss(), X, Y)  # weights 1/m
value, grad = obj.value_and_gradient(theta)
u = obj.residual_duals(theta)  # u_i = lambda_i grad l(f(x_i))
print(f"L(theta) = {value:.6f}, |grad L| = {np.linalg.norm(grad):.3e}")
print("Lemma 2 identity |grad L - J^T u| =", np.linalg.norm(grad - J.T @ u.ravel()))
print(
    "Assumption 2 |J g(theta) - f_X(theta)| =",
    np.linalg.norm(J @ model.homogeneity(theta) - model.forward(theta, X).ravel()),
)
