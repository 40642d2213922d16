"""The mapping algorithms, one vectorised function each: raw form frame in, target Series out.

=================  =====================================================================
algorithm          what it does
=================  =====================================================================
``copy``           the raw field as collected (trimmed; blank -> missing)
``value``          a hard-coded value
``assign``         raw code or decode -> CDISC submission value (codelist + synonyms)
``dtc``            ISO 8601 date/time from raw date and time fields, partial kept partial
``number``         a raw field as a number (text in a numeric field is reported)
``when``/``else``  conditional assignment over structured ``{field, op, value}`` conditions
``concat``         join raw fields
``duration_days``  a number of days as an ISO 8601 duration
``standardise``    --ORRES/--ORRESU -> --STRESC/--STRESN/--STRESU through the units table
``transpose``      wide form -> one row per test (see :func:`transpose`)
``split_text``     text over 200 bytes -> numbered variables or SUPP records
=================  =====================================================================

Data problems become :class:`~cdisc_pipe.errors.Finding` values collected by :class:`Findings`;
records are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd

from cdisc_pipe.errors import Finding, Severity
from cdisc_pipe.sdtm.dates import assemble_dtc, iso_duration_days
from cdisc_pipe.sdtm.mapping import AssignSpec, Condition, Rule, UnitConversion
from cdisc_pipe.spec.model import Codelist
from cdisc_pipe.xpt.conform import ASCII_REPLACEMENTS as _XPT_ASCII_REPLACEMENTS

MAX_BYTES = 200

#: Columns every working frame carries besides raw fields (source form, 1-based row, subject).
FORM, ROW, SUBJ = "__form", "__row", "__usubjid"


@dataclass
class Findings:
    """Collects findings, one per (rule, dataset, variable, value) with count, subjects and rows."""

    items: list[Finding] = field(default_factory=list)

    def add(self, rule: str, severity: Severity, message: str, dataset: str, variable: str | None,
            frame: pd.DataFrame, mask: pd.Series,
            values: pd.Series | Callable[[], pd.Series] | None = None) -> None:
        """Report the rows of ``frame`` selected by ``mask`` (grouped by their ``values``).

        ``values`` may be a callable returning the Series: it is only evaluated when some row is
        selected, so a check that usually finds nothing costs no text work."""
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return
        if callable(values):
            values = values()
        sel = frame.loc[mask]
        vals = (values.loc[mask] if values is not None else pd.Series("", index=sel.index)).astype("str").fillna("")
        subj = sel[SUBJ].astype("str") if SUBJ in sel else pd.Series("", index=sel.index)
        form = sel[FORM].astype("str") if FORM in sel else pd.Series("", index=sel.index)
        row = pd.to_numeric(sel[ROW], errors="coerce") if ROW in sel else pd.Series(np.nan, index=sel.index)
        g = pd.DataFrame({"v": vals, "s": subj, "f": form, "r": row}).groupby("v", sort=True)
        for value, part in g:  # loop over distinct values, not rows
            subjects = sorted(part["s"].dropna().unique().tolist())
            rows = sorted(int(r) for r in part["r"].dropna().unique().tolist())
            forms = sorted(part["f"].dropna().unique().tolist())
            self.items.append(Finding(
                rule=rule, severity=severity, message=message, dataset=dataset,
                usubjid=subjects[0] if len(subjects) == 1 else None, variable=variable,
                value=str(value) if value != "" else None,
                # the first occurrence locates the finding; every row is in extra["rows"]
                source_file=", ".join(forms) or None, source_row=rows[0] if rows else None,
                extra={"count": int(len(part)), "subjects": subjects, "rows": rows}))


@dataclass
class Context:
    """What a rule needs besides the frame: where we are, codelists, synonyms, the findings sink."""

    dataset: str
    codelists: dict[str, Codelist]
    synonyms: dict[str, dict[str, str]]
    findings: Findings


def factorize_text(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values) of a text column; missing -> code -1.  ``str`` columns are
    factorized on their backing object array (no copy), the cheapest hashing pandas offers."""
    if s.dtype == object or s.dtype == "str":
        arr = s.to_numpy()
    else:
        arr = s.to_numpy(dtype=object, na_value=None)
    return pd.factorize(arr, use_na_sentinel=True)


