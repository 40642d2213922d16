"""``build_sdtm``: raw export + study spec + mappings -> every SDTM dataset, findings, traceability.

Order of work (each step vectorised over records; loops are over datasets, variables and tests):

1. load and check every mapping file and the trial design (one InputError before reading data);
2. check the raw forms/fields the mappings name exist (one InputError naming file, entry, field);
3. map each dataset from its sources (combine forms, transpose, algorithms), keeping for every
   output record its source form and row; rows not mapped are listed with their reason;
4. VISIT/VISITNUM across datasets from TV; DM reference dates, death, arms; ``from_dm`` variables;
5. SE from the design and the subjects' dates; EPOCH; ``lookup`` values from other datasets (in
   dependency order); --DY/--STDY/--ENDY, --LOBXFL/--BLFL, --NRIND;
6. --SEQ by the spec's keys; SUPP-- and RELREC; SV; trial design datasets; PP from the NCA stage;
7. data checks (not enrolled, after death, end before start, duplicate keys, non-ASCII, lengths,
   Req nulls) as findings; conform every frame to its spec (variables, order, types).

Steps 3, 5 (EPOCH to --NRIND, with 6's --SEQ) work on each dataset on its own: on a large export
about half the records are done in a second process (``cdisc_pipe.parallel.map_shared``) and the
results, findings and traceability rows put back in dataset order; the result is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cdisc_pipe.cutoff import after_cutoff
from cdisc_pipe.errors import Finding, InputError, Problem
from cdisc_pipe.parallel import map_shared, return_free_memory
from cdisc_pipe.sdtm.algorithms import (
    FORM, MAX_BYTES, ROW, SUBJ, Context, Findings, apply_rule, ascii_policy, blank, byte_len, clean, distinct_rows, evaluate,
    per_value, split_text, standardise_results, text_extreme_by, text_from_codes,
)
from cdisc_pipe.sdtm.arms import check_actual_arm, derive_actual_arm
from cdisc_pipe.sdtm.dates import assemble_dtc, complete_date
from cdisc_pipe.sdtm.derive import (
    derive_var_dy, derive_var_epoch, derive_var_lobxfl, derive_var_nrind, derive_var_seq, derive_var_usubjid,
    derive_var_visitnum, first_last,
)
from cdisc_pipe.sdtm.design import TrialDesign, build_se, build_ta, build_te, build_ti, build_ts, build_tv, load_design
from cdisc_pipe.sdtm.checks import conform, data_checks
from cdisc_pipe.sdtm.lookup import MANY, NODATE, NOKEY, NONE, key_codes, match_keys, match_nearest, moment, run_lookups, \
    tie_text, working_variables
from cdisc_pipe.sdtm.mapping import DatasetMapping, Join, Mappings, Rule, load_mappings
from cdisc_pipe.sdtm.relations import build_relrec, build_supp, build_sv, clear_single_links, complete_sv
from cdisc_pipe.sdtm.trace import trace_rows, traceability
from cdisc_pipe.spec.model import Dataset, StudySpec

@dataclass
class SdtmResult:
    """What :func:`build_sdtm` returns.

    Attributes:
        datasets: dataset name -> frame conforming to its spec (SUPP--, RELREC, PP included).
        findings: data findings (records kept).
        traceability: one summary row per (form, dataset) with records in/out (``source_row`` empty),
            and one row per raw record that did not become a record of that dataset, with the reason.
    """

    datasets: dict[str, pd.DataFrame]
    findings: list[Finding]
    traceability: pd.DataFrame
    records: pd.DataFrame | None = None  # record_sources(): dataset, usubjid, seq -> raw rows
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def nca(self) -> dict[str, Any] | None:
        """What the NCA stage reported (method text, parameter methods, PC records not used), as
        JSON-ready data for ``outputs/sdtm/_stage/nca.json``; None when PP was not built."""
        return self.extra.get("nca")


# ------------------------------------------------------------------------------------------------
# mapping one dataset


def _subject_ids(frame: pd.DataFrame, m: DatasetMapping, studyid: str, default_site: str | None) -> pd.Series:
    """USUBJID of every row, computed once per distinct (subject, site) pair."""
    cols = [m.subject_field] + ([m.site_field] if m.site_field and m.site_field in frame else [])
    codes, rep = distinct_rows(*(frame[c] for c in cols))
    small = _subject_ids_distinct(frame[cols].iloc[rep].reset_index(drop=True), m, studyid, default_site)
    return text_from_codes(small.to_numpy(), codes, frame.index)


def _subject_ids_distinct(frame: pd.DataFrame, m: DatasetMapping, studyid: str, default_site: str | None) -> pd.Series:
    subj = clean(frame[m.subject_field])
    if m.site_field and m.site_field in frame:
        site = clean(frame[m.site_field])
        if default_site:
            site = site.fillna(default_site)
    else:
        site = pd.Series(default_site, index=frame.index, dtype="str")
    # subject numbers collected as "101-1001" already carry the site
    has_site = per_value(subj, lambda u: u.str.contains("-", regex=False)).fillna(False).astype(bool)
    usubjid = derive_var_usubjid(studyid, site, subj).where(~has_site, studyid + "-" + subj)
    return usubjid.where(subj.notna()).astype("str")


def duplicated_rows(frame: pd.DataFrame) -> pd.Series:
    """``frame.duplicated(keep="first")`` (every column equal, missing equal to missing), narrowed
    column by column: rows unique on the columns seen so far cannot be duplicates, so after a few
    high-cardinality columns only the few candidate rows are hashed further."""
    n = len(frame)
    if n == 0 or frame.shape[1] == 0:
        return frame.duplicated(keep="first")
    sample = frame.iloc[:: max(1, n // 1000)]
    order = sorted(frame.columns, key=lambda c: -sample[c].nunique(dropna=False))  # most distinct first
    cand = np.arange(n)
    key = np.zeros(n, dtype=np.int64)
    for c in order:
        col = frame[c].to_numpy()[cand]
        codes, uniq = pd.factorize(col, use_na_sentinel=True)
        key = pd.factorize(key * (len(uniq) + 1) + codes.astype(np.int64) + 1)[0].astype(np.int64)
        multi = pd.Series(key).duplicated(keep=False).to_numpy()
        cand, key = cand[multi], key[multi]
        if len(cand) == 0:
            break
    out = np.zeros(n, dtype=bool)
    if len(cand):
        out[cand] = pd.Series(key).duplicated(keep="first").to_numpy()
    return pd.Series(out, index=frame.index)


def _map_rules(frame: pd.DataFrame, rules: dict[str, Rule], ctx: Context) -> dict[str, pd.Series]:
    return {var: apply_rule(rule, frame, ctx, var) for var, rule in rules.items()}


def map_dataset(m: DatasetMapping, forms: dict[str, pd.DataFrame], studyid: str, ctx: Context,
                default_site: str | None, joined_used: list[tuple] | None = None
                ) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Map one dataset from its sources; returns the frame (with ``__form/__row/__usubjid``) and
    traceability rows for raw records that did not become records (reason given).

    ``joined_used`` collects (joined form, dataset, records used[, how joined]) for the traceability
    summary.
    """
    joined_used = joined_used if joined_used is not None else []
    pieces: list[pd.DataFrame] = []
    trace: list[pd.DataFrame] = []
    for src in m.sources:
        f = forms[src.form].copy(deep=False)
        f[FORM] = src.form
        f[SUBJ] = _subject_ids(f, m, studyid, default_site)
        # a record exported twice (every field equal): the copy is not a record; reported and traced
        dup = duplicated_rows(f.drop(columns=[ROW]))
        if dup.any():
            first_row = f.groupby(list(f.columns.drop(ROW)), dropna=False, sort=False)[ROW].transform("first")
            ctx.findings.add("SDTM.RAW.DUPLICATE", "Warning", "record identical to an earlier record of the form; the copy is not mapped",
                             m.dataset, None, f, dup, "duplicate of row " + first_row.astype("str"))
            trace.append(trace_rows(f.loc[dup], m.dataset, "exact duplicate of an earlier record (SDTM.RAW.DUPLICATE)"))
            f = f.loc[~dup]
        for j in src.join:  # forms joined by subject (one record per subject), keys or nearest date
            jf = forms[j.form].copy(deep=False)
            jf[FORM] = j.form
            jf[SUBJ] = _subject_ids(jf, m, studyid, default_site)
            if not j.plain:
                f = join_matched(f, jf, j, m.dataset, ctx, trace, joined_used)
                continue
            dup = jf[SUBJ].duplicated(keep="first") & jf[SUBJ].notna()
            ctx.findings.add("SDTM.RAW.DUPLICATE", "Warning",
                             f"more than one {j.form} record for the subject; the first is used", m.dataset, None, jf, dup, jf[SUBJ])
            unmatched = ~jf[SUBJ].isin(f[SUBJ])
            if unmatched.any():
                trace.append(trace_rows(jf.loc[unmatched], m.dataset, j.reason))
            if dup.any():
                trace.append(trace_rows(jf.loc[dup], m.dataset, f"duplicate {j.form} record for the subject (first used)"))
            jf = jf.loc[~dup]
            joined_used.append((j.form, m.dataset, int((~unmatched & ~dup).sum())))
            cols = {c: f"{j.prefix}.{c}" for c in jf.columns if not c.startswith("__") or c == ROW}
            right = jf[[SUBJ] + [c for c in cols]].rename(columns=cols)
            idx = f.index
            f = f.merge(right, on=SUBJ, how="left", validate="many_to_one")
            f.index = idx
        keep = evaluate(f, src.where) if src.where else pd.Series(True, index=f.index)
        if (~keep).any():
            trace.append(trace_rows(f.loc[~keep], m.dataset, src.reason or "filtered"))
        f = f.loc[keep]
        rules = dict(m.variables)
        rules.update(src.variables)
        supp_rules = {f"__q_{q.qnam}": q.rule for q in m.supp if q.form in (None, src.form)}
        if src.transpose is None:
            cols = _map_rules(f, rules, ctx)
            cols.update({k: apply_rule(r, f, ctx, k[4:]) for k, r in supp_rules.items()})
            out = pd.DataFrame(cols, index=f.index)
            out[FORM], out[ROW], out[SUBJ] = f[FORM], f[ROW], f[SUBJ]
            out[SRC] = _raw_rows(f)
            pieces.append(out)
            continue
        produced = pd.Series(False, index=f.index)
        per_test = set().union(*(t.variables for t in src.transpose.tests))
        shared = _map_rules(f, {k: r for k, r in rules.items() if k not in per_test}, ctx)  # once per form row
        shared.update({k: apply_rule(r, f, ctx, k[4:]) for k, r in supp_rules.items()})
        for t in src.transpose.tests:  # loop over tests, not rows
            trules = {k: r for k, r in rules.items() if k in per_test}
            trules.update(t.variables)
            cols = dict(shared)
            cols.update(_map_rules(f, trules, ctx))
            out = pd.DataFrame(cols, index=f.index)
            for k, v in t.set.items():
                out[k] = v
            present = [c for c in src.transpose.present if c in out]
            exists = ~pd.concat([blank(out[c]) for c in present], axis=1).all(axis=1) if present else pd.Series(True, index=f.index)
            out = out.loc[exists]
            produced |= exists
            out[FORM], out[ROW], out[SUBJ] = f.loc[exists, FORM], f.loc[exists, ROW], f.loc[exists, SUBJ]
            out[SRC] = _raw_rows(f.loc[exists])
            pieces.append(out)
        if (~produced).any():
            trace.append(trace_rows(f.loc[~produced], m.dataset, "no result for any test on the form row"))
    frame = pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=[FORM, ROW, SUBJ])
    if m.drop_blank and not frame.empty:
        cols = [c for c in m.drop_blank if c in frame]
        empty = pd.concat([blank(frame[c]) for c in cols], axis=1).all(axis=1) if cols else pd.Series(False, index=frame.index)
        if empty.any():
            trace.append(trace_rows(frame.loc[empty], m.dataset, m.drop_reason or "empty"))
            frame = frame.loc[~empty].reset_index(drop=True)
    frame["USUBJID"] = frame[SUBJ]
    return frame, trace


