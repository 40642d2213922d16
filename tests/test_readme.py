"""The README's Quick start stays true: two commands, and CI runs the same test command."""

from __future__ import annotations

import re
import tomllib


def test_quick_start_has_two_commands_and_ci_runs_the_test_one(root):
    readme = (root / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", section, re.S)
    assert len(commands) == 2
    ci = (root / ".ci" / "run").read_text()
    assert commands[1].strip() in ci
    assert "cdisc-pipe run" in commands[0]


def test_minimum_versions_are_the_ones_ci_pins(root) -> None:
    """Every '>=' lower bound in pyproject.toml is pinned '==' in .ci/constraints-min.txt and back."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {}
    for req in project["dependencies"] + project["optional-dependencies"]["test"]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", req.strip())
        assert m, f"pyproject.toml: {req!r} is not 'name>=version' (CI pins the minimum of each)"
        declared[m.group(1).lower()] = m.group(2)
    pins = {}
    for line in (root / ".ci" / "constraints-min.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()

    def release(v: str) -> tuple[int, ...]:  # "3.0" and "3.0.0" are the same release
        parts = tuple(int(x) for x in v.split("."))
        return parts + (0,) * (3 - len(parts))

    assert {k: release(v) for k, v in declared.items()} == {k: release(v) for k, v in pins.items()}
    assert "constraints-min.txt" in (root / ".ci" / "run").read_text()
