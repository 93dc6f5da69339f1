#!/usr/bin/env bash
# Create the virtual environment that runs the neural-tangents anchor of bench/gram.py.
#
#   scripts/setup_nt_venv.sh [PATH]      # default PATH: .venv-nt in the repository root
#
# It holds jax 0.4.25 + jaxlib 0.4.25 + neural-tangents 0.6.5 (with numpy < 2 and
# ml_dtypes < 0.5, which that jaxlib needs), installed from the package index by pip.
#
# Why jax 0.4.25 and not a newer one: the anchor is neural-tangents' structured mode
# (nt.empirical_ntk_fn(..., implementation=nt.NtkImplementation.STRUCTURED_DERIVATIVES), i.e.
# implementation=3), its strongest mode on MLPs. neural-tangents 0.6.5's structured mode fails
# under jax 0.4.30: jax.interpreters.ad no longer has source_info_util, nor
# config.jax_enable_checks, which the structured rules use. Under jax 0.4.25 all three
# implementations work and agree with gradbasis's K to rounding.
#
# The environment is separate from the main one (whose JAX may be newer) and bench/gram.py
# finds it by default (--nt-python .venv-nt/bin/python). The path is ignored by git.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv-nt}"
PYTHON="${PYTHON:-python3}"

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
"$VENV/bin/python" -m pip install \
    "jax==0.4.25" "jaxlib==0.4.25" "neural-tangents==0.6.5" "numpy<2" "ml_dtypes<0.5"

# Smoke test: the structured mode in float64 on a tiny MLP.
"$VENV/bin/python" - <<'PY'
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import neural_tangents as nt

def f(p, x):
    return jnp.tanh(x @ p["W1"]) @ p["W2"]

key = jax.random.PRNGKey(0)
p = {"W1": jax.random.normal(key, (3, 4)), "W2": jax.random.normal(key, (4, 2))}
x = jax.random.normal(key, (5, 3))
K = nt.empirical_ntk_fn(
    f, trace_axes=(), vmap_axes=0,
    implementation=nt.NtkImplementation.STRUCTURED_DERIVATIVES,
)(x, None, p)
assert K.shape == (5, 5, 2, 2) and K.dtype == jnp.float64, (K.shape, K.dtype)
print(f"ok: jax {jax.__version__}, neural-tangents structured mode works")
PY
echo "neural-tangents environment ready: $VENV/bin/python"