def join_matched(f: pd.DataFrame, jf: pd.DataFrame, j: Join, dataset: str, ctx: Context, trace: list[pd.DataFrame],
                 joined_used: list[tuple]) -> pd.DataFrame:
    """A keyed (``by``) and/or nearest preceding (``nearest``) join of form ``jf`` onto the source
    rows ``f`` (see :class:`~cdisc_pipe.sdtm.mapping.Join`); the joined fields are added as
    ``<prefix>.<FIELD>`` (with the joined record's form and row, for findings), blank where no single
    record matches.  Findings: ``SDTM.JOIN.MULTIPLE`` (Error: several records, none used),
    ``SDTM.JOIN.NOMATCH`` (Notice), ``SDTM.JOIN.DATE`` (Warning: partial/missing/invalid date on
    either side); joined records no row uses are listed in the traceability."""
    keep = evaluate(jf, j.where) if j.where else pd.Series(True, index=jf.index)
    cand = jf.loc[keep].reset_index(drop=True)
    lk, rk = key_codes([f[SUBJ]] + [f[k.field] for k in j.by], [cand[SUBJ]] + [cand[k.other] for k in j.by])
    keys = ", ".join(["subject"] + [k.field if k.other == k.field else f"{k.field} = {j.prefix}.{k.other}" for k in j.by])
    if j.nearest is not None:
        nd, jd = j.nearest.date, j.nearest.joined
        ldtc = assemble_dtc(f[nd.date], f[nd.time] if nd.time else None)[0]
        rdtc = assemble_dtc(cand[jd.date], cand[jd.time] if jd.time else None)[0]
        res = match_nearest(lk, rk, moment(ldtc, True), moment(rdtc, False))
        how = f"{j.form} record dated latest on or before the row ({keys})"
        used_reason = f"joined by {keys}: the latest record on or before the row's date"
    else:
        res = match_keys(lk, rk)
        how = f"{j.form} record with the row's {keys}"
        used_reason = f"joined by {keys}"
    cols = [c for c in cand.columns if not c.startswith("__") or c in (ROW, FORM)]
    right = cand[cols].reindex(res.pos)
    right.columns = [f"{j.prefix}.{c}" for c in cols]
    right.index = f.index
    out = pd.concat([f, right], axis=1)
    st = pd.Series(res.status, index=f.index)
    ctx.findings.add("SDTM.JOIN.MULTIPLE", "Error", f"join of {j.form}: several records match (one {how} expected); "
                     f"none used, {j.prefix}.* fields left blank. Add keys (by:, where:) or correct the data",
                     dataset, None, f, st == MANY, pd.Series(tie_text(res, cand).to_numpy(), index=f.index))
    ctx.findings.add("SDTM.JOIN.NOMATCH", "Notice", f"join of {j.form}: no {how}; {j.prefix}.* fields left blank",
                     dataset, None, f, (st == NONE) | (st == NOKEY), None)
    if j.nearest is not None:
        nd, jd = j.nearest.date, j.nearest.joined
        ctx.findings.add("SDTM.JOIN.DATE", "Warning", f"join of {j.form}: the row's date ({nd.date}) is partial, missing "
                         "or invalid; a partial date is never compared, so nothing is joined", dataset, None, f,
                         (st == NODATE), lambda: clean(f[nd.date]))
        ctx.findings.add("SDTM.JOIN.DATE", "Warning", f"join of {j.form}: the record's date ({jd.date}) is partial, "
                         "missing or invalid; it cannot be joined to any row", dataset, None, cand,
                         pd.Series(res.right_nodate, index=cand.index), lambda: clean(cand[jd.date]))
    # joined records of a tie that some row ran into (not merely records sharing a date no row chose)
    tied = pd.Series((res.right_group >= 0) & np.isin(res.right_group, res.group[res.group >= 0]), index=cand.index)
    if (~keep).any():
        trace.append(trace_rows(jf.loc[~keep], dataset, j.reason))
    if tied.any():
        trace.append(trace_rows(cand.loc[tied], dataset, f"one of several {j.form} records matching a row; none used "
                                                          "(SDTM.JOIN.MULTIPLE)"))
    unused = ~pd.Series(res.right_used, index=cand.index) & ~tied
    if unused.any():
        trace.append(trace_rows(cand.loc[unused], dataset, j.reason))
    joined_used.append((j.form, dataset, int(res.right_used.sum()), used_reason))
    return out


