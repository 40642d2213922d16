"""Shared test helpers: the repository root, the optional ../shared folder."""

from __future__ import annotations

from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def bundled_run(tmp_path_factory) -> Path:
    """``cdisc-pipe run`` on the bundled study, once per test session; returns the output root."""
    from cdisc_pipe.cli import main

    out = tmp_path_factory.mktemp("bundled") / "outputs"
    code = main(["run", "--out", str(out), "-q"])
    assert code == 0, (out / "logs" / "cdisc-pipe-run.log").read_text()
    return out
