#!/usr/bin/env bash
# Build gradbasis with sanitizers into its own virtual environment and run the tests under it.
#
#   scripts/sanitize.sh [address|thread] [pytest arguments...]
#
#   address  AddressSanitizer + UndefinedBehaviorSanitizer (with float-cast-overflow), OpenMP on;
#            default pytest arguments: the whole suite (tests/).
#   thread   ThreadSanitizer, OpenMP off (GCC's libgomp is not built for TSan: its barriers
#            are invisible to it and every parallel region reports races that are not there);
#            default pytest arguments: tests/test_concurrency.py, whose Python threads share
#            models and inputs while the C++ runs without the GIL.
#
# The build and the environment live outside the source tree and never touch build/ or a
# developer's environment: $GRADBASIS_SANITIZE_PREFIX (default /tmp/gradbasis-sanitize) holds
# <mode>-venv, <mode>-build, <mode>-pytest.log and any sanitizer report (<mode>-report.<pid>).
# Set GRADBASIS_SANITIZE_REUSE=1 to skip the build and only rerun the tests. Exit status:
# pytest's, or nonzero when a sanitizer reported anything. See docs/reliability.md.
set -euo pipefail

mode="${1:-address}"
[[ $# -gt 0 ]] && shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${GRADBASIS_SANITIZE_PREFIX:-/tmp/gradbasis-sanitize}"
venv="$prefix/$mode-venv"
build="$prefix/$mode-build"
log="$prefix/$mode-pytest.log"
python="${PYTHON:-python3}"

case "$mode" in
  address)
    sanitizers="address;undefined;float-cast-overflow"
    openmp=ON
    runtime="$(gcc -print-file-name=libasan.so)"
    default_tests=(tests)
    ;;
  thread)
    sanitizers="thread"
    openmp=OFF
    runtime="$(gcc -print-file-name=libtsan.so)"
    default_tests=(tests/test_concurrency.py)
    ;;
  *)
    echo "usage: $0 [address|thread] [pytest arguments...]" >&2
    exit 2
    ;;
esac
if [[ ! -e "$runtime" ]]; then
  echo "sanitizer runtime not found ($runtime): install the compiler's sanitizer libraries" >&2
  exit 2
fi
mkdir -p "$prefix"

if [[ "${GRADBASIS_SANITIZE_REUSE:-0}" != 1 || ! -x "$venv/bin/python" ]]; then
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  # The build requirements live in the environment (no build isolation), so the compile
  # commands stay the same from run to run and a rebuild only recompiles what changed.
  env -u PYTHONPATH "$venv/bin/python" -m pip install --quiet \
    "scikit-build-core>=0.10" "pybind11>=2.12" "cmeel-eigen>=3.4" cmake ninja
  # The package with its test extras and torch (for the oracle tests); the sanitizer options
  # reach CMake through scikit-build-core.
  env -u PYTHONPATH "$venv/bin/python" -m pip install --quiet --no-build-isolation "$root[test,torch]" \
    --config-settings=cmake.define.GRADBASIS_SANITIZE="$sanitizers" \
    --config-settings=cmake.define.GRADBASIS_OPENMP="$openmp" \
    --config-settings=cmake.build-type=RelWithDebInfo \
    --config-settings=build-dir="$build"
fi

# Located without importing it: the instrumented module only loads with the runtime preloaded.
package="$(env -u PYTHONPATH "$venv/bin/python" -c 'import importlib.util as u; print(u.find_spec("gradbasis").submodule_search_locations[0])')"
core="$(ls "$package"/_core*.so)"
if ! grep -q "$(basename "$runtime" .so)" <<<"$(ldd "$core")"; then
  echo "$core is not linked against $(basename "$runtime"): the sanitizer build did not take" >&2
  exit 1
fi

# Python itself is not instrumented, so the runtime must be loaded first. CPython keeps some
# allocations until exit by design: leak detection would only report those. Reports also go
# to $report.<pid> files: a sanitizer that stops the process inside a test would otherwise
# take its report down with pytest's captured output.
report="$prefix/$mode-report"
rm -f "$report".*
# libstdc++ is preloaded with it: the interpreter does not link it, so the runtime would find
# no real __cxa_throw to forward to and stop at the first C++ exception any extension throws
# ("CHECK failed: ... real___cxa_throw != 0", first seen in matplotlib's ft2font).
export LD_PRELOAD="$runtime $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:check_initialization_order=1:strict_init_order=1:log_path=$report"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$report"
# TSan sees only what is instrumented or intercepted: OpenBLAS's own thread pool synchronises
# by spinning and would be reported as racing with itself (dscal_k's memset), so NumPy's BLAS
# runs on one thread and races inside uninstrumented libraries are not reported.
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:log_path=$report"
[[ $mode != thread ]] || export OPENBLAS_NUM_THREADS=1
# Several OpenMP threads per test even on small machines, so parallel regions really run in parallel.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"

tests=("$@")
[[ ${#tests[@]} -gt 0 ]] || tests=("${default_tests[@]}")
cd "$root"
echo "gradbasis $mode sanitizer run: $core" | tee "$log"
start=$(date +%s)
set +e
# -v names each test as it starts, so a sanitizer abort in the log points at its test.
env -u PYTHONPATH "$venv/bin/python" -X faulthandler -m pytest -v -p no:cacheprovider "${tests[@]}" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
set -e
for f in "$report".*; do
  [[ -e "$f" ]] || continue
  echo "sanitizer report $f:" | tee -a "$log"
  tee -a "$log" < "$f"
  [[ $status -ne 0 ]] || status=1
done
echo "exit status $status after $(($(date +%s) - start)) s; log: $log" | tee -a "$log"
exit "$status"