# ------------------------------------------------------------------------------------------------
# checks before data


def check_raw_fields(mappings: Mappings, forms: dict[str, pd.DataFrame]) -> None:
    """Every form and raw field a mapping names must exist; one InputError naming them all."""
    problems: list[Problem] = []
    for name, m in mappings.datasets.items():
        f = mappings.files.get(name, name)
        for i, src in enumerate(m.sources):
            if src.form not in forms:
                problems.append(Problem(f, "the raw export has no such form", entry=f"sources[{i}].form", value=src.form,
                                        hint=f"Forms present: {', '.join(sorted(forms))}"))
                continue
            cols = set(forms[src.form].columns)
            for jn, j in enumerate(src.join):
                if j.form not in forms:
                    problems.append(Problem(f, "the raw export has no such form", entry=f"sources[{i}].join", value=j.form))
                    continue
                jcols = set(forms[j.form].columns)
                jentry = f"sources[{i}].join[{jn}]"
                own = [(k.field, f"{jentry}.by") for k in j.by]
                other = [(k.other, f"{jentry}.by") for k in j.by] + [(c.field, f"{jentry}.where") for c in j.where]
                other.append((m.subject_field, f"{jentry} (subject_field)"))  # joins match by subject
                if j.nearest is not None:
                    own += [(x, f"{jentry}.nearest.date") for x in (j.nearest.date.date, j.nearest.date.time) if x]
                    other += [(x, f"{jentry}.nearest.joined") for x in (j.nearest.joined.date, j.nearest.joined.time) if x]
                for fld, entry in own:
                    if fld not in cols:
                        problems.append(Problem(f, f"form {src.form} has no field {fld}", entry=entry, column=fld,
                                                hint="Correct the field name in the mapping or the export"))
                for fld, entry in other:
                    if fld not in jcols:
                        problems.append(Problem(f, f"form {j.form} (joined) has no field {fld}", entry=entry, column=fld,
                                                hint="Correct the field name in the mapping or the export"))
                cols |= {f"{j.prefix}.{c}" for c in forms[j.form].columns}
            needed: dict[str, str] = {}
            for var, rule in {**m.variables, **src.variables}.items():
                for fld in rule.fields():
                    needed.setdefault(fld, f"variables.{var}")
            for c in src.where:
                needed.setdefault(c.field, f"sources[{i}].where")
            if src.transpose:
                for j, t in enumerate(src.transpose.tests):
                    for var, rule in t.variables.items():
                        for fld in rule.fields():
                            needed.setdefault(fld, f"sources[{i}].transpose.tests[{j}].variables.{var}")
            for s in m.supp:
                if s.form not in (None, src.form):
                    continue
                for fld in s.rule.fields():
                    needed.setdefault(fld, f"supp.{s.qnam}")
            needed.setdefault(m.subject_field, "subject_field")
            for fld, entry in needed.items():
                if fld not in cols:
                    problems.append(Problem(f, f"form {src.form} has no field {fld}", entry=entry, column=fld,
                                            hint="Correct the field name in the mapping or the export"))
    if problems:
        raise InputError(problems, stage="sdtm")


