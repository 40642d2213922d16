"""Validation: rules as data (YAML) + a vectorised engine + reports (xlsx/html/json) + run-to-run diff.

Entry point::

    result = run_validation(out_dir, spec, ct_dir)            # validates <out>/sdtm and <out>/adam
    result = run_validation(out_dir, None, ct_dir, sdtm_dir=Path("pilot"))   # a folder of XPT files
    result.exit_code   # 1 when an Error finding exists, else 0
    result.summary     # {"errors": .., "warnings": .., "notices": .., "rules_run": .., ...}

Reports are written to ``<out>/reports/validation.{xlsx,html,json}``; the snapshot for the next
run's comparison to ``<out>/reports/_previous/``.  See docs/VALIDATION.md.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.spec.load import SAFE_LOADER
from cdisc_pipe.parallel import Forked
from cdisc_pipe.spec.model import StudySpec
from cdisc_pipe.validate import diff as _diff
from cdisc_pipe.validate import report as _report
from cdisc_pipe.validate.data import DatasetMeta, ReadOptions, StudyData, load_folder, load_held
from cdisc_pipe.validate.engine import (
    FINDING_COLUMNS, EarlyUnits, load_rules, match_expected, run_early, run_rules, stage_findings, study_rule_files,
)
from cdisc_pipe.validate.functions import FUNCTIONS, rule_function
from cdisc_pipe.validate.model import Rule, RuleResult, ValidationSettings
from cdisc_pipe.validate.operators import OPERATORS, operator

SEVERITY_ORDER = {"Error": 0, "Warning": 1, "Notice": 2}


@dataclass
class ValidationResult:
    """What a validation run found and where the reports are."""

    summary: dict[str, Any]
    rules: list[RuleResult]
    findings: pd.DataFrame  # every finding (validation rules + stage findings), with ``explanation``
    changes: dict[str, pd.DataFrame] = field(default_factory=dict)
    reports: dict[str, Path] = field(default_factory=dict)
    #: the workbook being written in a second process (``run_validation(workbook_later=True)``)
    pending: Any = None

    @property
    def exit_code(self) -> int:
        return 1 if self.summary.get("errors", 0) > 0 else 0

    def wait(self) -> ValidationResult:
        """Wait until every report is written (the workbook may still be, see ``pending``)."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()
        return self

    def cancel(self) -> None:
        """Stop writing the workbook (the run failed)."""
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None


def load_settings(path: Path | None) -> tuple[ValidationSettings, Path | None]:
    """Read ``specs/settings/validation.yaml`` (safe loader, pydantic); defaults when ``path`` is None."""
    if path is None:
        return ValidationSettings(), None
    problems: list[Problem] = []
    try:
        doc = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(Problem(str(path), f"cannot read validation settings: {exc}"), stage="validate")
    try:
        return ValidationSettings.model_validate(doc), Path(path)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(x) for x in err["loc"]]
            entry, column = ".".join(loc) or None, None
            if len(loc) >= 2 and loc[0] == "expected" and loc[1].isdigit():
                # name the entry as a reader finds it: expected[3] (FND.LB.UNIT.CHANGE), key records[1].seq
                i = int(loc[1])
                items = doc.get("expected") if isinstance(doc, dict) else None
                rid = items[i].get("rule") if isinstance(items, list) and i < len(items) and \
                    isinstance(items[i], dict) else None
                entry = f"expected[{i}]" + (f" ({rid})" if rid else "")
                column = ".".join(f"[{x}]" if x.isdigit() else x for x in loc[2:]).replace(".[", "[") or None
            problems.append(Problem(str(path), err["msg"].removeprefix("Value error, "), entry=entry,
                                    column=column, value=repr(err.get("input"))[:80] if column else None))
        raise InputError(problems, stage="validate") from None


