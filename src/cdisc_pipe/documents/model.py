"""A small document model for the reviewer's guides: sections of paragraphs, tables, lists and
"to write" notes.  The guides' modules build it from metadata (pure functions); the PDF and DOCX
renderers (:mod:`cdisc_pipe.documents.pdf`, :mod:`cdisc_pipe.documents.docx`) turn it into files.

Text is plain text everywhere (never markup): each renderer escapes it for its own format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

TO_WRITE = "TO WRITE"
TO_EXPLAIN = "TO EXPLAIN"


@dataclass(frozen=True)
class Para:
    """A paragraph of plain text."""

    text: str


@dataclass(frozen=True)
class ToWrite:
    """A place where a person's words are needed: rendered highlighted, starting ``TO WRITE:``."""

    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table: ``header`` names the columns, ``rows`` hold plain text; ``widths`` are relative
    column widths (default equal); ``caption`` is shown above it."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[float, ...] = ()
    caption: str | None = None


Block = Union[Para, ToWrite, Bullets, Table]


@dataclass
class Section:
    """A numbered section (numbers follow the order: 1, 1.1, 1.1.1 ...)."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    sections: list["Section"] = field(default_factory=list)

    def add(self, *blocks: Block) -> "Section":
        self.blocks.extend(blocks)
        return self

    def sub(self, title: str, *blocks: Block) -> "Section":
        s = Section(title, list(blocks))
        self.sections.append(s)
        return s


@dataclass
class Document:
    """A whole document: title page lines, then the numbered sections.

    ``date`` is the spec's metadata date-time (``YYYY-MM-DDThh:mm:ss``): it is the only date the
    rendered files carry, so the same inputs give the same bytes."""

    title: str
    subtitle: str
    study: str
    sponsor: str | None
    date: str
    front: list[Block] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str, *blocks: Block) -> Section:
        s = Section(title, list(blocks))
        self.sections.append(s)
        return s


def numbered(sections: list[Section], prefix: str = "") -> list[tuple[str, int, Section]]:
    """Every section depth-first with its number (``"2.3"``) and level (0 = top)."""
    out: list[tuple[str, int, Section]] = []
    for i, s in enumerate(sections, start=1):
        num = f"{prefix}{i}"
        out.append((num, num.count("."), s))
        out.extend(numbered(s.sections, f"{num}."))
    return out


def to_write_blocks(doc: Document) -> list[str]:
    """Every ``TO WRITE`` note of the document, with its section number (a checklist for the writer)."""
    out = []
    for num, _, s in numbered(doc.sections):
        out += [f"{num} {s.title}: {b.text}" for b in s.blocks if isinstance(b, ToWrite)]
    return out