# ------------------------------------------------------------------------------------------------
# DM


def derive_dm(dm: pd.DataFrame, m: DatasetMapping, datasets: dict[str, pd.DataFrame], td: TrialDesign | None,
              ctx: Context) -> pd.DataFrame:
    """DM reference dates from other datasets, death, age, arms.

    - ``subject_dates`` (mapping): RFSTDTC, RFENDTC, RFXSTDTC, RFXENDTC, RFPENDTC, DTHDTC ... each the
      first/last value over the named datasets/records; a value the mapping already gives is kept
      when no source has one.
    - DTHFL = ``Y`` where DTHDTC is present (or DTHFL was mapped ``Y``), else missing.
    - AGEU = ``YEARS`` where AGE is present.
    - ACTARMCD/ACTARM by the algorithm the mapping's ``actual_arm.method`` names (``dose``: nearest
      planned dose within a tolerance; ``sequence``: treatments received per period; ``record``:
      the arm recorded on an allocation record), see
      :mod:`cdisc_pipe.sdtm.arms`; subjects with a planned arm and no treatment record:
      ACTARMCD/ACTARM missing, ARMNRS ``ASSIGNED, NOT TREATED``; no planned arm: ARMNRS
      ``NOT ASSIGNED``; treatment matching no arm: ARMNRS ``UNPLANNED TREATMENT``.
    """
    out = dm.copy(deep=False)
    for var, sd in m.subject_dates.items():
        parts = []
        for s in sd.sources:
            src = out if s.dataset == "DM" else datasets.get(s.dataset)
            if src is None or src.empty or s.variable not in src:
                continue
            sel = src.loc[evaluate(src, s.where)] if s.where else src
            parts.append(sel[["USUBJID", s.variable]].rename(columns={s.variable: "__v"}))
        if not parts:
            continue
        allv = pd.concat(parts, ignore_index=True)
        picked = first_last(allv, "__v", sd.pick)
        got = out["USUBJID"].map(picked)
        out[var] = got.where(got.notna(), out[var] if var in out else np.nan).astype("str")
    if "DTHDTC" in out and "RFPENDTC" in out:
        # participation ends at death: records dated later are data errors (SDTM.DATE.AFTERDEATH)
        later = complete_date(out["RFPENDTC"]) > complete_date(out["DTHDTC"])
        out["RFPENDTC"] = out["RFPENDTC"].mask(later.fillna(False).astype(bool), out["DTHDTC"]).astype("str")
    if "DTHDTC" in out:
        flag = out["DTHDTC"].notna()
        if "DTHFL" in out:
            flag |= out["DTHFL"].astype("str").eq("Y").fillna(False)
        out["DTHFL"] = pd.Series(np.where(flag, "Y", None), index=out.index).astype("str")
    if "AGE" in out:
        out["AGE"] = pd.to_numeric(out["AGE"], errors="coerce").astype("float64")
        if "BRTHDTC" in out and "RFICDTC" in out:
            b, r = complete_date(out["BRTHDTC"]), complete_date(out["RFICDTC"])
            years = (r.dt.year - b.dt.year - ((r.dt.month * 100 + r.dt.day) < (b.dt.month * 100 + b.dt.day))).astype("float64")
            out["AGE"] = out["AGE"].fillna(years)
        out["AGEU"] = pd.Series(np.where(out["AGE"].notna(), "YEARS", None), index=out.index).astype("str")
    if m.actual_arm is not None and td is not None and "ARMCD" in out:
        out = derive_actual_arm(out, m.actual_arm, td, datasets, ctx.findings)
    return out


# ------------------------------------------------------------------------------------------------
# the entry point


def _pairs_dy(ds: Dataset) -> list[tuple[str, str]]:
    names = set(ds.variable_names)
    out = []
    for v in ds.variable_names:
        for suffix, dtc_suffix in (("STDY", "STDTC"), ("ENDY", "ENDTC"), ("DY", "DTC")):
            if v.endswith(suffix) and len(v) - len(suffix) <= 2:
                dtc = v[: -len(suffix)] + dtc_suffix
                if dtc in names:
                    out.append((dtc, v))
                break
    return out


def _epoch_dtc(df: pd.DataFrame, dom: str) -> str | None:
    for c in (f"{dom}STDTC", f"{dom}DTC"):
        if c in df:
            return c
    return None


SRC = "__source"  # the raw rows a record was built from: "form:row" of its source and joined forms


def _raw_rows(f: pd.DataFrame) -> pd.Series:
    """``form:row`` of each source row, followed by ``, <joined form>:<row>`` of every joined record."""
    out = f[FORM].astype("str") + ":" + f[ROW].astype("str")
    for c in [c for c in f.columns if c.endswith("." + ROW)]:
        prefix = c[: -len(ROW) - 1]
        out = out + np.where(f[c].notna(), ", " + prefix + ":" + f[c].astype("str").fillna(""), "")
    return out.astype("str")


def record_sources(final: dict[str, pd.DataFrame], spec: StudySpec) -> pd.DataFrame:
    """One row per SDTM record built from raw rows: dataset, USUBJID, --SEQ and the raw rows
    (``form:row, ...``); validation findings on a record name its raw rows with it."""
    parts = []
    for name in sorted(final):
        df = final[name]
        if SRC not in df or "USUBJID" not in df or df.empty:
            continue
        dom = spec.datasets[name].domain or name
        seq = pd.to_numeric(df[f"{dom}SEQ"], errors="coerce") if f"{dom}SEQ" in df else pd.Series(np.nan, index=df.index)
        parts.append(pd.DataFrame({"dataset": name, "usubjid": df["USUBJID"].astype("str").to_numpy(),
                                   "seq": seq.to_numpy(dtype="float64"), "raw": df[SRC].astype("str").to_numpy()}))
    if not parts:
        return pd.DataFrame(columns=["dataset", "usubjid", "seq", "raw"])
    return pd.concat(parts, ignore_index=True)


def _raw_field(m: DatasetMapping, form: str, var: str) -> str | None:
    """The raw field a mapped date variable is read from (for findings), when one rule names it."""
    rules = [s.variables.get(var) for s in m.sources if s.form == form] + [m.variables.get(var)]
    for r in rules:
        if r is None:
            continue
        if r.dtc is not None:
            return r.dtc.date
        if r.copy_ is not None:
            return r.copy_
    return None


