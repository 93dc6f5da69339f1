"""The perturbable gradient basis at work (the situation of Figures 3-4 of the paper).

f(x; theta) = w2 tanh(w1 x) on three samples: d_theta = 2 and f_X(theta) lies in R^3. At w2 = 0
with targets orthogonal to tanh(w1 x) the point is critical, so Theorem 1 holds: L(theta) is the
best loss over T = span J(theta), a line. But w1 can move freely while w2 = 0 (f stays 0), and
the tangent line turns as it moves: the perturbable span T~ is all of R^3, whose best loss is 0.
Theorem 2 says a local minimum would have L(theta) = inf over T~, so theta is no local minimum
(the Hessian confirms it: it is a saddle).

    python examples/perturbable_basis.py
"""

import numpy as np

import gradbasis as gb

model = gb.MLP([1, 1, 1], "tanh", bias=False)  # f = w2 tanh(w1 x)
X = np.array([[0.5], [1.0], [2.0]])
w1 = 0.7
t = np.tanh(w1 * X[:, 0])
y = np.array([1.0, 0.3, 0.0])
y -= t * (t @ y) / (t @ t)  # targets orthogonal to tanh(w1 x)
obj = gb.Objective(model, "squared", X, y[:, None])
theta = np.array([w1, 0.0])

S = gb.perturbation_directions(model, theta, X)  # verified directions in V[theta, eps]
print(f"|S| = {len(S)} directions, kinds {S.counts()}, largest change of f_X {S.changes.max():.1e}")
print(f"Theorem 1: {gb.theorem1(obj, theta).verdict}")
r = gb.theorem2(obj, theta, S=S)
print(f"dim T = {r.dim_T}, dim T~ = {r.dim_T_tilde}")
print(
    f"L(theta) = {r.loss_value:.6f}; inf over T = {r.gradient_basis_value:.6f}; inf over T~ in [{r.lower:.3g}, {r.value:.3g}]"
)
print(f"Theorem 2: {r.verdict} - {r.reason}")
print(f"Lemma 3 residual max_j ||grad L(theta + eps S_j)|| = {r.lemma3_residual:.3g}")
