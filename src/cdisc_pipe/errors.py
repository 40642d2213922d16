"""Errors and findings as values.

Every stage collects what is wrong with its input as a list of :class:`Problem` and raises one
:class:`InputError` carrying all of them (xportr's "collect every finding, then fail once").  The CLI
prints each problem on its own line and exits with code 2.  Nothing in the pipeline lets a Python
traceback reach the user for bad input.

Data problems that do not stop a stage (an unmapped coded value, a record dated after death, ...)
are :class:`Finding` values: the record is kept and the finding goes to the validation report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal

Severity = Literal["Error", "Warning", "Notice"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is, what it is, and what to do about it.

    Attributes:
        file: path (as given) of the file the problem is in, or a logical source name.
        message: what is wrong, in plain words.
        entry: the entry inside the file: a row number (1-based, header = row 1), a dataset or
            variable name, a YAML path such as ``variables[3].length``.
        column: the column or field concerned, when there is one.
        value: the offending value, as text.
        hint: what the user should do to fix it.
    """

    file: str
    message: str
    entry: str | None = None
    column: str | None = None
    value: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.entry is not None:
            where += f", {self.entry}"
        if self.column is not None:
            where += f", column {self.column}"
        text = f"{where}: {self.message}"
        if self.value is not None:
            text += f" (value: {self.value!r})"
        if self.hint:
            text += f". {self.hint}"
        return text


class InputError(Exception):
    """Bad input: one or more :class:`Problem` values.  The CLI reports them all and exits 2."""

    def __init__(self, problems: Iterable[Problem] | Problem, stage: str | None = None):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        self.stage = stage
        super().__init__(self.summary())

    def summary(self) -> str:
        head = f"{len(self.problems)} problem(s)"
        if self.stage:
            head = f"{self.stage}: {head}"
        return head + ":\n" + "\n".join(f"  - {p}" for p in self.problems)


def raise_if(problems: list[Problem], stage: str | None = None) -> None:
    """Raise one :class:`InputError` holding every collected problem, if there are any."""
    if problems:
        raise InputError(problems, stage=stage)


@dataclass(frozen=True)
class Finding:
    """A data finding kept for the validation report; the record it is about stays in the data.

    ``rule`` names the check (e.g. ``SDTM.CT.UNMAPPED``); the validation stage merges stage findings
    with its own rule results.
    """

    rule: str
    severity: Severity
    message: str
    dataset: str | None = None
    usubjid: str | None = None
    seq: float | None = None
    variable: str | None = None
    value: str | None = None
    source_file: str | None = None
    source_row: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
