"""Running a sweep: each cell trained and checked into its record (:func:`run_cell`), cells side
by side in worker processes or on a Dask cluster, and every record appended to the results file
by this process alone (:func:`run`)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
import traceback
from collections.abc import Generator, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from .._options import positive_int
from .._version import __version__
from ..datasets import Dataset
from ..errors import SweepConfigError, SweepError
from ..losses import get_loss
from ..models.registry import build_model
from ..objective import Objective
from ..optimize import minimize
from ..verdict import jsonable
from .checks import CHECKS, summarize
from .config import Cell, Sweep, config_errors, load_sweep
from .progress import Progress, display_mode
from .results import ResultsFile

__all__ = ["run", "run_cell"]


# ============================================================================ one cell
def _plain(x: object) -> object:
    """Strict-JSON copy: NumPy scalars and arrays to Python, non-finite floats spelled as
    strings (as :func:`gradbasis.verdict.jsonable` does), enums to their values."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, np.generic):
        return _plain(x.item())
    return jsonable(x)


def _plain_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`_plain` of a record (a dict, so a dict comes back)."""
    return {str(k): _plain(v) for k, v in record.items()}


def _new_record(cell: Cell) -> dict[str, Any]:
    """A cell's record before anything ran: every record has these keys, in this order."""
    return {
        "key": cell.key,
        "status": "ok",
        "sweep": None,
        "settings": cell.settings,
        "training": None,
        "checks": {},
        "summary": None,
        "seconds": {},
        "error": None,
        "gradbasis": __version__,
    }


def _error(exc: BaseException, stage: str | None, trace: str) -> dict[str, Any]:
    """A record's ``error``: what raised, at which stage."""
    return {"type": type(exc).__name__, "message": str(exc), "stage": stage, "traceback": trace}


@contextlib.contextmanager
def _default_threads(n: int | None) -> Iterator[None]:
    """Run the core on n threads wherever it is not given n_threads (None: leave it), in the
    calling thread, restoring the old count after: cells running side by side must not each
    take every core. Calls that are given n_threads (the objective's) use that anyway."""
    if n is None:
        yield
        return
    before = _core.max_threads()
    _core.set_max_threads(n)
    try:
        yield
    finally:
        _core.set_max_threads(before)


def run_cell(cell: Cell, data: Dataset, single_thread: bool = False) -> dict:
    """Train and check one cell; never raises for the cell's own failures, which are recorded.

    With ``single_thread`` the C++ core and the objective use one thread (cells side by side).
    """

    s = cell.settings
    record = _new_record(cell)
    seconds: dict[str, float] = record["seconds"]
    results: dict[str, Any] = {}
    stage: str | None = "setup"
    model, training = None, None
    start = time.perf_counter()
    with _default_threads(1 if single_thread else None):
        try:
            t0 = time.perf_counter()
            loss = get_loss(s["loss"])
            Y = data.targets_for(loss.name)
            model = build_model(
                s["model"],
                data.X.shape[1],
                Y.shape[1],
                s["hidden"],
                s["activation"] or "identity",
                data.sample_shape,
            )
            obj = Objective(model, loss, data.X, Y, n_threads=1 if single_thread else None)
            seconds["setup"] = time.perf_counter() - t0
            stage = "train"
            tr = s["train"]
            theta0 = model.init(seed=s["seed"])
            fit = minimize(
                obj, theta0, method=tr["method"], gtol=tr["gtol"], max_iter=tr["max_iter"]
            )
            training = {k: v for k, v in vars(fit).items() if k != "theta"}
            record["training"] = training
            seconds["train"] = fit.seconds
            for name in s["checks"]:
                stage = name
                t0 = time.perf_counter()
                results[name] = CHECKS[name](obj, fit.theta, s["check_options"])
                record["checks"][name] = results[name].to_dict()
                seconds[name] = time.perf_counter() - t0
            stage = None
            if s["store_theta"]:
                record["theta"] = fit.theta
        except Exception as exc:  # a failed cell is a result: record it, let the sweep go on
            record["status"] = "error"
            record["error"] = _error(exc, stage, traceback.format_exc(limit=-8))
    failed = stage if record["status"] == "error" else None
    record["summary"] = summarize(training, results, failed, s["checks"], model, len(data.X))
    seconds["total"] = time.perf_counter() - start
    return _plain_record(record)


def _lost_cell_record(cell: Cell, exc: BaseException) -> dict:
    """The record of a cell whose task itself failed (e.g. its Dask worker was killed)."""
    record = _new_record(cell)
    record["status"] = "error"
    record["summary"] = summarize(None, {}, "worker", cell.settings["checks"], None, None)
    record["error"] = _error(exc, "worker", "")
    return _plain_record(record)


