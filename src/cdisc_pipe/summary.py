"""What a programmer reads first: the log header, validation results as log lines, the end-of-run summary.

- :func:`log_header`: tool and package versions, the command line, the options and a SHA-256 of
  each input folder, so a log says what produced it (the SAS log habit).
- :func:`log_validation`: one ``ERROR:`` / ``WARNING:`` / ``NOTE:`` line per rule and dataset with
  findings, so ``grep ERROR: logs/*.log`` finds every Error.
- :func:`run_summary`: the one-screen summary printed at the end of a command: datasets and records
  written, the validation outcome (Errors, Warnings explained/unexplained, skipped rules and why)
  and the real paths of the report, manifest and log.

No wall-clock value reaches an output the manifest hashes: these texts go to the log and the terminal.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cdisc_pipe import __version__
from cdisc_pipe.manifest import file_table, sha256_file, versions
from cdisc_pipe.runlog import RunLog

__all__ = ["tree_digest", "log_header", "log_validation", "run_summary"]

#: findings listed one per line in the log before the rest of a rule's findings are counted
_MAX_LINES_PER_RULE = 20


def tree_digest(path: Path | None) -> str | None:
    """SHA-256 of a file, or of a folder's ``relative path = file SHA-256`` table; None when absent."""
    if path is None or not Path(path).exists():
        return None
    if Path(path).is_file():
        return sha256_file(Path(path))
    h = hashlib.sha256()
    for rel, digest in file_table(Path(path)).items():
        h.update(f"{rel}={digest}\n".encode())
    return h.hexdigest()


def log_header(log: RunLog, argv: Sequence[str], options: Mapping[str, Any],
               digests: Mapping[str, str | None]) -> None:
    """NOTE lines heading the log: version, command line, options, input digests."""
    v = {k: val for k, val in versions().items() if k != "cdisc-pipe"}
    log.record("NOTE", f"cdisc-pipe {__version__}; " + ", ".join(f"{k} {val}" for k, val in v.items()))
    log.record("NOTE", "command line: cdisc-pipe " + " ".join(shlex.quote(str(a)) for a in argv))
    for name, value in options.items():
        if value is not None:
            log.record("NOTE", f"option {name}: {value}")
    for name, digest in digests.items():
        log.record("NOTE", f"input {name}: " + (f"SHA-256 {digest}" if digest else "absent"))


def _group_lines(findings: pd.DataFrame) -> list[tuple[str, str]]:
    """(log kind, text) per finding of an Error rule (capped) and per rule/dataset otherwise."""
    if findings is None or findings.empty:
        return []
    f = findings.copy()
    for col in ("dataset", "usubjid", "variable", "value", "explanation", "message", "rule", "severity"):
        if col not in f.columns:
            f[col] = None
    f["dataset"] = f["dataset"].fillna("-")
    kinds = {"Error": "ERROR", "Warning": "WARNING"}
    out: list[tuple[str, str]] = []
    order = {"Error": 0, "Warning": 1}
    f["_o"] = f["severity"].map(order).fillna(2)
    for (_, sev, rule, ds), g in f.groupby(["_o", "severity", "rule", "dataset"], sort=True, dropna=False):
        kind = kinds.get(sev, "NOTE")
        explained = int(g["explanation"].notna().sum())
        head = f"validation {sev} {rule} ({ds}): {len(g)} finding(s)"
        if explained:
            head += f", {explained} explained"
        if sev == "Error":  # every Error on its own line, so grep finds each one
            for row in g.head(_MAX_LINES_PER_RULE).itertuples():
                where = ", ".join(f"{k} {v}" for k, v in (("subject", row.usubjid), ("variable", row.variable),
                                                            ("value", row.value)) if v is not None and not pd.isna(v))
                out.append((kind, f"validation Error {rule} ({ds}): {row.message}" + (f" [{where}]" if where else "")))
            if len(g) > _MAX_LINES_PER_RULE:
                out.append((kind, f"{head}: {len(g) - _MAX_LINES_PER_RULE} more not listed here (see the report)"))
        else:
            first = g["message"].iloc[0]
            out.append((kind if explained < len(g) else "NOTE", f"{head}: {first}"))
    return out


