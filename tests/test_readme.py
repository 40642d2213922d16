"""The README's Quick start stays true: two commands, and CI runs the same test command."""

from __future__ import annotations

import re


def test_quick_start_has_two_commands_and_ci_runs_the_test_one(root):
    readme = (root / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", section, re.S)
    assert len(commands) == 2
    ci = (root / ".ci" / "run").read_text()
    assert commands[1].strip() in ci
    assert "cdisc-pipe run" in commands[0]