def compact_codes(codes: np.ndarray, n_uniques: int) -> np.ndarray:
    """Codes in the smallest signed integer type that holds them (-1 included): codes kept for
    every column of a 2-million-row dataset at once would otherwise take 8 bytes a cell."""
    for t in (np.int8, np.int16, np.int32):
        if n_uniques < np.iinfo(t).max:
            return codes.astype(t)
    return codes


def text_from_codes(values: list | np.ndarray, codes: np.ndarray, index: pd.Index) -> pd.Series:
    """A ``str`` Series with ``values[codes]`` (code -1 or a None value = missing): the values are
    validated once each and spread with ``take``, never one Python object per row."""
    arr = pd.array(list(values) + [None], dtype="str")
    return pd.Series(arr.take(codes), index=index, copy=False)


def text_extreme_by(values: pd.Series, by: list[pd.Series], how: str) -> pd.Series:
    """Per row, the smallest (``how="min"``) or largest (``"max"``) non-missing text of ``values``
    among the rows of its group of ``by`` (missing where the group has none, or a ``by`` value is
    missing): ``values.groupby(by).transform(how)`` in Python's string order, computed on the rank
    of each distinct value (text groupby reductions run per group in Python)."""
    codes, uniq = factorize_text(values)
    order = np.argsort(np.asarray(uniq, dtype=object), kind="stable")
    rank = np.empty(len(uniq), dtype=np.float64)
    rank[order] = np.arange(len(uniq))
    ranked = pd.Series(np.where(codes >= 0, rank[np.maximum(codes, 0)] if len(uniq) else 0, np.nan), index=values.index)
    pick = ranked.groupby(by, sort=False).transform(how).to_numpy()
    got = ~np.isnan(pick)
    out = np.full(len(values), np.nan, dtype=object)
    out[got] = np.asarray(uniq, dtype=object)[order][pick[got].astype(np.intp)]
    return pd.Series(out, index=values.index)


