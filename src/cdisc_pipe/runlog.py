"""One log per run, in the SAS style a programmer scans: ``NOTE:``, ``WARNING:``, ``ERROR:`` lines.

The log goes to ``<out>/logs/cdisc-pipe-<command>.log`` (overwritten by the next run of the same
command) and progress lines go to stderr.  Elapsed times appear in the log and on stderr only:
no output file that the manifest hashes carries a wall-clock value.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class RunLog:
    """Collects log lines; ``save`` writes them.  Pass it explicitly: no global logger state."""

    def __init__(self, command: str, quiet: bool = False):
        self.command = command
        self.quiet = quiet
        self.lines: list[str] = []
        self._t0 = time.perf_counter()
        #: stderr lines kept instead of printed (a log of work in a second process, see :meth:`child`)
        self._held: list[str] | None = None
        self._where = ""  # " [second process]" on the steps of a child log

    def child(self) -> RunLog:
        """A log for work done in a second process: same clock, and its stderr lines kept, so that
        :meth:`adopt` adds both to this log when the work is joined (one log, no interleaving)."""
        log = RunLog(self.command, quiet=self.quiet)
        log._t0, log._held, log._where = self._t0, [], " [second process]"
        return log

    def adopt(self, other: RunLog) -> None:
        """Add the lines of a :meth:`child` log and print its stderr lines."""
        self.lines.extend(other.lines)
        for line in other._held or []:
            self._print(line)

    def _print(self, line: str) -> None:
        if self._held is not None:
            self._held.append(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def _add(self, kind: str, text: str) -> None:
        for i, line in enumerate(str(text).splitlines() or [""]):
            self.lines.append(f"{kind + ':' if i == 0 else ' ' * (len(kind) + 1)} {line}")

    def record(self, kind: str, text: str) -> None:
        """A log line of the given kind (NOTE/WARNING/ERROR) without echoing it to stderr."""
        self._add(kind, text)

    def note(self, text: str) -> None:
        self._add("NOTE", text)

    def warning(self, text: str) -> None:
        self._add("WARNING", text)
        if not self.quiet:
            self._print(f"WARNING: {text}")

    def error(self, text: str) -> None:
        self._add("ERROR", text)
        self._print(f"ERROR: {text}")

    def progress(self, text: str) -> None:
        """A progress line on stderr (and a NOTE in the log)."""
        self.note(text)
        if not self.quiet:
            self._print(f"[{time.perf_counter() - self._t0:7.1f}s] {text}")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step: a progress line when it starts and a NOTE with its duration when it ends."""
        t = time.perf_counter()
        name = f"{name}{self._where}"  # steps of a child log overlap the run's own: they say so
        self.progress(f"{name} ...")
        yield
        self.progress(f"{name} done in {time.perf_counter() - t:.2f} s{_peak_memory()}")

    def save(self, out_dir: Path) -> Path:
        folder = Path(out_dir) / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"cdisc-pipe-{self.command}.log"
        path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        return path


def _peak_memory() -> str:
    """", peak RSS 1234 MB": the most memory this process has held so far (the step that raises a
    run's peak shows it); empty where the platform does not say.  Linux: VmHWM, which starts anew at
    exec (``ru_maxrss`` keeps the high-water mark of the process that started this one)."""
    try:
        with open("/proc/self/status", "rb") as fh:
            kb = next(int(line.split()[1]) for line in fh if line.startswith(b"VmHWM:"))
        return f", peak RSS {kb / 1024:.0f} MB"
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return f", peak RSS {peak / (2**20 if sys.platform == 'darwin' else 2**10):.0f} MB"
    except (ImportError, OSError, ValueError):  # pragma: no cover - Windows has no resource module
        return ""
