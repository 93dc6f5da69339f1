#!/usr/bin/env bash
# Regenerate every benchmark table of the README in one run on a quiet machine:
#
#   bench/run_all.sh            # full run, about 35-40 minutes, then README.md's tables
#   bench/run_all.sh --quick    # tiny cases of the same shapes (a few minutes), README untouched
#
# Set-up (bench/README.md): pip install ".[bench,distributed]" in the main environment, and
# scripts/setup_nt_venv.sh for the neural-tangents anchor (.venv-nt). Environment variables:
# PYTHON (default .venv/bin/python, else python3), NT_PYTHON (default .venv-nt/bin/python).
#
# Steps, each writing bench/results/NAME.json and NAME.md:
#   gram        K for cases A, B, C (gradbasis, neural-tangents structured, torch.func and JAX
#               Jacobian contraction) and D (gradbasis only, with its peak memory)
#   induced     squared loss A, C and cross-entropy A, B from theta against the fastest user
#               way; Theorem 1 (strategy="gram") against K alone on A, B, C; case D's certificate
#   dask        distributed_induced_minimum(method="resolved" and "gram") on LocalCluster(1 and 2
#               workers), case B
#   tables      README.md's blocks between the <!-- bench:NAME --> markers (full run only)
# Each script first waits (up to 15 minutes) for the 1-minute load average to fall below 0.5
# and other processes to go idle; every timing records the load and the other processes' CPU,
# and contended timings are rerun (bench/_quiet.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo "$ROOT/.venv/bin/python" || echo python3)}"
NT_PYTHON="${NT_PYTHON:-$ROOT/.venv-nt/bin/python}"
QUICK=()
SUFFIX=""
GRAM_CAPS=(--cap 120)                     # one anchor run; a started run is stopped beyond it
INDUCED_CAPS=(--cap 300 --lbfgs-cap 450)  # one gradbasis/user run; J + L-BFGS together
if [ "${1:-}" = "--quick" ]; then
    QUICK=(--quick)
    SUFFIX="_quick"
    GRAM_CAPS=()
    INDUCED_CAPS=()
fi
# One process tree for the whole run: its own CPU is never counted as "other processes", and
# its share of the load average carries from script to script.
export GRADBASIS_BENCH_ROOT=$$
GRADBASIS_BENCH_STATE="$(mktemp -t gradbasis_bench_load.XXXXXX)"
export GRADBASIS_BENCH_STATE
trap 'rm -f "$GRADBASIS_BENCH_STATE"' EXIT
if [ ! -x "$NT_PYTHON" ]; then
    echo "warning: $NT_PYTHON not found (scripts/setup_nt_venv.sh makes it): the neural-tangents anchor will be missing" >&2
fi

start=$(date +%s)
step() { echo; echo "=== $* ($(( $(date +%s) - start )) s into the run)"; }

step "gram"
"$PYTHON" bench/gram.py "${QUICK[@]}" --cases A,B,C,D --nt-python "$NT_PYTHON" "${GRAM_CAPS[@]}"
step "induced"
"$PYTHON" bench/induced.py "${QUICK[@]}" "${INDUCED_CAPS[@]}"
step "dask"
"$PYTHON" bench/dask_bench.py "${QUICK[@]}"
step "tables"
if [ -z "$SUFFIX" ]; then
    "$PYTHON" bench/tables.py --write-readme
else
    "$PYTHON" bench/tables.py --suffix "$SUFFIX"
fi
echo "done in $(( $(date +%s) - start )) s; results in bench/results/"
