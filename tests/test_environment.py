"""The command line refuses an environment older than the declared minimums (exit 2, named)."""

from __future__ import annotations

from importlib import metadata

import pytest

from cdisc_pipe import cli, environment
from cdisc_pipe.environment import check_installed, declared_minimums, release


@pytest.mark.parametrize("version, expected", [
    ("2.0.1", (2, 0, 1)), ("3.0", (3,)), ("3.0.0", (3,)), ("3.0.0rc1", (3,)), ("1.26.4", (1, 26, 4)),
    ("2.3.3", (2, 3, 3)), ("10", (10,)),
])
def test_release(version: str, expected: tuple) -> None:
    assert release(version) == expected


def test_release_order() -> None:
    assert release("2.3.3") < release("3.0")
    assert release("2.0.0") < release("2.0.1") <= release("2.0.1")
    assert release("1.3.10") > release("1.3.8")


def test_declared_minimums_skip_markers_and_unbounded() -> None:
    reqs = ["pandas>=3.0", "numpy >= 2.0.1", "lxml", 'pytest>=8; extra == "test"']
    assert declared_minimums(reqs) == {"pandas": "3.0", "numpy": "2.0.1"}


def test_installed_environment_passes() -> None:
    """The environment running these tests is one pyproject.toml allows."""
    assert check_installed() == []
    assert "pandas" in declared_minimums()  # read from the installed distribution's metadata


def test_older_and_missing_releases_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real = metadata.version

    def fake(name: str) -> str:
        if name == "pandas":
            return "2.3.3"
        if name == "nosuchpkg":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(environment.metadata, "version", fake)
    problems = check_installed({"pandas": "3.0", "numpy": "2.0.1", "nosuchpkg": "1.0"})
    assert [(p.entry, p.message) for p in problems] == [
        ("nosuchpkg", "cdisc-pipe needs nosuchpkg>=1.0, is not installed"),
        ("pandas", "cdisc-pipe needs pandas>=3.0, 2.3.3 is installed"),
    ]
    assert "pip install 'pandas>=3.0'" in problems[1].hint


def test_cli_exits_2_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:
    monkeypatch.setattr(environment, "declared_minimums", lambda: {"pandas": "99.0"})
    code = cli.main(["run", "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "pandas>=99.0" in err
    assert not (tmp_path / "out" / "sdtm").exists()
