"""The results file of a sweep: JSON Lines, one record per cell, appended by one writer.

Each record is one ``write`` of a whole line followed by ``fsync``, so a sweep killed at any
moment leaves complete records and at most a partial last line, which the next run cuts off.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import ResultsFileError, SweepError

__all__ = ["load_records", "parse_records"]


def parse_records(data: bytes, path: Path, *, sweep_keys: bool) -> list[dict]:
    """The records of JSON Lines ``data`` read from ``path`` (blank lines skipped). Each line
    must be a JSON object; with ``sweep_keys`` also a sweep record (a string ``key``)."""
    records = []
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise ResultsFileError(
                f"{path}, line {lineno}: not JSON ({why}); the file was edited or is not a sweep's results"
            ) from None
        if not isinstance(rec, dict):
            raise ResultsFileError(
                f"{path}, line {lineno}: a record must be a JSON object; got {type(rec).__name__}"
            )
        if sweep_keys and not isinstance(rec.get("key"), str):
            raise ResultsFileError(
                f"{path}, line {lineno}: a JSON object but not a sweep record (no 'key')"
            )
        records.append(rec)
    return records


def load_records(path: str | os.PathLike) -> list[dict]:
    """Every complete record of a results file, in file order. A last line without its
    newline (a write cut short by a kill) is ignored; the file is not changed."""
    path = Path(path)
    if not path.is_file():
        raise ResultsFileError(f"results file {str(path)!r} does not exist")
    data = path.read_bytes()
    return parse_records(data[: data.rfind(b"\n") + 1], path, sweep_keys=True)


class ResultsFile:
    """The JSON Lines file a sweep appends to, opened for one writer (an advisory lock)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise SweepError(f"cannot open the results file {str(path)!r}: {exc}") from None
        try:
            self._lock()
            if created:
                _fsync_directory(path.parent)
            self.records = self._read_and_repair()
        except BaseException:
            os.close(self.fd)
            raise

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # no advisory locks (Windows): one writer is the user's job
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SweepError(
                f"another sweep is writing {self.path}; wait for it or choose another output"
            ) from None

    def _read_and_repair(self) -> list[dict]:
        os.lseek(self.fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self.fd, 1 << 24):
            chunks.append(chunk)
        data = b"".join(chunks)
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # a write cut short by a kill: drop it, its cell runs again
            os.ftruncate(self.fd, complete)
            os.fsync(self.fd)
        return parse_records(data[:complete], self.path, sweep_keys=True)

    def append(self, record: Mapping) -> None:
        line = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()
        written = os.write(self.fd, line)  # one write of the whole line, O_APPEND
        while written < len(line):  # only on a full disk or a signal; finish the same line
            written += os.write(self.fd, line[written:])
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def _fsync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable too (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