def hold_after_cutoff(datasets: dict[str, pd.DataFrame], mappings: Any, forms: dict[str, pd.DataFrame],
                      cutoff: str | None, findings: Findings) -> None:
    """Collected dates after the data cut-off: an Error finding each (raw file, row, column, value);
    the value is moved into a hidden ``__cut_<VAR>`` column so that no derivation (reference dates,
    SE, EPOCH, study days, baseline) uses it, and put back by :func:`restore_after_cutoff`."""
    if not cutoff:
        return
    for name, df in list(datasets.items()):
        m = mappings.datasets.get(name)
        for var in [c for c in df.columns if c.endswith("DTC") and not c.startswith("__")]:
            late = after_cutoff(df[var], cutoff)
            if not late.any():
                continue
            fields = {f: _raw_field(m, f, var) for f in df.loc[late, FORM].dropna().unique()} if FORM in df and m else {}
            raw_text = df[var].astype("str")
            for f, fld in fields.items():
                src = forms.get(f)
                if fld and src is not None and fld in src and ROW in df:
                    sel = late & (df[FORM] == f)
                    looked = df.loc[sel, ROW].astype("str").map(src.set_index(src[ROW].astype("str"))[fld])
                    raw_text = raw_text.where(~sel, fld + "=" + looked.astype("str").fillna("") + " -> " + df[var].astype("str"))
            cols = sorted({v for v in fields.values() if v})
            findings.add("SDTM.DATE.AFTERCUTOFF", "Error",
                         f"{var} after the data cut-off {cutoff} (raw column {', '.join(cols) or var}): record kept; "
                         "the date takes no part in reference dates, SE, EPOCH, study days or analysis dates",
                         name, var, df, late, raw_text)
            df = df.assign(**{f"__cut_{var}": df[var].where(late), var: df[var].where(~late)})
        datasets[name] = df


def restore_after_cutoff(datasets: dict[str, pd.DataFrame]) -> None:
    """Put the collected dates held by :func:`hold_after_cutoff` back (the record keeps what was collected)."""
    for name, df in list(datasets.items()):
        held = [c for c in df.columns if c.startswith("__cut_")]
        if not held:
            continue
        out = df.copy(deep=False)
        for c in held:
            var = c[len("__cut_"):]
            if var in out:
                out[var] = out[var].where(out[c].isna(), out[c]).astype("str")
        datasets[name] = out.drop(columns=held)


def _map_one(name: str, mappings: Mappings, spec: StudySpec, forms: dict[str, pd.DataFrame], studyid: str,
             default_site: str | None) -> tuple[pd.DataFrame, list[pd.DataFrame], list[Finding], list[tuple]]:
    """One dataset mapped from its sources, with its numeric variables, domain, standardised results
    and split text: (frame, traceability rows, findings, joined forms used)."""
    m = mappings.datasets[name]
    findings = Findings()
    joined_used: list[tuple] = []
    ctx = Context(name, spec.codelists, mappings.synonyms, findings)
    frame, trace = map_dataset(m, forms, studyid, ctx, default_site, joined_used)
    frame["STUDYID"] = studyid
    ds = spec.datasets[name]
    for v in ds.variables:  # numeric spec variables assigned from text (e.g. --TPTNUM) sort as numbers
        if v.is_numeric and v.name in frame and not pd.api.types.is_numeric_dtype(frame[v.name]):
            frame[v.name] = pd.to_numeric(frame[v.name], errors="coerce").astype("float64")
    if ds.domain:
        frame["DOMAIN"] = ds.domain
    if m.results is not None and not frame.empty:
        dom = ds.domain or name
        orres = frame.get(f"{dom}ORRES", pd.Series(np.nan, index=frame.index, dtype="str"))
        orresu = frame.get(f"{dom}ORRESU", pd.Series(np.nan, index=frame.index, dtype="str"))
        keys = frame[[m.results.testcd] + m.results.by]
        std = standardise_results(orres, orresu, keys, mappings.units.conversions, ctx, frame, dom)
        if m.results.blq is not None:
            std[f"{dom}STRESC"] = std[f"{dom}STRESC"].mask(std["__lloq"].notna(), m.results.blq)
        for c in (f"{dom}STRESC", f"{dom}STRESN", f"{dom}STRESU"):
            if c not in m.variables:
                frame[c] = std[c] if c not in frame else frame[c].where(frame[c].notna(), std[c])
        if m.results.ranges:
            for lo, st in ((f"{dom}ORNRLO", f"{dom}STNRLO"), (f"{dom}ORNRHI", f"{dom}STNRHI")):
                if lo in frame:
                    frame[st] = (pd.to_numeric(frame[lo], errors="coerce") * std["__factor"]).round(10)
        lloq = f"{dom}LLOQ"
        if m.results.lloq and lloq in ds.variable_names:
            cur = pd.to_numeric(frame[lloq], errors="coerce") if lloq in frame else pd.Series(np.nan, index=frame.index)
            frame[lloq] = cur.fillna(std["__lloq"])
    for sp in m.split:
        if sp.variable in frame:
            frame = _split(frame, sp, ds, spec, findings)
    return frame, trace, findings.items, joined_used


def _each_dataset(datasets: dict[str, pd.DataFrame], steps: list[Any]) -> None:
    """``datasets[name]`` through ``steps`` (each ``(name, frame) -> frame``, reading nothing of
    another dataset), in place; about half the records in a second process
    (:func:`cdisc_pipe.parallel.map_shared`)."""
    order = list(datasets)
    frames = dict(datasets)

    def run(name: str) -> pd.DataFrame:
        df = frames.pop(name)  # each frame let go once its steps have taken it
        for step in steps:
            df = step(name, df)
        return df

    def mine(names: list[str]) -> None:  # in each process, the frames of the other go
        for name in [n for n in frames if n not in names]:
            del frames[name]
    datasets.clear()  # the caller's references too: only ``frames`` holds them while they are worked on
    done = map_shared(run, [(n, len(frames[n])) for n in order], before=mine)
    datasets.update({n: done[n] for n in order})
    del done
    return_free_memory()  # the frames replaced (and the second process's, received) leave free heap


def _epoch_of(name: str, df: pd.DataFrame, *, spec: StudySpec, se: pd.DataFrame) -> pd.DataFrame:
    """EPOCH of each record from SE (SE itself has its own)."""
    ds = spec.datasets[name]
    if "EPOCH" in ds.variable_names and not se.empty and name != "SE":
        dtc = _epoch_dtc(df, ds.domain or name)
        if dtc:
            return df.assign(EPOCH=derive_var_epoch(df, se, dtc))
    return df


