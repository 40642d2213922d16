"""Rules that the operator vocabulary cannot express: named Python functions, registered here.

A YAML rule uses one with ``check: {operator: python, function: <name>, ...params}``.  Each function
takes the :class:`~cdisc_pipe.validate.context.CheckContext` and the ``check`` parameters and returns
:class:`~cdisc_pipe.validate.context.Hits`; it raises ``RuleSkipped`` when it cannot run.  They are
vectorised like the operators (merges and groupby, no loops over records).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import numpy as np
import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from cdisc_pipe.validate.context import (
    CheckContext, Hits, RuleSkipped, as_text, complete_date, concat_hits, distinct, empty_hits, first_of_group,
    group_codes, is_null, outside_values, subject_lookup, text_bytes,
)
from cdisc_pipe.validate.data import domain_prefix, known_distinct
from cdisc_pipe.validate.operators import Params, operator

# A rule function gets the ``check`` parameters as a dict, or, when it was registered with a
# parameter model, as that validated model.
RuleFunction = Callable[[CheckContext, Any], Hits]
FUNCTIONS: dict[str, RuleFunction] = {}
# Parameter models of the functions that declare one: validated when the rule file is loaded
# (engine.load_rules), so a wrong parameter is a load error naming the file, rule and key.
FUNCTION_PARAMS: dict[str, type[BaseModel]] = {}


def rule_function(name: str, params: type[BaseModel] | None = None) -> Callable[[RuleFunction], RuleFunction]:
    """Register a Python rule function under ``name`` (the YAML ``check.function``); ``params``: the
    pydantic model of its parameters (the function then receives the validated model)."""
    def deco(fn: RuleFunction) -> RuleFunction:
        if name in FUNCTIONS:
            raise ValueError(f"rule function {name} registered twice")
        FUNCTIONS[name] = fn
        if params is not None:
            FUNCTION_PARAMS[name] = params
        return fn
    return deco


class PythonParams(Params):
    model_config = Params.model_config | {"extra": "allow"}
    function: str


@operator("python", PythonParams)
def run_python(ctx: CheckContext, p: PythonParams) -> Hits:
    """Run the registered function named ``function`` with the remaining parameters."""
    if p.function not in FUNCTIONS:
        raise KeyError(f"no rule function {p.function!r} registered")
    extra = dict(p.model_extra or {})
    model = FUNCTION_PARAMS.get(p.function)
    return FUNCTIONS[p.function](ctx, model.model_validate(extra) if model is not None else extra)


def utf8_lengths(s: pd.Series) -> np.ndarray:
    """Byte length of each value in UTF-8 (0 for missing)."""
    return text_bytes(s)[0]


# ===================================================================== structure vs spec
def _spec_ds(ctx: CheckContext):
    spec = ctx.need_spec()
    ds = spec.datasets.get(ctx.dataset or "")
    if ds is None:
        raise RuleSkipped(f"{ctx.dataset} not in the spec")
    return ds


@rule_function("spec_datasets_unknown")
def spec_datasets_unknown(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Datasets present in the data but not described in the spec."""
    spec = ctx.need_spec()
    extra = sorted(d for d in ctx.data.datasets if d not in spec.datasets)
    return ctx.dataset_hits(["(dataset)"] * len(extra), extra, [f"dataset {d} not in spec" for d in extra])


def _supp_qualifier_dataset(name: str, ds: Any) -> bool:
    """A supplemental-qualifier dataset (SUPP--, or SQAP-- for associated persons) of class RELATIONSHIP."""
    return (str(getattr(ds, "dataset_class", "") or "").upper() == "RELATIONSHIP"
            and name.upper().startswith(("SUPP", "SQAP")))


