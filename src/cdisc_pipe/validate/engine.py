"""The rule engine: load rules (YAML, safe loader, pydantic), pick datasets, run checks, collect findings.

Every rule ends with a status: SUCCESS (ran, no finding), ISSUE (ran, findings), SKIPPED (with the
reason: dataset or variable absent, no spec, no CT) or EXECUTION ERROR (the exception message is
kept; the run goes on).  Findings are one DataFrame built from whole arrays, never row by row.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.spec.load import SAFE_LOADER
from cdisc_pipe.spec.model import StudySpec
from cdisc_pipe.validate import functions as _functions  # noqa: F401  (registers rule functions)
from cdisc_pipe.validate.context import CheckContext, Hits, RuleSkipped, as_text
from cdisc_pipe.validate.data import StudyData, dataset_class, domain_prefix
from cdisc_pipe.validate.model import Rule, RuleResult, ValidationSettings
from cdisc_pipe.validate.operators import OPERATORS, apply_operator, condition_mask

RULES_DIR = Path(__file__).parent / "rules"
FINDING_COLUMNS = ["rule", "severity", "category", "dataset", "usubjid", "seq", "variable", "value", "message",
                   "source"]


def study_rule_files(settings: ValidationSettings, settings_path: Path | None) -> list[Path]:
    """The study's own rule files named by the settings' ``rule_files`` (paths or glob patterns,
    relative to the settings file), sorted by name; an entry matching no file is an InputError."""
    base = Path(settings_path).parent if settings_path is not None else Path.cwd()
    files: list[Path] = []
    problems: list[Problem] = []
    for i, entry in enumerate(settings.rule_files):
        p = Path(entry)
        p = p if p.is_absolute() else base / p
        hits = sorted(p.parent.glob(p.name)) if any(ch in p.name for ch in "*?[") else ([p] if p.is_file() else [])
        if not hits:
            problems.append(Problem(str(settings_path or "validation settings"), "rule file not found",
                                    entry=f"rule_files[{i}]", value=entry,
                                    hint="Paths are relative to the validation settings file"))
        files += [h for h in hits if h not in files]
    if problems:
        raise InputError(problems, stage="validate")
    return files


def load_rules(paths: Iterable[Path] | None = None, extra: Iterable[Path] = ()) -> list[Rule]:
    """Read and validate every rule file: ``paths`` (default: the package's generic ``rules/*.yaml``)
    plus ``extra`` (a study's own rule files, same format; see :func:`study_rule_files`).

    Files are read in file-name order across both sets.  Each file holds a list of rules.  All
    problems (YAML syntax, unknown keys, wrong operator parameters, unknown rule functions, wrong
    parameters of a rule function that declares a parameter model, duplicate ids, also between a
    study rule and a package rule) are collected into one InputError.
    """
    from cdisc_pipe.validate.functions import FUNCTION_PARAMS, FUNCTIONS

    base = list(paths) if paths is not None else list(RULES_DIR.glob("*.yaml"))
    files = sorted(base + [Path(p) for p in extra], key=lambda p: (Path(p).name, str(p)))
    problems: list[Problem] = []
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in files:
        try:
            doc = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(path), f"cannot read rule file: {exc}"))
            continue
        if not isinstance(doc, list):
            problems.append(Problem(str(path), "a rule file is a YAML list of rules"))
            continue
        for i, entry in enumerate(doc):
            rid = entry.get("id") if isinstance(entry, dict) else None
            where = f"[{i}]" + (f" {rid}" if rid else "")
            try:
                rule = Rule.model_validate(entry)
            except ValidationError as exc:
                for err in exc.errors():
                    problems.append(Problem(str(path), err["msg"], entry=where,
                                            column=".".join(str(x) for x in err["loc"])))
                continue
            op = rule.check["operator"]
            if op not in OPERATORS:
                problems.append(Problem(str(path), "unknown operator", entry=where, column="check.operator",
                                        value=op, hint=f"use one of {', '.join(sorted(OPERATORS))}"))
                continue
            try:
                params = OPERATORS[op][0].model_validate(rule.check)
            except ValidationError as exc:
                for err in exc.errors():
                    problems.append(Problem(str(path), err["msg"], entry=where,
                                            column="check." + ".".join(str(x) for x in err["loc"])))
                continue
            if op == "python" and params.function not in FUNCTIONS:
                problems.append(Problem(str(path), "unknown rule function", entry=where, column="check.function",
                                        value=params.function))
                continue
            if op == "python" and params.function in FUNCTION_PARAMS:
                # a rule function with a parameter model: its parameters are checked now, not at run time
                try:
                    FUNCTION_PARAMS[params.function].model_validate(dict(params.model_extra or {}))
                except ValidationError as exc:
                    for err in exc.errors():
                        loc = ".".join(str(x) for x in err["loc"])
                        problems.append(Problem(str(path), err["msg"].removeprefix("Value error, "), entry=where,
                                                column="check" + (f".{loc}" if loc else ""),
                                                hint=f"parameters of rule function {params.function}: "
                                                     "docs/VALIDATION.md"))
                    continue
            if rule.id in seen:
                problems.append(Problem(str(path), f"duplicate rule id (also in {seen[rule.id]})", entry=where))
                continue
            seen[rule.id] = str(path)
            rules.append(rule)
    if problems:
        raise InputError(problems, stage="validate")
    return rules


def datasets_in_scope(rule: Rule, data: StudyData, spec: StudySpec | None) -> list[str]:
    """Dataset names a rule applies to, in alphabetical order."""
    sc = rule.scope
    out = []
    for name in sorted(data.datasets):
        if sc.purpose and data.purpose.get(name) != sc.purpose:
            continue
        if any(fnmatch.fnmatchcase(name, pat) for pat in sc.exclude):
            continue
        hit_ds = any(fnmatch.fnmatchcase(name, pat) for pat in sc.datasets)
        hit_cls = bool(sc.classes) and (dataset_class(name, data, spec) or "") in sc.classes
        if (not sc.datasets and not sc.classes) or hit_ds or hit_cls:
            out.append(name)
    return out


def _seq_column(df: pd.DataFrame, prefix: str | None) -> str | None:
    for c in ([f"{prefix}SEQ"] if prefix else []) + ["ASEQ"]:
        if c in df.columns:
            return c
    return None


def hits_to_frame(rule: Rule, severity: str, dataset: str | None, df: pd.DataFrame | None,
                  prefix: str | None, hits: Hits) -> pd.DataFrame:
    """Findings of one rule on one dataset, built from arrays (USUBJID and --SEQ taken at the rows)."""
    n = len(hits)
    rows = hits.rows
    rec = rows >= 0
    usub = np.full(n, None, dtype=object)
    seq = np.full(n, np.nan)
    if df is not None and rec.any():
        if "USUBJID" in df.columns:
            usub[rec] = df["USUBJID"].to_numpy(dtype=object)[rows[rec]]
        sc = _seq_column(df, prefix)
        if sc:
            seq[rec] = pd.to_numeric(df[sc], errors="coerce").to_numpy(dtype=float)[rows[rec]]
    if hits.usubjid is not None:
        u = np.broadcast_to(np.asarray(hits.usubjid, dtype=object), (n,))
        usub = np.where(rec, usub, u)

    def arr(x: Any) -> np.ndarray:
        if isinstance(x, np.ndarray) and x.shape == (n,):
            return x.astype(object)
        return np.full(n, x, dtype=object)
    detail = pd.Series(arr(hits.detail), dtype="str")
    msg = (rule.message + " (" + detail + ")").fillna(rule.message).to_numpy(dtype=object)
    value = arr(hits.value)
    value = np.where(pd.isna(value), None, value)
    sev = arr(hits.severity) if hits.severity is not None else severity
    if hits.severity is not None:
        sev = np.where(pd.isna(sev), severity, sev)
    ds = arr(hits.dataset) if (dataset is None and hits.dataset is not None) else dataset
    return pd.DataFrame({
        "rule": rule.id, "severity": sev, "category": rule.category,
        "dataset": ds, "usubjid": usub, "seq": seq, "variable": arr(hits.variable),
        "value": value, "message": msg, "source": "validation",
    }, index=pd.RangeIndex(n))


def run_rules(rules: list[Rule], data: StudyData, spec: StudySpec | None, settings: ValidationSettings,
              ct: dict[str, Any], ct_reason: str | None, clock: Any = time.perf_counter,
              costs: dict[str, float] | None = None, processes: int | None = None,
              early: EarlyUnits | None = None, second: Callable[[], bool] | None = None
              ) -> tuple[list[RuleResult], pd.DataFrame]:
    """Run every rule; return one RuleResult per rule and all findings, in rule order.

    Rules are independent: with two cores (``processes`` None or 2) a forked second process
    (``cdisc_pipe.parallel.Forked``) takes rules from the same queue as this one, the longest
    first (``costs``: seconds per rule id, e.g. the previous run's), so both finish together.
    ``second``: asked between rules whether the second process may start yet (the caller's other
    work has left a core free); None: at once.  The results are put back in rule order: the same
    results and findings as one process gives.

    ``early``: units (a rule on one dataset) :func:`run_early` already ran on part of the data;
    they are taken as they are instead of being run again (the same results as running them here).
    """
    early = early or {}
    prefixes = {n: domain_prefix(n, df, spec) for n, df in data.datasets.items()}
    args = (data, spec, settings, ct, ct_reason, prefixes, clock, early)
    queue = _Queue(rules, costs, early, shared=processes != 1 and len(rules) > 1)
    child, tried = None, not queue.shared
    cache: dict[Any, Any] = {}  # column-derived arrays shared by the rules of this process
    done: dict[int, tuple[RuleResult, list[pd.DataFrame]]] = {}
    try:
        while (i := queue.take()) is not None:
            done[i] = _rule_at(i, rules, cache, *args)
            if not tried and (second is None or second()) and queue.left():
                tried, child = True, _start_second(queue, rules, args)
        if child is not None:
            done.update(child.result())
    except BaseException:
        if child is not None:
            child.cancel()
        raise
    for i in range(len(rules)):  # rules a second process took and did not return (it died): here
        if i not in done:
            done[i] = _rule_at(i, rules, cache, *args)
    results = [done[i][0] for i in range(len(rules))]
    frames = [f for i in range(len(rules)) for f in done[i][1]]
    findings = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FINDING_COLUMNS)
    return results, findings


class _Queue:
    """Rule positions, the longest first (``costs`` less the seconds their early units took;
    unknown rules count as the median), taken one at a time; with ``shared``, from a counter in
    shared memory, so that a forked process takes from the same queue."""

    def __init__(self, rules: list[Rule], costs: dict[str, float] | None, early: EarlyUnits, shared: bool) -> None:
        from cdisc_pipe.parallel import fork_context

        spent = {r: sum(u.seconds for u in units.values()) for r, units in early.items()}
        known = sorted((costs or {}).values())
        default = known[len(known) // 2] if known else 1.0
        cost = [max((costs or {}).get(r.id, default) - spent.get(r.id, 0.0), 0.0) for r in rules]
        self.order = sorted(range(len(rules)), key=lambda k: (-cost[k], k))
        ctx = fork_context() if shared else None
        self._lock = self._next = None
        self._local = 0
        if ctx is not None:
            try:
                self._lock, self._next = ctx.Lock(), ctx.RawValue("q", 0)
            except (OSError, ImportError):  # no shared semaphores here (e.g. no /dev/shm): one process
                self._lock = self._next = None
        self.shared = self._next is not None

    def take(self) -> int | None:
        if self._next is None:
            i, self._local = self._local, self._local + 1
        else:
            with self._lock:
                i = self._next.value
                self._next.value = i + 1
        return self.order[i] if i < len(self.order) else None

    def left(self) -> bool:
        """Whether rules are still waiting."""
        return (self._next.value if self._next is not None else self._local) < len(self.order)


def _start_second(queue: _Queue, rules: list[Rule], args: tuple) -> Any:
    from cdisc_pipe.parallel import Forked

    child = Forked(_run_taken, queue, rules, *args)
    return child if child.process is not None else None  # no second process: all here


def _run_taken(queue: _Queue, rules: list[Rule], data: StudyData, spec: StudySpec | None,
               settings: ValidationSettings, ct: dict[str, Any], ct_reason: str | None,
               prefixes: dict[str, str | None], clock: Any, early: EarlyUnits
               ) -> dict[int, tuple[RuleResult, list[pd.DataFrame]]]:
    """The second process: rules taken from the queue until it is empty, by position."""
    cache: dict[Any, Any] = {}
    done = {}
    while (i := queue.take()) is not None:
        done[i] = _rule_at(i, rules, cache, data, spec, settings, ct, ct_reason, prefixes, clock, early)
    return done


def _rule_at(i: int, rules: list[Rule], cache: dict[Any, Any], data: StudyData, spec: StudySpec | None,
             settings: ValidationSettings, ct: dict[str, Any], ct_reason: str | None,
             prefixes: dict[str, str | None], clock: Any, early: EarlyUnits
             ) -> tuple[RuleResult, list[pd.DataFrame]]:
    """:func:`_run_rule` on the rule at position ``i``, with its early units."""
    return _run_rule(rules[i], data, spec, settings, ct, ct_reason, prefixes, cache, clock, early.get(rules[i].id))


class Deferred(BaseException):
    """A rule looked beyond the datasets :func:`run_early` has (another dataset, or all of them):
    that unit is left to the run with every dataset.  A BaseException, so that no rule's own
    ``except Exception`` takes it for a failure."""


class _Known(dict):
    """What :func:`run_early` knows (datasets, metadata, purposes, defines by name): looking up a
    name it lacks, or at the whole mapping (iteration, size), raises :class:`Deferred`, because
    the run with every dataset could see something else there."""

    def _have(self, key: Any) -> None:
        if not dict.__contains__(self, key):
            raise Deferred(key)

    def __getitem__(self, key: Any) -> Any:
        self._have(key)
        return dict.__getitem__(self, key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._have(key)
        return dict.__getitem__(self, key)

    def __contains__(self, key: Any) -> bool:
        self._have(key)
        return True

    def _whole(self, *_: Any) -> Any:
        raise Deferred("all")

    __iter__ = __len__ = keys = values = items = copy = _whole


@dataclass
class Unit:
    """One rule on one dataset: its findings (a frame, or None), or why it was skipped, or the text
    of the exception it raised; and its seconds."""

    frame: pd.DataFrame | None = None
    findings: int = 0
    skipped: str | None = None
    error: str | None = None
    seconds: float = 0.0


#: rule id -> dataset -> the unit :func:`run_early` ran
EarlyUnits = dict[str, dict[str, Unit]]


def run_early(rules: list[Rule], data: StudyData, spec: StudySpec | None, settings: ValidationSettings,
              ct: dict[str, Any], ct_reason: str | None, clock: Any = time.perf_counter,
              skip: EarlyUnits | None = None, stop: Callable[[], bool] | None = None) -> EarlyUnits:
    """The units of ``rules`` on the datasets of ``data``, which holds only part of what will be
    validated (e.g. the SDTM datasets while ADaM is still being derived): each rule on each of
    these datasets in its scope, except study-level rules.  A unit that looks at any dataset (or
    metadata) ``data`` lacks, or at all of them, is left out (:class:`Deferred`): what is returned
    is what :func:`run_rules` with every dataset would find for those units.  ``skip``: units run
    already; ``stop``: asked before each unit, True ends the pass (the rest is left out)."""
    known = StudyData(datasets=_Known(data.datasets), meta=_Known(data.meta), purpose=_Known(data.purpose),
                      defines=_Known(data.defines), folders=_Known(data.folders))
    prefixes = {n: domain_prefix(n, df, spec) for n, df in data.datasets.items()}
    cache: dict[Any, Any] = {}
    out: EarlyUnits = {}
    for rule in rules:
        if rule.scope.study_level or rule.id in settings.disabled_rules or (rule.needs_spec and spec is None):
            continue
        severity = settings.severity_overrides.get(rule.id, rule.severity)
        units = {}
        for name in datasets_in_scope(rule, data, spec):  # a dataset's scope depends on it alone
            if name in (skip or {}).get(rule.id, {}):
                continue
            if stop is not None and stop():
                if units:
                    out[rule.id] = units
                return out
            try:
                units[name] = _run_unit(rule, name, known, spec, settings, ct, ct_reason, prefixes, cache, clock,
                                        severity)
            except Deferred:
                continue
        if units:
            out[rule.id] = units
    return out


class _UnitFailed(Exception):
    """A unit's exception, as its text (see :class:`Unit`)."""


def _run_unit(rule: Rule, name: str, data: StudyData, spec: StudySpec | None, settings: ValidationSettings,
              ct: dict[str, Any], ct_reason: str | None, prefixes: dict[str, str | None], cache: dict[Any, Any],
              clock: Any, severity: str) -> Unit:
    """One rule on one dataset (``data.datasets[name]``, restricted by the rule's ``when``)."""
    t0 = clock()
    unit = Unit()
    df = data.datasets[name]
    ctx = CheckContext(name, df, prefixes[name], data, spec, settings, ct, ct_reason, cache)
    try:
        if rule.when:
            mask = np.ones(len(df), dtype=bool)
            for cond in rule.when:
                mask = mask & (condition_mask(df, cond, ctx))
            df = df.loc[mask]
            ctx.df = df
        hits = apply_operator(ctx, rule.check)
        if len(hits):
            unit.frame = hits_to_frame(rule, severity, name, df, prefixes[name], hits)
            unit.findings = len(hits)
    except RuleSkipped as exc:
        unit.skipped = str(exc)
    except Exception as exc:  # a broken rule must not stop the run: reported by _run_rule
        unit.error = f"{type(exc).__name__}: {exc}"
    unit.seconds = clock() - t0
    return unit


def _run_rule(rule: Rule, data: StudyData, spec: StudySpec | None, settings: ValidationSettings,
              ct: dict[str, Any], ct_reason: str | None, prefixes: dict[str, str | None], cache: dict[Any, Any],
              clock: Any, early: dict[str, Unit] | None = None) -> tuple[RuleResult, list[pd.DataFrame]]:
    """One rule over its datasets: its status (SUCCESS, ISSUE, SKIPPED, EXECUTION ERROR) and findings.
    ``early``: units already run on some of its datasets (:func:`run_early`), by dataset."""
    frames: list[pd.DataFrame] = []
    t0 = clock()
    res = RuleResult(rule=rule, status="SUCCESS")
    severity = settings.severity_overrides.get(rule.id, rule.severity)
    early = early or {}
    try:
        if rule.id in settings.disabled_rules:
            raise RuleSkipped("disabled in settings")
        if rule.needs_spec and spec is None:
            raise RuleSkipped("no study spec given (spec-based rule)")
        if rule.scope.study_level:
            ctx = CheckContext(None, None, None, data, spec, settings, ct, ct_reason, cache)
            hits = apply_operator(ctx, rule.check)
            if len(hits):
                frames.append(hits_to_frame(rule, severity, None, None, None, hits))
                res.findings += len(hits)
        else:
            names = datasets_in_scope(rule, data, spec)
            if not names:
                wanted = ", ".join(rule.scope.datasets + rule.scope.classes) or "any"
                empty = [n for n in rule.scope.datasets if data.declared_no_data(n.upper()) is not None]
                if empty:
                    raise RuleSkipped(f"no records: {', '.join(empty)} without data (define.xml HasNoData, "
                                      f"no file)")
                raise RuleSkipped(f"no dataset in scope ({wanted}) present")
            skipped: list[str] = []
            for name in names:
                unit = early.get(name) or _run_unit(rule, name, data, spec, settings, ct, ct_reason, prefixes,
                                                    cache, clock, severity)
                if unit.error is not None:  # as if raised here: the datasets after it are not run
                    raise _UnitFailed(unit.error)
                if unit.skipped is not None:
                    skipped.append(unit.skipped)
                    continue
                res.datasets.append(name)
                if unit.frame is not None:
                    frames.append(unit.frame)
                    res.findings += unit.findings
            if not res.datasets:
                raise RuleSkipped("; ".join(dict.fromkeys(skipped)))
        res.status = "ISSUE" if res.findings else "SUCCESS"
    except RuleSkipped as exc:
        res.status, res.reason = "SKIPPED", str(exc)
    except _UnitFailed as exc:
        res.status, res.reason = "EXECUTION ERROR", str(exc)
    except Exception as exc:  # a broken rule must not stop the run: report it
        res.status, res.reason = "EXECUTION ERROR", f"{type(exc).__name__}: {exc}"
    # the seconds of the units run early count as the rule's (its run time, wherever it was spent)
    res.seconds = clock() - t0 + sum(u.seconds for u in early.values())
    return res, frames


def stage_findings(out_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """Findings saved by the pipeline stages (``<out>/<stage>/_stage/findings.json``)."""
    import json

    frames, problems = [], []
    for path in sorted(out_dir.glob("*/_stage/findings.json")):
        stage = path.parent.parent.name
        if stage.startswith("."):  # a stage still being written (.tmp-<stage>-<pid>)
            continue
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(items, dict):
                items = items.get("findings", [])
            df = pd.DataFrame(items)
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: cannot read stage findings: {exc}")
            continue
        if df.empty:
            continue
        out = pd.DataFrame({
            "rule": df.get("rule"), "severity": df.get("severity"), "category": "Stage",
            "dataset": df.get("dataset"), "usubjid": df.get("usubjid"),
            "seq": pd.to_numeric(df.get("seq"), errors="coerce") if "seq" in df else np.nan,
            "variable": df.get("variable"), "value": df.get("value"), "message": df.get("message"),
            "source": f"stage:{stage}",
        })
        if "source_file" in df:
            where = df["source_file"].astype("str").fillna("")
            if "source_row" in df:
                where = where + ":" + as_text(pd.to_numeric(df["source_row"], errors="coerce")).fillna("")
            out["message"] = out["message"].astype("str") + np.where(df["source_file"].notna(),
                                                                     " [" + where + "]", "")
        frames.append(out[FINDING_COLUMNS])
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FINDING_COLUMNS)), problems


STALE_RULE = "VAL.EXPECTED.STALE"


@dataclass
class ExpectedMatch:
    """What the ``expected:`` entries of the settings explain, and what they no longer match.

    ``explanation``: per finding, the explanation of the first entry that covers it (None when
    unexplained).  ``stale``: one Warning finding (rule VAL.EXPECTED.STALE) per entry that matches no
    finding, or per scope item (a subject, value or record it lists) that matches none of the entry's
    findings.  ``unused``: the same as text (``expected[2] DQ.PC.LLOQ scope=all``), for the summary.
    """

    explanation: pd.Series
    stale: pd.DataFrame
    unused: list[str]


def _one_text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v)


def _text(s: pd.Series) -> pd.Series:
    """Finding column values as text for matching (numbers without .0; missing stays None), computed
    once per distinct value."""
    codes, uniq = pd.factorize(s.astype(object), use_na_sentinel=True)
    txt = np.array([_one_text(v) for v in uniq] + [None], dtype=object)
    return pd.Series(txt[np.where(codes >= 0, codes, len(uniq))], index=s.index, dtype=object)


def match_expected(findings: pd.DataFrame, settings: ValidationSettings,
                   source: str | Path | None = None) -> ExpectedMatch:
    """Match the settings' expected entries to the findings (see :class:`ExpectedMatch`).

    An entry covers a finding when the rule matches, ``dataset`` / ``variable`` match when given, and
    every scope list given matches: the finding's USUBJID is among ``subjects``, its value (as text)
    among ``values``, and it is one of ``records``.  ``scope: all`` covers every finding of the rule.
    The first entry that covers a finding explains it; a later entry covering only findings already
    explained is stale (redundant).
    """
    # named from the study folder (specs/settings/validation.yaml): the same text on every checkout
    src = "/".join(Path(source).parts[-3:]) if source is not None else "validation settings"
    n = len(findings)
    out = pd.Series(None, index=findings.index, dtype="object")
    col = {c: (_text(findings[c]) if c in findings else pd.Series(None, index=findings.index, dtype="object"))
           for c in ("rule", "dataset", "usubjid", "variable", "value")}
    seq = pd.to_numeric(findings["seq"], errors="coerce") if "seq" in findings else pd.Series(np.nan, index=findings.index)
    stale_rows: list[dict[str, Any]] = []
    unused: list[str] = []

    def eq(c: str, v: Any) -> np.ndarray:
        return np.array((col[c] == v).fillna(False), dtype=bool)

    def stale(i: int, e: Any, what: str, value: str | None, usubjid: str | None = None,
              seq_: float = np.nan, dataset: str | None = None) -> None:
        entry = f"expected[{i}]"
        unused.append(f"{entry} {e.describe()}" + (f": {what} {value}" if value is not None else ""))
        stale_rows.append({
            "rule": STALE_RULE, "severity": "Warning", "category": "Validation settings",
            "dataset": dataset if dataset is not None else e.dataset, "usubjid": usubjid, "seq": seq_,
            "variable": entry, "value": value if value is not None else e.describe(),
            "message": (f"Expected-finding explanation is stale: {src} {entry} ({e.describe()}) "
                        + (f"lists {what} {value}, which matches no finding of the rule"
                           if value is not None else "matches no finding")
                        + "; remove it or correct its scope"),
            "source": "validation"})

    for i, e in enumerate(settings.expected):
        base = eq("rule", e.rule)
        if e.dataset is not None:
            base &= eq("dataset", e.dataset)
        if e.variable is not None:
            base &= eq("variable", e.variable)
        by_subject = col["usubjid"].isin(e.subjects).to_numpy(dtype=bool) if e.subjects else np.ones(n, bool)
        by_value = col["value"].isin(e.values).to_numpy(dtype=bool) if e.values else np.ones(n, bool)
        rec_masks: list[np.ndarray] = []
        for r in e.records or []:
            rm = eq("usubjid", r.usubjid)
            if r.dataset is not None:
                rm &= eq("dataset", r.dataset)
            if r.seq is not None:
                rm &= np.array((seq == r.seq).fillna(False), dtype=bool)
            if r.variable is not None:
                rm &= eq("variable", r.variable)
            if r.value is not None:
                rm &= eq("value", r.value)
            rec_masks.append(rm)
        by_record = np.logical_or.reduce(rec_masks) if rec_masks else np.ones(n, bool)
        free = out.isna().to_numpy(dtype=bool)
        m = base & by_subject & by_value & by_record & free
        if not m.any():
            stale(i, e, "", None)
            continue
        for subj in e.subjects or []:
            if not (m & eq("usubjid", subj)).any():
                stale(i, e, "subject", subj, usubjid=subj)
        for v in e.values or []:
            if not (m & eq("value", v)).any():
                stale(i, e, "value", v)
        for r, rm in zip(e.records or [], rec_masks):
            if not (m & rm).any():
                stale(i, e, "record", r.describe(), usubjid=r.usubjid,
                      seq_=float(r.seq) if r.seq is not None else np.nan, dataset=r.dataset)
        out[m] = e.explanation
    stale_df = pd.DataFrame(stale_rows, columns=FINDING_COLUMNS) if stale_rows else pd.DataFrame(columns=FINDING_COLUMNS)
    return ExpectedMatch(explanation=out, stale=stale_df, unused=unused)