def _days_and_flags_of(name: str, df: pd.DataFrame, *, spec: StudySpec, dm: pd.DataFrame, mappings: Mappings,
                       working: dict[str, list[str]]) -> pd.DataFrame:
    """Study days, baseline flags and --NRIND of one dataset; the lookups' working variables dropped."""
    ds = spec.datasets[name]
    dom = ds.domain or name
    df = derive_var_dy(df, dm, [(a, b) for a, b in _pairs_dy(ds) if a in df])
    m = mappings.datasets.get(name)
    if m is not None and m.baseline is not None:
        flags = [v for v in (f"{dom}LOBXFL", f"{dom}BLFL") if v in ds.variable_names]
        df = derive_var_lobxfl(df, dm, m.baseline, dom, flags)
    if f"{dom}NRIND" in ds.variable_names and f"{dom}STRESN" in df:
        df = df.assign(**{f"{dom}NRIND": derive_var_nrind(df, dom)})
    if name in working:  # working variables of lookups have served
        df = df.drop(columns=[c for c in working[name] if c in df])
    return df


def _seq_of(name: str, df: pd.DataFrame, *, spec: StudySpec) -> pd.DataFrame:
    """--SEQ of one dataset (sorted by its keys)."""
    ds = spec.datasets[name]
    dom = ds.domain or name
    return derive_var_seq(df, f"{dom}SEQ", ds.keys) if f"{dom}SEQ" in ds.variable_names else df


