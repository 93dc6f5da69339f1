"""A quiet machine for the benchmarks, and the evidence of it beside every timing.

Imported through bench/_common.py (which pins the threads first); pure /proc reading, no numpy,
so that it also runs in the neural-tangents environment.

* ``wait_for_quiet(max_load=0.5, timeout_s=...)``: poll until the 1-minute load average, less
  this benchmark's own share of it (below), is under ``max_load`` AND the processes outside this
  benchmark used under ``CONTENDED_CORE_FRACTION`` of one core over the last poll; after
  ``timeout_s`` proceed with a recorded warning. Returns what it saw (waited seconds, loads).
* ``timed(fn)``: one call of ``fn`` with an :class:`Attempt` record: the load average at start
  and at end, and the CPU seconds (utime + stime + cutime + cstime of /proc/[pid]/stat) used by
  every process NOT in this benchmark's process tree between start and end. A process that
  appears during the timing counts whole; one that vanishes counts through its parent's cutime
  and cstime once reaped (short compiler jobs included); the system-wide busy time of /proc/stat
  less the tree's own is recorded beside it as a cross-check.
* ``measure(fn, repeat, ...)``: ``repeat`` uncontended timings, each contended one rerun, up to
  ``max_reruns`` (default 3) reruns in all; the best uncontended time is reported, and every
  attempt is kept for the JSON. Where every attempt was contended, the best of them is reported
  with ``contended: true``.

A timing is **contended** when the other processes used more than ``CONTENDED_CORE_FRACTION``
= 10 % of one core during it (other CPU seconds > 0.10 x wall seconds; /proc counts in clock
ticks, so the threshold is never below 2 ticks, 0.02 s: a shorter timing is judged at that
resolution), or when the 1-minute load average at start, less this benchmark's own share,
exceeds ``MAX_LOAD`` = 0.5.

This benchmark's own share of the load: the load average counts this benchmark's own threads
(2 while it computes), so a raw "load > 0.5" would flag every timing after the first. The share
is the exponentially weighted CPU use of the process tree with the load average's own time
constant (60 s), tracked from the tree's cumulative CPU time in a small state file that every
process of the run shares (``GRADBASIS_BENCH_STATE``); it starts at 0 for a fresh run.

The process tree is the process named by ``GRADBASIS_BENCH_ROOT`` (set by the first benchmark
process, or by bench/run_all.sh to itself) and all its descendants (anchor workers, Dask
workers), plus the calling process and its ancestors up to that root.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MAX_LOAD = 0.5
CONTENDED_CORE_FRACTION = 0.10
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
MIN_OTHER_S = 2 * TICK_S
LOAD_TAU_S = 60.0  # time constant of the 1-minute load average


# ------------------------------------------------------------------------------ /proc


def _scan() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, utime + stime + cutime + cstime in seconds) of every readable process."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:  # vanished between listing and reading
            continue
        rest = text[text.rfind(")") + 2 :].split()
        # after the command: state, ppid, ..., utime (index 11), stime, cutime, cstime
        out[int(entry.name)] = (int(rest[1]), sum(int(x) for x in rest[11:15]) * TICK_S)
    return out


def _tree(procs: dict[int, tuple[int, float]]) -> set[int]:
    root = int(os.environ.get("GRADBASIS_BENCH_ROOT", os.getpid()))
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), [root, os.getpid()]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, ()))
    pid = os.getpid()  # ancestors of this process up to the root
    while pid in procs and pid != root and pid > 1:
        tree.add(pid)
        pid = procs[pid][0]
    return tree


def _busy_s() -> float:
    """System-wide busy CPU seconds (user, nice, system, irq, softirq, steal) from /proc/stat."""
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return sum(int(f[i]) for i in (0, 1, 2, 5, 6, 7)) * TICK_S


@dataclass
class _Snap:
    t: float
    load: tuple[float, float, float]
    others: dict[int, float]
    tree_cpu: float
    busy: float
    own_load: float


def _state_path() -> Path:
    root = os.environ.get("GRADBASIS_BENCH_ROOT", str(os.getpid()))
    default = Path(tempfile.gettempdir()) / f"gradbasis_bench_load_{root}.json"
    return Path(os.environ.setdefault("GRADBASIS_BENCH_STATE", str(default)))


def _own_load(now: float, tree_cpu: float) -> float:
    """Update and return the tree's share of the 1-minute load (see the module docstring)."""
    path = _state_path()
    try:
        st = json.loads(path.read_text())
    except (OSError, ValueError):
        st = None
    if st is None or tree_cpu < st["tree_cpu"]:  # fresh run (or a new root)
        own = 0.0
    else:
        dt = max(now - st["t"], 1e-6)
        rate = min(max((tree_cpu - st["tree_cpu"]) / dt, 0.0), float(os.cpu_count() or 1))
        decay = math.exp(-dt / LOAD_TAU_S)
        own = st["own_load"] * decay + rate * (1.0 - decay)
    try:
        path.write_text(json.dumps({"t": now, "tree_cpu": tree_cpu, "own_load": own}))
    except OSError:
        pass
    return own


