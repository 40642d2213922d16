"""What a writer actually wrote: the facts define.xml, the manifest and validation need.

Define-XML Length must equal the written length, OrderNumber the written order; so every consumer
reads these records instead of re-deriving them from the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class WrittenColumn:
    name: str
    label: str
    type: Literal["text", "numeric"]
    length: int  # bytes for text (longest value present, at least 1); 8 for numeric
    display_format: str | None = None  # SAS format as written, e.g. "DATE9."
    order: int = 0  # 1-based position in the file


@dataclass(frozen=True)
class WrittenDataset:
    name: str  # upper case
    label: str
    purpose: Literal["Tabulation", "Analysis"]
    records: int
    columns: tuple[WrittenColumn, ...]
    xpt_path: str  # relative to the output root, e.g. "sdtm/dm.xpt"
    json_path: str | None = None
    xpt_sha256: str = ""
    json_sha256: str | None = None
    extra: dict = field(default_factory=dict)
    #: No records: no file was written (``xpt_path``/``json_path`` name the files it would have had,
    #: ``xpt_sha256`` is empty); define.xml declares it ``def:HasNoData="Yes"`` without a leaf.
    has_no_data: bool = False

    def column(self, name: str) -> WrittenColumn:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no written column {name}")