@rule_function("spec_datasets_missing")
def spec_datasets_missing(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Spec datasets of a purpose that was validated but for which no file exists.

    Legitimately absent, so not reported: a supplemental-qualifier dataset (SUPP--/SQAP--): it holds
    one record per qualifier value and exists only when there is one (SDTMIG 3.4 section 8.4; an
    empty dataset is not submitted), e.g. SUPPPC when the NCA excluded no PC record; and a dataset
    the define.xml of its purpose declares ``def:HasNoData="Yes"`` (documented as having no data).
    """
    spec = ctx.need_spec()
    purposes = set(ctx.data.purpose.values())
    declared_empty = {n for d in ctx.data.defines.values() for n, dd in d.datasets.items() if dd.has_no_data}
    missing = sorted(n for n, d in spec.datasets.items()
                     if d.purpose in purposes and n not in ctx.data.datasets
                     and not _supp_qualifier_dataset(n, d) and n not in declared_empty)
    return ctx.dataset_hits(["(dataset)"] * len(missing), missing)


@rule_function("spec_variables_missing")
def spec_variables_missing(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Spec variables of the given core (Req/Exp) absent from the dataset."""
    ds = _spec_ds(ctx)
    core = params.get("core", "Req")
    missing = [v.name for v in ds.variables if v.core == core and v.name not in ctx.df.columns]
    return ctx.dataset_hits(missing, [None] * len(missing), [f"{core} variable absent"] * len(missing))


@rule_function("spec_variables_unknown")
def spec_variables_unknown(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Variables in the data that the spec does not describe."""
    ds = _spec_ds(ctx)
    names = set(ds.variable_names)
    extra = [c for c in ctx.df.columns if c not in names]
    return ctx.dataset_hits(extra)


@rule_function("spec_variable_order")
def spec_variable_order(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Variables present in both appear in the spec's order."""
    ds = _spec_ds(ctx)
    spec_order = [n for n in ds.variable_names if n in ctx.df.columns]
    data_order = [c for c in ctx.df.columns if c in set(spec_order)]
    bad = [(i + 1, d, s) for i, (d, s) in enumerate(zip(data_order, spec_order)) if d != s]
    return ctx.dataset_hits([b[1] for b in bad], [str(b[0]) for b in bad],
                            [f"position {b[0]}: spec expects {b[2]}" for b in bad])


@rule_function("spec_variable_label")
def spec_variable_label(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Variable labels in the file equal the spec labels."""
    ds = _spec_ds(ctx)
    meta = ctx.data.meta.get(ctx.dataset or "")
    if meta is None:
        raise RuleSkipped("no file metadata (dataset not read from a file)")
    bad = [(v.name, meta.columns[v.name].label, v.label) for v in ds.variables
           if v.name in meta.columns and (meta.columns[v.name].label or "") != v.label]
    return ctx.dataset_hits([b[0] for b in bad], [b[1] for b in bad], [f"spec label: {b[2]}" for b in bad])


@rule_function("spec_dataset_label")
def spec_dataset_label(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """The dataset label in the file equals the spec label."""
    ds = _spec_ds(ctx)
    meta = ctx.data.meta.get(ctx.dataset or "")
    if meta is None:
        raise RuleSkipped("no file metadata (dataset not read from a file)")
    if (meta.label or "") == ds.label:
        return empty_hits()
    return ctx.dataset_hits(["(dataset label)"], [meta.label], [f"spec label: {ds.label}"])


@rule_function("spec_variable_type")
def spec_variable_type(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Numeric spec variables are numeric in the data, character ones character."""
    ds = _spec_ds(ctx)
    bad = []
    for v in ds.variables:
        if v.name not in ctx.df.columns:
            continue
        s = ctx.df[v.name]
        is_num = pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_datetime64_any_dtype(s.dtype)
        known = known_distinct(s)
        if (known[0] < 0).all() if known is not None else s.isna().all():
            continue  # an all-missing column has no reliable type after reading
        if is_num != v.is_numeric:
            bad.append((v.name, "numeric" if is_num else "text", v.data_type))
    return ctx.dataset_hits([b[0] for b in bad], [b[1] for b in bad], [f"spec data type: {b[2]}" for b in bad])


@rule_function("spec_variable_length")
def spec_variable_length(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Character values are no longer (bytes) than the spec length."""
    ds = _spec_ds(ctx)
    parts = []
    for v in ds.variables:
        if v.length is None or v.is_numeric or v.name not in ctx.df.columns:
            continue
        s = ctx.df[v.name]
        if not pd.api.types.is_string_dtype(s.dtype):
            continue
        bound = ctx.byte_bound(v.name)
        if bound is not None and bound <= v.length:  # no value can be longer: nothing to measure
            continue
        n = ctx.text_bytes(v.name)[0]
        parts.append(ctx.hits(n > v.length, v.name, s, f"spec length {v.length}"))
    return concat_hits(parts)


@rule_function("spec_required_not_null")
def spec_required_not_null(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Variables with core Req in the spec are populated on every record."""
    ds = _spec_ds(ctx)
    parts = [ctx.hits(is_null(ctx.df[v.name]), v.name) for v in ds.variables
             if v.core == "Req" and v.name in ctx.df.columns]
    return concat_hits(parts)


def _codelist_map(ctx: CheckContext) -> list[tuple[str, Any]]:
    """(variable, spec Codelist) pairs for the dataset's variables with terms."""
    ds = _spec_ds(ctx)
    spec = ctx.spec
    out = []
    for v in ds.variables:
        if v.codelist and v.name in ctx.df.columns:
            cl = spec.codelists.get(v.codelist)
            if cl is not None and cl.terms:
                out.append((v.name, cl))
    return out


@rule_function("spec_codelist")
def spec_codelist(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Values are terms of the variable's codelist in the spec (``extensible``: which codelists)."""
    want_ext = bool(params.get("extensible", False))
    parts = []
    for var, cl in _codelist_map(ctx):
        if bool(cl.extensible) != want_ext:
            continue
        bad = outside_values(ctx.df[var], cl.values())
        parts.append(ctx.hits(bad, var, ctx.df[var], f"codelist {cl.oid}"))
    return concat_hits(parts)


def _ct_for(ctx: CheckContext):
    purpose = ctx.data.purpose.get(ctx.dataset or "", "Tabulation")
    pub = "ADaM" if purpose == "Analysis" else "SDTM"
    pkg = ctx.ct.get(pub)
    if pkg is None:
        raise RuleSkipped(ctx.ct_reason or f"no {pub} CT package configured")
    return pkg


_CT_INDEX: dict[str, dict[str, tuple[frozenset[str], bool]]] = {}


def _ct_terms(pkg, code: str) -> tuple[frozenset[str], bool] | None:
    """(terms, extensible) of codelist ``code`` (C-code or short name); index built once per package."""
    idx = _CT_INDEX.get(pkg.path)
    if idx is None:
        terms = pkg.terms.groupby("codelist_code")["submission_value"].agg(frozenset)
        idx = {}
        for _, row in pkg.codelists.iterrows():  # loop over codelists (~1000), not records
            entry = (terms.get(row["code"], frozenset()), row["extensible"] == "Yes")
            idx[row["code"]] = entry
            idx.setdefault(row["submission_value"], entry)
        _CT_INDEX[pkg.path] = idx
    return idx.get(code)


@rule_function("ct_package_values")
def ct_package_values(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Values against the CT package codelist the spec codelist subsets (by NCI code).

    ``extensible: false``: a value not in a non-extensible CT codelist.  ``extensible: true``: a value
    not in an extensible CT codelist that the spec does not mark as a sponsor extension.
    """
    want_ext = bool(params.get("extensible", False))
    pkg = _ct_for(ctx)
    parts = []
    for var, cl in _codelist_map(ctx):
        if not cl.nci_code:
            continue
        found = _ct_terms(pkg, cl.nci_code)
        if found is None:
            continue  # reported by the spec-vs-CT rule
        terms, ext = found
        if ext != want_ext:
            continue
        allowed = set(terms)
        if ext:
            allowed |= {t.submission_value for t in cl.terms if t.extended}
        bad = outside_values(ctx.df[var], allowed)
        parts.append(ctx.hits(bad, var, ctx.df[var], f"CT codelist {cl.nci_code}"))
    return concat_hits(parts)


@rule_function("spec_terms_in_ct")
def spec_terms_in_ct(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Spec codelists: the NCI codelist exists in the package and every non-extended term is in it."""
    spec = ctx.need_spec()
    if not ctx.ct:
        raise RuleSkipped(ctx.ct_reason or "no CT package configured")
    vars_, vals, details = [], [], []
    std_pub = {s.oid: s.publishing_set for s in spec.standards if s.type == "CT"}
    for cl in spec.codelists.values():
        if not cl.nci_code or not cl.terms:
            continue
        pkg = ctx.ct.get(std_pub.get(cl.standard or "", "SDTM") or "SDTM") or ctx.ct.get("SDTM")
        if pkg is None:
            continue
        found = _ct_terms(pkg, cl.nci_code)
        if found is None:
            vars_.append(cl.oid); vals.append(cl.nci_code); details.append("codelist not in CT package")
            continue
        terms, ext = found
        for t in cl.terms:
            if t.submission_value not in terms and not (ext and t.extended):
                vars_.append(cl.oid); vals.append(t.submission_value)
                details.append("term not in CT codelist" + ("" if ext else " (non-extensible)"))
    return ctx.dataset_hits(vars_, vals, details)


# ===================================================================== XPT v5 (file metadata)
def _meta(ctx: CheckContext):
    meta = ctx.data.meta.get(ctx.dataset or "")
    if meta is None:
        raise RuleSkipped("no file metadata (dataset not read from an XPT file)")
    return meta


NAME_RX = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")


@rule_function("xpt_variable_names")
def xpt_variable_names(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Variable names: upper-case letters, digits, underscore, start with a letter, at most 8."""
    bad = [c for c in ctx.df.columns if not NAME_RX.match(str(c))]
    return ctx.dataset_hits(bad, bad)


@rule_function("xpt_dataset_name")
def xpt_dataset_name(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Dataset name <= 8 valid characters, file name = lower-case dataset name, member name = dataset."""
    meta = _meta(ctx)
    stem = Path(meta.path).stem
    problems = []
    if not NAME_RX.match(stem.upper()):
        problems.append("invalid dataset name")
    if stem != stem.lower():
        problems.append("file name not lower case")
    if meta.name.upper() != stem.upper():
        problems.append(f"member name {meta.name} differs from file name")
    return ctx.dataset_hits(["(dataset)"] * len(problems), [stem] * len(problems), problems)


@rule_function("xpt_variable_labels")
def xpt_variable_labels(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Variable labels: present, at most 40 characters, ASCII."""
    meta = _meta(ctx)
    bad = []
    for c in meta.columns.values():
        lab = c.label or ""
        if not lab:
            bad.append((c.name, lab, "label missing"))
        elif len(lab) > 40:
            bad.append((c.name, lab, f"label {len(lab)} characters"))
        elif not lab.isascii():
            bad.append((c.name, lab, "label not ASCII"))
    return ctx.dataset_hits([b[0] for b in bad], [b[1] for b in bad], [b[2] for b in bad])


@rule_function("xpt_dataset_label")
def xpt_dataset_label(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Dataset label: present, at most 40 characters, ASCII."""
    meta = _meta(ctx)
    lab = meta.label or ""
    why = "label missing" if not lab else f"label {len(lab)} characters" if len(lab) > 40 else \
        "label not ASCII" if not lab.isascii() else None
    return ctx.dataset_hits(["(dataset label)"], [lab], [why]) if why else empty_hits()


@rule_function("xpt_length_actual")
def xpt_length_actual(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Character storage length equals the longest value present (at least 1)."""
    meta = _meta(ctx)
    vars_, vals, details = [], [], []
    for c in meta.columns.values():
        if c.type != "text" or c.length is None or c.name not in ctx.df.columns:
            continue
        s = ctx.df[c.name]
        if not pd.api.types.is_string_dtype(s.dtype):
            continue
        n = ctx.text_bytes(c.name)[0]
        longest = max(int(np.max(n)) if len(n) else 0, 1)
        if c.length > longest:
            vars_.append(c.name); vals.append(str(c.length)); details.append(f"longest value {longest} bytes")
    return ctx.dataset_hits(vars_, vals, details)


# ===================================================================== DM vs EX
def _ex_by_subject(ctx: CheckContext, ex_when: dict[str, Any] | None = None) -> pd.DataFrame:
    """First/last exposure date per subject (``ex_when``: {variable: value} restricting EX records)."""
    ex = ctx.other("EX")
    if "EXSTDTC" not in ex.columns:
        raise RuleSkipped("EX.EXSTDTC absent")
    for var, val in (ex_when or {}).items():
        if var not in ex.columns:
            raise RuleSkipped(f"EX.{var} absent")
        ex = ex[(as_text(ex[var]) == str(val)).fillna(False).to_numpy(dtype=bool)]
    start = ex["EXSTDTC"].astype("str")
    end = ex["EXENDTC"].astype("str") if "EXENDTC" in ex.columns else start
    end = end.where(end.notna(), start)
    # every EX record counts, placebo (EXDOSE 0) included: RFXSTDTC is the first study treatment
    frame = pd.DataFrame({"USUBJID": ex["USUBJID"], "start": start, "end": end})
    frame = frame.assign(sd=complete_date(frame["start"]), ed=complete_date(frame["end"]))
    g = frame.groupby("USUBJID")
    return pd.DataFrame({"first": g["sd"].min(), "last": g["ed"].max(),
                         "first_txt": frame.sort_values("sd").groupby("USUBJID")["start"].first()})


@rule_function("dm_rfx_vs_ex")
def dm_rfx_vs_ex(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """DM.RFXSTDTC (``which: start``) equals the first EX date; RFXENDTC (``which: end``) the last one.

    ``variable`` and ``ex_when`` adapt it to a study convention, for example RFSTDTC = the first EX
    record of one treatment category (the study's rule file names the category)."""
    which = params.get("which", "start")
    var = params.get("variable") or ("RFXSTDTC" if which == "start" else "RFXENDTC")
    col = ctx.one(var)
    ex = _ex_by_subject(ctx, params.get("ex_when"))
    exp = ctx.df["USUBJID"].map(ex["first" if which == "start" else "last"])
    got = complete_date(ctx.df[col])
    bad = (exp.notna() & got.notna() & (exp != got)).to_numpy(dtype=bool)
    detail = "EX " + ("first" if which == "start" else "last") + " date " + exp.dt.strftime("%Y-%m-%d").fillna("")
    return ctx.hits(bad, col, as_text(ctx.df[col]), detail.to_numpy(dtype=object))


@rule_function("dm_exposure_presence")
def dm_exposure_presence(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """``variable`` (RFXSTDTC, ACTARMCD...) is populated exactly for the subjects with EX records."""
    col = ctx.one(params.get("variable", "RFXSTDTC"))
    ex = _ex_by_subject(ctx)
    has_ex = ctx.df["USUBJID"].isin(ex.index).to_numpy(dtype=bool)
    pop = ~is_null(ctx.df[col])
    mode = params.get("mode", "both")
    bad = np.zeros(len(ctx.df), dtype=bool)
    if mode in ("both", "missing"):
        bad = bad | (has_ex & ~pop)
    if mode in ("both", "extra"):
        bad = bad | (~has_ex & pop)
    detail = np.where(has_ex, "subject has EX records", "subject has no EX record")
    return ctx.hits(bad, col, as_text(ctx.df[col]), detail)


# ===================================================================== SUPP-- and RELREC
def _id_text(values: pd.Series) -> pd.Series:
    """Identifier values as comparable text: surrounding blanks removed (SDTMIG 3.1.x IDVARVAL was
    often right-aligned, "   2") and numbers in one spelling ("2", "2.0", 2.0 -> "2"); computed once
    per distinct value."""
    codes, uniq = pd.factorize(as_text(values).fillna(""))

    def one(u: str) -> str:
        t = u.strip()
        try:
            x = float(t)
        except ValueError:
            return t
        if not np.isfinite(x):
            return t
        return str(int(x)) if x.is_integer() else repr(x)

    table = np.array([one(u) for u in uniq] + [""], dtype=object)
    return pd.Series(table[codes], index=values.index)


def _record_ids(ctx: CheckContext, rdomain: str, idvar: str | None) -> pd.MultiIndex | None:
    parent = ctx.data.datasets.get(rdomain)
    if parent is None:
        parent = ctx.data.empty_frame(rdomain)  # declared without data: every reference is an orphan
    if parent is None:
        return None
    if idvar is None or idvar == "":
        return pd.MultiIndex.from_arrays([as_text(parent["USUBJID"]) if "USUBJID" in parent else
                                          pd.Series([], dtype="str")])
    if idvar not in parent.columns:
        return pd.MultiIndex.from_arrays([pd.Series([], dtype="str"), pd.Series([], dtype="str")])
    usub = as_text(parent["USUBJID"]) if "USUBJID" in parent.columns else pd.Series("", index=parent.index)
    return pd.MultiIndex.from_arrays([usub.fillna(""), _id_text(parent[idvar])])


def _orphans(ctx: CheckContext, domain_col: str) -> Hits:
    df = ctx.df
    for c in (domain_col, "USUBJID", "IDVAR", "IDVARVAL"):
        if c not in df.columns:
            raise RuleSkipped(f"{c} absent")
    bad = np.zeros(len(df), dtype=bool)
    detail = np.full(len(df), None, dtype=object)
    rd = as_text(df[domain_col]).fillna("")
    iv = as_text(df["IDVAR"]).fillna("")
    for (dom, idvar), idx in df.groupby([rd, iv], sort=True).indices.items():
        sub = df.iloc[idx]
        ids = _record_ids(ctx, dom, idvar or None)
        if ids is None:
            bad[idx] = True
            detail[idx] = f"dataset {dom} absent"
            continue
        if idvar:
            key = pd.MultiIndex.from_arrays([as_text(sub["USUBJID"]).fillna(""), _id_text(sub["IDVARVAL"])])
        else:
            key = pd.MultiIndex.from_arrays([as_text(sub["USUBJID"])])
        miss = ~key.isin(ids)
        bad[idx[miss]] = True
        detail[idx[miss]] = f"no {dom} record with {idvar or 'USUBJID'} = value"
    val = (rd + "." + iv + "=" + as_text(df["IDVARVAL"]).fillna("")).to_numpy(dtype=object)
    return ctx.hits(bad, "IDVARVAL", val, detail)


@rule_function("supp_orphans")
def supp_orphans(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Every SUPP-- record points at an existing parent record (RDOMAIN, USUBJID, IDVAR=IDVARVAL)."""
    return _orphans(ctx, "RDOMAIN")


@rule_function("relrec_orphans")
def relrec_orphans(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Every subject-level RELREC record points at existing records (IDVAR may be --SEQ or --GRPID)."""
    df = ctx.df
    if "USUBJID" in df.columns:
        sub_level = ~is_null(df["USUBJID"])
        ctx2 = CheckContext(ctx.dataset, df.loc[sub_level].reset_index(drop=True), None, ctx.data, ctx.spec,
                            ctx.settings)
        h = _orphans(ctx2, "RDOMAIN")
        h.rows = np.flatnonzero(sub_level)[h.rows] if len(h) else h.rows
        return h
    raise RuleSkipped("USUBJID absent")


@rule_function("relrec_single")
def relrec_single(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """A RELID relates at least two records (or two datasets for dataset-level relationships)."""
    for c in ("RELID",):
        if c not in ctx.df.columns:
            raise RuleSkipped("RELID absent")
    usub = as_text(ctx.df["USUBJID"]).fillna("") if "USUBJID" in ctx.df.columns else pd.Series("", index=ctx.df.index)
    n = ctx.df.groupby([usub, as_text(ctx.df["RELID"]).fillna("")], sort=False)["RELID"].transform("size")
    return ctx.hits((n < 2).to_numpy(), "RELID", as_text(ctx.df["RELID"]))


# ===================================================================== ADaM
@rule_function("adsl_trt_vs_dm")
def adsl_trt_vs_dm(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """ADSL TRT01A against DM.ACTARM: ``mode: presence`` = populated for the same subjects;
    ``mode: value`` = same text where both are populated.

    With several periods (ADSL has TRT02P/TRT02A beside TRT01P/TRT01A) DM's arm is the sequence of
    treatments, not the first period's: ``mode: value`` then compares ``sequence_variable``
    (TRTSEQP/TRTSEQA) with DM, and skips when ADSL has none."""
    trt = ctx.one(params.get("variable", "TRT01A"))
    dm_var = params.get("dm_variable", "ACTARM")
    mode = params.get("mode", "presence")
    second = re.sub(r"01", "02", trt, count=1)
    if mode == "value" and second != trt and second in ctx.df.columns:
        seq = params.get("sequence_variable")
        if not seq or seq not in ctx.df.columns:
            raise RuleSkipped(f"several periods ({second} present) and no {seq or 'sequence variable'} to compare "
                              f"with DM.{dm_var}")
        trt = seq
    arm = subject_lookup(ctx.df, ctx.other("DM"), dm_var)
    a_null, t_null = is_null(arm), is_null(ctx.df[trt])
    if mode == "presence":
        bad = a_null != t_null
    else:
        bad = ~a_null & ~t_null & (as_text(ctx.df[trt]).to_numpy(dtype=object) != as_text(arm).to_numpy(dtype=object))
    return ctx.hits(bad, trt, as_text(ctx.df[trt]), (f"DM.{dm_var}=" + as_text(arm).fillna("")).to_numpy(dtype=object))


@rule_function("adam_base_vs_ablfl")
def adam_base_vs_ablfl(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """BASE equals AVAL of the ABLFL='Y' record of the subject/parameter/basetype."""
    for c in ("USUBJID", "PARAMCD", "AVAL", "BASE", "ABLFL"):
        if c not in ctx.df.columns:
            raise RuleSkipped(f"{c} absent")
    df = ctx.df
    by = ["USUBJID", "PARAMCD"] + (["BASETYPE"] if "BASETYPE" in df.columns else [])
    gid = group_codes(df, by)
    flag = (as_text(df["ABLFL"]) == "Y").fillna(False).to_numpy(dtype=bool)
    # the AVAL of the first ABLFL='Y' record of each group, given to every record of the group
    flagged = np.flatnonzero(flag)
    first = flagged[first_of_group(pd.factorize(gid[flagged])[0])] if len(flagged) else flagged
    base = np.full(int(gid.max()) + 1 if len(gid) else 0, np.nan)
    base[gid[first]] = pd.to_numeric(df["AVAL"], errors="coerce").to_numpy(dtype=float)[first]
    exp = base[gid]
    got = pd.to_numeric(df["BASE"], errors="coerce").to_numpy(dtype=float)
    bad = (~np.isnan(exp) & (np.isnan(got) | (np.abs(got - exp) > 1e-9 * np.maximum(1, np.abs(exp))))) | \
          (np.isnan(exp) & ~np.isnan(got))
    # the detail is text only at the failing records (a million-record ADLB has a handful)
    detail = np.full(len(bad), None, dtype=object)
    rows = np.flatnonzero(bad)
    detail[rows] = np.char.add("baseline AVAL ", pd.Series(exp[rows]).astype("str").to_numpy(dtype=str))
    return ctx.hits(bad, "BASE", df["BASE"], detail)


@rule_function("adam_ady")
def adam_ady(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """ADY = ADT - TRTSDT (+1 on or after TRTSDT); TRTSDT from the record or from ADSL."""
    for c in ("ADT", "ADY"):
        if c not in ctx.df.columns:
            raise RuleSkipped(f"{c} absent")
    trt = ctx.df["TRTSDT"] if "TRTSDT" in ctx.df.columns else subject_lookup(ctx.df, ctx.other("ADSL"), "TRTSDT")
    adt = pd.to_datetime(ctx.df["ADT"], errors="coerce")
    t = pd.to_datetime(trt, errors="coerce")
    diff = (adt.dt.normalize() - t.dt.normalize()).dt.days.to_numpy(dtype=float)
    exp = np.where(diff >= 0, diff + 1, diff)
    got = pd.to_numeric(ctx.df["ADY"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isnan(exp) & (np.isnan(got) | (got != exp))
    return ctx.hits(bad, "ADY", ctx.df["ADY"], exp, detail_prefix="expected ")  # exp: whole days, shown as such


# ===================================================================== study data quality
@rule_function("missed_visits")
def missed_visits(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Scheduled visits (TV, VISITDY) that fell before the subject's last contact but have no SV record.

    Subjects' last day = study day of RFPENDTC (else the last SV date).  Only treated subjects
    (RFSTDTC populated) are expected to attend post-treatment visits.  One finding per missed visit.
    """
    tv = ctx.other("TV")
    dm = ctx.other("DM")
    sv = ctx.df
    if "VISITDY" not in tv.columns:
        raise RuleSkipped("TV.VISITDY absent")
    tvv = tv[["VISITNUM", "VISIT", "VISITDY"]].drop_duplicates("VISITNUM")
    tvv = tvv[pd.to_numeric(tvv["VISITDY"], errors="coerce").notna()]
    last_sv = sv.assign(__d=complete_date(sv["SVSTDTC"])).groupby("USUBJID")["__d"].max()
    subj = dm[["USUBJID", "RFSTDTC"]].copy()
    end = complete_date(dm["RFPENDTC"]) if "RFPENDTC" in dm.columns else pd.Series(pd.NaT, index=dm.index)
    end = end.fillna(dm["USUBJID"].map(last_sv))
    subj["lastdy"] = study_day_from(end, dm["RFSTDTC"])
    stop = params.get("stop_at_response")
    rs = ctx.data.datasets.get("RS")
    if stop and rs is not None and {"RSTESTCD", "RSSTRESC", "RSDTC", "USUBJID"} <= set(rs.columns):
        # after progression subjects leave the assessment schedule (survival follow-up only)
        sel = ((as_text(rs["RSTESTCD"]) == params.get("response_testcd", "OVRLRESP")) &
               (as_text(rs["RSSTRESC"]) == stop)).fillna(False).to_numpy(dtype=bool)
        first_pd = complete_date(rs.loc[sel, "RSDTC"]).groupby(rs.loc[sel, "USUBJID"]).min()
        first = pd.Series(pd.to_datetime(first_pd.reindex(dm["USUBJID"].to_numpy()).to_numpy()), index=dm.index)
        pd_day = study_day_from(first, dm["RFSTDTC"])
        subj["lastdy"] = np.fmin(subj["lastdy"].to_numpy(dtype=float), pd_day.to_numpy(dtype=float))
    subj = subj[subj["lastdy"].notna()]
    planned = subj.merge(tvv, how="cross")
    planned = planned[pd.to_numeric(planned["VISITDY"]).to_numpy() <= planned["lastdy"].to_numpy()]
    have = pd.MultiIndex.from_arrays([as_text(sv["USUBJID"]), as_text(sv["VISITNUM"])])
    key = pd.MultiIndex.from_arrays([as_text(planned["USUBJID"]), as_text(planned["VISITNUM"])])
    miss = planned[~key.isin(have)]
    if miss.empty:
        return empty_hits()
    # dataset-level hits carrying the subject: the engine reads usubjid from the value column
    h = ctx.dataset_hits(["VISITNUM"] * len(miss), as_text(miss["VISITNUM"]).tolist(),
                         ("scheduled visit " + miss["VISIT"].astype("str") + " (day " +
                          as_text(miss["VISITDY"]) + ") not in SV").tolist())
    h.usubjid = miss["USUBJID"].to_numpy(dtype=object)
    return h


def study_day_from(dates: pd.Series, ref: pd.Series) -> pd.Series:
    """Study day (no day 0) of complete dates against complete reference dates; NaN otherwise."""
    d = dates if pd.api.types.is_datetime64_any_dtype(dates.dtype) else complete_date(dates.astype("str"))
    d = pd.Series(pd.to_datetime(d.to_numpy(), errors="coerce"), index=dates.index).dt.normalize()
    r = pd.Series(pd.to_datetime(complete_date(ref).to_numpy(), errors="coerce"), index=dates.index)
    diff = (d - r).dt.days.to_numpy(dtype=float, na_value=np.nan)
    return pd.Series(np.where(diff >= 0, diff + 1, diff), index=dates.index)


# ---------------------------------------------------------------- response vs a quantitative marker
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_where(where: dict[str, Any]) -> dict[str, Any]:
    for var, want in where.items():
        for v in (want if isinstance(want, list) else [want]):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int, float))):
                raise ValueError(f"{var}: {v!r} is not a value (text, number or null), nor a list of values")
    return where


# Record filter of response_vs_marker: {variable: value or [values]}; null in a list matches a
# missing value (an absent variable then counts as missing); values compare as text ("1" == 1).
Where = Annotated[dict[str, Any], AfterValidator(_check_where)]


class ResponseSelect(_Strict):
    """The response records: the rule's dataset (its scope, e.g. RS) filtered by ``where``."""

    result: str  # categorical result variable, e.g. RSSTRESC
    where: Where = Field(default_factory=dict)  # e.g. {RSTESTCD: OVRLRESP}
    date: str | None = None  # only for match.window_days; default <prefix>DTC (RSDTC)


class BelowLimit(_Strict):
    """Results reported as "<x" in ``variable`` count as ``value`` (e.g. 0 = not detectable)."""

    variable: str  # text result, e.g. LBSTRESC
    value: float


class MarkerSelect(_Strict):
    """The quantitative marker: records of a findings dataset selected by ``where``."""

    dataset: str  # e.g. LB
    where: Where = Field(min_length=1)  # e.g. {LBTESTCD: ..., LBSPEC: ...}
    result: str  # numeric result variable, e.g. LBSTRESN
    below_limit: BelowLimit | None = None
    date: str | None = None  # record order (nadir), windows, baseline by date; default <prefix>DTC
    label: str | None = None  # how findings name the marker; default the where filter


class Baseline(_Strict):
    """Baseline: the record flagged Y in ``flag`` (first of the listed variables present) or the
    last record dated on or before the subject's DM ``last_on_or_before`` date; subjects whose
    baseline is below ``min_value`` (not measurable) are not checked."""

    flag: str | list[str] | None = None
    last_on_or_before: str | None = None
    min_value: float | None = None

    @model_validator(mode="after")
    def _one_definition(self) -> Baseline:
        if (self.flag is None) == (self.last_on_or_before is None):
            raise ValueError("give exactly one of 'flag' (baseline flag variable, e.g. LBBLFL) or "
                             "'last_on_or_before' (a DM date variable, e.g. RFSTDTC)")
        return self


class Match(_Strict):
    """Which marker record belongs to a response record: same ``visit`` value (e.g. VISITNUM; the
    last record of the visit) or the record nearest in date within ``window_days``."""

    visit: str | None = None
    window_days: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_way(self) -> Match:
        if (self.visit is None) == (self.window_days is None):
            raise ValueError("give exactly one of 'visit' (e.g. VISITNUM) or 'window_days'")
        return self


BOUND_KEYS = ("min_value", "max_value", "min_pct_change", "max_pct_change", "min_pct_over_nadir")


class Bounds(_Strict):
    """A condition on the marker value at the visit; every bound given must hold.

    pct_change = (value - baseline) / baseline x 100 (-50: halved); pct_over_nadir: value >=
    nadir x (1 + p/100), nadir = the lowest earlier value of the subject."""

    min_value: float | None = None
    max_value: float | None = None
    min_pct_change: float | None = None
    max_pct_change: float | None = None
    min_pct_over_nadir: float | None = None

    def given(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in BOUND_KEYS if getattr(self, k) is not None}

    @model_validator(mode="after")
    def _not_empty(self) -> Bounds:
        if not self.given() and not getattr(self, "any_of", None):
            raise ValueError(f"a condition needs at least one of {', '.join(BOUND_KEYS)}")
        return self


class Requirement(Bounds):
    """What a response category requires: bounds, or ``any_of`` alternative bounds."""

    any_of: list[Bounds] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _bounds_or_any_of(self) -> Requirement:
        if self.any_of is not None and self.given():
            raise ValueError("give either bounds or 'any_of' (a list of alternative bounds), not both")
        return self

    def uses_nadir(self) -> bool:
        return any(b.min_pct_over_nadir is not None for b in (self.any_of or [self]))


class ResponseVsMarkerParams(_Strict):
    """Parameters of the rule function ``response_vs_marker`` (docs/VALIDATION.md)."""

    response: ResponseSelect
    marker: MarkerSelect
    baseline: Baseline
    match: Match = Field(default_factory=lambda: Match(visit="VISITNUM"))
    require: dict[str, Requirement] = Field(min_length=1)  # response category -> condition
    missing_marker: Literal["ignore", "report"] = "ignore"

    @model_validator(mode="after")
    def _categories_unique(self) -> ResponseVsMarkerParams:
        seen: dict[str, str] = {}
        for k in self.require:
            key = k.strip().upper()
            if not key:
                raise ValueError("empty response category in 'require'")
            if key in seen:
                raise ValueError(f"response categories {seen[key]!r} and {k!r} in 'require' are the same "
                                 "(compared case-insensitively)")
            seen[key] = k
        return self


_EPS = 1e-9  # tolerance of the bounds (floating-point noise at an exact limit)


def _where_text(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _where_label(where: dict[str, Any]) -> str:
    return ", ".join(f"{k}={'/'.join('null' if x is None else _where_text(x) for x in (v if isinstance(v, list) else [v]))}"
                     for k, v in where.items())


def _where_mask(df: pd.DataFrame, where: dict[str, Any], name: str | None) -> np.ndarray:
    """Records matching every ``{variable: value(s)}`` of ``where`` (text comparison; null = missing)."""
    m = np.ones(len(df), dtype=bool)
    for var, want in where.items():
        vals = want if isinstance(want, list) else [want]
        allow_null = any(v is None for v in vals)
        if var not in df.columns:
            if allow_null:
                continue
            raise RuleSkipped(f"{name}.{var} absent")
        null = is_null(df[var])
        hit = as_text(df[var]).isin([_where_text(v) for v in vals if v is not None]).to_numpy(dtype=bool) & ~null
        m &= hit | (null & allow_null)
    return m


def _bounds_met(bd: Bounds, v: np.ndarray, pct: np.ndarray, nadir: np.ndarray) -> np.ndarray:
    """Each given bound holds (a quantity that cannot be computed, e.g. no earlier value, does not)."""
    ok = np.ones(len(v), dtype=bool)
    with np.errstate(invalid="ignore"):
        if bd.min_value is not None:
            ok &= v + _EPS >= bd.min_value
        if bd.max_value is not None:
            ok &= v - _EPS <= bd.max_value
        if bd.min_pct_change is not None:
            ok &= pct + _EPS >= bd.min_pct_change
        if bd.max_pct_change is not None:
            ok &= pct - _EPS <= bd.max_pct_change
        if bd.min_pct_over_nadir is not None:
            ok &= v + _EPS >= nadir * (1 + bd.min_pct_over_nadir / 100)
    return ok


def _requirement_met(req: Requirement, v: np.ndarray, pct: np.ndarray, nadir: np.ndarray) -> np.ndarray:
    if req.any_of:
        return np.logical_or.reduce([_bounds_met(b, v, pct, nadir) for b in req.any_of])
    return _bounds_met(req, v, pct, nadir)


def _num(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


@rule_function("response_vs_marker", params=ResponseVsMarkerParams)
def response_vs_marker(ctx: CheckContext, p: ResponseVsMarkerParams) -> Hits:
    """A categorical response inconsistent with a quantitative marker measured at the same visit.

    Response records: the rule's dataset filtered by ``response.where``; marker records: the
    ``marker.dataset`` records matching ``marker.where`` with a numeric ``result`` (or "<x" with
    ``below_limit``).  Per subject the baseline (flag or last value on/before a DM date) must be
    present and >= ``baseline.min_value``; the marker record of the response is the last one of the
    same ``match.visit`` or the nearest in date within ``match.window_days``.  A response whose
    category (``require`` key, case-insensitive) condition does not hold on that value fires;
    without a marker value it is quiet, or reported with ``missing_marker: report``.  The study's
    rule file holds every disease rule, for example IMWG: ``PR: {max_pct_change: -50}``.
    """
    rs = ctx.df
    mk_name = p.marker.dataset.upper()
    mk = ctx.other(mk_name)
    label = p.marker.label or _where_label(p.marker.where)
    window = p.match.window_days
    rs_date = p.response.date or (f"{ctx.prefix}DTC" if ctx.prefix else None)
    mk_prefix = domain_prefix(mk_name, mk, ctx.spec)
    mk_date = p.marker.date or (f"{mk_prefix}DTC" if mk_prefix else None)
    by_date = window is not None or p.baseline.last_on_or_before is not None
    need_mk = ["USUBJID", p.marker.result] + ([p.match.visit] if window is None else [])
    need_mk += ([p.marker.below_limit.variable] if p.marker.below_limit else []) + ([mk_date] if by_date else [])
    need_rs = ["USUBJID", p.response.result] + ([p.match.visit] if window is None else [rs_date])
    for name, df, cols in ((ctx.dataset, rs, need_rs), (mk_name, mk, need_mk)):
        for c in dict.fromkeys(cols):
            if c is None:
                raise RuleSkipped(f"{name}: no date variable (set the rule's date parameter)")
            if c not in df.columns:
                raise RuleSkipped(f"{name}.{c} absent")

    # marker records with a value; "<x" counts as below_limit.value
    m = _where_mask(mk, p.marker.where, mk_name)
    val = _num(mk[p.marker.result])
    if p.marker.below_limit is not None:
        below = as_text(mk[p.marker.below_limit.variable]).str.startswith("<").fillna(False).to_numpy(dtype=bool)
        val = np.where(below, p.marker.below_limit.value, val)
    m &= ~np.isnan(val)
    if not m.any():
        raise RuleSkipped(f"no {label} records in {mk_name}")
    sub = mk.loc[m]
    frame = pd.DataFrame({"USUBJID": as_text(sub["USUBJID"]).to_numpy(dtype=object), "val": val[m],
                          "d": complete_date(sub[mk_date]).to_numpy() if mk_date in sub.columns else pd.NaT})
    if window is None:
        frame["visit"] = as_text(sub[p.match.visit]).to_numpy(dtype=object)

    # baseline per subject
    if p.baseline.flag is not None:
        flags = [p.baseline.flag] if isinstance(p.baseline.flag, str) else p.baseline.flag
        flag_col = next((f for f in flags if f in sub.columns), None)
        if flag_col is None:
            raise RuleSkipped(f"no baseline flag ({', '.join(flags)}) in {mk_name}")
        is_base = (as_text(sub[flag_col]) == "Y").fillna(False).to_numpy(dtype=bool)
        base = pd.Series(frame["val"].to_numpy()[is_base], index=frame["USUBJID"].to_numpy()[is_base])
        base = base[~base.index.duplicated()]  # the first flagged record
    frame = frame.sort_values(["USUBJID", "d"], kind="stable")  # undated records last
    if p.baseline.last_on_or_before is not None:
        ref = complete_date(subject_lookup(frame, ctx.other("DM"), p.baseline.last_on_or_before))
        before = (frame["d"].notna() & ref.notna() & (frame["d"] <= ref)).to_numpy(dtype=bool)
        base = frame.loc[before].groupby("USUBJID")["val"].last()
    # nadir: the lowest value of the subject's earlier records (date order)
    frame["nadir"] = frame.groupby("USUBJID")["val"].cummin().groupby(frame["USUBJID"]).shift()

    # the marker record of each response record
    n = len(rs)
    usub = as_text(rs["USUBJID"])
    sel = _where_mask(rs, p.response.where, ctx.dataset)
    if window is None:
        rs_visit = as_text(rs[p.match.visit])
        last = frame[frame["visit"].notna()].drop_duplicates(["USUBJID", "visit"], keep="last")
        cur = last.set_index(["USUBJID", "visit"])[["val", "nadir"]].reindex(pd.MultiIndex.from_arrays([usub, rs_visit]))
        v = cur["val"].to_numpy(dtype=float)
        nadir = cur["nadir"].to_numpy(dtype=float)
    else:
        rd = complete_date(rs[rs_date])
        left = pd.DataFrame({"row": np.arange(n), "USUBJID": usub.to_numpy(dtype=object), "rd": rd.to_numpy()})
        left = left[sel & rd.notna().to_numpy(dtype=bool)]
        right = frame[frame["d"].notna()].assign(order=np.arange(int(frame["d"].notna().sum())))
        pairs = left.merge(right, on="USUBJID")
        pairs["gap"] = (pairs["d"] - pairs["rd"]).dt.days.abs()
        # nearest date; same gap: the earlier date; same date: the last record (as for a visit)
        pairs = pairs[pairs["gap"] <= window].sort_values(["row", "gap", "d", "order"],
                                                          ascending=[True, True, True, False], kind="stable")
        pairs = pairs.drop_duplicates("row")
        v = np.full(n, np.nan)
        nadir = np.full(n, np.nan)
        v[pairs["row"].to_numpy()] = pairs["val"].to_numpy(dtype=float)
        nadir[pairs["row"].to_numpy()] = pairs["nadir"].to_numpy(dtype=float)

    b = usub.map(base).to_numpy(dtype=float, na_value=np.nan)
    checked = sel & ~np.isnan(b)
    if p.baseline.min_value is not None:
        with np.errstate(invalid="ignore"):
            checked &= b >= p.baseline.min_value
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = (v - b) / b * 100
    resp = as_text(rs[p.response.result]).str.upper()
    in_cat = np.zeros(n, dtype=bool)
    ok = np.ones(n, dtype=bool)
    show_nadir = np.zeros(n, dtype=bool)
    for key, req in p.require.items():
        rows = (resp == key.strip().upper()).fillna(False).to_numpy(dtype=bool)
        in_cat |= rows
        ok[rows] = _requirement_met(req, v[rows], pct[rows], nadir[rows])
        show_nadir |= rows & req.uses_nadir()
    have = ~np.isnan(v)
    bad = checked & in_cat & have & ~ok
    missing = checked & in_cat & ~have & (p.missing_marker == "report")

    # messages, formatted for the failing records only
    detail = np.full(n, None, dtype=object)
    idx = np.flatnonzero(bad)
    if len(idx):
        def txt(x: np.ndarray, digits: int) -> pd.Series:
            return pd.Series(x[idx]).round(digits).astype("str")
        d = label + " " + txt(v, 3) + " vs baseline " + txt(b, 3) + " (" + txt(pct, 1) + " %)"
        low = ("lowest earlier value " + txt(nadir, 3)).where(~np.isnan(nadir[idx]), "no earlier value")
        detail[idx] = np.where(show_nadir[idx], d + ", " + low, d)
    if missing.any():
        if window is None:
            detail[missing] = ("no " + label + " at " + p.match.visit + " " +
                               as_text(rs[p.match.visit])[missing].fillna("(missing)")).to_numpy(dtype=object)
        else:
            detail[missing] = f"no {label} within {window} days of {rs_date}"
    return ctx.hits(bad | missing, p.response.result, as_text(rs[p.response.result]), detail)


# ===================================================================== define.xml
def _define(ctx: CheckContext, purpose: str | None = None):
    purposes = [purpose] if purpose else sorted(set(ctx.data.purpose.values()))
    found = [(p, ctx.data.defines[p]) for p in purposes if p in ctx.data.defines]
    if not found:
        raise RuleSkipped("no define.xml beside the datasets")
    return found


@rule_function("define_present")
def define_present(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Each validated folder of datasets has a define.xml (FDA TRC 1736)."""
    missing = sorted(p for p in set(ctx.data.purpose.values()) if p not in ctx.data.defines)
    return ctx.dataset_hits(["define.xml"] * len(missing), [ctx.data.folders.get(p, p) for p in missing])


def _external(name: str):
    try:
        mod = importlib.import_module("cdisc_pipe.define")
    except ImportError:
        return None
    return getattr(mod, name, None)


def _problems_to_hits(ctx: CheckContext, problems: list[Any], purpose: str) -> tuple[list, list, list]:
    vars_, vals, det = [], [], []
    for p in problems:
        vars_.append(getattr(p, "column", None) or getattr(p, "entry", None) or "define.xml")
        vals.append(getattr(p, "value", None))
        det.append(f"{purpose}: {getattr(p, 'message', str(p))}")
    return vars_, vals, det


@rule_function("define_schema")
def define_schema(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """define.xml is valid against the Define-XML 2.1 schema (``cdisc_pipe.define.validate_define``)."""
    fn = _external("validate_define")
    if fn is None:
        raise RuleSkipped("cdisc_pipe.define.validate_define not available")
    v, val, det = [], [], []
    for purpose, d in _define(ctx):
        a, b, c = _problems_to_hits(ctx, list(fn(d.xml, file=d.path)), purpose)
        v += a; val += b; det += c
    return ctx.dataset_hits(v, val, det)


@rule_function("define_consistency_external")
def define_consistency_external(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """The define module's define <-> data check (``cdisc_pipe.define.check_define_against_data``),
    its findings kept with their own rule id (in the message) and severity."""
    fn = _external("check_define_against_data")
    if fn is None or not callable(fn):
        raise RuleSkipped("cdisc_pipe.define.check_define_against_data not available")
    findings = []
    for purpose, d in _define(ctx):
        folder = Path(ctx.data.folders.get(purpose, "."))
        # the data validation has read already (XPT folders): the check need not read the files again
        frames = {name: df for name, df in ctx.data.datasets.items()
                  if ctx.data.purpose.get(name) == purpose and name in ctx.data.meta
                  and Path(ctx.data.meta[name].path).suffix.lower() == ".xpt"}
        findings += list(fn(d.xml, folder, file=d.path, frames=frames))
    h = ctx.dataset_hits([f.variable or "(dataset)" for f in findings], [f.value for f in findings],
                         [f"{f.rule}: {f.message}" for f in findings])
    h.dataset = np.asarray([f.dataset for f in findings], dtype=object)
    h.severity = np.asarray([f.severity for f in findings], dtype=object)
    return h


@rule_function("define_datasets")
def define_datasets(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Datasets in the folder are described in define.xml and define.xml datasets have a file."""
    v, val, det = [], [], []
    for purpose, d in _define(ctx):
        files = {n for n, p in ctx.data.purpose.items() if p == purpose}
        for n in sorted(files - set(d.datasets)):
            v.append("(dataset)"); val.append(n); det.append("dataset not in define.xml")
        for n in sorted(set(d.datasets) - files):
            if not d.datasets[n].has_no_data:
                v.append("(dataset)"); val.append(n); det.append("define.xml dataset has no file")
        for n in sorted(files & {k for k, x in d.datasets.items() if x.has_no_data}):
            v.append("(dataset)"); val.append(n); det.append("define.xml says HasNoData but the file exists")
    return ctx.dataset_hits(v, val, det)


def _define_vars(ctx: CheckContext):
    dd = ctx.data.define_dataset(ctx.dataset or "")
    if dd is None:
        raise RuleSkipped(f"{ctx.dataset} not in a define.xml")
    return dd


@rule_function("define_variables")
def define_variables(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Variables of the file and of define.xml are the same set."""
    dd = _define_vars(ctx)
    cols = list(ctx.df.columns)
    v = [c for c in cols if c not in dd.variables] + [n for n in dd.variables if n not in cols]
    det = ["variable not in define.xml" if n in cols else "define.xml variable not in the data" for n in v]
    return ctx.dataset_hits(v, [None] * len(v), det)


@rule_function("define_attributes")
def define_attributes(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """``attribute: label|length|order``: the define.xml value equals the file's."""
    dd = _define_vars(ctx)
    meta = _meta(ctx)
    attr = params.get("attribute", "label")
    v, val, det = [], [], []
    order = {c: i + 1 for i, c in enumerate(meta.columns)}
    for name, dv in dd.variables.items():
        cm = meta.columns.get(name)
        if cm is None:
            continue
        if attr == "label" and (dv.label or "") != (cm.label or ""):
            v.append(name); val.append(cm.label); det.append(f"define.xml label: {dv.label}")
        elif attr == "length" and cm.type == "text" and dv.length is not None and dv.length != cm.length:
            v.append(name); val.append(str(cm.length)); det.append(f"define.xml Length {dv.length}")
        elif attr == "order" and dv.order is not None and dv.order != order[name]:
            v.append(name); val.append(str(order[name])); det.append(f"define.xml OrderNumber {dv.order}")
        elif attr == "type" and dv.data_type:
            define_numeric = dv.data_type in ("integer", "float") or (
                dv.data_type in ("date", "datetime", "time") and cm.format is not None)
            if define_numeric != (cm.type == "numeric"):
                v.append(name); val.append(cm.type); det.append(f"define.xml DataType {dv.data_type}")
    return ctx.dataset_hits(v, val, det)


@rule_function("define_origin")
def define_origin(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Every variable has a def:Origin (``origin: false`` skips that part); Derived ones of the
    ``method_purposes`` datasets a MethodDef (Define-XML 2.1 / FDA TCG)."""
    dd = _define_vars(ctx)
    purposes = params.get("method_purposes", ["Analysis"])
    check_origin = params.get("origin", True)
    v, det = [], []
    for name, dv in dd.variables.items():
        if not dv.origin and not dv.has_value_level:  # value-level origins are allowed instead
            if check_origin:
                v.append(name); det.append("no def:Origin")
        elif dv.origin == "Derived" and not dv.method and not dv.has_value_level and dd.purpose in purposes:
            v.append(name); det.append("Derived without MethodOID")
    return ctx.dataset_hits(v, [None] * len(v), det)


@rule_function("define_codelist_values")
def define_codelist_values(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Values of variables with a define.xml codelist are among its coded values (enumerated lists)."""
    dd = _define_vars(ctx)
    d = ctx.data.define_for(ctx.dataset or "")
    parts = []
    for name, dv in dd.variables.items():
        if not dv.codelist or name not in ctx.df.columns:
            continue
        cl = d.codelists.get(dv.codelist)
        if cl is None or cl.external or not cl.values:
            continue
        bad = outside_values(ctx.df[name], cl.values)
        parts.append(ctx.hits(bad, name, ctx.df[name], f"define.xml codelist {cl.oid}"))
    return concat_hits(parts)


# ===================================================================== small record-level helpers
@rule_function("domain_value")
def domain_value(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """DOMAIN equals the dataset's domain code (spec domain, else the dataset name; split QS -> QS)."""
    col = ctx.one("DOMAIN")
    expected = None
    if ctx.spec is not None and ctx.dataset in ctx.spec.datasets:
        expected = ctx.spec.datasets[ctx.dataset].domain
    names = {ctx.dataset, expected, (ctx.dataset or "")[:2]} if expected is None else {expected}
    t = as_text(ctx.df[col])
    bad = ~t.isin([n for n in names if n]).to_numpy(dtype=bool) | is_null(ctx.df[col])
    return ctx.hits(bad, col, t)


@rule_function("studyid_value")
def studyid_value(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """STUDYID equals the spec's study name; without a spec, one STUDYID across the study (DM's)."""
    col = ctx.one("STUDYID")
    if ctx.spec is not None:
        expected = {ctx.spec.study.name}
    else:
        dm = ctx.data.datasets.get("DM")
        if dm is None or "STUDYID" not in dm.columns:
            raise RuleSkipped("no spec and no DM.STUDYID to compare with")
        expected = set(as_text(dm["STUDYID"]).dropna())
    t = as_text(ctx.df[col])
    return ctx.hits(~t.isin(list(expected)).to_numpy(dtype=bool), col, t)


@rule_function("any_flag_y")
def any_flag_y(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """At least one of ``variables`` (those present) is Y on each record."""
    cols = ctx.resolve_many(params["variables"])
    anyy = np.zeros(len(ctx.df), dtype=bool)
    for c in cols:
        anyy = anyy | ((as_text(ctx.df[c]) == "Y").fillna(False).to_numpy(dtype=bool))
    return ctx.hits(~anyy, ",".join(cols))


@rule_function("all_null")
def all_null(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Records where every one of ``variables`` (those present) is null fire."""
    cols = ctx.resolve_many(params["variables"])
    alln = np.ones(len(ctx.df), dtype=bool)
    for c in cols:
        alln = alln & (is_null(ctx.df[c]))
    return ctx.hits(alln, ",".join(cols))


@rule_function("supp_rdomain")
def supp_rdomain(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """RDOMAIN of SUPPxx is xx."""
    col = ctx.one("RDOMAIN")
    expected = (ctx.dataset or "")[4:]
    t = as_text(ctx.df[col])
    return ctx.hits((t != expected).fillna(True).to_numpy(dtype=bool), col, t, f"expected {expected}")


@rule_function("adsl_copies")
def adsl_copies(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Variables present in both this dataset and ADSL hold the subject's ADSL value (null included).

    A copied variable is constant within a subject, so each variable is compared once per run of
    equal (subject, value) records: the records are cut where the subject or the value changes
    (vectorised comparisons, no hashing) and only the first record of each run is turned into text
    and compared; a run's records all agree with it."""
    adsl = ctx.other("ADSL")
    if "USUBJID" not in ctx.df.columns or "USUBJID" not in adsl.columns:
        raise RuleSkipped("USUBJID absent")
    common = [c for c in ctx.df.columns if c in adsl.columns and c not in ("STUDYID", "USUBJID")]
    if not common:
        raise RuleSkipped("no ADSL variables in the dataset")
    ref = adsl.drop_duplicates("USUBJID").set_index("USUBJID")
    in_adsl = ctx.df["USUBJID"].isin(ref.index).to_numpy(dtype=bool)
    # the subject's ADSL row and a subject code, once for all variables (numpy takes, no per-column map)
    pos = np.maximum(ref.index.get_indexer(ctx.df["USUBJID"]), 0)
    subject = pd.factorize(ctx.df["USUBJID"])[0].astype(np.int64)
    n = len(ctx.df)
    same_subject = subject[1:] == subject[:-1]

    def text(s: pd.Series) -> pd.Series:
        return s.dt.strftime("%Y-%m-%dT%H:%M:%S") if pd.api.types.is_datetime64_any_dtype(s.dtype) else as_text(s)

    parts = []
    for c in common:
        col = ctx.df[c]
        values = col.to_numpy()
        start = np.ones(n, dtype=bool)  # a run starts where the subject or the value changes
        if n > 1:  # (missing values never compare equal: each starts a run of its own, still right)
            start[1:] = ~(same_subject & np.asarray(values[1:] == values[:-1], dtype=bool))
        runs = np.flatnonzero(start & in_adsl)
        mine = text(col.iloc[runs]).to_numpy(dtype=object)
        t_arr = text(ref[c]).to_numpy(dtype=object)
        exp = t_arr[pos[runs]] if len(t_arr) else np.full(len(runs), None, dtype=object)
        exp_null, m_null = pd.isna(exp), pd.isna(mine)
        differ = np.where(m_null | exp_null, m_null != exp_null, mine != exp).astype(bool)
        # one finding per subject and variable: its first differing record (runs are in record order)
        _, first = np.unique(subject[runs[differ]], return_index=True)
        at = np.flatnonzero(differ)[np.sort(first)]
        rows = runs[at]
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        value = np.full(n, None, dtype=object)
        value[rows] = mine[at]
        detail = np.full(n, None, dtype=object)
        detail[rows] = ["ADSL value " + ("(null)" if exp_null[i] else exp[i]) for i in at]
        parts.append(ctx.hits(mask, c, value, detail))
    return concat_hits(parts)


@rule_function("define_dataset_label")
def define_dataset_label(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """The dataset label in define.xml (Description) equals the XPT dataset label."""
    dd = _define_vars(ctx)
    meta = _meta(ctx)
    if (dd.label or "") == (meta.label or ""):
        return empty_hits()
    return ctx.dataset_hits(["(dataset label)"], [meta.label], [f"define.xml label: {dd.label}"])


@rule_function("define_results_vlm")
def define_results_vlm(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Result variables (``variables``, e.g. --ORRES, --STRESN) have value-level metadata in define.xml."""
    dd = _define_vars(ctx)
    cols = ctx.resolve_many(params.get("variables", ["--ORRES", "--STRESN"]))
    missing = [c for c in cols if c in dd.variables and not dd.variables[c].has_value_level]
    return ctx.dataset_hits(missing, [None] * len(missing), ["no def:ValueListRef"] * len(missing))


# ===================================================================== cross-dataset consistency (#17)
def _key(a: pd.Series, b: pd.Series) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([as_text(a).to_numpy(dtype=object), as_text(b).to_numpy(dtype=object)])


@rule_function("sv_completeness")
def sv_completeness(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Every (USUBJID, VISITNUM) of a record is in SV (``check: missing``), and the record's dates lie
    within SVSTDTC..SVENDTC of that visit (``check: span``: the start --DTC/--STDTC and end --ENDTC,
    complete dates only)."""
    if "VISITNUM" not in ctx.df.columns or "USUBJID" not in ctx.df.columns:
        raise RuleSkipped(f"{ctx.dataset}: no VISITNUM")
    sv = ctx.other("SV")
    df = ctx.df
    num = pd.to_numeric(df["VISITNUM"], errors="coerce").round(6)
    svnum = pd.to_numeric(sv["VISITNUM"], errors="coerce").round(6)
    key = _key(df["USUBJID"], num)
    svkey = _key(sv["USUBJID"], svnum)
    has = num.notna().to_numpy()
    if params.get("check", "missing") == "missing":
        bad = has & ~key.isin(svkey)
        return ctx.hits(bad, "VISITNUM", df["VISITNUM"], df["USUBJID"], detail_prefix="no SV record for subject ")
    start = complete_date(sv["SVSTDTC"]) if "SVSTDTC" in sv.columns else pd.Series(pd.NaT, index=sv.index)
    end = complete_date(sv["SVENDTC"]) if "SVENDTC" in sv.columns else start
    end = end.fillna(start)
    lo = pd.Series(start.to_numpy(), index=svkey)
    hi = pd.Series(end.to_numpy(), index=svkey)
    lo, hi = lo[~lo.index.duplicated()], hi[~hi.index.duplicated()]
    rlo = pd.Series(lo.reindex(key).to_numpy(), index=df.index)
    rhi = pd.Series(hi.reindex(key).to_numpy(), index=df.index)
    parts = []
    for col in ctx.resolve_many(["--DTC", "--STDTC", "--ENDTC"], required=False) or []:
        d = complete_date(df[col])
        with np.errstate(invalid="ignore"):
            out = ((d < rlo) | (d > rhi)).fillna(False).to_numpy(dtype=bool)
        bad = has & d.notna().to_numpy() & rlo.notna().to_numpy() & out
        span = np.full(len(df), None, dtype=object)  # the visit's span, formatted for the findings only
        at = np.flatnonzero(bad)
        if len(at):
            span[at] = ("SV " + rlo.iloc[at].dt.strftime("%Y-%m-%d").fillna("") + ".."
                        + rhi.iloc[at].dt.strftime("%Y-%m-%d").fillna("")).to_numpy(dtype=object)
        parts.append(ctx.hits(bad, col, df[col], span))
    if not parts:
        raise RuleSkipped(f"{ctx.dataset}: no --DTC/--STDTC/--ENDTC")
    return concat_hits(parts)


@rule_function("fatal_ae_vs_death")
def fatal_ae_vs_death(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """A fatal AE (AEOUT = FATAL) ends on the subject's death date: AEENDTC = DM.DTHDTC (compared at
    the precision both have), and the subject has a DTHDTC."""
    df = ctx.df
    for c in ("AEOUT", "AEENDTC", "USUBJID"):
        if c not in df.columns:
            raise RuleSkipped(f"AE.{c} absent")
    fatal = (as_text(df["AEOUT"]) == params.get("value", "FATAL")).fillna(False).to_numpy(dtype=bool)
    dth = subject_lookup(df, ctx.other("DM"), "DTHDTC").astype("object")
    dth_t = dth.where(dth.notna() & (dth.astype("str") != ""), None).astype("str")
    end = df["AEENDTC"].astype("object")
    end_t = end.where(end.notna() & (end.astype("str") != ""), None).astype("str")
    n = np.minimum(end_t.str.len().fillna(0), dth_t.str.len().fillna(0)).astype(int).clip(upper=10)
    a = pd.Series([x[:k] if isinstance(x, str) else None for x, k in zip(end_t, n)], index=df.index)
    b = pd.Series([x[:k] if isinstance(x, str) else None for x, k in zip(dth_t, n)], index=df.index)
    differ = (a.notna() & b.notna() & (a != b)).to_numpy(dtype=bool)
    no_death = dth_t.isna().to_numpy(dtype=bool)
    bad = fatal & (differ | no_death)
    detail = np.where(no_death, "fatal AE but DM.DTHDTC is missing", "DM.DTHDTC=" + dth_t.fillna("").to_numpy(dtype=object))
    return ctx.hits(bad, "AEENDTC", df["AEENDTC"], detail)


@rule_function("parent_dataset_present")
def parent_dataset_present(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Each SUPP-- dataset has its parent: the dataset SUPP<name> qualifies (SUPPQS1 -> QS1), or, for a
    SUPP-- of a whole split domain, some dataset of that domain (DOMAIN = RDOMAIN).  A split dataset
    (name longer than its DOMAIN, e.g. QS1 or QSCG with DOMAIN QS) has its SUPP-- named after it."""
    names = set(ctx.data.datasets)
    vars_, vals, details = [], [], []
    domains: dict[str, str] = {}
    for n, df in ctx.data.datasets.items():
        if "DOMAIN" in df.columns and len(df) and not n.startswith("SUPP"):
            domains[n] = str(as_text(df["DOMAIN"]).dropna().iloc[0]) if df["DOMAIN"].notna().any() else n
    for n, df in sorted(ctx.data.datasets.items()):
        if not n.startswith("SUPP") or n == "SUPP":
            continue
        parent = n[4:]
        if parent in names:
            continue
        rdom = set(as_text(df["RDOMAIN"]).dropna()) if "RDOMAIN" in df.columns else {parent}
        if any(d in rdom for d in domains.values()):
            continue
        vars_.append("RDOMAIN"); vals.append(n)
        details.append(f"{n} without its parent dataset {parent} (nor any dataset of domain {', '.join(sorted(rdom)) or parent})")
    return ctx.dataset_hits(vars_, vals, details)


@rule_function("link_in_one_dataset")
def link_in_one_dataset(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """A --LNKID / --LNKGRP value links records of two or more datasets: a value (per subject) found
    in one dataset only links nothing."""
    parts = []
    for suffix in ("LNKID", "LNKGRP"):
        cols = ctx.resolve(f"--{suffix}", required=False)
        if not cols:
            continue
        col = cols[0]
        df = ctx.df
        pop = ~is_null(df[col])
        others = []
        for n, o in ctx.data.datasets.items():
            if n == ctx.dataset:
                continue
            oc = [c for c in o.columns if c.endswith(suffix) and len(c) == len(suffix) + 2]
            for c in oc:
                if "USUBJID" in o.columns:
                    sel = ~is_null(o[c])
                    others.append(_key(o.loc[sel, "USUBJID"], o.loc[sel, c]))
        key = _key(df["USUBJID"], df[col])
        found = np.zeros(len(df), dtype=bool)
        for k in others:
            found |= key.isin(k)
        parts.append(ctx.hits(pop & ~found, col, df[col], f"{col} value in {ctx.dataset} only"))
    if not parts:
        raise RuleSkipped(f"{ctx.dataset}: no --LNKID/--LNKGRP")
    return concat_hits(parts)


def _decimal_text(s: pd.Series) -> pd.Series:
    """Numeric text as float (plain or E-notation); NaN for anything else (qualified '<x', text).
    Text columns are parsed once per distinct value."""
    def parse(text: pd.Series) -> pd.Series:
        t = text.str.strip()
        ok = t.str.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?").fillna(False).astype(bool)
        return pd.to_numeric(t.where(ok), errors="coerce")
    if isinstance(s.dtype, pd.StringDtype) or s.dtype == object:
        codes, uniques = distinct(s)
        values = parse(as_text(pd.Series(uniques, dtype=object))).to_numpy(dtype=float)
        return pd.Series(np.append(values, np.nan)[codes], index=s.index)  # code -1 (missing): NaN
    return parse(as_text(s))


@rule_function("stresc_stresn_equal")
def stresc_stresn_equal(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """Where --STRESN is populated, --STRESC holds the same number: equal within a relative tolerance
    (``rel_tol``, default 1e-9: XPT stores --STRESN as a binary double, --STRESC as decimal text)."""
    c, n = ctx.one("--STRESC"), ctx.one("--STRESN")
    num = pd.to_numeric(ctx.df[n], errors="coerce")
    txt = _decimal_text(ctx.df[c])
    tol = float(params.get("rel_tol", 1e-9))
    with np.errstate(invalid="ignore"):
        close = (np.abs(txt - num) <= tol * np.maximum(np.abs(txt), np.abs(num)) + 1e-300).fillna(False)
    bad = (num.notna() & ~close).to_numpy(dtype=bool)
    return ctx.hits(bad, c, ctx.df[c], as_text(ctx.df[n]), detail_prefix=f"{n}=")


@rule_function("ct_version_published")
def ct_version_published(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """TSVCDVER (TS version of a CDISC CT reference, TSVCDREF = CDISC CT...) names a published CT package:
    one of the package dates of the CT files given (``<set>-ct-YYYY-MM-DD.*`` in the CT folder)."""
    df = ctx.df
    if "TSVCDVER" not in df.columns:
        raise RuleSkipped("TS.TSVCDVER absent")
    pkgs = [p for p in ctx.ct.values() if p is not None and getattr(p, "path", None)]
    if not pkgs:
        raise RuleSkipped(ctx.ct_reason or "no CT package configured")
    versions: set[str] = set()
    for p in pkgs:
        for f in Path(p.path).parent.glob("*-ct-*"):
            m = re.search(r"-ct-(\d{4}-\d{2}-\d{2})", f.name)
            if m:
                versions.add(m.group(1))
    ref = as_text(df["TSVCDREF"]) if "TSVCDREF" in df.columns else pd.Series("CDISC CT", index=df.index)
    is_ct = ref.str.upper().str.startswith("CDISC").fillna(False).to_numpy(dtype=bool)
    val = as_text(df["TSVCDVER"])
    pop = ~is_null(df["TSVCDVER"])
    bad = is_ct & pop & ~val.isin(versions).to_numpy(dtype=bool)
    return ctx.hits(bad, "TSVCDVER", df["TSVCDVER"], "published CT versions given: " + ", ".join(sorted(versions)))


@rule_function("after_last_disposition")
def after_last_disposition(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """For subjects who completed the study (DS record DSDECOD in ``completed``, default COMPLETED, of
    category ``dscat``), ``variable`` (default --STDTC) is on or before their last DSSTDTC.  Subjects
    still ongoing, withdrawn or dead are not checked (their last DS date is not the end of follow-up)."""
    ds = ctx.other("DS")
    for c in ("USUBJID", "DSDECOD", "DSSTDTC"):
        if c not in ds.columns:
            raise RuleSkipped(f"DS.{c} absent")
    done = as_text(ds["DSDECOD"]).isin(params.get("completed", ["COMPLETED"]))
    if params.get("dscat") and "DSCAT" in ds.columns:
        done &= as_text(ds["DSCAT"]) == params["dscat"]
    completed = set(as_text(ds.loc[done.fillna(False).to_numpy(dtype=bool), "USUBJID"]))
    last = complete_date(ds["DSSTDTC"]).groupby(as_text(ds["USUBJID"])).max()
    col = ctx.one(params.get("variable", "--STDTC"))
    d = complete_date(ctx.df[col])
    subj = as_text(ctx.df["USUBJID"])
    ref = pd.Series(pd.to_datetime(subj.map(last).to_numpy()), index=ctx.df.index)
    with np.errstate(invalid="ignore"):
        after = (d > ref).fillna(False).to_numpy(dtype=bool)
    bad = subj.isin(completed).to_numpy(dtype=bool) & after
    return ctx.hits(bad, col, ctx.df[col], "last DSSTDTC " + ref.dt.strftime("%Y-%m-%d").fillna(""))


@rule_function("death_without_fatal_ae")
def death_without_fatal_ae(ctx: CheckContext, params: dict[str, Any]) -> Hits:
    """DM.DTHFL = Y needs a fatal AE (AEOUT = FATAL or AESDTH = Y) only when the death's cause is an
    adverse event: DD ``testcd`` (default PRCDTH) with DDORRES or DDSTRESC in ``ae_cause`` (default
    ADVERSE EVENT).  A death from disease progression has no fatal AE by design."""
    dm = ctx.df
    if "DTHFL" not in dm.columns:
        raise RuleSkipped("DM.DTHFL absent")
    dd = ctx.other("DD")
    if "DDTESTCD" not in dd.columns:
        raise RuleSkipped("DD.DDTESTCD absent")
    causes = set(params.get("ae_cause", ["ADVERSE EVENT"]))
    sel = as_text(dd["DDTESTCD"]) == params.get("testcd", "PRCDTH")
    hit = pd.Series(False, index=dd.index)
    for c in ("DDORRES", "DDSTRESC"):
        if c in dd.columns:
            hit |= as_text(dd[c]).str.upper().isin({x.upper() for x in causes})
    ae_death = set(as_text(dd.loc[(sel & hit).fillna(False).to_numpy(dtype=bool), "USUBJID"]))
    ae = ctx.data.datasets.get("AE", pd.DataFrame(columns=["USUBJID"]))
    fatal = pd.Series(False, index=ae.index)
    if "AEOUT" in ae.columns:
        fatal |= as_text(ae["AEOUT"]) == "FATAL"
    if "AESDTH" in ae.columns:
        fatal |= as_text(ae["AESDTH"]) == "Y"
    with_fatal = set(as_text(ae.loc[fatal.fillna(False).to_numpy(dtype=bool), "USUBJID"]))
    subj = as_text(dm["USUBJID"])
    bad = ((as_text(dm["DTHFL"]) == "Y").fillna(False) & subj.isin(ae_death) & ~subj.isin(with_fatal)).to_numpy(dtype=bool)
    return ctx.hits(bad, "DTHFL", dm["DTHFL"], "cause of death is an adverse event (DD) but no fatal AE")


# ------------------------------------------------------------------ plausibility (ranges as data)
class PlausibleRange(_Strict):
    """One row of a plausibility table: the results of ``testcd`` (in ``unit`` when given) lie in
    [``min``, ``max``]."""

    testcd: str
    unit: str | None = None
    min: float | None = None
    max: float | None = None


class PlausibleRangesParams(_Strict):
    ranges: list[PlausibleRange] = Field(min_length=1)
    testcd: str = "--TESTCD"
    result: str = "--STRESN"
    unit: str = "--STRESU"


@rule_function("plausible_ranges", params=PlausibleRangesParams)
def plausible_ranges(ctx: CheckContext, params: Any) -> Hits:
    """Numeric results outside the plausible range of their test (a table of thresholds in the rule:
    ``ranges: [{testcd: HEIGHT, unit: cm, min: 100, max: 230}, ...]``).  A result in another unit
    than the row's is not compared (the unit check is another rule's)."""
    p = params if isinstance(params, PlausibleRangesParams) else PlausibleRangesParams(**params)
    tc, res = ctx.one(p.testcd), ctx.one(p.result)
    units = ctx.resolve(p.unit, required=False)
    unit_col = units[0] if units else None
    df = ctx.df
    num = pd.to_numeric(df[res], errors="coerce").to_numpy(dtype=float)
    code = df[tc].astype("str").to_numpy(dtype=object)
    unit = df[unit_col].astype("str").to_numpy(dtype=object) if unit_col and unit_col in df else None
    bad = np.zeros(len(df), dtype=bool)
    detail = np.full(len(df), None, dtype=object)
    for r in p.ranges:
        hit = (code == r.testcd) & ~np.isnan(num)
        if r.unit is not None and unit is not None:
            hit &= unit == r.unit
        with np.errstate(invalid="ignore"):
            out = np.zeros(len(df), dtype=bool)
            if r.min is not None:
                out |= num < r.min
            if r.max is not None:
                out |= num > r.max
        sel = hit & out
        bad |= sel
        detail[sel] = f"{r.testcd}: plausible {_fmt(r.min)}..{_fmt(r.max)}{' ' + r.unit if r.unit else ''}"
    return ctx.hits(bad, res, df[res], detail)


def _fmt(v: float | None) -> str:
    return "" if v is None else (f"{v:g}")
