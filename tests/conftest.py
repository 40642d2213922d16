"""Shared test helpers: the repository root, the optional ../shared folder, the bundled run."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

try:
    import fcntl
except ImportError:  # not POSIX: each pytest-xdist worker does the work itself
    fcntl = None

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


def once_per_session(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Any]) -> Any:
    """``build(folder)`` once per test session, also when pytest-xdist runs the session in several
    worker processes: the first worker to get here builds into a fresh folder while the others wait
    on a file lock, then every worker gets the same folder and result (``build`` returns JSON).
    What is built this way is read-only for the tests: a test that changes it works on a copy.
    A build that fails leaves no record, so each worker that needs it fails with its own error."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER") and fcntl is not None:
        base = base.parent  # the folder of this session, shared by its workers (popen-gw0, popen-gw1, ...)
    else:
        return build(tmp_path_factory.mktemp(name))
    done = base / f"{name}.done.json"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if done.is_file():
            return json.loads(done.read_text())["result"]
        result = build(tmp_path_factory.mktemp(name))
        done.write_text(json.dumps({"result": result}))
        return result


def _bundled(tmp: Path) -> str:
    from cdisc_pipe.cli import main

    out = tmp / "outputs"
    code = main(["run", "--out", str(out), "-q"])
    assert code == 0, (out / "logs" / "cdisc-pipe-run.log").read_text()
    return str(out)


@pytest.fixture(scope="session")
def bundled_run(tmp_path_factory) -> Path:
    """``cdisc-pipe run`` on the bundled study, once per test session (shared by the xdist workers);
    returns the output root.  Read-only: a test that changes files copies it first."""
    return Path(once_per_session(tmp_path_factory, "bundled", _bundled))