def _snap() -> _Snap:
    procs = _scan()
    tree = _tree(procs)
    now = time.time()
    tree_cpu = sum(cpu for pid, (_, cpu) in procs.items() if pid in tree)
    return _Snap(
        t=time.perf_counter(),
        load=os.getloadavg(),
        others={pid: cpu for pid, (_, cpu) in procs.items() if pid not in tree},
        tree_cpu=tree_cpu,
        busy=_busy_s(),
        own_load=_own_load(now, tree_cpu),
    )


def _others_between(a: _Snap, b: _Snap) -> tuple[float, int, int]:
    """(CPU seconds of other processes between a and b, pids that appeared, pids that vanished)."""
    total = sum(max(cpu - a.others.get(pid, 0.0), 0.0) for pid, cpu in b.others.items())
    return total, len(b.others.keys() - a.others.keys()), len(a.others.keys() - b.others.keys())


# ------------------------------------------------------------------------------ public


@dataclass
class Attempt:
    wall_s: float
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]
    own_load_start: float  # this benchmark's estimated share of load_start[0]
    other_cpu_s: float  # CPU seconds of processes outside this benchmark's tree
    other_core_fraction: float  # other_cpu_s / wall_s
    system_other_cpu_s: float  # /proc/stat busy time less this tree's CPU (cross-check)
    appeared: int
    vanished: int
    contended: bool
    reasons: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(a: _Snap, b: _Snap, max_load: float = MAX_LOAD) -> Attempt:
    wall = b.t - a.t
    other, appeared, vanished = _others_between(a, b)
    reasons = []
    limit = max(CONTENDED_CORE_FRACTION * wall, MIN_OTHER_S)
    if other > limit:
        reasons.append(
            f"other processes used {other:.3f} CPU s in {wall:.3f} s (> {limit:.3f} s: "
            f"{CONTENDED_CORE_FRACTION:.0%} of a core)"
        )
    excess = a.load[0] - a.own_load
    if excess > max_load:
        reasons.append(
            f"load at start {a.load[0]:.2f}, of which ~{a.own_load:.2f} this benchmark's (> {max_load})"
        )
    return Attempt(
        wall_s=wall,
        load_start=a.load,
        load_end=b.load,
        own_load_start=a.own_load,
        other_cpu_s=other,
        other_core_fraction=other / wall if wall > 0 else 0.0,
        system_other_cpu_s=max((b.busy - a.busy) - (b.tree_cpu - a.tree_cpu), 0.0),
        appeared=appeared,
        vanished=vanished,
        contended=bool(reasons),
        reasons=reasons,
    )


def timed(fn: Callable[[], Any], max_load: float = MAX_LOAD) -> tuple[Any, Attempt]:
    """``(fn(), Attempt)``; the /proc snapshots are taken outside the timed interval."""
    a = _snap()
    t0 = time.perf_counter()
    out = fn()
    t1 = time.perf_counter()
    b = _snap()
    att = judge(a, b, max_load)
    att.wall_s = t1 - t0  # the call alone; the CPU window is the snapshots' (slightly wider)
    att.other_core_fraction = att.other_cpu_s / att.wall_s if att.wall_s > 0 else 0.0
    return out, att