def log_validation(log: RunLog, result: Any) -> None:
    """The validation outcome as log lines (see the module docstring)."""
    findings = getattr(result, "findings", None)
    for kind, text in _group_lines(findings if isinstance(findings, pd.DataFrame) else pd.DataFrame()):
        log.record(kind, text)
    for r in getattr(result, "rules", []) or []:
        if r.status in ("SKIPPED", "EXECUTION ERROR"):
            log.record("WARNING" if r.status == "EXECUTION ERROR" else "NOTE",
                       f"validation rule {r.rule.id} {r.status.lower()}: {r.reason or 'no reason given'}")
    s = getattr(result, "summary", {}) or {}
    log.record("NOTE", "validation: " + _validation_line(s))


def _validation_line(s: Mapping[str, Any]) -> str:
    text = (f"{s.get('errors', 0)} Error(s), {s.get('warnings', 0)} Warning(s) "
            f"({s.get('unexplained_warnings', 0)} unexplained), {s.get('notices', 0)} Notice(s); "
            f"rules: {s.get('rules_total', 0)} ({s.get('rules_success', 0)} passed, {s.get('rules_issue', 0)} with "
            f"findings, {s.get('rules_skipped', 0)} skipped, {s.get('rules_execution_error', 0)} failed to run)")
    if s.get("unused_expected"):
        text += f"; {len(s['unused_expected'])} explanation item(s) matched nothing (stale: VAL.EXPECTED.STALE)"
    return text


def _manifest(out: Path) -> dict:
    try:
        return json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _records(out: Path) -> dict[str, tuple[int, int]]:
    """(datasets, records) per output folder, from the manifest just written (XPT files counted once)."""
    manifest = _manifest(out)
    counts: dict[str, tuple[int, int]] = {}
    for key, entry in manifest.get("outputs", {}).items():
        sub, _, name = key.partition("/")
        if name.endswith(".xpt") and "/" not in name:
            n, r = counts.get(sub, (0, 0))
            counts[sub] = (n + 1, r + int(entry.get("records") or 0))
    return counts


def run_summary(command: str, out: Path, code: int, result: Any = None, log_path: Path | None = None) -> str:
    """The text printed at the end of a command (see the module docstring)."""
    out = Path(out).resolve()
    status = {0: "finished", 1: "finished with Error findings", 2: "stopped: bad input or usage",
              3: "stopped: internal error (a bug)"}.get(code, "stopped")
    lines = [f"cdisc-pipe {command}: {status} (exit {code})"]
    if code in (0, 1):
        manifest = _manifest(out)
        cut = manifest.get("data_cutoff") or {}
        if cut.get("date"):
            lines.append(f"  data cut-off: {cut['date']}, from {cut.get('source') or 'an unrecorded source'}")
        empty = manifest.get("datasets_without_data") or {}
        for sub, label in (("sdtm", "SDTM"), ("adam", "ADaM")):
            n, r = _records(out).get(sub, (0, 0))
            if n:
                none = empty.get(sub) or []
                extra = f" (+ {len(none)} without data, not written: {', '.join(none)})" if none else ""
                lines.append(f"  {label:<5} {n:3d} datasets, {r:,} records{extra}  {out / sub}")
        s = getattr(result, "summary", None)
        if s:
            lines.append("  validation: " + _validation_line(s))
            if s.get("ct_reason"):
                lines.append(f"    CT checks skipped: {s['ct_reason']}")
            for r in getattr(result, "rules", []) or []:
                if r.status in ("SKIPPED", "EXECUTION ERROR"):
                    lines.append(f"    rule {r.rule.id} {r.status.lower()}: {r.reason or 'no reason given'}")
            report = (getattr(result, "reports", {}) or {}).get("html")
            lines.append(f"  report:   {Path(report).resolve() if report else out / 'reports' / 'validation.html'}")
        if (out / "reports" / "results.html").exists():
            lines.append(f"  results:  {out / 'reports' / 'results.html'}")
        if (out / "manifest.json").exists():
            lines.append(f"  manifest: {out / 'manifest.json'}")
    if log_path is not None:
        lines.append(f"  log:      {Path(log_path).resolve()}")
    return "\n".join(lines)
