"""Is define.xml true to the data?  Compare a define.xml with the XPT files of its folder.

What FDA reviewers and Pinnacle 21 check, as :class:`~cdisc_pipe.errors.Finding` values (rule ids
``DEFINE.DATA.*``):

- every XPT file is described by an ItemGroupDef and every ItemGroupDef (with data) has its file;
- dataset label, and for every variable: presence both ways, position (= ItemRef OrderNumber
  order), label, type (text vs numeric) and, for text, length (= ItemDef Length);
- every value used in the data for a variable with a codelist is in that codelist (external
  dictionaries are not checked); value-level codelists are checked on the records their where
  clause selects.

Metadata come from ``cdisc_pipe.xpt.reader.read_xport(..., metadataonly=True)`` (what pyreadstat
gives, vectorised); for the codelist checks the
needed columns come from the caller's frames when given (validation has read every file already),
else only they are read (``usecols``); values are checked once per distinct value (factorize) and
mapped back to record counts.  Also here:
:func:`written_from_folder`, which rebuilds the writers' :class:`WrittenDataset` records from XPT
files on disk (``cdisc-pipe define`` on an existing output folder).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.define.schema import DEF, ODM, XLINK, parse_define
from cdisc_pipe.errors import Finding, InputError, Problem
from cdisc_pipe.written import WrittenColumn, WrittenDataset
from cdisc_pipe.xpt.reader import known_distinct, read_xport
from cdisc_pipe.xpt.v5 import read_format

NUMERIC_TYPES = {"integer", "float", "double"}
MAX_VALUES_REPORTED = 50  # distinct bad values reported per variable; the rest are counted


@dataclass
class _Item:
    oid: str
    name: str
    label: str | None
    data_type: str | None
    length: int | None
    display_format: str | None
    codelist: str | None
    value_list: str | None


@dataclass
class _Group:
    name: str
    label: str | None
    href: str | None
    has_no_data: bool
    refs: list[tuple[int, str]]  # (OrderNumber, ItemOID)


@dataclass
class _Codelist:
    oid: str
    data_type: str
    values: list[str] | None  # None: external dictionary (not checked)
    nci_code: str | None = None  # the CDISC codelist C-code (Alias nci:ExtCodeID); None: sponsor list


@dataclass
class _Define:
    groups: dict[str, _Group] = field(default_factory=dict)
    items: dict[str, _Item] = field(default_factory=dict)
    codelists: dict[str, _Codelist] = field(default_factory=dict)
    value_lists: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)  # (item oid, wc oid)
    where: dict[str, list[tuple[str, str, list[str]]]] = field(default_factory=dict)  # (item oid, comparator, values)


def _text(el) -> str | None:
    if el is None:
        return None
    tt = el.find(f"{{{ODM}}}TranslatedText")
    return tt.text if tt is not None and tt.text is not None else ("" if tt is not None else None)


def read_define(xml: bytes, file: str = "define.xml") -> _Define:
    """The parts of a define.xml the data checks need.  Raises InputError if it is not XML."""
    root, problems = parse_define(xml, file)
    if root is None:
        raise InputError(problems, stage="define")
    d = _Define()
    for it in root.iter(f"{{{ODM}}}ItemDef"):
        clr = it.find(f"{{{ODM}}}CodeListRef")
        vlr = it.find(f"{{{DEF}}}ValueListRef")
        length = it.get("Length")
        d.items[it.get("OID")] = _Item(
            oid=it.get("OID"), name=(it.get("Name") or "").upper(), label=_text(it.find(f"{{{ODM}}}Description")),
            data_type=it.get("DataType"), length=int(length) if length and length.isdigit() else None,
            display_format=it.get(f"{{{DEF}}}DisplayFormat"),
            codelist=clr.get("CodeListOID") if clr is not None else None,
            value_list=vlr.get("ValueListOID") if vlr is not None else None)
    for ig in root.iter(f"{{{ODM}}}ItemGroupDef"):
        leaf = ig.find(f"{{{DEF}}}leaf")
        refs = []
        for pos, ref in enumerate(ig.findall(f"{{{ODM}}}ItemRef"), start=1):
            order = ref.get("OrderNumber")
            refs.append((int(order) if order and order.isdigit() else pos, ref.get("ItemOID")))
        name = (ig.get("Name") or "").upper()
        d.groups[name] = _Group(name=name, label=_text(ig.find(f"{{{ODM}}}Description")),
                                href=leaf.get(f"{{{XLINK}}}href") if leaf is not None else None,
                                has_no_data=ig.get(f"{{{DEF}}}HasNoData") == "Yes", refs=refs)
    for cl in root.iter(f"{{{ODM}}}CodeList"):
        if cl.find(f"{{{ODM}}}ExternalCodeList") is not None:
            values = None
        else:
            values = [i.get("CodedValue") for i in cl if isinstance(i.tag, str)
                      and i.tag in (f"{{{ODM}}}CodeListItem", f"{{{ODM}}}EnumeratedItem")]
        alias = cl.find(f"{{{ODM}}}Alias[@Context='nci:ExtCodeID']")
        d.codelists[cl.get("OID")] = _Codelist(oid=cl.get("OID"), data_type=cl.get("DataType") or "text",
                                               values=values, nci_code=alias.get("Name") if alias is not None else None)
    for vl in root.iter(f"{{{DEF}}}ValueListDef"):
        entries = []
        for ref in vl.findall(f"{{{ODM}}}ItemRef"):
            wcr = ref.find(f"{{{DEF}}}WhereClauseRef")
            entries.append((ref.get("ItemOID"), wcr.get("WhereClauseOID") if wcr is not None else None))
        d.value_lists[vl.get("OID")] = entries
    for wc in root.iter(f"{{{DEF}}}WhereClauseDef"):
        d.where[wc.get("OID")] = [
            (rc.get(f"{{{DEF}}}ItemOID"), rc.get("Comparator") or "EQ",
             [cv.text or "" for cv in rc.findall(f"{{{ODM}}}CheckValue")])
            for rc in wc.findall(f"{{{ODM}}}RangeCheck")]
    return d


def _finding(rule: str, message: str, dataset: str | None = None, variable: str | None = None,
             value: str | None = None, severity: str = "Error", source: str | None = None, **extra) -> Finding:
    return Finding(rule=rule, severity=severity, message=message, dataset=dataset, variable=variable, value=value,
                   source_file=source, extra=extra)


def check_define_against_data(xml: bytes | Path, folder: Path, *, check_values: bool = True,
                              file: str | None = None, ct_dir: Path | None = None,
                              frames: dict[str, pd.DataFrame] | None = None) -> list[Finding]:
    """Findings where define.xml and the XPT files of ``folder`` disagree.

    Args:
        xml: the define.xml bytes, or its path.
        folder: the folder holding the ``*.xpt`` files the define describes.
        check_values: also read the coded columns and check their values against the codelists.
        file: the define's name in messages (default: the path, or ``<folder>/define.xml``).
        ct_dir: folder of CDISC CT files, to tell extensible from non-extensible codelists.
        frames: the data of the XPT files of ``folder`` already read by the caller, by upper-case file
            stem (``{"DM": df}``; as :func:`cdisc_pipe.xpt.read_xpt` returns them).  The codelist
            checks then use these columns instead of reading the files again; a column missing from
            its frame, or held as datetime/timedelta, is still read from the file.  File existence
            and file metadata (names, labels, types, lengths, order) are always read from the files.

    Severity of a value not in its codelist (``DEFINE.DATA.CTVALUE``), as Pinnacle 21 grades it:
    Error for a non-extensible CDISC codelist (known from ``ct_dir``) and for a sponsor codelist
    (no NCI code: the sponsor's own list should be complete); Warning for an extensible CDISC
    codelist, or when extensibility is unknown (no ``ct_dir``).

    Returns:
        Findings (rule ``DEFINE.DATA.*``), empty when define.xml and the data agree.
    """
    folder = Path(folder)
    if isinstance(xml, Path):
        file = file or str(xml)
        xml = xml.read_bytes()
    file = file or str(folder / "define.xml")
    d = read_define(xml, file)
    closed = _non_extensible_codes(Path(ct_dir)) if ct_dir is not None and check_values else set()
    findings: list[Finding] = []
    xpts = {p.name.lower(): p for p in sorted(folder.glob("*.xpt"))}
    matched: set[str] = set()
    for name, g in sorted(d.groups.items()):
        fname = (g.href or f"{name.lower()}.xpt").replace("\\", "/").rsplit("/", 1)[-1].lower()
        if g.has_no_data:
            if fname in xpts:
                matched.add(fname)
                findings.append(_finding("DEFINE.DATA.HASNODATA", "define.xml says the dataset has no data but "
                                         "its file exists", name, severity="Warning", source=str(xpts[fname])))
            continue
        path = xpts.get(fname)
        if path is None:
            findings.append(_finding("DEFINE.DATA.NOFILE", f"ItemGroupDef {name} points to {fname}, which is not in "
                                     f"{folder}", name, source=file))
            continue
        matched.add(fname)
        if fname != f"{name.lower()}.xpt":
            findings.append(_finding("DEFINE.DATA.FILENAME", f"file name {fname} is not the dataset name in lower "
                                     "case", name, severity="Warning", source=str(path)))
        frame = frames.get(Path(fname).stem.upper()) if frames else None
        findings.extend(_check_dataset(d, g, path, check_values, closed, frame))
    for fname, path in xpts.items():
        if fname not in matched:
            findings.append(_finding("DEFINE.DATA.NOTINDEFINE", f"{fname} is not described in define.xml",
                                     Path(fname).stem.upper(), source=str(path)))
    return findings


def _check_dataset(d: _Define, g: _Group, path: Path, check_values: bool, closed: set[str],
                   frame: pd.DataFrame | None = None) -> list[Finding]:
    src = str(path)
    out: list[Finding] = []
    try:
        _, meta = read_xport(src, metadataonly=True)
    except Exception as exc:  # XptReadError, UnicodeDecodeError, OSError for damaged files
        return [_finding("DEFINE.DATA.UNREADABLE", f"cannot read the XPT file: {exc}", g.name, source=src)]
    if (meta.table_name or "").upper() != g.name:
        out.append(_finding("DEFINE.DATA.NAME", f"XPT member name {meta.table_name!r} differs from the dataset name",
                            g.name, source=src))
    if (meta.file_label or "") != (g.label or ""):
        out.append(_finding("DEFINE.DATA.DSLABEL", f"dataset label differs: data {meta.file_label!r}, define "
                            f"{g.label!r}", g.name, source=src))
    items = [(order, d.items.get(oid)) for order, oid in sorted(g.refs, key=lambda r: r[0])]
    for order, it in items:
        if it is None:
            out.append(_finding("DEFINE.DATA.NOITEMDEF", f"ItemRef at order {order} has no ItemDef", g.name, source=src))
    define_vars = [it for _, it in items if it is not None]
    define_pos = {it.name: i for i, it in enumerate(define_vars, start=1)}
    data_vars = [c.upper() for c in meta.column_names]
    data_pos = {n: i for i, n in enumerate(data_vars, start=1)}
    labels = dict(zip(data_vars, meta.column_labels or [None] * len(data_vars)))
    types = {k.upper(): v for k, v in meta.readstat_variable_types.items()}
    widths = {k.upper(): v for k, v in meta.variable_storage_width.items()}
    for name in data_vars:
        if name not in define_pos:
            out.append(_finding("DEFINE.DATA.VARNOTINDEFINE", f"variable {name} is in the data but not in define.xml",
                                g.name, name, source=src))
    for it in define_vars:
        name = it.name
        if name not in data_pos:
            out.append(_finding("DEFINE.DATA.VARNOTINDATA", f"variable {name} is in define.xml but not in the data",
                                g.name, name, source=src))
            continue
        if data_pos[name] != define_pos[name]:
            out.append(_finding("DEFINE.DATA.ORDER", f"{name} is variable {data_pos[name]} in the data but "
                                f"{define_pos[name]} in define.xml", g.name, name, source=src))
        if (labels.get(name) or "") != (it.label or ""):
            out.append(_finding("DEFINE.DATA.LABEL", f"label differs: data {labels.get(name)!r}, define {it.label!r}",
                                g.name, name, source=src))
        data_numeric = types.get(name) != "string"
        define_numeric = (it.data_type or "text") in NUMERIC_TYPES
        if data_numeric != define_numeric:
            out.append(_finding("DEFINE.DATA.TYPE", f"type differs: data {'numeric' if data_numeric else 'character'}"
                                f", define DataType {it.data_type}", g.name, name, source=src))
        elif not data_numeric and it.length is None:
            # ISO 8601 DataTypes (date, datetime, ...) may omit Length; text may not
            if (it.data_type or "text") == "text":
                out.append(_finding("DEFINE.DATA.LENGTH", f"define.xml gives no Length (data {widths.get(name)})",
                                    g.name, name, source=src))
        elif not data_numeric and it.length != widths.get(name):
            out.append(_finding("DEFINE.DATA.LENGTH", f"length differs: data {widths.get(name)}, define {it.length}",
                                g.name, name, source=src))
    if check_values:
        out.extend(_check_values(d, g, define_vars, path, set(data_vars), closed, frame))
    return out


def _as_text(values: pd.Series) -> pd.Series:
    """Data values as the text a CodedValue holds: strings as they are, whole numbers without '.0';
    missing as "".  Called on the distinct values of a column (see :class:`_Column`)."""
    if not pd.api.types.is_numeric_dtype(values):
        obj = values.astype(object)
        missing = obj.isna().to_numpy()
        return pd.Series(["" if m else str(v) for v, m in zip(obj.to_numpy(), missing)],
                         index=values.index, dtype=object)
    num = values.astype("float64")
    whole = np.isfinite(num) & (np.floor(num) == num)
    text = num.map(repr).astype(object)
    text[whole] = num[whole].astype("int64").astype(str)
    text[num.isna()] = ""  # missing compares equal to an empty CheckValue
    return text


@dataclass
class _Column:
    """A data column as its distinct values (missing included) and, per record, the index of its value.

    Checks are done once per distinct value and mapped back to records with ``codes``."""

    codes: np.ndarray  # per record: index into the arrays below
    text: np.ndarray  # per distinct value: the value as CodedValue text ("" when missing)
    present: np.ndarray  # per distinct value: not missing and (text) not blank
    number: np.ndarray | None  # per distinct value, numeric columns: the float64 value


def _column(values: pd.Series) -> _Column:
    """Codes and distinct values of a column (missing is a value); a held or read text column's
    distinct values are known (``xpt.reader.known_distinct``): not factorized again (its missing
    value, when any, is the last distinct value)."""
    known = known_distinct(values)
    if known is not None:
        codes, distinct = known
        missing = codes < 0
        if missing.any():
            codes = np.where(missing, len(distinct), codes)
            distinct = np.append(np.asarray(distinct, dtype=object), np.nan)
        u = pd.Series(np.asarray(distinct, dtype=object), dtype=values.dtype)
        codes = codes.astype(np.intp)
    else:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        u = pd.Series(uniques)
    if pd.api.types.is_numeric_dtype(values):
        num = u.astype("float64")
        return _Column(codes=codes, text=_as_text(num).to_numpy(dtype=object),
                       present=num.notna().to_numpy(), number=num.to_numpy())
    text = _as_text(u).to_numpy(dtype=object)
    present = ~u.isna().to_numpy() & np.array([t.strip() != "" for t in text], dtype=bool)
    return _Column(codes=codes, text=text, present=present, number=None)


def _bad_values(col: _Column, mask: np.ndarray | None, codelist: _Codelist) -> pd.Series:
    """Counts of the present values (of the records ``mask`` selects) not in the codelist (index:
    value as text, sorted)."""
    codes = col.codes if mask is None else col.codes[mask]
    counts = np.bincount(codes, minlength=len(col.text))
    allowed = codelist.values or []
    if col.number is not None:
        nums = pd.to_numeric(pd.Series(allowed, dtype=object), errors="coerce").dropna().astype("float64")
        ok = pd.Series(col.number).isin(nums).to_numpy()
    else:
        ok = pd.Series(col.text, dtype=object).isin(allowed).to_numpy()
    bad = col.present & ~ok & (counts > 0)
    if not bad.any():
        return pd.Series(dtype="int64")
    return pd.Series(counts[bad].astype("int64"), index=col.text[bad]).groupby(level=0).sum().sort_index()


def _where_mask(cols: dict[str, _Column], n: int, conditions: list[tuple[str, str, list[str]]],
                d: _Define) -> np.ndarray | None:
    """Records a where clause selects, or None when it tests a variable not in this frame."""
    mask = np.ones(n, dtype=bool)
    for item_oid, comparator, values in conditions:
        it = d.items.get(item_oid)
        if it is None or it.name not in cols:
            return None
        col = cols[it.name]
        if comparator in ("EQ", "NE", "IN", "NOTIN"):
            # a missing value is "" (so `NE ""` selects the records where the variable is present)
            hit = pd.Series(col.text, dtype=object).map(str.strip).isin([v.strip() for v in values]).to_numpy()
            hit = hit[col.codes]
            mask &= ~hit if comparator in ("NE", "NOTIN") else hit
        else:
            num = (pd.Series(col.number) if col.number is not None
                   else pd.to_numeric(pd.Series(col.text, dtype=object), errors="coerce"))
            ref = pd.to_numeric(pd.Series(values[:1]), errors="coerce").iloc[0]
            op = {"LT": num.lt, "LE": num.le, "GT": num.gt, "GE": num.ge}[comparator]
            mask &= op(ref).fillna(False).to_numpy(dtype=bool)[col.codes]
    return mask


def _usable(s: pd.Series) -> bool:
    """A caller's column holds what the XPT reader gives (text, or plain numbers), not converted dates."""
    return not (pd.api.types.is_datetime64_any_dtype(s.dtype) or pd.api.types.is_timedelta64_dtype(s.dtype)
                or isinstance(s.dtype, pd.CategoricalDtype))


def _value_columns(src: str, cols: list[str], frame: pd.DataFrame | None) -> dict[str, pd.Series]:
    """The columns ``cols`` (upper case): from the caller's frame when it holds them as read, the
    others read from the file.  Raises what the reader raises for an unreadable file."""
    out: dict[str, pd.Series] = {}
    if frame is not None:
        by_upper = {str(c).upper(): c for c in frame.columns}
        for c in cols:
            if c in by_upper and _usable(frame[by_upper[c]]):
                out[c] = frame[by_upper[c]]
    rest = [c for c in cols if c not in out]
    if rest:
        df, _ = read_xport(src, usecols=rest)
        for c in df.columns:
            out[c.upper()] = df[c]
    return out


def _check_values(d: _Define, g: _Group, define_vars: list[_Item], path: Path, data_vars: set[str],
                  closed: set[str], frame: pd.DataFrame | None = None) -> list[Finding]:
    src = str(path)
    checks: list[tuple[_Item, _Codelist, str | None, list]] = []  # (item, codelist, where oid, conditions)
    needed: set[str] = set()
    for it in define_vars:
        if it.name not in data_vars:
            continue
        cl = d.codelists.get(it.codelist) if it.codelist else None
        if cl is not None and cl.values is not None:
            checks.append((it, cl, None, []))
            needed.add(it.name)
        for vl_item_oid, wc_oid in d.value_lists.get(it.value_list or "", []):
            vit = d.items.get(vl_item_oid)
            vcl = d.codelists.get(vit.codelist) if vit is not None and vit.codelist else None
            if vcl is None or vcl.values is None or wc_oid is None:
                continue
            conds = d.where.get(wc_oid, [])
            checks.append((it, vcl, wc_oid, conds))
            needed.add(it.name)
            needed.update(d.items[c[0]].name for c in conds if c[0] in d.items)
    if not checks:
        return []
    cols = sorted(n for n in needed if n in data_vars)
    try:
        series = _value_columns(src, cols, frame)
    except Exception as exc:
        return [_finding("DEFINE.DATA.UNREADABLE", f"cannot read values: {exc}", g.name, source=src)]
    columns = {name: _column(s) for name, s in series.items()}
    n_records = len(next(iter(series.values()))) if series else 0
    out: list[Finding] = []
    for it, cl, wc_oid, conds in checks:
        mask = None
        scope = ""
        if wc_oid is not None:
            mask = _where_mask(columns, n_records, conds, d)
            if mask is None:
                out.append(_finding("DEFINE.DATA.CTNOTCHECKED", f"value-level codelist {cl.oid} not checked: where "
                                    f"clause {wc_oid} tests a variable of another dataset", g.name, it.name,
                                    severity="Notice", source=src))
                continue
            scope = f" where {wc_oid}"
        bad = _bad_values(columns[it.name], mask, cl)
        severity = "Error" if cl.nci_code is None or cl.nci_code in closed else "Warning"
        kind = ("sponsor" if cl.nci_code is None else "non-extensible" if cl.nci_code in closed
                else "extensible" if closed else "CDISC")
        for n, (value, count) in enumerate(bad.items()):
            if n == MAX_VALUES_REPORTED:
                out.append(_finding("DEFINE.DATA.CTVALUE", f"... and {len(bad) - n} more values of {it.name}{scope} "
                                    f"not in {kind} codelist {cl.oid}", g.name, it.name, severity=severity, source=src))
                break
            out.append(_finding("DEFINE.DATA.CTVALUE", f"value used in {int(count)} record(s) of {it.name}{scope} is "
                                f"not in {kind} codelist {cl.oid}", g.name, it.name, str(value), severity=severity,
                                source=src, codelist=cl.oid, records=int(count)))
    return out


def _non_extensible_codes(ct_dir: Path) -> set[str]:
    """C-codes of the non-extensible codelists in every CT file of ``ct_dir`` (C-codes are unique
    across CDISC packages).  Unreadable files raise InputError (from :func:`cdisc_pipe.ct.load_ct`)."""
    from cdisc_pipe.ct import load_ct

    codes: set[str] = set()
    for path in sorted(ct_dir.glob("*")):
        if path.suffix.lower() in (".txt", ".csv") and path.is_file():
            lists = load_ct(path).codelists
            codes.update(lists.loc[lists["extensible"] == "No", "code"])
    return codes


# ---------------------------------------------------------------------------------------------
# WrittenDataset records from files on disk
# ---------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def written_from_folder(folder: Path, purpose: str) -> list[WrittenDataset]:
    """The :class:`WrittenDataset` records of the ``*.xpt`` files in ``folder`` (sorted by name), and
    of the datasets the writer left out for having no records (``_stage/no_data.json``).

    Used when define.xml is rendered for datasets written earlier (``cdisc-pipe define``).  Paths are
    ``<folder name>/<file>``, as the writers report them relative to the output root.

    Raises:
        InputError: listing every file that cannot be read as SAS transport.
    """
    folder = Path(folder)
    out: list[WrittenDataset] = []
    problems: list[Problem] = []
    for path in sorted(folder.glob("*.xpt")):
        try:
            _, meta = read_xport(str(path), metadataonly=True)
            first = meta.column_names[:1]
            df, _ = read_xport(str(path), usecols=first)
        except Exception as exc:
            problems.append(Problem(str(path), f"cannot read XPT file: {exc}", hint="Rewrite the dataset"))
            continue
        columns = []
        labels = meta.column_labels or [None] * len(meta.column_names)
        for i, (name, label) in enumerate(zip(meta.column_names, labels), start=1):
            text = meta.readstat_variable_types.get(name) == "string"
            columns.append(WrittenColumn(
                name=name.upper(), label=label or "", type="text" if text else "numeric",
                length=int(meta.variable_storage_width.get(name) or (1 if text else 8)),
                display_format=read_format(meta.original_variable_types.get(name)), order=i))
        json_path = next((p for p in (path.with_suffix(".json"), path.with_suffix(".ndjson")) if p.is_file()), None)
        out.append(WrittenDataset(
            name=(meta.table_name or path.stem).upper(), label=meta.file_label or "", purpose=purpose,
            records=len(df), columns=tuple(columns), xpt_path=f"{folder.name}/{path.name}",
            json_path=f"{folder.name}/{json_path.name}" if json_path else None, xpt_sha256=_sha256(path),
            json_sha256=_sha256(json_path) if json_path else None))
    if problems:
        raise InputError(problems, stage="define")
    # datasets without records have no file: the writer's record of them (define.xml: HasNoData)
    from cdisc_pipe.xpt.datasets import no_data_datasets

    return sorted(out + no_data_datasets(folder, purpose), key=lambda w: w.name)