# ============================================================================ many cells
@contextlib.contextmanager
def _one_thread_children() -> Iterator[None]:
    """Environment for worker processes started inside: one OpenMP and BLAS thread each (read
    by those libraries when a new process loads them), restored here afterwards."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({n: "1" for n in names})
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run_local(
    pending: Sequence[Cell], datasets: Mapping, jobs: int
) -> Generator[dict, None, None]:
    if jobs == 1:
        for cell in pending:
            yield run_cell(cell, datasets[cell.data_id])
        return
    # spawn, not fork: the OpenMP runtime of a parent that already ran the core is not fork-safe.
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        with _one_thread_children():  # workers start during submit
            futures = {
                pool.submit(run_cell, cell, datasets[cell.data_id], True): cell for cell in pending
            }
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except BrokenProcessPool as exc:
                raise SweepError(
                    f"a worker process died ({exc}); the cells finished so far are saved: run the sweep again to "
                    "resume, with --jobs 1 to find the cell that kills its process"
                ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(
    pending: Sequence[Cell], datasets: Mapping, scheduler: object
) -> Generator[dict, None, None]:
    try:
        import distributed
    except ImportError:
        raise SweepError("--scheduler needs Dask: pip install 'gradbasis[distributed]'") from None
    if isinstance(scheduler, distributed.Client):
        client, own = scheduler, False
    else:
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
        own = True
    try:
        # Each data set travels to the cluster once, not once per cell.
        used = sorted({c.data_id for c in pending})
        scattered = dict(
            zip(used, client.scatter([datasets[d] for d in used], hash=False), strict=False)
        )
        futures = {
            client.submit(run_cell, cell, scattered[cell.data_id], True, pure=False): cell
            for cell in pending
        }
        try:
            for fut in distributed.as_completed(list(futures)):
                try:
                    yield fut.result()
                except Exception as exc:  # the task itself was lost (KilledWorker, ...): record it
                    yield _lost_cell_record(futures[fut], exc)
        finally:
            client.cancel([f for f in futures if not f.done()])
    finally:
        if own:
            client.close()


def run(
    config: Mapping | str | os.PathLike | Sweep,
    *,
    output: str | os.PathLike | None = None,
    jobs: int | None = None,
    scheduler: object = None,
    progress: bool | str = True,
) -> list[dict]:
    """Run a sweep: train and check every cell not yet in the results file.

    ``config`` is a dict (as parsed from TOML), a sweep file's path or a :class:`Sweep`;
    :func:`load_sweep` validates it whole first. ``output`` (default: the sweep's own
    ``output``; neither: keep the records in memory only) is the JSON Lines file; the cells
    already in it are skipped (a cell recorded as failed is finished too: delete its line to
    run it again), and a partial last line is cut off. ``jobs`` worker processes run cells side by side (default:
    the CPUs available; 1 runs them here, one after another, each using every core);
    ``scheduler`` (a Dask scheduler address or a ``distributed.Client``) runs them on a Dask
    cluster instead. ``progress``: True shows a progress bar on stderr, "log" one line per
    finished cell, False nothing.

    Returns the records of the sweep's cells (read back or new) in grid order.

    With ``jobs`` > 1 the workers are started with ``spawn`` (the OpenMP runtime of a process
    that has run the core is not safe to fork), so a script that calls this needs the usual
    ``if __name__ == "__main__":`` guard, as every multiprocessing program does.
    """
    sweep = config if isinstance(config, Sweep) else load_sweep(config)
    if jobs is not None and scheduler is not None:
        raise SweepConfigError(
            "give jobs (worker processes here) or scheduler (a Dask cluster), not both"
        )
    if jobs is not None:
        with config_errors():
            jobs = positive_int(jobs, "jobs")
    mode = display_mode(progress)
    path = Path(output) if output is not None else sweep.output
    results = ResultsFile(path) if path is not None else None
    try:
        wanted = {c.key for c in sweep.cells}
        found = {r["key"]: r for r in (results.records if results else []) if r["key"] in wanted}
        pending = [c for c in sweep.cells if c.key not in found]
        bar = Progress(mode, len(sweep.cells), len(found), len(pending))
        try:
            if scheduler is not None:
                stream = _run_dask(pending, sweep.datasets, scheduler)
            else:
                workers = min(jobs or _available_cpus(), max(len(pending), 1))
                stream = _run_local(pending, sweep.datasets, workers)
            with contextlib.closing(stream):
                for record in stream:
                    record["sweep"] = sweep.name
                    if results is not None:
                        results.append(record)
                    found[record["key"]] = record
                    bar.update(record)
        finally:
            bar.close()
    finally:
        if results is not None:
            results.close()
    return [found[c.key] for c in sweep.cells]
