"""Timing and peak-RSS measurement for one block of work (in-process or a child process)."""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss() -> int:
    """Resident set size of this process in bytes (``/proc/self/statm``; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Measure:
    """Wall time and peak RSS of a ``with`` block.

    ru_maxrss cannot be reset between stages of one process, so a sampler thread reads the RSS
    every ``interval`` seconds while the block runs; the peak is the largest sample (a spike
    shorter than the interval can be missed: the numbers are a lower bound, good to a few MB).
    """

    interval: float = 0.01
    wall: float = 0.0
    peak_rss: int = 0
    start_rss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, current_rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> "Measure":
        self.start_rss = self.peak_rss = current_rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self._t0
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak_rss = max(self.peak_rss, current_rss())


def _proc_bytes(path: str, field: bytes) -> int | None:
    """A ``<field> <n> kB`` line of a /proc file, in bytes; None when the file or line is not there."""
    try:
        with open(path, "rb") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _vm_hwm(pid: int) -> int | None:
    """Peak resident set (VmHWM, bytes) of a live process, from /proc; None if unavailable."""
    return _proc_bytes(f"/proc/{pid}/status", b"VmHWM:")


def _children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (scanning /proc: no psutil here)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_bytes()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")"
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(d.name))
    return out


def _pss(pid: int) -> int:
    """Proportional set size (bytes) of a live process: shared pages counted once over the processes
    sharing them, so a forked worker's copy-on-write pages are not counted twice."""
    return _proc_bytes(f"/proc/{pid}/smaps_rollup", b"Pss:") or 0


def tree_pss(pid: int) -> int:
    """PSS of a process and its direct children (the pipeline's forked second process)."""
    return _pss(pid) + sum(_pss(c) for c in _children(pid))


def run_child(cmd: Sequence[str], cwd: str | None = None, timeout: float | None = None) -> dict:
    """Run a command; return its wall time, exit code, peak RSS and the tail of its output.

    Peak RSS is the child's own VmHWM, polled every 10 ms until it exits (the memory of the
    program after exec; ``ru_maxrss`` of a child would include the parent's RSS at fork time).
    It can miss growth in the last 10 ms of the child's life.  ``peak_tree_pss_mb`` is the peak
    PSS of the command and its direct children (the pipeline forks a second process for
    validation), polled every 50 ms: the memory the whole run needs.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    deadline = None if timeout is None else t0 + timeout
    peak = tree = 0
    polls = 0
    while True:
        hwm = _vm_hwm(proc.pid)
        if hwm:
            peak = max(peak, hwm)
        if polls % 5 == 0:  # the process tree's memory (forked workers included), every 50 ms
            tree = max(tree, tree_pss(proc.pid))
        polls += 1
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if deadline and time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=5)
    text = b"".join(out_chunks).decode("utf-8", "replace")
    return {"wall_s": wall, "returncode": proc.returncode, "peak_rss_mb": round(peak / 2**20, 1),
            "peak_tree_pss_mb": round(tree / 2**20, 1),
            "output_tail": text[-2000:]}