def build_sdtm(raw: Any, spec: StudySpec, mappings_dir: Path, *, nca_settings_path: Path | None = None,
               cutoff: str | None = None) -> SdtmResult:
    """Raw EDC export -> SDTM datasets, findings and traceability, following the spec and mappings.

    Args:
        raw: a ``cdisc_pipe.raw.RawExport`` (``.forms``: form -> all-text frame with ``__row``).
        spec: the study spec; every SDTM dataset it declares is built when a mapping, the trial design
            or a derivation provides it.
        mappings_dir: the mappings folder (``<dataset>.yaml``, ``synonyms.yaml``, ``units.yaml``,
            ``trial_design.yaml``).
        cutoff: the data cut-off (``YYYY-MM-DD``, :mod:`cdisc_pipe.cutoff`): later collected dates
            are Error findings, kept in the data but used by no derivation; TS DCUTDTC records it.
        nca_settings_path: ``specs/settings/nca.yaml`` for PP; default: ``settings/nca.yaml`` in the
            specs folder beside ``mappings_dir``.

    Raises:
        InputError: a mapping, the trial design or the raw export's form/field names are wrong.
    """
    mappings = load_mappings(mappings_dir, spec)
    td_file = str(Path(mappings_dir) / "trial_design.yaml")
    td = load_design(mappings.design, td_file) if mappings.design else None
    dm_map = mappings.datasets.get("DM")
    if td is not None and dm_map is not None and dm_map.actual_arm is not None:
        arm_problems = check_actual_arm(dm_map.actual_arm, td, mappings.files.get("DM", "DM"), td_file)
        if arm_problems:
            raise InputError(arm_problems, stage="mappings")
    forms: dict[str, pd.DataFrame] = {}
    for k, v in raw.forms.items():  # the reader's contract gives __row; a frame built by hand may not
        forms[k] = v if ROW in v else v.assign(**{ROW: (np.arange(len(v)) + 2).astype(str)})
    check_raw_fields(mappings, forms)

    studyid = spec.study.name
    findings = Findings()
    trace: list[pd.DataFrame] = []
    default_site = None  # every form of an EDC export carries SITEID (mapping key site_field)
    datasets: dict[str, pd.DataFrame] = {}
    joined_used: list[tuple] = []

    # 3. map every dataset that has a mapping with sources: each dataset on its own (its findings,
    # traceability rows and joins kept apart), about half the raw records in a second process
    # (cdisc_pipe.parallel.map_shared); merged in dataset order, as one process gives them
    order = [n for n in ["DM"] + sorted(n for n in mappings.datasets if n != "DM")
             if mappings.datasets.get(n) is not None and mappings.datasets[n].sources]
    sizes = [(n, sum(len(forms[src.form]) + sum(len(forms[j.form]) for j in src.join)
                     for src in mappings.datasets[n].sources)) for n in order]
    mapped = map_shared(lambda name: _map_one(name, mappings, spec, forms, studyid, default_site), sizes)
    for name, (frame, tr, found, used) in mapped.items():
        datasets[name] = frame
        trace += tr
        findings.items += found
        joined_used += used
    del mapped

    hold_after_cutoff(datasets, mappings, forms, cutoff, findings)
    dm_m = mappings.datasets.get("DM")
    dm = datasets.get("DM", pd.DataFrame(columns=["USUBJID"]))

    # 4. visits, DM derivations, from_dm
    tv = build_tv(td, studyid) if td is not None else pd.DataFrame(columns=["VISITNUM", "VISIT", "VISITDY"])
    if td is not None:
        aliases: dict[str, str] = {}
        for v in td.visits:
            aliases[v.visit.upper()] = v.visit
            for a in v.aliases:
                aliases[a.strip().upper()] = v.visit
        vframes = {n: (datasets[n], mappings.datasets[n].visit.variable, mappings.datasets[n].visit.date,  # type: ignore[union-attr]
                       mappings.datasets[n].visit.unscheduled)  # type: ignore[union-attr]
                   for n in datasets if mappings.datasets[n].visit is not None and not datasets[n].empty}
        datasets.update(derive_var_visitnum(vframes, tv, aliases, findings))
    if dm_m is not None:
        aa = dm_m.actual_arm
        if aa is not None and aa.method == "record" and td is not None and aa.dataset in datasets \
                and aa.variable not in datasets[aa.dataset]:
            raise InputError(Problem(mappings.files.get("DM", "DM"), f"{aa.dataset} has no {aa.variable} when the "
                                     "actual arm is derived", entry="actual_arm.variable", value=aa.variable,
                                     hint=f"Map {aa.variable} in {aa.dataset.lower()}.yaml"), stage="sdtm")
        dm = derive_dm(dm, dm_m, datasets, td, Context("DM", spec.codelists, mappings.synonyms, findings))
        datasets["DM"] = dm
    for name, df in list(datasets.items()):
        m = mappings.datasets[name]
        for var, dmvar in m.from_dm.items():
            if dmvar in dm:
                datasets[name] = df = df.assign(**{var: df["USUBJID"].map(dm.drop_duplicates("USUBJID").set_index("USUBJID")[dmvar])})

    # 5. SE, EPOCH, study days, baseline, reference ranges
    se = build_se(td, studyid, dm, datasets) if td is not None and "SE" in spec.datasets else pd.DataFrame()
    if not se.empty:
        datasets["SE"] = se
    # EPOCH; study days, baseline flags, reference range indicators; --SEQ: each dataset on its own
    # (from DM and SE), about half the records in a second process (one pass without lookups)
    steps = [partial(_epoch_of, spec=spec, se=se)]
    if any(m.lookup for m in mappings.datasets.values()):
        # lookups: per-record values from other datasets, in dependency order (after EPOCH, before
        # study days and baseline, which may use a looked-up reference)
        _each_dataset(datasets, steps)
        datasets = run_lookups(datasets, mappings, findings)
        dm = datasets.get("DM", dm)
        steps = []
    _each_dataset(datasets, steps + [partial(_days_and_flags_of, spec=spec, dm=dm, mappings=mappings,
                                             working=working_variables(mappings)), partial(_seq_of, spec=spec)])

    # 6. SUPP, SV, RELREC, design
    for name, m in mappings.datasets.items():
        if not (m.supp or any(sp.into == "supp" for sp in m.split)) or name not in datasets:
            continue
        parent = datasets[name]
        qvals = {}
        for s in m.supp:
            qvals[s.qnam] = (s.qlabel, s.qorig, s.qeval, _supp_values(parent, s.qnam))
        for sp in m.split:
            if sp.into != "supp":
                continue
            label = spec.datasets[name].variable(sp.variable).label
            for col in sorted(c for c in parent.columns if c.startswith(f"__split_{sp.variable}")):
                n = col[len(f"__split_{sp.variable}"):]
                qnam = f"{sp.variable[:8 - len(n)]}{n}"
                qvals[qnam] = ((sp.qlabel or label)[: 40 - len(n) - 1] + f" {n}", "CRF", None, parent[col].astype("str"))
        supp = build_supp(parent, spec.datasets[name].domain or name, qvals, studyid)
        prev = datasets.get(f"SUPP{name}")
        datasets[f"SUPP{name}"] = supp if prev is None else pd.concat([prev, supp], ignore_index=True)
    if "SV" in datasets and td is not None:  # mapped from the visit form: planned day, unplanned description
        sv = datasets["SV"].drop(columns=[c for c in ("VISITDY", "SVUPDES") if c in datasets["SV"]])
        sv = sv.merge(tv[["VISITNUM", "VISITDY"]].drop_duplicates("VISITNUM"), on="VISITNUM", how="left")
        sv["SVUPDES"] = pd.Series(np.where(sv["VISITDY"].isna() & sv["VISITNUM"].notna() & ~sv["VISITNUM"].isin(tv["VISITNUM"]),
                                           "Unscheduled visit", None), index=sv.index).astype("str")
        datasets["SV"] = _one_record_per_visit(sv, trace)
    if "SV" in spec.datasets and td is not None and "SV" not in datasets:
        sv = build_sv({k: v for k, v in datasets.items() if k not in ("SE",)}, tv, studyid, se)
        if not sv.empty:
            sv = derive_var_dy(sv, dm, [("SVSTDTC", "SVSTDY"), ("SVENDTC", "SVENDY")])
            datasets["SV"] = sv
    if "SV" in datasets and td is not None:  # every visit used elsewhere, dates spanning its records
        datasets["SV"] = complete_sv(datasets["SV"], datasets, tv, studyid, se, dm)
    if not se.empty:
        se = derive_var_dy(datasets["SE"], dm, [("SESTDTC", "SESTDY"), ("SEENDTC", "SEENDY")])
        datasets["SE"] = derive_var_seq(se, "SESEQ", ["STUDYID", "USUBJID", "TAETORD", "SESTDTC"])
    if td is not None:
        for n, builder in (("TE", build_te), ("TA", build_ta), ("TI", build_ti)):
            if n in spec.datasets:
                datasets[n] = builder(td, studyid)
        if "TV" in spec.datasets:
            datasets["TV"] = tv
        if "TS" in spec.datasets:
            datasets["TS"] = build_ts(td, studyid, dm, cutoff=cutoff)
    datasets = clear_single_links(datasets)  # a link ID only one dataset holds links nothing
    if "RELREC" in spec.datasets:
        datasets["RELREC"] = build_relrec(datasets, mappings, studyid)

    # PP from the NCA stage
    extra: dict[str, Any] = {}
    if "PC" in datasets and "PP" in spec.datasets:
        _add_pp(datasets, spec, mappings_dir, nca_settings_path, findings, extra)

    # 7. checks, ASCII, conformance
    restore_after_cutoff(datasets)
    data_checks(datasets, findings)
    final: dict[str, pd.DataFrame] = {}
    for name in list(datasets):  # each working frame let go once conformed (not all held twice)
        ds = spec.datasets[name]
        coded: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # factorizations shared by the two passes
        df = ascii_policy(datasets.pop(name).reset_index(drop=True), name, findings, coded)
        final[name] = conform(df, ds, findings, coded_in=coded, consume=True)
        del df
        return_free_memory()
    trace_table = traceability(final, forms, mappings, trace, joined_used)
    excluded = getattr(raw, "excluded", None)
    if excluded is not None and len(excluded):  # records the EDC export itself marked as removed
        rows = pd.DataFrame({"form": excluded["form"].to_numpy(), "dataset": None, "records_in": np.nan,
                             "records_out": np.nan, "source_row": excluded["source_row"].to_numpy(dtype="float64"),
                             "usubjid": excluded["usubjid"].to_numpy(), "reason": excluded["reason"].to_numpy()})
        trace_table = pd.concat([trace_table, rows[trace_table.columns]], ignore_index=True)
    records = record_sources(final, spec)
    for name in list(final):
        final[name] = final[name].drop(columns=[c for c in (FORM, ROW, SUBJ, SRC) if c in final[name]])
    return SdtmResult(datasets=final, findings=findings.items, traceability=trace_table, extra=extra, records=records)


def _supp_values(parent: pd.DataFrame, qnam: str) -> pd.Series:
    """The values of a SUPP qualifier, computed during mapping into the hidden column ``__q_<QNAM>``
    (rules read the source rows, joined forms included; sources lacking the fields give none)."""
    col = f"__q_{qnam}"
    if col not in parent:
        return pd.Series(np.nan, index=parent.index, dtype="str")
    return parent[col].astype("str")