def load_ct_packages(spec: StudySpec | None, data: StudyData, ct_dir: Path | None) -> tuple[dict[str, Any], str | None]:
    """CT packages by publishing set (SDTM, ADaM, DEFINE-XML) and why CT is unavailable, if it is.

    With a spec: the ``ct_file`` of each CT standard, read from ``ct_dir``.  Without one: the package
    versions declared in define.xml, looked up as ``<set>-ct-<version>.*`` in ``ct_dir``.
    """
    from cdisc_pipe.ct import load_ct

    if ct_dir is None:
        return {}, "CT folder not configured (pass ct_dir or set ct_dir in validation settings)"
    if not Path(ct_dir).is_dir():
        return {}, f"CT folder {ct_dir} not found"
    pkgs: dict[str, Any] = {}
    reasons: list[str] = []
    wanted: list[tuple[str, str]] = []  # (publishing set, file name)
    if spec is not None:
        wanted = [(s.publishing_set or "SDTM", s.ct_file) for s in spec.standards if s.type == "CT" and s.ct_file]
        if not wanted:
            reasons.append("the spec declares no CT standard with ct_file")
    else:
        for d in data.defines.values():
            for s in d.ct_standards:
                stem = f"{s['publishing_set'].lower()}-ct-{s['version']}"
                hits = sorted(Path(ct_dir).glob(stem + ".*"))
                if hits:
                    wanted.append((s["publishing_set"], hits[0].name))
                else:
                    reasons.append(f"CT package {s['publishing_set']} {s['version']} (define.xml) not in {ct_dir}")
    for pub, fname in wanted:
        path = Path(ct_dir) / fname
        try:
            pkgs[pub] = load_ct(path)
        except InputError as exc:
            reasons.append("; ".join(str(p) for p in exc.problems))
    return pkgs, ("; ".join(reasons) if reasons or not pkgs else None) or None


def _summary(findings: pd.DataFrame, results: list[RuleResult], data: StudyData) -> dict[str, Any]:
    sev = findings["severity"].value_counts()
    status = pd.Series([r.status for r in results]).value_counts()
    explained = findings["explanation"].notna()
    return {
        "errors": int(sev.get("Error", 0)),
        "warnings": int(sev.get("Warning", 0)),
        "notices": int(sev.get("Notice", 0)),
        "findings": int(len(findings)),
        "expected": int(explained.sum()),
        "unexplained_warnings": int(((findings["severity"] == "Warning") & ~explained).sum()),
        "stage_findings": int((findings["source"] != "validation").sum()),
        "rules_total": len(results),
        "rules_run": int(status.get("SUCCESS", 0) + status.get("ISSUE", 0)),
        "rules_success": int(status.get("SUCCESS", 0)),
        "rules_issue": int(status.get("ISSUE", 0)),
        "rules_skipped": int(status.get("SKIPPED", 0)),
        "rules_execution_error": int(status.get("EXECUTION ERROR", 0)),
        "datasets": len(data.datasets),
    }


def validate_data(data: StudyData, spec: StudySpec | None, ct: dict[str, Any], ct_reason: str | None,
                  settings: ValidationSettings | None = None, rules: list[Rule] | None = None
                  ) -> tuple[list[RuleResult], pd.DataFrame]:
    """Run the rules on datasets already in memory (no files read or written)."""
    settings = settings or ValidationSettings()
    rules = rules if rules is not None else load_rules()
    return run_rules(rules, data, spec, settings, ct, ct_reason)


