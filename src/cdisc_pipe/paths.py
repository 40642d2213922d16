"""Default locations: the bundled study's raw export, specs and mappings, and the CT folder.

The bundled study lives in the repository (``raw/``, ``specs/``, ``mappings/``).  With an editable
install the repository root is two levels above this package; ``CDISC_PIPE_HOME`` overrides it.
The CT files are configuration: ``--ct DIR`` or ``CDISC_PIPE_CT``; by default ``../shared/ct`` beside
the repository when present (the project's development layout).  Without CT, CT checks are skipped
with a reason, never guessed.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    env = os.environ.get("CDISC_PIPE_HOME")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2]
    if (here / "specs").is_dir():
        return here
    return Path.cwd()


def default_raw() -> Path:
    return project_root() / "raw"


def default_specs() -> Path:
    return project_root() / "specs"


def default_mappings() -> Path:
    return project_root() / "mappings"


def default_ct() -> Path | None:
    env = os.environ.get("CDISC_PIPE_CT")
    if env:
        return Path(env)
    candidate = project_root().parent / "shared" / "ct"
    return candidate if candidate.is_dir() else None


def shared_dir() -> Path | None:
    """The development-only ../shared folder (tests may use it; the product never needs it)."""
    candidate = project_root().parent / "shared"
    return candidate if candidate.is_dir() else None
