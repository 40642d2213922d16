"""Lay out a validated output root as eCTD module 5 dataset folders, with SHA-256 checksums.

::

    <dest>/m5/datasets/<studyid>/tabulations/sdtm/        *.xpt, define.xml, define.html (+ aCRF, cSDRG)
    <dest>/m5/datasets/<studyid>/analysis/adam/datasets/  *.xpt, define.xml, define.html (+ ADRG)
    <dest>/checksums.sha256                               "<sha256>  <path>" per file (sha256sum -c)

A study is packaged only when it is ready: the validation report ``<out>/reports/validation.json``
exists, its ``summary.errors`` is 0 and no rule failed to execute (``summary.rules_execution_error``); ``sdtm/`` has define.xml (FDA technical rejection criterion
1736); every define.xml is schema-valid and agrees with its XPT files (structure: files, variables,
labels, types, lengths, order; codelist values are left to the validation report).  Otherwise
:class:`~cdisc_pipe.errors.InputError` lists every reason and nothing is written.

Documents define.xml links to (aCRF, reviewer's guides, the define2-1.xsl stylesheet) are copied when
found beside define.xml (where ``cdisc-pipe run`` writes the aCRF and the guides,
:mod:`cdisc_pipe.documents`) or in ``<out>/docs/``, and otherwise listed in
:attr:`PackageResult.missing` (a warning, not a refusal).  The DOCX drafts are not linked, so not packaged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cdisc_pipe.define.consistency import check_define_against_data
from cdisc_pipe.define.schema import DEF, ODM, XLINK, parse_define, validate_define
from cdisc_pipe.errors import InputError, Problem

CHECKSUM_FILE = "checksums.sha256"
# source sub-folder of the output root -> folder under m5/datasets/<study>/
LAYOUT = {"sdtm": Path("tabulations") / "sdtm", "adam": Path("analysis") / "adam" / "datasets"}


@dataclass(frozen=True)
class PackageResult:
    """What :func:`package` wrote: ``files`` relative to ``root``, the checksum file, and the
    documents define.xml links to that were not found (``missing``)."""

    root: Path
    study: str
    files: list[str]
    checksum_file: Path
    missing: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _validation_problems(out_root: Path) -> list[Problem]:
    report = out_root / "reports" / "validation.json"
    if not report.is_file():
        return [Problem(str(report), "no validation report: the study has not been validated",
                        hint="Run 'cdisc-pipe validate --out DIR' (or 'cdisc-pipe run') first")]
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [Problem(str(report), f"validation report is not readable JSON: {exc}", hint="Re-run validation")]
    summary = data.get("summary") if isinstance(data, dict) else None
    errors = summary.get("errors") if isinstance(summary, dict) else None
    if not isinstance(errors, int) or isinstance(errors, bool):
        return [Problem(str(report), "validation report has no integer summary.errors", value=repr(errors),
                        hint="Re-run validation with this version of cdisc-pipe")]
    problems = []
    if errors > 0:
        problems.append(Problem(str(report), f"validation found {errors} error(s): the study cannot be packaged",
                                entry="summary.errors", value=str(errors),
                                hint="Fix them (see reports/validation.html) and validate again"))
    # A rule that could not run means the validation is incomplete: not a clean bill of health.
    crashed = summary.get("rules_execution_error")
    if isinstance(crashed, int) and not isinstance(crashed, bool) and crashed > 0:
        problems.append(Problem(str(report), f"{crashed} validation rule(s) failed to execute: validation is "
                                "incomplete", entry="summary.rules_execution_error", value=str(crashed),
                                hint="See the Rules sheet of reports/validation.xlsx"))
    return problems


def _leaf_targets(xml: bytes) -> tuple[str | None, list[str]]:
    """StudyName and the document hrefs (not datasets) a define.xml links to, plus its stylesheet."""
    root, _ = parse_define(xml)
    if root is None:
        return None, []
    name_el = root.find(f"{{{ODM}}}Study/{{{ODM}}}GlobalVariables/{{{ODM}}}StudyName")
    hrefs = []
    for leaf in root.iter(f"{{{DEF}}}leaf"):
        if leaf.getparent().tag == f"{{{ODM}}}ItemGroupDef":
            continue
        href = leaf.get(f"{{{XLINK}}}href") or ""
        if href and "://" not in href:
            hrefs.append(href.split("#", 1)[0])
    pi = root.getprevious()
    while pi is not None:
        if getattr(pi, "target", None) == "xml-stylesheet" and pi.get("href"):
            hrefs.append(pi.get("href"))
        pi = pi.getprevious()
    return (name_el.text if name_el is not None else None), sorted(set(hrefs))


def package(out_root: Path, dest: Path, *, study_id: str | None = None) -> PackageResult:
    """Package ``out_root`` (``sdtm/``, ``adam/``, ``reports/``) into eCTD folders under ``dest``.

    Args:
        out_root: a pipeline output root.
        dest: where ``m5/`` and ``checksums.sha256`` go.  A previous package there (recognised by its
            checksum file) is replaced; any other existing ``m5/`` is left alone and is an error.
        study_id: the study folder name; default: StudyName from define.xml, in lower case.

    Raises:
        InputError: every reason the study cannot be packaged (validation errors, missing or
            invalid define.xml, define/data disagreements, an existing foreign ``m5/``).
    """
    out_root, dest = Path(out_root), Path(dest)
    problems = _validation_problems(out_root)
    sources: dict[str, Path] = {sub: out_root / sub for sub in LAYOUT if (out_root / sub).is_dir()}
    if "sdtm" not in sources:
        problems.append(Problem(str(out_root / "sdtm"), "no SDTM folder to package",
                                hint="Run 'cdisc-pipe sdtm' or 'run' first"))
    names: set[str] = set()
    docs: dict[str, list[str]] = {}
    for sub, folder in sources.items():
        define = folder / "define.xml"
        if not define.is_file():
            problems.append(Problem(str(define), "define.xml missing (FDA technical rejection criterion 1736)",
                                    hint="Run 'cdisc-pipe define --out DIR'"))
            continue
        xml = define.read_bytes()
        schema = validate_define(xml, file=str(define))
        problems.extend(schema)
        if schema:
            continue
        # Structure only (files, variables, labels, types, lengths, order): codelist values are the
        # validation report's business (a sponsor value in an extensible list is a warning there).
        for f in check_define_against_data(xml, folder, file=str(define), check_values=False):
            if f.severity == "Error":
                problems.append(Problem(f.source_file or str(define), f"define.xml disagrees with the data: {f.message}",
                                        entry=f.dataset, column=f.variable, value=f.value))
        name, hrefs = _leaf_targets(xml)
        if name:
            names.add(name)
        docs[sub] = hrefs
        if not any(folder.glob("*.xpt")):
            problems.append(Problem(str(folder), "no XPT files to package"))
    if len(names) > 1:
        problems.append(Problem(str(out_root), "the define.xml files name different studies", value=", ".join(sorted(names))))
    study = (study_id or (sorted(names)[0] if names else "")).strip().lower()
    if not study and not problems:
        problems.append(Problem(str(out_root), "cannot tell the study id", hint="Pass study_id"))
    if (dest / "m5").exists() and not (dest / CHECKSUM_FILE).is_file():
        problems.append(Problem(str(dest / "m5"), "destination already holds an m5/ folder that is not a cdisc-pipe "
                                "package", hint="Choose another --dest or remove it"))
    if problems:
        raise InputError(problems, stage="package")

    tmp = dest / f".tmp-package-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    files: list[str] = []
    missing: list[str] = []
    try:
        for sub, folder in sorted(sources.items()):
            target_rel = Path("m5") / "datasets" / study / LAYOUT[sub]
            target = tmp / target_rel
            target.mkdir(parents=True, exist_ok=True)
            chosen = sorted(folder.glob("*.xpt")) + [folder / "define.xml"]
            if (folder / "define.html").is_file():
                chosen.append(folder / "define.html")
            for href in docs.get(sub, []):
                found = next((p for p in (folder / href, out_root / "docs" / href) if p.is_file()), None)
                if found is None:
                    missing.append(f"{target_rel.as_posix()}/{href}")
                else:
                    chosen.append(found)
            for src in chosen:
                dst = target / Path(src).name
                shutil.copyfile(src, dst)
                files.append((target_rel / dst.name).as_posix())
        files.sort()
        lines = [f"{_sha256(tmp / rel)}  {rel}\n" for rel in files]
        (tmp / CHECKSUM_FILE).write_text("".join(lines), encoding="ascii")
        dest.mkdir(parents=True, exist_ok=True)
        if (dest / "m5").exists():
            shutil.rmtree(dest / "m5")
        (tmp / "m5").replace(dest / "m5")
        (tmp / CHECKSUM_FILE).replace(dest / CHECKSUM_FILE)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return PackageResult(root=dest, study=study, files=files, checksum_file=dest / CHECKSUM_FILE, missing=missing)