def _with_raw_rows(findings: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Rule findings on an SDTM record get the raw rows it was built from (``[form:row, ...]`` at the
    end of the message), read from the SDTM stage's ``_stage/records.csv`` (dataset, usubjid, seq).
    A (dataset, usubjid, seq) naming more than one record names none."""
    if not len(findings) or not path.is_file():
        return findings
    rec = pd.read_csv(path, dtype={"dataset": str, "usubjid": str, "seq": str, "raw": str}, keep_default_na=False)
    if rec.empty:
        return findings
    keys = ["dataset", "usubjid", "seq"]

    def keyed(ds: pd.Series, us: pd.Series, seq: pd.Series) -> pd.DataFrame:
        return pd.DataFrame({"dataset": ds.astype(object).fillna("").astype(str).to_numpy(),
                             "usubjid": us.astype(object).fillna("").astype(str).to_numpy(),
                             "seq": pd.to_numeric(seq, errors="coerce").astype("float64").to_numpy()})

    fk = keyed(findings["dataset"], findings["usubjid"], findings["seq"])
    # only the records of the findings' datasets and subjects are keyed: every record sharing a
    # key shares its dataset and subject, so the "one record per key" test below is unchanged
    rec = rec[rec["dataset"].isin(fk["dataset"].unique()) & rec["usubjid"].isin(fk["usubjid"].unique())]
    rk = keyed(rec["dataset"], rec["usubjid"], rec["seq"]).assign(raw=rec["raw"].to_numpy())
    rk = rk[~rk.duplicated(keys, keep=False)]  # a key naming one record only
    where = fk.merge(rk, on=keys, how="left")["raw"]  # left merge: findings' order and length
    has = (where.notna() & (where != "")).to_numpy()
    if not has.any():
        return findings
    out = findings.copy()
    out.loc[has, "message"] = out.loc[has, "message"].astype("str") + " [" + where[has].astype("str").to_numpy() + "]"
    return out


def _rule_costs(path: Path) -> dict[str, float] | None:
    """Seconds per rule of the previous run in this output folder (how the rules are shared between
    two processes; the findings do not depend on it), None without one."""
    try:
        times = pd.read_csv(path, dtype={"rule": str})
        return dict(zip(times["rule"], pd.to_numeric(times["seconds"], errors="coerce").fillna(0.0)))
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return None


def _ct_folder(ct_dir: Path | None, settings: ValidationSettings, sp: Path | None) -> Path | None:
    """The CT folder: given, else the settings' ``ct_dir`` (relative to the settings file)."""
    if ct_dir is None and settings.ct_dir:
        return Path(settings.ct_dir) if Path(settings.ct_dir).is_absolute() or sp is None else \
            (sp.parent / settings.ct_dir)
    return ct_dir


def validate_early(held: dict[str, tuple[pd.DataFrame, DatasetMeta]], purpose: str, folder: Path,
                   define_folder: Path, spec: StudySpec | None, ct_dir: Path | None,
                   settings_path: Path | None = None, rules: list[Rule] | None = None,
                   others: tuple[str, dict[str, pd.DataFrame]] | None = None, skip: EarlyUnits | None = None,
                   stop: Callable[[], bool] | None = None) -> EarlyUnits | None:
    """Ahead of :func:`run_validation`: the rules on the datasets of one ``purpose`` a run holds
    (``held``, as for ``run_validation``; their files will be in ``folder``, their define.xml is
    read from ``define_folder``), while the run is still deriving the others.  Each unit that
    would see anything else is left to ``run_validation`` (``engine.run_early``), which takes
    these units as they are: the findings are those of one validation of everything.  None when
    nothing can be run early (no spec: the CT packages would depend on the define.xml files of
    every purpose; or the define.xml does not load).

    ``others``: (purpose, frames by dataset name) of datasets known so far by their data alone (no
    file metadata, no define.xml yet: a unit that looks there is left out); ``skip``, ``stop``: as
    for ``engine.run_early`` (units run already; asked before each unit whether to end)."""
    if spec is None:
        return None
    settings, sp = load_settings(settings_path)
    data = StudyData()
    problems: list[str] = []
    load_held(held, Path(folder), purpose, data, problems, define_folder=Path(define_folder))
    if problems:
        return None
    for name, df in (others[1] if others else {}).items():
        data.datasets[name.upper()] = df
        data.purpose[name.upper()] = others[0]  # type: ignore[index]
    ct, ct_reason = load_ct_packages(spec, data, _ct_folder(ct_dir, settings, sp))
    rules = rules if rules is not None else load_rules(extra=study_rule_files(settings, sp))
    return run_early(rules, data, spec, settings, ct, ct_reason, skip=skip, stop=stop)


def run_validation(out_dir: Path, spec: StudySpec | None, ct_dir: Path | None, sdtm_dir: Path | None = None,
                   adam_dir: Path | None = None, settings_path: Path | None = None,
                   rules: list[Rule] | None = None, read_options: ReadOptions | None = None,
                   held: dict[str, dict[str, tuple[pd.DataFrame, DatasetMeta]]] | None = None,
                   early: EarlyUnits | None = None, second: Callable[[], bool] | None = None,
                   workbook_later: bool = False) -> ValidationResult:
    """Validate the SDTM/ADaM outputs (``<out>/sdtm``, ``<out>/adam`` or the given folders of XPT files
    with their define.xml) and write ``<out>/reports/validation.{xlsx,html,json}``.

    Args:
        out_dir: output root; reports go to ``<out>/reports``; stage findings and the SDTM
            traceability table are read from ``<out>/<stage>/_stage/``.
        spec: the study spec; None runs the spec-free rules and marks spec rules SKIPPED.
        ct_dir: folder with the CDISC CT files (configuration); None = settings ``ct_dir`` or no CT.
        sdtm_dir, adam_dir: folders of XPT files to validate instead of ``<out>/sdtm``/``<out>/adam``.
        settings_path: ``specs/settings/validation.yaml`` (expected findings, TS parameters, ...).
        read_options: how XPT text is decoded (``encoding`` forced, else UTF-8 or detected per
            file); its ``notes`` receive one line per file that was not plain UTF-8.
        rules: rules to run (default: the package's generic rule files plus the study's own rule
            files named by the settings' ``rule_files``).
        held: by purpose (``"Tabulation"``, ``"Analysis"``), the datasets of that folder as the run
            that wrote them holds them (``cdisc_pipe.validate.data.held_dataset``: what reading the
            files back gives, without reading them); only their define.xml is read.  Purposes not
            given are read from their folder.
        early: the units :func:`validate_early` ran on the held datasets of one purpose while the
            run was still deriving the others (taken as they are; the same findings).
        second: when the rules may take a second process (``engine.run_rules``; the caller keeps
            the other core busy until then); None: at once.
        workbook_later: write ``validation.xlsx`` in a second process and return at once (the
            caller goes on, then calls ``ValidationResult.wait``); the JSON and HTML are written.
    """
    out_dir = Path(out_dir)
    settings, sp = load_settings(settings_path)
    ct_dir = _ct_folder(ct_dir, settings, sp)
    data = StudyData()
    io_problems: list[str] = []
    for folder, purpose in ((sdtm_dir or out_dir / "sdtm", "Tabulation"), (adam_dir or out_dir / "adam", "Analysis")):
        if held and purpose in held:
            load_held(held[purpose], Path(folder), purpose, data, io_problems)
        elif Path(folder).is_dir():
            load_folder(Path(folder), purpose, data, io_problems, options=read_options)
    if not data.datasets and not io_problems:
        raise InputError(Problem(str(out_dir), "no XPT datasets to validate",
                                 hint="Run the pipeline first or pass --sdtm/--adam folders"), stage="validate")
    ct, ct_reason = load_ct_packages(spec, data, Path(ct_dir) if ct_dir else None)
    rules = rules if rules is not None else load_rules(extra=study_rule_files(settings, sp))
    reports_dir = out_dir / "reports"
    previous = reports_dir / "_previous"
    # the record-level comparison with the previous run needs no finding: it runs beside the rules
    # (in a second process when there is one; cdisc_pipe.parallel), into a new snapshot folder
    fresh = previous / f".datasets-{os.getpid()}"
    shutil.rmtree(fresh, ignore_errors=True)
    records_job = Forked(_diff.compare_datasets, previous, data, spec, fresh)
    try:
        results, findings = run_rules(rules, data, spec, settings, ct, ct_reason,
                                      costs=_rule_costs(previous / "rule_times.csv"), early=early, second=second)
    except BaseException:
        records_job.cancel()
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    findings = _with_raw_rows(findings, Path(sdtm_dir or out_dir / "sdtm") / "_stage" / "records.csv")

    stage, stage_problems = stage_findings(out_dir)
    io_problems += stage_problems
    extra = pd.DataFrame({"rule": "VAL.INPUT", "severity": "Error", "category": "Structure", "dataset": None,
                          "usubjid": None, "seq": np.nan, "variable": None, "value": None,
                          "message": io_problems, "source": "validation"}, columns=FINDING_COLUMNS) \
        if io_problems else pd.DataFrame(columns=FINDING_COLUMNS)
    parts = [f for f in (findings, stage, extra) if len(f)]
    allf = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FINDING_COLUMNS)
    # explanations cover what they name; an entry (or a subject, value, record it lists) that matches
    # no finding is itself a Warning finding (VAL.EXPECTED.STALE)
    matched = match_expected(allf, settings, sp)
    allf = allf.assign(explanation=matched.explanation)
    if len(matched.stale):
        allf = pd.concat([allf, matched.stale.assign(explanation=None)], ignore_index=True)
    unused_expected = matched.unused
    allf = allf.assign(__o=allf["severity"].map(SEVERITY_ORDER).fillna(9)).sort_values(
        ["__o", "rule", "dataset", "usubjid", "seq", "variable"], kind="stable", na_position="first"
    ).drop(columns="__o").reset_index(drop=True)

    reports_dir.mkdir(parents=True, exist_ok=True)
    ds_changes, rec_changes = records_job.result()
    fnd_changes, had_previous = _diff.compare_findings(previous, allf)
    _diff.replace_snapshot(previous, fresh)
    # rule run times of this run, kept even when the reports leave them out for reproducibility
    pd.DataFrame([{"rule": r.rule.id, "status": r.status, "seconds": round(r.seconds, 4)} for r in results]
                 ).to_csv(previous / "rule_times.csv", index=False)

    summary = _summary(allf, results, data)
    summary["previous_run"] = had_previous
    summary["new_findings"] = int((fnd_changes["change"] == "new").sum()) if had_previous else None
    summary["resolved_findings"] = int((fnd_changes["change"] == "resolved").sum()) if had_previous else None
    summary["ct"] = {k: Path(v.path).name for k, v in ct.items()}
    summary["ct_reason"] = ct_reason
    summary["unused_expected"] = unused_expected

    trace_path = Path(sdtm_dir or out_dir / "sdtm") / "_stage" / "traceability.csv"
    traceability = _report.numbers(pd.read_csv(trace_path, dtype=str, keep_default_na=False),
                                   ["records_in", "records_out", "source_row"]) if trace_path.is_file() else \
        pd.DataFrame({"note": [f"{trace_path} not found (produced by the SDTM stage)"]})

    limited = allf[allf.groupby(["rule", "dataset"], dropna=False).cumcount() < settings.report_limit_per_rule]
    by_rule = (allf.groupby(["severity", "rule", "dataset"], dropna=False).size().rename("findings").reset_index()
               .assign(__o=lambda d: d["severity"].map(SEVERITY_ORDER)).sort_values(["__o", "rule", "dataset"])
               .drop(columns="__o"))
    msg = allf.drop_duplicates("rule").set_index("rule")["message"].to_dict()
    msg.update({r.rule.id: r.rule.message for r in results})  # the rule's own words, not a finding's
    by_rule["message"] = by_rule["rule"].map(msg)
    expl = allf.groupby(["rule", "dataset"], dropna=False)["explanation"].first().rename("explanation")
    by_rule = by_rule.merge(expl.reset_index(), on=["rule", "dataset"], how="left")
    rules_df = pd.DataFrame([r.to_dict(settings.record_run_times) for r in results])
    finding_cols = ["severity", "dataset", "usubjid", "seq", "variable", "value", "rule", "message",
                    "explanation", "source"]
    limited = limited[finding_cols]

    paths = {k: reports_dir / f"validation.{k}" for k in ("json", "xlsx", "html")}
    payload = {
        "summary": summary,
        "rules": _report.records(rules_df),
        "by_rule_dataset": _report.records(by_rule),
        "findings": _report.records(limited),
        "findings_limited_to_per_rule": settings.report_limit_per_rule,
        "changes": {"datasets": _report.records(ds_changes), "records": _report.records(rec_changes),
                    "findings": _report.records(fnd_changes)},
        "traceability": _report.records(traceability),
    }
    _report.write_json(paths["json"], payload)
    rules_table = _report.rules_table(rules_df)  # status first, severity only with findings, refs
    workbook = Forked(_report.write_xlsx, paths["xlsx"], {
        "Summary": _report.summary_table(summary), "By rule and dataset": by_rule, "Findings": limited,
        "Rules": rules_table,
        "Changes (datasets)": ds_changes, "Changes (records)": rec_changes, "Changes (findings)": fnd_changes,
        "Traceability": traceability,
    }, enabled=workbook_later)
    note_prev = None if had_previous else "No previous run in this output folder: nothing to compare."
    title = spec.study.name if spec is not None else str(sdtm_dir or adam_dir or out_dir)
    _report.write_html(paths["html"], title, summary, [
        _report.section("Findings by rule and dataset", by_rule, nav="By rule", anchor="by-rule"),
        _report.section("Findings", limited, f"At most {settings.report_limit_per_rule} per rule and dataset; "
                                              "counts above are complete.", anchor="findings"),
        _report.section("Rules", rules_table, "Status first; severity is shown for rules with findings.",
                        anchor="rules"),
        _report.section("Changes since the last run: datasets", ds_changes, note_prev, nav="Changes: datasets",
                        anchor="changes-datasets"),
        _report.section("Changes since the last run: findings", fnd_changes, note_prev, nav="Changes: findings",
                        anchor="changes-findings"),
        _report.section("Changes since the last run: records", rec_changes.head(5000), note_prev,
                        nav="Changes: records", anchor="changes-records"),
        _report.section("Traceability (raw records per form and dataset)", traceability, nav="Traceability",
                        anchor="traceability"),
    ])
    result = ValidationResult(summary=summary, rules=results, findings=allf,
                              changes={"datasets": ds_changes, "records": rec_changes, "findings": fnd_changes},
                              reports=paths, pending=workbook)
    return result if workbook_later else result.wait()


__all__ = ["run_validation", "validate_early", "validate_data", "ValidationResult", "load_rules", "study_rule_files", "load_settings", "load_ct_packages",
           "rule_function", "operator", "FUNCTIONS", "OPERATORS", "StudyData", "ValidationSettings", "Rule",
           "RuleResult"]
