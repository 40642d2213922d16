"""A second core for independent work: one function computed in a forked process.

Only ``fork`` is used: the child sees the parent's data (datasets of hundreds of MB) without
pickling it, and only the (small) result travels back through a pipe.  Where ``fork`` is not
available or not safe (Windows, macOS' default, a threaded Python >= 3.12 process), where a
process cannot start (a daemonic caller, limits), or when the child fails or dies, the function
runs in this process instead: the result never depends on whether a second process was used, only
the time does.  No second process either when the memory still available could not hold as much
again as this process holds (its working arrays can grow that large), or with
``CDISC_PIPE_PROCESSES=1``.  Callers keep the order of their results themselves (determinism).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import threading
from typing import Any, Callable


#: Environment variable capping the processes a run uses: ``1`` never forks (a machine short of
#: memory: the second process holds its own working arrays beside this one's).
PROCESSES_ENV = "CDISC_PIPE_PROCESSES"


def cores() -> int:
    """Cores this process may use (at most ``CDISC_PIPE_PROCESSES`` when that is set to a number)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    cap = os.environ.get(PROCESSES_ENV, "").strip()
    return max(1, min(n, int(cap))) if cap.isdigit() else n


def fork_context() -> multiprocessing.context.BaseContext | None:
    """The ``fork`` context when forking is available and safe here, else None."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    if sys.platform == "darwin":  # system libraries are not fork-safe there (Python's default is spawn)
        return None
    if sys.version_info >= (3, 12) and threading.active_count() > 1:  # Python warns: threads + fork
        return None
    return multiprocessing.get_context("fork")


def memory_allows_a_copy() -> bool:
    """Whether the memory still available could hold as much again as this process holds now (a
    forked worker's own arrays can grow that large); True where the system does not say
    (/proc/meminfo and /proc/self/statm are Linux's)."""
    try:
        with open("/proc/meminfo", "rb") as fh:
            available = next(int(line.split()[1]) * 1024 for line in fh if line.startswith(b"MemAvailable:"))
        with open("/proc/self/statm", "rb") as fh:
            resident = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, StopIteration, ValueError, IndexError):
        return True
    return available >= resident


def _child(conn: Any, fn: Callable[..., Any], args: tuple) -> None:
    try:
        out = ("ok", fn(*args))
    except BaseException as exc:  # noqa: BLE001 - the parent computes it again, or raises it (released)
        out = ("error", exc)
    try:
        conn.send(out)
    except Exception:  # noqa: BLE001 - an unpicklable result or exception: said as text
        conn.send(("error", RuntimeError(f"{out[1]!r}" if out[0] == "error" else "result could not be sent")))
    finally:
        conn.close()


class SecondProcessFailed(RuntimeError):
    """The second process died (killed, out of memory) after its arguments were released."""


class Forked:
    """``fn(*args)`` started in a forked process; :meth:`result` waits for it.

    Without a usable second process, or when the child raised or died, :meth:`result` computes
    ``fn(*args)`` in this process (so an exception is raised here, as in a sequential run).
    ``fn`` must not write anything the parent also writes (it may run in either process).

    ``release=True``: once the child has started, this process drops its references to ``args``
    (their memory can be freed here while the child works on its copy).  The work can then not be
    done again here: an exception of the child is raised here as it was raised there, and a
    child that died raises :class:`SecondProcessFailed`.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, enabled: bool = True, release: bool = False) -> None:
        self.fn, self.args = fn, args
        self.process = None
        self.used = False  # whether the child's result was used
        ctx = fork_context() if enabled and cores() >= 2 and memory_allows_a_copy() else None
        if ctx is None:
            return
        try:
            self._recv, send = ctx.Pipe(duplex=False)
            self.process = ctx.Process(target=_child, args=(send, fn, args), daemon=True)
            # the child's garbage collector leaves the objects it inherits alone (frozen): collecting
            # them would touch, and so copy, every page holding one (copy-on-write)
            gc.freeze()
            try:
                self.process.start()
            finally:
                gc.unfreeze()
            send.close()
        except Exception:  # noqa: BLE001 - whatever stops a process from starting, the work is done here
            self.process = None
        if self.process is not None and release:
            self.args = None

    def ready(self) -> bool:
        """Whether :meth:`result` would not wait for the child (it is done, or there is none)."""
        return self.process is None or self._recv.poll()

    def result(self) -> Any:
        if self.process is not None:
            try:
                status, payload = self._recv.recv()
            except (EOFError, OSError):  # the child died (killed, out of memory)
                status, payload = "died", None
            finally:
                self.process.join()
                self._recv.close()
                self.process = None
            if status == "ok":
                self.used = True
                return payload
            if self.args is None:  # released: cannot be done again here
                if status == "error":
                    raise payload
                raise SecondProcessFailed(f"the second process running {getattr(self.fn, '__name__', self.fn)} "
                                          f"died (out of memory?); run again with {PROCESSES_ENV}=1")
        return self.fn(*self.args)

    def cancel(self) -> None:
        """Stop the child (the caller failed and will not ask for the result)."""
        if self.process is not None:
            self.process.terminate()
            self.process.join()
            self._recv.close()
            self.process = None


def share(sizes: list[tuple[str, int]], minimum: int = 200_000) -> tuple[list[str], list[str]]:
    """Items for this process and for a second one: the largest first, each to the side with less
    weight (``sizes``: name, weight such as records); all here when the weights add up to less
    than ``minimum`` (a process costs more than it saves)."""
    if sum(n for _, n in sizes) < minimum:
        return [name for name, _ in sizes], []
    load, sides = [0, 0], ([], [])
    for name, n in sorted(sizes, key=lambda x: -x[1]):
        side = 0 if load[0] <= load[1] else 1
        sides[side].append(name)
        load[side] += n
    return sides[0], sides[1]


def _each(fn: Callable[[str], Any], names: list[str]) -> dict[str, Any]:
    return {name: fn(name) for name in names}


def _each_after(before: Callable[[list[str]], None], fn: Callable[[str], Any], names: list[str]) -> dict[str, Any]:
    before(names)
    return _each(fn, names)


def map_shared(fn: Callable[[str], Any], sizes: list[tuple[str, int]], *, minimum: int = 200_000,
               enabled: bool = True, before: Callable[[list[str]], None] | None = None) -> dict[str, Any]:
    """``{name: fn(name)}`` for every name of ``sizes`` (name, weight), in that order; the names
    holding about half the weight (:func:`share`) are computed in a forked second process and
    their results sent back (``fn`` must return picklable values and write nothing).  As with
    :class:`Forked`, the results do not depend on whether a second process was used: when it
    fails, its names are computed here (an exception is then raised here, as in a sequential run).

    ``before(names)`` is called in each process, once the second one has started, with the names
    that process computes (all of them when there is no second process): it may let go of what
    only the other process needs.  The second process's names can then not be computed here: an
    exception of that process is raised here as it was raised there, and a process that died
    raises :class:`SecondProcessFailed`."""
    mine, theirs = share(sizes, minimum) if enabled else ([n for n, _ in sizes], [])
    if before is None:
        child = Forked(_each, fn, theirs) if theirs else None
    else:
        child = Forked(_each_after, before, fn, theirs, release=True) if theirs else None
        before(mine if child is not None and child.process is not None else [n for n, _ in sizes])
    try:
        done = _each(fn, mine)
    except BaseException:
        if child is not None:
            child.cancel()
        raise
    if child is not None:
        done.update(child.result())
    return {name: done[name] for name, _ in sizes}


_LIBC: Any = None
#: Free heap (bytes) below which :func:`return_free_memory` keeps it for reuse: a replaced working
#: frame of a large dataset frees more; the small frees of a 1,000-subject run stay (no page faults)
TRIM_AT_LEAST = 256 * 2**20


def _mallinfo2_type(ctypes: Any) -> Any:
    class MallInfo2(ctypes.Structure):
        """glibc's ``struct mallinfo2`` (every field a size_t; ``fordblks``: free bytes in the heap)."""

        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                          "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    return MallInfo2


def return_free_memory(at_least: int = TRIM_AT_LEAST) -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``).

    pandas frees a step's intermediate arrays, but glibc keeps most of what was freed in its heap
    for later allocations, so a process that built and dropped a few large frames holds their
    memory until it ends.  Trimming after a large step lowers the peak a run reaches; it changes
    no value.  The pages given back cost page faults when memory is allocated again, so the heap
    is trimmed only when it holds at least ``at_least`` bytes free (glibc's ``mallinfo2``; 0:
    always).  A no-op where the C library has no ``malloc_trim`` (not glibc:
    macOS, Windows, musl).
    """
    global _LIBC
    if _LIBC is None:
        _LIBC = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                libc = ctypes.CDLL("libc.so.6")
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
                libc.malloc_trim.restype = ctypes.c_int
                if hasattr(libc, "mallinfo2"):  # glibc 2.33+
                    libc.mallinfo2.restype = _mallinfo2_type(ctypes)
                _LIBC = libc
            except (OSError, AttributeError):
                pass
    if not _LIBC:
        return
    if at_least and hasattr(_LIBC, "mallinfo2") and _LIBC.mallinfo2().fordblks < at_least:
        return
    _LIBC.malloc_trim(0)
