"""``outputs/manifest.json``: what went in, with which versions, and the SHA-256 of what came out.

Deterministic: sorted, no timestamps, paths relative to their roots, so two runs on the same inputs
give the same manifest byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

PACKAGES = ("cdisc-pipe", "pandas", "numpy", "pyreadstat", "pydantic", "jinja2", "openpyxl", "lxml", "pyyaml",
            "odmlib", "jsonschema", "reportlab", "python-docx", "scipy", "matplotlib")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_table(root: Path, patterns: Iterable[str] = ("**/*",), skip: Callable[[str], bool] | None = None,
               known: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{relative path: sha256}`` of the files under ``root`` (sorted; hidden folders skipped, and
    the relative paths ``skip`` says yes to, before they are read).  ``known``: digests of files by
    relative path, taken as they are instead of reading the files again (a writer's digest of the
    bytes it wrote in this run)."""
    root = Path(root)
    files: dict[str, Path] = {}
    if not root.exists():
        return {}
    for pattern in patterns:
        for p in root.glob(pattern):
            rel = p.relative_to(root)
            if p.is_file() and not any(part.startswith(".") for part in rel.parts) \
                    and not (skip is not None and skip(rel.as_posix())):
                files[rel.as_posix()] = p
    names = sorted(files)
    known = known or {}
    todo = [n for n in names if n not in known]
    hashed = dict(zip(todo, sha256_files([files[n] for n in todo])))
    return {n: known[n] if n in known else hashed[n] for n in names}


def sha256_files(paths: list[Path]) -> list[str]:
    """:func:`sha256_file` of each path, in order; large sets in two threads (hashlib works without
    the interpreter lock on large buffers, so two files are hashed at once on two cores)."""
    if len(paths) < 2 or sum(p.stat().st_size for p in paths) < (64 << 20):
        return [sha256_file(p) for p in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(sha256_file, paths))


def is_snapshot(rel: str) -> bool:
    """Files a stage keeps for itself between runs (the validation's previous-run snapshot, stage
    scratch): not outputs, so not in the manifest."""
    return "_previous/" in f"/{rel}/" or rel.startswith("_previous")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def build_manifest(*, command: str, inputs: dict[str, Path | None], spec: Any, out_dir: Path,
                   records: dict[str, int], written: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Assemble the manifest dict.

    Args:
        inputs: named input folders (raw, specs, mappings, sdtm ...); each is hashed file by file.
        spec: the loaded StudySpec (study id, standards and CT package dates are recorded).
        records: ``{"sdtm/dm.xpt": 18, ...}`` row counts of written datasets.
        written: ``{"sdtm/dm.xpt": sha256, ...}`` digests the writers computed of the bytes they wrote
            in this run (those files are not read again).
    """
    out_dir = Path(out_dir)
    outputs = {}
    for sub in ("sdtm", "adam", "reports"):
        mine = {k[len(sub) + 1:]: v for k, v in (written or {}).items() if k.startswith(f"{sub}/")}
        for rel, digest in file_table(out_dir / sub, skip=is_snapshot, known=mine).items():
            key = f"{sub}/{rel}"
            entry: dict[str, Any] = {"sha256": digest}
            if key in records:
                entry["records"] = records[key]
            outputs[key] = entry
    return {
        "tool": "cdisc-pipe",
        "command": command,
        "study": None if spec is None else {"studyid": spec.study.name, "oid": spec.study.oid,
                                            "metadata_datetime": spec.study.metadata_datetime},
        "standards": [] if spec is None else [
            {"oid": s.oid, "name": s.name, "type": s.type, "version": s.version, "publishing_set": s.publishing_set}
            for s in spec.standards],
        "versions": versions(),
        "inputs": {name: (None if path is None else {"path_name": Path(path).name, "files": file_table(path)})
                   for name, path in sorted(inputs.items())},
        "outputs": dict(sorted(outputs.items())),
    }


def write_manifest(manifest: dict[str, Any], out_dir: Path) -> Path:
    path = Path(out_dir) / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
