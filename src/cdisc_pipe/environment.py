"""Is the Python environment one cdisc-pipe was tested on?

``pyproject.toml`` declares the lowest release of each dependency that CI tests (see
``.ci/constraints-min.txt``).  pip enforces those bounds on install, but an environment can still
hold an older release (``pip install --no-deps``, a conda environment, a package installed after
cdisc-pipe that downgraded pandas).  With pandas 2, for example, missing text becomes the string
"nan" and results are wrong without any error, so the command line checks the installed releases
first and refuses to run (exit 2) rather than produce such results.
"""

from __future__ import annotations

import re
from importlib import metadata

from cdisc_pipe.errors import Problem

DISTRIBUTION = "cdisc-pipe"
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)\s*$")


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: ``"2.0.1"`` -> (2, 0, 1); ``"3.0.0rc1"`` -> (3, 0, 0).

    Trailing zeros do not count (``"3.0"`` equals ``"3.0.0"``).
    """
    parts = []
    for piece in version.split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
        if m.end() < len(piece):  # "0rc1": a pre-release of this number; stop here
            break
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def declared_minimums(requirements: list[str] | None = None) -> dict[str, str]:
    """``{package: lowest version}`` from the installed distribution's own requirements.

    Requirements with an environment marker (extras such as ``test``) are left out.  Returns an
    empty mapping when cdisc-pipe runs from a source tree that was never installed.
    """
    if requirements is None:
        try:
            requirements = metadata.requires(DISTRIBUTION) or []
        except metadata.PackageNotFoundError:
            return {}
    out = {}
    for req in requirements:
        if ";" in req:
            continue
        m = _REQUIREMENT.match(req)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def check_installed(minimums: dict[str, str] | None = None) -> list[Problem]:
    """One :class:`Problem` per dependency that is missing or older than declared."""
    minimums = declared_minimums() if minimums is None else minimums
    problems = []
    for name, lowest in sorted(minimums.items()):
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = None
        if found is not None and release(found) >= release(lowest):
            continue
        state = "is not installed" if found is None else f"{found} is installed"
        problems.append(Problem(
            file="Python environment", entry=name,
            message=f"cdisc-pipe needs {name}>={lowest}, {state}",
            hint=f"pip install '{name}>={lowest}' (the lowest release cdisc-pipe is tested with)"))
    return problems