def _split(frame: pd.DataFrame, sp: Any, ds: Dataset, spec: StudySpec, findings: Findings) -> pd.DataFrame:
    """Text over 200 bytes: chunk 0 stays; the rest into numbered variables (``COVAL1``) or hidden
    ``<VAR>n`` columns turned into SUPP records (QNAM ``<VAR>1``...)."""
    var = sp.variable
    long = byte_len(frame[var]) > MAX_BYTES
    if not long.any():
        return frame
    findings.add("SDTM.TEXT.SPLIT", "Notice", f"{var} over {MAX_BYTES} bytes split per SDTMIG 4.5.3", ds.name, var,
                 frame, long, frame[var].str.slice(0, 40))
    # ASCII first so that bytes = characters in the split
    asc = ascii_policy(frame[[var, FORM, ROW, SUBJ]], ds.name, findings)
    chunks = split_text(asc[var])
    out = frame.copy(deep=False)
    out[var] = chunks[0]
    for i in range(1, chunks.shape[1]):
        if sp.into == "supp":
            out[f"__split_{var}{i}"] = chunks[i]
        else:  # numbered variables of the dataset itself (COVAL1, COVAL2 ...)
            out[f"{var[:8 - len(str(i))]}{i}"] = chunks[i]
    return out


def _one_record_per_visit(sv: pd.DataFrame, trace: list[pd.DataFrame]) -> pd.DataFrame:
    """SV is one record per subject visit.  Unscheduled visits are numbered by date, so two EDC
    unscheduled folders on one date are one SDTM visit: keep the first record with the earliest
    start and latest end; the other folder's record is listed in the traceability with the reason."""
    keyed = sv["VISITNUM"].notna()
    dup = keyed & sv.duplicated(["USUBJID", "VISITNUM"], keep="first")
    if not dup.any():
        return sv
    first = ~dup & keyed
    by = [sv.loc[keyed, "USUBJID"], sv.loc[keyed, "VISITNUM"]]
    out = sv.copy(deep=False)
    out.loc[first, "SVSTDTC"] = text_extreme_by(sv.loc[keyed, "SVSTDTC"], by, "min")[first[keyed]].to_numpy()
    out.loc[first, "SVENDTC"] = text_extreme_by(sv.loc[keyed, "SVENDTC"], by, "max")[first[keyed]].to_numpy()
    trace.append(trace_rows(sv.loc[dup], "SV", "same SDTM visit as another folder of that date (unscheduled "
                                               "visits are numbered by date): one SV record"))
    return out.loc[~dup]


def _cutoff_events(datasets: dict[str, pd.DataFrame], settings: Any) -> pd.DataFrame | None:
    """The NCA cut-off events the settings declare (``cutoff_events``), as USUBJID, DTC, REASON."""
    parts = []
    for ev in getattr(settings, "cutoff_events", []) or []:
        df = datasets.get(ev.dataset)
        if df is None or ev.variable not in df or ev.dtc not in df:
            continue
        hit = df[df[ev.variable].isin(ev.values)]
        parts.append(pd.DataFrame({"USUBJID": hit["USUBJID"].to_numpy(), "DTC": hit[ev.dtc].to_numpy(),
                                   "REASON": ev.reason}))
    return pd.concat(parts, ignore_index=True) if parts else None


def _add_pp(datasets: dict[str, pd.DataFrame], spec: StudySpec, mappings_dir: Path, settings_path: Path | None,
            findings: Findings, extra: dict[str, Any]) -> None:
    """PP, RELREC PC<->PP and PCGRPID from ``cdisc_pipe.nca.build_pp`` (the NCA stage's contract)."""
    try:
        from cdisc_pipe import nca  # noqa: PLC0415 - optional until the NCA module lands
    except ImportError as exc:
        findings.items.append(Finding("SDTM.PP.UNAVAILABLE", "Error", f"NCA module not importable, PP not built: {exc}", dataset="PP"))
        return
    if settings_path is None:
        from cdisc_pipe.paths import default_specs  # noqa: PLC0415

        beside = Path(mappings_dir).parent / "specs" / "settings" / "nca.yaml"
        settings_path = beside if beside.exists() else default_specs() / "settings" / "nca.yaml"
    settings = nca.load_nca_settings(settings_path)  # InputError naming the file when missing or invalid
    pc = conform(datasets["PC"], spec.datasets["PC"], Findings(), keys_check=False)
    res = nca.build_pp(pc, datasets["DM"], settings, exclude_after=_cutoff_events(datasets, settings),
                       doses=nca.dose_records(datasets, settings))
    findings.items.extend(getattr(res, "findings", []) or [])
    pp = res.pp.copy()
    if "PPSEQ" in spec.datasets["PP"].variable_names:
        pp = derive_var_seq(pp, "PPSEQ", spec.datasets["PP"].keys)
    datasets["PP"] = pp
    newpc = getattr(res, "pc", None)
    if newpc is not None and "PCGRPID" in newpc:
        grp = newpc.set_index(["USUBJID", "PCSEQ"])["PCGRPID"]
        key = pd.MultiIndex.from_frame(datasets["PC"][["USUBJID", "PCSEQ"]])
        datasets["PC"] = datasets["PC"].assign(PCGRPID=grp.reindex(key).to_numpy())
    supppc = getattr(res, "supppc", None)
    if supppc is not None and not supppc.empty:
        if "SUPPPC" in spec.datasets:
            datasets["SUPPPC"] = pd.concat([datasets.get("SUPPPC", pd.DataFrame()), supppc], ignore_index=True)
        else:  # the NCA excluded PC records but the study has no SUPPPC spec: say so, never drop silently
            findings.items.append(Finding("SDTM.PP.SUPPPC", "Error",
                                          f"the NCA flagged {len(supppc)} PC exclusion qualifier(s) but there is no "
                                          "specs/sdtm/supppc.yaml; add it to keep them", dataset="SUPPPC"))
    rel = getattr(res, "relrec", None)
    if rel is not None and not rel.empty:
        datasets["RELREC"] = pd.concat([datasets.get("RELREC", pd.DataFrame()), rel], ignore_index=True)
    excl = getattr(res, "exclusions", None)
    extra["nca"] = {"method_description": getattr(res, "method_description", None),
                    "parameter_methods": dict(getattr(res, "parameter_methods", {}) or {}),
                    "exclusions": [] if excl is None else excl.astype("object").where(excl.notna(), None).to_dict("records")}