def measure(
    fn: Callable[[], Any],
    repeat: int = 1,
    *,
    max_reruns: int = 3,
    budget_s: float = float("inf"),
    first: Callable[[Any], Any] | None = None,
    keep_output: bool = False,
    before_each: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Up to ``repeat`` uncontended timings of ``fn()`` (fewer once the attempts took
    ``budget_s``, but at least one uncontended unless ``max_reruns`` reruns were spent).

    ``first(out)`` is applied to the first attempt's output (a check, say; its value is
    returned as ``first``); ``keep_output`` returns the output of the reported attempt (only
    that one is ever held, an earlier one is dropped as soon as a better attempt ends);
    ``before_each(i)`` runs before attempt i, outside the timing. Returns ``best_s`` (best
    uncontended, else best of all), ``times_s`` (the uncontended walls), ``contended``,
    ``attempts`` (every attempt's :class:`Attempt` as a dict)."""
    import gc

    attempts: list[Attempt] = []
    kept, kept_at = None, -1  # only the reported attempt's output is held (K may be 13 GB)
    first_value, n_bad = None, 0
    while True:
        if before_each:
            before_each(len(attempts))
        gc.collect()
        out, att = timed(fn)
        if not attempts and first is not None:
            first_value = first(out)
        attempts.append(att)
        if keep_output and (kept_at < 0 or _rank(att) < _rank(attempts[kept_at])):
            kept, kept_at = None, -1  # drop the old one before holding the new one
            kept, kept_at = out, len(attempts) - 1
        del out
        n_bad += att.contended
        good = [a for a in attempts if not a.contended]
        spent = sum(a.wall_s for a in attempts)
        if len(good) >= repeat or (good and spent >= budget_s):
            break
        if n_bad > max_reruns and (spent >= budget_s or len(attempts) >= repeat + max_reruns):
            break
    pool = [i for i, a in enumerate(attempts) if not a.contended] or list(range(len(attempts)))
    best = min(pool, key=lambda i: _rank(attempts[i]))
    res = {
        "best_s": attempts[best].wall_s,
        "times_s": [attempts[i].wall_s for i in pool],
        "contended": attempts[best].contended,
        "attempts": [a.as_dict() for a in attempts],
        "best_attempt": best,
    }
    if first is not None:
        res["first"] = first_value
    if keep_output:
        res["output"] = kept
    return res


def _rank(a: Attempt) -> tuple[bool, float]:
    """Uncontended before contended, then the shorter wall time."""
    return (a.contended, a.wall_s)


def wait_for_quiet(
    max_load: float = MAX_LOAD, timeout_s: float = 900.0, poll_s: float = 5.0, log=print
) -> dict[str, Any]:
    """Wait until the machine is quiet (module docstring); returns the record for the JSON."""
    t0 = time.perf_counter()
    a = _snap()
    polls = 0
    while True:
        time.sleep(poll_s)
        b = _snap()
        polls += 1
        other_frac = _others_between(a, b)[0] / max(b.t - a.t, 1e-9)
        excess = b.load[0] - b.own_load
        waited = time.perf_counter() - t0
        quiet = excess < max_load and other_frac < CONTENDED_CORE_FRACTION
        if quiet or waited >= timeout_s:
            rec = {
                "waited_s": waited,
                "polls": polls,
                "load": b.load,
                "own_load": b.own_load,
                "other_core_fraction_last_poll": other_frac,
                "quiet": quiet,
                "max_load": max_load,
            }
            if not quiet:
                rec["warning"] = (
                    f"machine not quiet after {waited:.0f} s (load {b.load[0]:.2f}, ~{b.own_load:.2f} ours; "
                    f"other processes {other_frac:.0%} of a core): timings proceed and are judged one by one"
                )
                log(f"# warning: {rec['warning']}")
            else:
                log(f"# quiet after {waited:.0f} s (load {b.load[0]:.2f}, ~{b.own_load:.2f} ours)")
            return rec
        if polls % max(1, int(60 / poll_s)) == 0:
            log(
                f"# waiting for a quiet machine: {waited:.0f} s, load {b.load[0]:.2f} "
                f"(~{b.own_load:.2f} ours), others {other_frac:.0%} of a core"
            )
        a = b


def quiet_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Worst load and other-CPU fraction over the reported attempts of ``measure`` results."""
    rep = [r["attempts"][r["best_attempt"]] for r in results if r and "attempts" in r]
    if not rep:
        return {}
    return {
        "max_load_start": max(a["load_start"][0] for a in rep),
        "max_other_core_fraction": max(a["other_core_fraction"] for a in rep),
        "any_contended": any(a["contended"] for a in rep),
        "attempts": sum(len(r["attempts"]) for r in results if r and "attempts" in r),
    }