def distinct_rows(*cols: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """For aligned columns: (codes, rep) with ``codes`` the distinct combination of each row and
    ``rep`` the position of one row per combination (missing is a value of its own).  Work done
    on ``frame.iloc[rep]`` and spread back with ``[codes]`` is done once per distinct combination."""
    key: np.ndarray | None = None
    for s in cols:
        c, u = factorize_text(s) if (s.dtype == object or s.dtype == "str") else pd.factorize(s.to_numpy(), use_na_sentinel=True)
        c = c.astype(np.int64) + 1
        # re-factorized after each column, so the combined key stays below len(rows)**2
        key = c if key is None else pd.factorize(key * (len(u) + 1) + c)[0].astype(np.int64)
    n = len(cols[0]) if cols else 0
    codes, uniq = pd.factorize(key if key is not None else np.zeros(n, np.int64))
    rep = np.empty(len(uniq), dtype=np.intp)
    rep[codes] = np.arange(len(codes))
    return codes, rep


def per_value(s: pd.Series, fn) -> pd.Series:
    """``fn`` (Series -> Series of the same length) applied once per distinct value of ``s`` and
    spread back to every row: EDC columns repeat few values, and pandas string methods are
    per-element Python, so this is where vectorised text work pays off.  Missing stays missing."""
    codes, uniq = factorize_text(s)
    res = fn(pd.Series(uniq, dtype="object"))
    vals = np.append(res.to_numpy(dtype=object), None)
    return pd.Series(vals[codes], index=s.index)


def blank(s: pd.Series) -> pd.Series:
    """True where a value is missing or only spaces."""
    codes, uniq = factorize_text(s)
    empty = np.fromiter((str(u).strip() == "" for u in uniq), dtype=bool, count=len(uniq))
    return pd.Series(np.append(empty, True)[codes], index=s.index)


def clean_uniques(uniq: np.ndarray) -> list[str | None]:
    """:func:`clean` of distinct values: trimmed, blank -> None."""
    return [str(u).strip() or None for u in uniq]


def clean(s: pd.Series) -> pd.Series:
    """Trimmed text, blank -> missing, dtype ``str`` (computed once per distinct value)."""
    codes, uniq = factorize_text(s)
    return text_from_codes(clean_uniques(uniq), codes, s.index)


def evaluate(frame: pd.DataFrame, conditions: list[Condition]) -> pd.Series:
    """AND of structured conditions over ``frame`` (raw fields or target variables)."""
    out = pd.Series(True, index=frame.index)
    for c in conditions:
        col = frame[c.field] if c.field in frame else pd.Series(np.nan, index=frame.index)
        txt = per_value(clean(col), lambda u: u.str.upper())
        if c.op == "blank":
            hit = blank(col)
        elif c.op == "notblank":
            hit = ~blank(col)
        elif c.op in ("eq", "ne"):
            hit = txt == str(c.value).strip().upper()
            hit = hit.fillna(False).astype(bool)
            if c.op == "ne":
                hit = ~hit
        elif c.op in ("in", "notin"):
            hit = txt.isin([str(v).strip().upper() for v in c.value]).fillna(False).astype(bool)  # type: ignore[union-attr]
            if c.op == "notin":
                hit = ~hit
        elif c.op == "matches":
            hit = clean(col).str.fullmatch(str(c.value), case=False).fillna(False).astype(bool)
        else:
            num = pd.to_numeric(col, errors="coerce")
            ref = float(c.value)  # type: ignore[arg-type]
            hit = {"lt": num < ref, "le": num <= ref, "gt": num > ref, "ge": num >= ref}[c.op].fillna(False)
        out &= hit.astype(bool)
    return out


def codelist_lookup(codelist: Codelist | None, synonyms: dict[str, str]) -> dict[str, str]:
    """Upper-cased raw text -> submission value: submission values, decodes, then study synonyms."""
    look: dict[str, str] = {}
    if codelist is not None:
        for t in codelist.terms:
            look[t.submission_value.strip().upper()] = t.submission_value
            if t.decode:
                look.setdefault(t.decode.strip().upper(), t.submission_value)
    for raw, target in synonyms.items():
        look[raw.strip().upper()] = target
    return look


def assign_ct(raw: pd.Series, spec: AssignSpec, ctx: Context, frame: pd.DataFrame, variable: str) -> pd.Series:
    """Raw coded value or decode -> submission value; unmapped values are kept as collected and reported.

    A synonym whose target is not a term of the codelist is a mapping error reported as
    ``SDTM.CT.SYNONYM``; a raw value nothing covers is ``SDTM.CT.UNMAPPED`` (Warning).
    """
    cl = ctx.codelists.get(spec.codelist) if spec.codelist else None
    syn = dict(ctx.synonyms.get(spec.synonyms, {})) if spec.synonyms else {}
    syn.update(spec.map)
    look = codelist_lookup(cl, syn)
    value = clean(raw)
    out = per_value(value, lambda u: u.str.upper().map(look)).astype("str")
    unmapped = value.notna() & out.isna()
    closed = cl is not None and cl.extensible is False
    if closed:
        # A non-extensible codelist has no room for another term: the collected value (e.g. SEX '=1',
        # AESER 'MAYBE') is a data error of the raw file, reported there, and is not carried into SDTM
        # (where it would only fail later as a length or CT problem far from its cause).
        terms = ", ".join(cl.values()[:12]) + (", ..." if len(cl.values()) > 12 else "")
        ctx.findings.add("SDTM.CT.INVALID", "Error",
                         f"value is not a term of the non-extensible codelist {spec.codelist} ({terms}) nor of its "
                         f"synonyms; {variable} left empty - correct the raw value, or map it in the mapping's "
                         "assign.map", ctx.dataset, variable, frame, unmapped, value)
    else:
        ctx.findings.add("SDTM.CT.UNMAPPED", "Warning",
                         f"value not in codelist {spec.codelist or '(sponsor map)'} nor in its synonyms; kept as collected",
                         ctx.dataset, variable, frame, unmapped, value)
    if closed:
        allowed = set(cl.values())
        bad_target = out.notna() & ~out.isin(allowed)
        ctx.findings.add("SDTM.CT.SYNONYM", "Error", f"synonym maps to a value outside non-extensible {cl.oid}",
                         ctx.dataset, variable, frame, bad_target, out)
        return out.astype("str")  # unmapped values stay empty (reported above)
    return out.where(~unmapped, value).astype("str")


def to_number(raw: pd.Series, ctx: Context, frame: pd.DataFrame, variable: str) -> pd.Series:
    """Text -> float64; non-blank text that is not a number is reported (``SDTM.NUM.INVALID``)."""
    value = clean(raw)
    num = pd.to_numeric(value.str.replace(",", "", regex=False), errors="coerce")
    bad = value.notna() & num.isna()
    ctx.findings.add("SDTM.NUM.INVALID", "Warning", "text in a numeric field; value left missing",
                     ctx.dataset, variable, frame, bad, value)
    return num.astype("float64")


def located(frame: pd.DataFrame, field: str) -> pd.DataFrame:
    """The frame whose source form/row columns point at ``field``'s own form: a field of a joined
    form (``dm.SEX``) is located at that form's record, not at the main form's."""
    form = field.split(".", 1)[0] if "." in field else None
    if form is None or f"{form}.{ROW}" not in frame:
        return frame
    out = frame[[c for c in (SUBJ,) if c in frame]].copy()
    out[FORM] = frame[f"{form}.{FORM}"] if f"{form}.{FORM}" in frame else form  # a named join: its form
    out[ROW] = frame[f"{form}.{ROW}"]
    return out


def apply_rule(rule: Rule, frame: pd.DataFrame, ctx: Context, variable: str) -> pd.Series:
    """Evaluate one rule on the whole frame (vectorised)."""
    kind = rule.kind
    if kind == "copy":
        out = clean(frame[rule.copy_])
    elif kind == "value":
        v = rule.value
        out = pd.Series(v, index=frame.index, dtype="float64" if isinstance(v, float | int) else "str")
    elif kind == "assign":
        out = assign_ct(frame[rule.assign.field], rule.assign, ctx, located(frame, rule.assign.field), variable)  # type: ignore[union-attr]
    elif kind == "dtc":
        d = rule.dtc  # type: ignore[assignment]
        dtc, invalid, dropped = assemble_dtc(frame[d.date], frame[d.time] if d.time else None)
        def raw(d=d) -> pd.Series:  # the collected text, for findings only
            txt = clean(frame[d.date])
            return (txt + " " + clean(frame[d.time]).fillna("")).str.strip() if d.time else txt

        where = located(frame, d.date)
        ctx.findings.add("SDTM.DATE.INVALID", "Error", "not a valid date/time; --DTC left missing, record kept",
                         ctx.dataset, variable, where, invalid, raw)
        ctx.findings.add("SDTM.DATE.TIMEDROPPED", "Notice",
                         "a time collected with a partial date cannot be written in ISO 8601; time not written",
                         ctx.dataset, variable, where, dropped & ~invalid, raw)
        out = dtc
    elif kind == "number":
        fld = rule.number if isinstance(rule.number, str) else rule.number.field  # type: ignore[union-attr]
        out = to_number(frame[fld], ctx, located(frame, fld), variable)
    elif kind == "when":
        # each row takes the first branch whose conditions hold; rules run only on their own rows,
        # so a branch not taken reports nothing
        out = pd.Series(np.nan, index=frame.index, dtype="object")
        taken = pd.Series(False, index=frame.index)
        parts: list[pd.Series] = []
        for case in rule.when or []:
            hit = evaluate(frame, case.if_) & ~taken
            if hit.any():
                parts.append(apply_rule(case.then, frame.loc[hit], ctx, variable))
            taken |= hit
        if rule.else_ is not None and (~taken).any():
            parts.append(apply_rule(rule.else_, frame.loc[~taken], ctx, variable))
        for part in parts:
            out.loc[part.index] = part.astype("object")
        numeric = bool(parts) and all(pd.api.types.is_float_dtype(p) for p in parts)
        out = out.astype("float64") if numeric else out.where(out.notna()).astype("str")
    elif kind == "concat":
        sep = rule.concat.sep  # type: ignore[union-attr]
        parts = [clean(frame[f]) for f in rule.concat.fields]  # type: ignore[union-attr]
        acc = pd.Series("", index=frame.index, dtype="str")
        for p in parts:  # loop over fields, not rows
            acc = acc + (sep + p).fillna("").where(acc != "", p.fillna(""))
        out = clean(acc)
    elif kind == "duration_days":
        out = iso_duration_days(to_number(frame[rule.duration_days], ctx, frame, variable))
    else:  # pragma: no cover - the model forbids other kinds
        raise AssertionError(kind)
    if rule.upper and out.dtype != "float64":
        out = out.str.upper()
    return out


# --- results ---------------------------------------------------------------------------------

_QUAL = r"^\s*(?P<q><=|>=|<|>)?\s*(?P<n>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"


def standardise_results(orres: pd.Series, orresu: pd.Series, keys: pd.DataFrame,
                        conversions: list[UnitConversion], ctx: Context, frame: pd.DataFrame,
                        prefix: str) -> pd.DataFrame:
    """--ORRES/--ORRESU -> --STRESC/--STRESN/--STRESU and the number of a ``<x`` (for --LLOQ).

    ``keys`` holds the test code (first column) aligned with ``orres``.  A numeric result converts
    by the factor of the (test, collected unit) row of the units table; ``<5``/``>5`` convert the
    number and keep the sign in --STRESC with --STRESN null (SDTMIG); a character result is copied
    to --STRESC.  A unit with no conversion row for its test is ``SDTM.UNIT.UNKNOWN``: --STRES*
    stay missing, --ORRES/--ORRESU keep the collected values.
    """
    testcd = keys.iloc[:, 0].astype("str")
    # every value below is a function of (test, unit, result): computed once per distinct triple
    codes, rep = distinct_rows(testcd, orresu, orres)
    small = _standardise_distinct(orres.iloc[rep].reset_index(drop=True), orresu.iloc[rep].reset_index(drop=True),
                                  testcd.iloc[rep].reset_index(drop=True), conversions)

    def spread(col: str) -> pd.Series:
        return pd.Series(small[col].to_numpy()[codes], index=orres.index)

    ctx.findings.add("SDTM.UNIT.UNKNOWN", "Warning",
                     "unit not in mappings/units.yaml for this test; standard result left missing",
                     ctx.dataset, f"{prefix}ORRESU", frame, spread("unknown"), lambda: testcd + " " + clean(orresu).fillna(""))
    ctx.findings.add("SDTM.UNIT.MISSING", "Warning",
                     "numeric result without a unit (and the test is not unitless in mappings/units.yaml); standard result left missing",
                     ctx.dataset, f"{prefix}ORRESU", frame, spread("no_unit"), lambda: testcd + " " + clean(orres).fillna(""))
    # text where the test and unit say number (e.g. SYSBP 'not done' in mmHg): kept in --ORRES/--STRESC, reported
    ctx.findings.add("SDTM.NUM.INVALID", "Warning",
                     "text result for a numeric test (its unit has a conversion row); kept as collected, no --STRESN",
                     ctx.dataset, f"{prefix}ORRES", frame, spread("expects_number"), lambda: clean(orres))
    # '<0.5' / '>1000': kept as collected (--STRESC keeps the sign, --STRESN null), reported per value
    ctx.findings.add("SDTM.RESULT.CENSORED", "Notice",
                     "censored result (below/above the measurable range) kept as collected in --ORRES/--STRESC; "
                     "--STRESN null", ctx.dataset, f"{prefix}ORRES", frame, spread("censored"),
                     lambda: testcd + " " + clean(orres).fillna(""))
    return pd.DataFrame({f"{prefix}STRESC": text_from_codes(small["stresc"].tolist(), codes, orres.index),
                         f"{prefix}STRESN": spread("stresn").astype("float64"),
                         f"{prefix}STRESU": text_from_codes(small["stresu"].tolist(), codes, orres.index),
                         "__lloq": spread("lloq").astype("float64"),
                         "__factor": spread("factor").astype("float64")}, index=orres.index)


def plain_decimal(x: object) -> str:
    """A number (float or numeric text) as a plain decimal: E-notation written out keeping its digits
    (``2.4E-01`` -> ``0.24``, ``1.0E-05`` -> ``0.000010``, 1e-05 -> ``0.00001``); other text unchanged."""
    t = repr(float(x)) if isinstance(x, (float, np.floating)) else str(x)
    if "e" not in t.lower():
        return t
    try:
        return format(Decimal(t), "f")
    except InvalidOperation:
        return t


def _standardise_distinct(orres: pd.Series, orresu: pd.Series, testcd: pd.Series,
                          conversions: list[UnitConversion]) -> pd.DataFrame:
    """The work of :func:`standardise_results` on distinct (result, unit, test) rows (index 0..n-1)."""
    unit = clean(orresu)
    res = clean(orres)
    m = res.str.extract(_QUAL)
    num = pd.to_numeric(m["n"], errors="coerce")
    qual = m["q"].fillna("")
    table = pd.DataFrame([{"t": c.testcd.upper(), "u": c.from_.upper(), "to": c.to, "f": c.factor} for c in conversions],
                         columns=["t", "u", "to", "f"])
    look = pd.DataFrame({"t": testcd.str.upper(), "u": unit.fillna("").str.upper()}).merge(
        table.drop_duplicates(["t", "u"]), on=["t", "u"], how="left")
    look.index = orres.index
    numeric = num.notna()
    has_unit = unit.notna()
    # a unit the table has no row for (for this test); a blank unit matches rows with from: ""
    unknown = numeric & has_unit & look["to"].isna()
    no_unit = numeric & ~has_unit & look["to"].isna()
    expects_number = ~numeric & res.notna() & has_unit & look["to"].notna()
    factor = look["f"].astype("float64")
    conv = (num * factor).round(10)
    ok = numeric & ~unknown & ~no_unit
    plain = ok & (qual == "")
    stresn = conv.where(plain)
    # text of a converted number: no trailing zeros, no float noise, no E-notation
    # (astype: with no number at all, map gives a float column without a .str accessor)
    conv_txt = conv.map(plain_decimal, na_action="ignore").astype("str").str.replace(r"\.0$", "", regex=True) \
        .where(conv.notna())
    # no conversion (factor 1): the number as collected (2.20 stays 2.20), E-notation as a plain decimal
    # with the same digits (1.0E-05 -> 0.000010)
    conv_txt = conv_txt.mask(ok & (factor == 1),
                             m["n"].astype("str").str.lstrip("+").map(plain_decimal, na_action="ignore"))
    stresc = res.where(~numeric)  # character results: as collected
    stresc = stresc.mask(ok, (qual + conv_txt.fillna("")).where(ok))
    stresu = look["to"].where(ok)
    lloq = conv.where(ok & qual.isin(["<", "<="]))
    stresc = stresc.astype("str")
    stresu = stresu.astype("str")
    return pd.DataFrame({"unknown": unknown.to_numpy(bool), "no_unit": no_unit.to_numpy(bool),
                         "expects_number": expects_number.to_numpy(bool),
                         "censored": (numeric & (qual != "")).to_numpy(bool),
                         "stresc": stresc.astype("object").where(stresc.notna(), None),
                         "stresn": stresn.astype("float64"), "stresu": stresu.astype("object").where(stresu.notna(), None),
                         "lloq": lloq.astype("float64"), "factor": factor.where(look["to"].notna()).astype("float64")},
                        index=orres.index)


# --- text over 200 bytes ---------------------------------------------------------------------

def byte_len_uniques(uniq: np.ndarray | list) -> np.ndarray:
    """UTF-8 byte lengths of distinct values (None -> 0)."""
    return np.fromiter((0 if u is None else len(str(u).encode("utf-8")) for u in uniq), dtype="int64", count=len(uniq))


def byte_len(s: pd.Series) -> pd.Series:
    """UTF-8 byte length of each value (0 for missing)."""
    codes, uniq = factorize_text(s) if (s.dtype == object or s.dtype == "str") else pd.factorize(s, use_na_sentinel=True)
    lens = byte_len_uniques(uniq)  # per distinct value
    return pd.Series(np.append(lens, 0)[codes], index=s.index, dtype="int64")


def split_text(s: pd.Series, width: int = MAX_BYTES) -> pd.DataFrame:
    """Split text into chunks of at most ``width`` bytes, at word boundaries where possible.

    Returns a frame with columns ``0..n`` (chunk 0 stays in the variable, chunk i goes into the
    i-th numbered variable or SUPP record).  Values are ASCII by the time this runs (see
    :func:`ascii_policy`), so bytes = characters.  The loop is over chunks, not rows.
    """
    rest = s.astype("str")
    chunks: list[pd.Series] = []
    while True:
        long = rest.str.len() > width
        if not long.fillna(False).any():
            chunks.append(rest)
            break
        head = rest.str.slice(0, width)
        # break at the last space inside the window when there is one
        cut = head.str.rfind(" ")
        cut = cut.where(long & (cut > width // 2), width)
        take = _slice_to(rest, cut)
        chunks.append(take.where(long, rest).str.rstrip())
        rest = _slice_from(rest, cut).str.lstrip().where(long)
    return pd.concat(chunks, axis=1, keys=range(len(chunks)))


def _slice_to(s: pd.Series, ends: pd.Series) -> pd.Series:
    """``s[i][:ends[i]]`` for every row, vectorised per distinct end position."""
    out = s.copy()
    for end in ends.dropna().unique():  # a handful of distinct cut positions
        hit = ends == end
        out.loc[hit] = s.loc[hit].str.slice(0, int(end))
    return out


def _slice_from(s: pd.Series, starts: pd.Series) -> pd.Series:
    out = s.copy()
    for start in starts.dropna().unique():
        hit = starts == start
        out.loc[hit] = s.loc[hit].str.slice(int(start))
    return out


# --- non-ASCII -------------------------------------------------------------------------------

#: The replacements the XPT writer applies (typographic -> ASCII), see
#: :func:`cdisc_pipe.xpt.conform.transliterate`.
ASCII_REPLACEMENTS = _XPT_ASCII_REPLACEMENTS


def ascii_policy(frame: pd.DataFrame, dataset: str, findings: Findings,
                 coded: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> pd.DataFrame:
    """Report every non-ASCII text value (``SDTM.TEXT.NONASCII``, naming the raw file and row);
    the frame is returned unchanged.

    Policy: the data keep the text as collected.  XPT v5 holds ASCII only, so the XPT writer
    transliterates (:func:`cdisc_pipe.xpt.conform.transliterate`: typographic characters with an
    obvious ASCII twin replaced, accents dropped, anything else, e.g. Chinese text, ``?`` per
    character); Dataset-JSON carries UTF-8 and keeps the original (define.xml says so in a comment
    on the variable).  Each reported value is the original text, so the change in the XPT file is
    explicit and reviewable; the record is kept.

    Each column is checked on its distinct values; ``coded`` (optional) receives the
    factorization (codes, distinct values) of every column, for :func:`conform`.
    """
    for col in frame.columns:
        if col.startswith("__") or frame[col].dtype == "float64":
            continue
        s = frame[col]
        if s.dtype != "str" and s.dtype != object:
            continue
        codes, uniq = factorize_text(s)
        if coded is not None:
            coded[col] = (compact_codes(codes, len(uniq)), uniq)
        if "".join(u if isinstance(u, str) else str(u) for u in uniq).isascii():  # the usual case
            continue
        txt = s.astype("str")
        bad = ~txt.fillna("").str.isascii()
        if not bad.any():
            continue
        before = len(findings.items)
        findings.add("SDTM.TEXT.NONASCII", "Warning",
                     "non-ASCII text: transliterated to ASCII in the XPT file (unmappable characters become '?'), "
                     "kept as collected in Dataset-JSON; original in value",
                     dataset, col, frame, bad, txt)
        # a variable split into chunks (SDTMIG 4.5.3) is checked before the split and again with
        # the dataset: each value is reported once
        seen = {_nonascii_key(f) for f in findings.items[:before] if f.rule == "SDTM.TEXT.NONASCII"}
        findings.items[before:] = [f for f in findings.items[before:] if _nonascii_key(f) not in seen]
    return frame


def _nonascii_key(f: Finding) -> tuple:
    return f.dataset, f.variable, f.value, f.source_file, f.source_row, f.extra.get("count")
