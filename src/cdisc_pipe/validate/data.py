"""What validation looks at: datasets, their file metadata and the define.xml beside them.

I/O lives here and only here.  XPT files are read through :func:`read_xpt_with_meta` (Dataset-JSON
through :func:`read_dataset_json_with_meta` when a folder has no XPT): data and file metadata
(labels, storage lengths, formats) via ``cdisc_pipe.xpt.read_xpt_file``, which decodes text as
UTF-8, as the encoding it detects (cp1252, latin-1) or as the one forced (:class:`ReadOptions`);
blanks become missing values.  ``define.xml`` is parsed with lxml (no network, no DTD) into
:class:`DefineInfo`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.errors import InputError, Problem, raise_if
from cdisc_pipe.spec.model import Dataset, StudySpec
from cdisc_pipe.xpt.datasets import XptDecodeError, read_xpt_file
from cdisc_pipe.xpt.reader import known_distinct  # noqa: F401  (validation's name for it)
from cdisc_pipe.xpt.v5 import read_format

# SDTM general-observation classes of the common domains: used to scope rules when neither a spec
# nor a define.xml names the class (SDTMIG 3.4 section 2 / domain models).
DOMAIN_CLASSES: dict[str, str] = {
    **{d: "SPECIAL PURPOSE" for d in ("DM", "CO", "SE", "SM", "SV")},
    **{d: "TRIAL DESIGN" for d in ("TA", "TD", "TE", "TI", "TM", "TS", "TV")},
    **{d: "INTERVENTIONS" for d in ("AG", "CM", "EC", "EX", "ML", "PR", "SU")},
    **{d: "EVENTS" for d in ("AE", "BE", "CE", "DS", "DV", "HO", "MH")},
    **{d: "FINDINGS" for d in ("BS", "CP", "CV", "DA", "DD", "EG", "FT", "GF", "IE", "IS", "LB", "MB", "MI",
                               "MK", "MS", "NV", "OE", "PC", "PE", "PP", "QS", "RE", "RP", "RS", "SC", "SS",
                               "TR", "TU", "UR", "VS")},
    "FA": "FINDINGS ABOUT",
    "RELREC": "RELATIONSHIP",
    "DI": "STUDY REFERENCE",
    "OI": "STUDY REFERENCE",
}

NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1",
      "xlink": "http://www.w3.org/1999/xlink"}


@dataclass
class ColumnMeta:
    """A column as stored in the file."""

    name: str
    label: str | None
    type: str  # "text" | "numeric"
    length: int | None  # storage width in bytes (8 for numeric)
    format: str | None = None


@dataclass
class DatasetMeta:
    """A dataset file: name in the file, label, columns, path."""

    name: str
    label: str | None
    path: str
    columns: dict[str, ColumnMeta]
    encoding: str | None = None  # codec the text was decoded with (XPT); Dataset-JSON is UTF-8


@dataclass
class ReadOptions:
    """How :func:`load_folder` reads XPT text, and what it has to tell.

    Attributes:
        encoding: ``None``: UTF-8, or the encoding detected per file (cp1252, then latin-1); a
            name (``--encoding``): that encoding for every XPT file, strictly.
        notes: filled by the reader: one line per file whose text was not plain UTF-8.
    """

    encoding: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class DefineVariable:
    name: str
    label: str | None
    data_type: str | None
    length: int | None
    order: int | None
    key_sequence: int | None
    mandatory: bool
    codelist: str | None
    origin: str | None
    method: str | None
    has_value_level: bool = False


@dataclass
class DefineDataset:
    name: str
    label: str | None
    klass: str | None
    purpose: str | None
    archive: str | None
    variables: dict[str, DefineVariable]
    has_no_data: bool = False  # def:HasNoData="Yes": described but intentionally without a file


@dataclass
class DefineCodelist:
    oid: str
    nci_code: str | None
    extensible: bool | None
    values: list[str]
    extended: list[str]
    external: bool


@dataclass
class DefineInfo:
    """The parts of a define.xml validation compares with the data."""

    path: str
    xml: bytes
    datasets: dict[str, DefineDataset]
    codelists: dict[str, DefineCodelist]
    ct_standards: list[dict[str, str]]  # [{publishing_set, version}]


@dataclass
class StudyData:
    """Everything validated in one run."""

    datasets: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, DatasetMeta] = field(default_factory=dict)
    purpose: dict[str, str] = field(default_factory=dict)  # dataset -> Tabulation | Analysis
    defines: dict[str, DefineInfo] = field(default_factory=dict)  # purpose -> define
    folders: dict[str, str] = field(default_factory=dict)  # purpose -> folder

    def define_for(self, dataset: str) -> DefineInfo | None:
        return self.defines.get(self.purpose.get(dataset, "Tabulation"))

    def define_dataset(self, dataset: str) -> DefineDataset | None:
        d = self.define_for(dataset)
        return d.datasets.get(dataset) if d else None

    def declared_no_data(self, dataset: str) -> DefineDataset | None:
        """The define.xml description of ``dataset`` when it has no file and a define.xml declares it
        ``def:HasNoData="Yes"`` (a dataset without records is not submitted), else None."""
        if dataset in self.datasets:
            return None
        for d in self.defines.values():
            dd = d.datasets.get(dataset)
            if dd is not None and dd.has_no_data:
                return dd
        return None

    def empty_frame(self, dataset: str) -> pd.DataFrame | None:
        """A 0-record frame with the define.xml variables of a dataset declared without data (None
        otherwise): cross-dataset rules check references against it (a reference to a record of a
        dataset without data is a finding, not a skipped rule)."""
        dd = self.declared_no_data(dataset)
        if dd is None:
            return None
        names = sorted(dd.variables.values(), key=lambda v: v.order)
        return pd.DataFrame({v.name: pd.Series([], dtype="float64" if v.data_type in ("integer", "float") else object)
                             for v in names})


def _blank_to_na(s: pd.Series) -> pd.Series:
    """Right-strip character values and turn blanks into missing, working on unique values only."""
    codes, uniques = pd.factorize(s)
    vals = pd.Series(np.asarray(uniques, dtype=object), dtype="str").str.rstrip()
    arr = np.asarray(vals.where(vals != "", None), dtype=object)
    res = arr[np.maximum(codes, 0)] if len(arr) else np.full(len(s), None, dtype=object)
    res = np.where(codes >= 0, res, None)
    return pd.Series(res, index=s.index, dtype="str")


def _normalise(df: pd.DataFrame, formats: dict[str, str | None], trimmed: bool = False) -> pd.DataFrame:
    """Blanks to missing in character columns (``trimmed``: the reader already did it); SAS dates
    (DATE/DATETIME formats) to datetime64."""
    out = {}
    for col in df.columns:
        s = df[col]
        fmt = (formats.get(col) or "").upper()
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            out[col] = s
        elif trimmed and isinstance(s.dtype, pd.StringDtype):  # text as the reader gives it already
            out[col] = s
        elif s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
            nn = s.dropna()
            first = nn.iloc[0] if len(nn) else None
            if first is not None and not isinstance(first, str):
                # pyreadstat returns datetime.date / datetime objects for SAS date formats
                conv = pd.to_datetime(s, errors="coerce") if hasattr(first, "year") else s
                out[col] = conv
            else:
                out[col] = s.astype("str") if trimmed else _blank_to_na(s)
        elif fmt.startswith(("DATE", "E8601DA", "YYMMDD", "E8601DT")) and pd.api.types.is_numeric_dtype(s.dtype):
            unit = "s" if fmt.startswith(("DATETIME", "E8601DT")) else "D"
            out[col] = pd.Timestamp("1960-01-01") + pd.to_timedelta(s, unit=unit)
        else:
            out[col] = s
    return pd.DataFrame(out, index=df.index, copy=False)  # the columns are new or the input's own


def _shown_format(fmt: str | None) -> str | None:
    """A display format as the metadata records it: None for none and for the defaults that say
    nothing (``$.``, ``BEST.``, ``$CHAR.``)."""
    return None if fmt in (None, "$.", "BEST.", "$CHAR.") else fmt


def read_xpt_with_meta(path: Path, options: ReadOptions | None = None) -> tuple[pd.DataFrame, DatasetMeta]:
    """Read one XPT v5 file: the data (blanks -> NA, SAS dates -> datetime64) and its metadata.

    Text is decoded by ``cdisc_pipe.xpt.read_xpt_file`` (UTF-8, detected, or ``options.encoding``);
    a note about a file not read as plain UTF-8 is appended to ``options.notes``.  Raises
    ``InputError`` for an unreadable file (``XptDecodeError`` when a forced encoding fails).
    """
    read = read_xpt_file(path, encoding=options.encoding if options else None, text="str")
    df, meta = read.frame, read.meta
    if read.note and options is not None:
        options.notes.append(read.note)
    formats = dict(meta.original_variable_types or {})
    cols = {}
    for name in meta.column_names:
        fmt = read_format(formats.get(name))
        is_num = meta.readstat_variable_types.get(name) == "double"
        cols[name] = ColumnMeta(
            name=name, label=(meta.column_names_to_labels or {}).get(name),
            type="numeric" if is_num else "text",
            length=(meta.variable_storage_width or {}).get(name),
            format=_shown_format(fmt))
    df = _normalise(df, {k: v.format for k, v in cols.items()}, trimmed=True)
    name = (meta.table_name or path.stem).upper()
    return df, DatasetMeta(name=name, label=meta.file_label or None, path=str(path), columns=cols,
                           encoding=read.encoding)


def _text(el) -> str | None:
    if el is None:
        return None
    tt = el.find("odm:TranslatedText", NS)
    return (tt.text or "").strip() if tt is not None else None


def parse_define(path: Path) -> DefineInfo:
    """Parse a Define-XML 2.x file into :class:`DefineInfo` (datasets, variables, codelists, CT)."""
    from lxml import etree

    xml = path.read_bytes()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(xml, parser)
    mdv = root.find(".//odm:MetaDataVersion", NS)
    if mdv is None:
        raise ValueError("no MetaDataVersion in define.xml")
    items = {}
    for it in mdv.findall("odm:ItemDef", NS):
        origin = it.find("def:Origin", NS)
        clr = it.find("odm:CodeListRef", NS)
        items[it.get("OID")] = dict(
            name=it.get("Name"), label=_text(it.find("odm:Description", NS)), data_type=it.get("DataType"),
            length=int(it.get("Length")) if it.get("Length") else None,
            codelist=clr.get("CodeListOID") if clr is not None else None,
            origin=origin.get("Type") if origin is not None else None,
            vlm=it.find("def:ValueListRef", NS) is not None)
    datasets = {}
    for ig in mdv.findall("odm:ItemGroupDef", NS):
        klass = ig.find("def:Class", NS)
        leaf = ig.find("def:leaf", NS)
        variables = {}
        for pos, ref in enumerate(ig.findall("odm:ItemRef", NS), start=1):
            it = items.get(ref.get("ItemOID"), {})
            if not it.get("name"):
                continue
            variables[it["name"]] = DefineVariable(
                name=it["name"], label=it.get("label"), data_type=it.get("data_type"), length=it.get("length"),
                order=int(ref.get("OrderNumber")) if ref.get("OrderNumber") else pos,
                key_sequence=int(ref.get("KeySequence")) if ref.get("KeySequence") else None,
                mandatory=ref.get("Mandatory") == "Yes", codelist=it.get("codelist"), origin=it.get("origin"),
                method=ref.get("MethodOID"), has_value_level=bool(it.get("vlm")))
        name = (ig.get("Name") or "").upper()
        datasets[name] = DefineDataset(
            name=name, label=_text(ig.find("odm:Description", NS)),
            klass=klass.get("Name") if klass is not None else ig.get("def:Class"),
            purpose=ig.get("Purpose"), archive=leaf.get(f"{{{NS['xlink']}}}href") if leaf is not None else None,
            variables=variables, has_no_data=ig.get(f"{{{NS['def']}}}HasNoData") == "Yes")
    codelists = {}
    for cl in mdv.findall("odm:CodeList", NS):
        alias = cl.find("odm:Alias[@Context='nci:ExtCodeID']", NS)
        vals, ext = [], []
        for item in list(cl.findall("odm:CodeListItem", NS)) + list(cl.findall("odm:EnumeratedItem", NS)):
            vals.append(item.get("CodedValue"))
            if item.get(f"{{{NS['def']}}}ExtendedValue") == "Yes":
                ext.append(item.get("CodedValue"))
        codelists[cl.get("OID")] = DefineCodelist(
            oid=cl.get("OID"), nci_code=alias.get("Name") if alias is not None else None,
            extensible=None, values=vals, extended=ext,
            external=cl.find("odm:ExternalCodeList", NS) is not None)
    ct = [{"publishing_set": s.get("PublishingSet") or "", "version": s.get("Version") or ""}
          for s in mdv.findall("def:Standards/def:Standard", NS) if s.get("Type") == "CT"]
    return DefineInfo(path=str(path), xml=xml, datasets=datasets, codelists=codelists, ct_standards=ct)


def read_dataset_json_with_meta(path: Path) -> tuple[pd.DataFrame, DatasetMeta]:
    """Read one Dataset-JSON 1.1 file (``cdisc_pipe.datasetjson``) and its column metadata."""
    import json

    from cdisc_pipe.datasetjson import read_dataset_json

    df = read_dataset_json(path)
    text = path.read_text(encoding="utf-8")
    head = json.loads(text.splitlines()[0] if path.suffix.lower() == ".ndjson" else text)
    cols = {}
    for c in head.get("columns", []):
        numeric = c.get("dataType") in ("integer", "float", "double", "decimal") or c.get("targetDataType") == "integer"
        cols[c["name"]] = ColumnMeta(name=c["name"], label=c.get("label"), type="numeric" if numeric else "text",
                                     length=c.get("length") if not numeric else 8, format=read_format(c.get("displayFormat")))
    df = _normalise(df, {k: v.format for k, v in cols.items()}, trimmed=True)
    name = str(head.get("name") or path.stem).upper()
    return df, DatasetMeta(name=name, label=head.get("label"), path=str(path), columns=cols)


def load_folder(folder: Path, purpose: str, data: StudyData, problems: list[str], *,
                options: ReadOptions | None = None) -> None:
    """Add every ``*.xpt`` of ``folder`` (Dataset-JSON ``*.json``/``*.ndjson`` when there is no XPT)
    and its define.xml to ``data``; unreadable files -> problems (the run continues).

    ``options`` (default: UTF-8, else the encoding detected per file): a forced
    encoding that does not decode a file is bad input, not a finding: one ``InputError`` naming
    every such file, variable, row and bytes, after the folder has been read.
    """
    options = options or ReadOptions()
    data.folders[purpose] = str(folder)
    paths = sorted(folder.glob("*.xpt"))
    xpt = bool(paths)
    if not paths:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".json", ".ndjson")
                       and p.stem.lower() not in ("manifest", "define"))
    undecodable: list[Problem] = []
    for path in paths:
        try:
            df, meta = read_xpt_with_meta(path, options) if xpt else read_dataset_json_with_meta(path)
        except XptDecodeError as exc:
            undecodable.extend(exc.problems)
            continue
        except InputError as exc:  # a broken file is reported, the run continues
            problems.extend(f"{path}: cannot read dataset file: {p.message}" for p in exc.problems)
            continue
        except Exception as exc:  # a broken file is reported, the run continues
            problems.append(f"{path}: cannot read dataset file: {exc}")
            continue
        name = path.stem.upper()
        data.datasets[name] = df
        data.meta[name] = meta
        data.purpose[name] = purpose
    raise_if(undecodable, stage="validate")
    _load_define(folder, purpose, data, problems)


def _load_define(folder: Path, purpose: str, data: StudyData, problems: list[str]) -> None:
    """The folder's define.xml into ``data.defines``; one that does not parse -> problems."""
    define = folder / "define.xml"
    if define.is_file():
        try:
            data.defines[purpose] = parse_define(define)
        except Exception as exc:
            problems.append(f"{define}: cannot parse define.xml: {exc}")


def dataset_class(name: str, data: StudyData, spec: StudySpec | None) -> str | None:
    """The define class of a dataset: from the spec, else define.xml, else the SDTM domain table."""
    if spec is not None and name in spec.datasets:
        return spec.datasets[name].dataset_class
    dd = data.define_dataset(name)
    if dd is not None and dd.klass:
        return dd.klass.upper()
    if name.startswith("SUPP") or name == "RELREC":
        return "RELATIONSHIP"
    if name == "ADSL":
        return "SUBJECT LEVEL ANALYSIS DATASET"
    if data.purpose.get(name) == "Analysis":
        return "BASIC DATA STRUCTURE" if {"PARAMCD", "AVAL"} & set(data.datasets[name].columns) else "ADAM OTHER"
    return DOMAIN_CLASSES.get(name) or DOMAIN_CLASSES.get(name[:2])


def domain_prefix(name: str, df: pd.DataFrame, spec: StudySpec | None) -> str | None:
    """The SDTM variable prefix (``LB`` for LB, ``QS`` for QSPH); None for ADaM and relationship data."""
    if name.startswith("SUPP") or name == "RELREC" or name.startswith("AD"):
        return None
    if spec is not None and name in spec.datasets and spec.datasets[name].domain:
        return spec.datasets[name].domain
    if "DOMAIN" in df.columns:
        vals = df["DOMAIN"].dropna()
        if len(vals):
            return str(vals.iloc[0])
    return name[:2]


# --------------------------------------------------------------------------------------------
# what a run holds: the datasets it wrote, as reading their files back would give them


def _text_as_read(values: np.ndarray, index: pd.Index) -> pd.Series:
    """A text column of a conformed frame as the XPT reader returns it after the writer's round
    trip: missing values were written as blanks; the reader strips trailing blanks and NULs, ends
    the value at its first NUL (ReadStat's ``readstat_convert``) and makes ``""`` missing.  Worked
    on the distinct values only."""
    from cdisc_pipe.xpt.conform import factorized
    from cdisc_pipe.xpt.reader import str_column

    values = np.asarray(values, dtype=object)
    # a conformed frame holds one object per distinct value: factorized by identity when it can be
    f = factorized(values)
    codes, uniques = f if f is not None else pd.factorize(values, use_na_sentinel=True)
    out = []
    for v in uniques.tolist():  # distinct values, not rows
        s = str(v)
        cut = s.find("\0")
        out.append((s if cut < 0 else s[:cut]).rstrip(" "))
    return pd.Series(str_column(codes, np.array(out, dtype=object)), index=index, copy=False)


def _numeric_as_read(s: pd.Series) -> np.ndarray:
    """float64 values after the writer's IEEE -> IBM conversion and the reader's IBM -> IEEE one
    (the writer's and the reader's own functions, in memory): bit for bit what the file gives."""
    from cdisc_pipe.xpt.reader import ibm_to_ieee_bits
    from cdisc_pipe.xpt.v5 import _numeric_block

    col = s.to_numpy(dtype=object) if s.dtype == object else s.to_numpy(dtype=np.float64, na_value=np.nan)
    block = _numeric_block(col)  # (n, 8) big-endian IBM bytes: what the file holds
    return ibm_to_ieee_bits(np.ascontiguousarray(block).view(">u8").reshape(-1).astype(np.uint64))


def held_dataset(df: pd.DataFrame, written, folder: Path) -> tuple[pd.DataFrame, DatasetMeta]:
    """A conformed frame as the writer wrote it (``written``: its
    :class:`~cdisc_pipe.written.WrittenDataset`; ``df``: its frame as the XPT file got it,
    ``cdisc_pipe.xpt.datasets.PreparedWrite.frames``),
    as :func:`read_xpt_with_meta` reads the file back from ``folder``: same columns and types,
    blanks missing, numerics through the IBM round trip, SAS dates as datetime64, and the file
    metadata (labels, storage lengths, formats) the writer returned.  No file is read; the test
    suite proves both equal (tests/test_validate_memory.py).  :func:`held_frame` and
    :func:`held_meta` are its two halves, for a run that converts the frame while the file is
    still being written."""
    frame = _held_frame(df, [(c.name, c.type, c.display_format) for c in written.columns])
    return frame, held_meta(frame, written, folder)


def held_frame(df: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """The frame half of :func:`held_dataset`, before the file is written: ``df`` (conformed, as
    the XPT file gets it) with the types and formats the writer gives it from ``dataset`` (its
    spec, ``cdisc_pipe.xpt.datasets.xpt_arguments``).  :func:`held_meta` adds the metadata."""
    from cdisc_pipe.xpt.datasets import xpt_arguments

    args = xpt_arguments(df, dataset)
    return _held_frame(df, [(n, args["types"][n], args["variable_format"].get(n)) for n in df.columns])


def held_meta(frame: pd.DataFrame, written, folder: Path) -> DatasetMeta:
    """The metadata half of :func:`held_dataset`: what the writer returned (``written``) for the file
    in ``folder`` whose data :func:`held_frame` converted as ``frame``."""
    if list(frame.columns) != [c.name for c in written.columns]:  # one spec made both: a mismatch is a bug
        raise RuntimeError(f"{written.name}: held columns {list(frame.columns)} differ from the written ones")
    meta_cols = {}
    for c in written.columns:
        fmt = read_format(c.display_format)
        meta_cols[c.name] = ColumnMeta(name=c.name, label=c.label or None, type=c.type, length=c.length,
                                       format=_shown_format(fmt))
    path = Path(folder) / Path(written.xpt_path).name
    return DatasetMeta(name=written.name.upper(), label=written.label or None, path=str(path), columns=meta_cols,
                       encoding="utf-8")


def _held_frame(df: pd.DataFrame, columns: list[tuple[str, str, str | None]]) -> pd.DataFrame:
    """``df`` as read back: ``columns`` are (name, "numeric"/"text", display format) as written."""
    from cdisc_pipe.xpt.conform import format_kind
    from cdisc_pipe.xpt.datasets import _sas_to_datetimes

    index = pd.RangeIndex(len(df))
    cols: dict[str, pd.Series] = {}
    formats: dict[str, str | None] = {}
    for name, kind, display_format in columns:
        fmt = read_format(display_format)
        if kind == "numeric":
            values = pd.Series(_numeric_as_read(df[name]), index=index, copy=False)
            date_kind = format_kind(fmt)
            cols[name] = _sas_to_datetimes(values, date_kind) if date_kind else values
        else:
            cols[name] = _text_as_read(df[name].to_numpy(dtype=object), index)
        formats[name] = _shown_format(fmt)
    frame = pd.DataFrame(cols, columns=[c[0] for c in columns], index=index, copy=False)
    return _normalise(frame, formats, trimmed=True)


def held_datasets(frames: dict[str, pd.DataFrame], written, folder: Path) -> dict[str, tuple[pd.DataFrame, DatasetMeta]]:
    """The datasets a run holds, by upper-case file stem (as :func:`load_held` takes them): each
    frame :func:`held_frame` converted (``frames``, by dataset name) with the metadata of its
    written file (``written``: the writers' records; :func:`held_meta`)."""
    return {Path(w.xpt_path).stem.upper(): (frames[w.name], held_meta(frames[w.name], w, folder))
            for w in written if w.name in frames}


def load_held(held: dict[str, tuple[pd.DataFrame, DatasetMeta]], folder: Path, purpose: str, data: StudyData,
              problems: list[str], define_folder: Path | None = None) -> None:
    """Like :func:`load_folder`, for the datasets a run holds (``held``: by upper-case file stem, from
    :func:`held_dataset`): only ``define.xml`` is read from ``folder`` (or from ``define_folder``,
    where it is before the run moves it to ``folder``: it is then known by its path in ``folder``)."""
    folder = Path(folder)
    data.folders[purpose] = str(folder)
    for name in sorted(held, key=lambda n: Path(held[n][1].path).name):  # file order, as load_folder
        df, meta = held[name]
        data.datasets[name] = df
        data.meta[name] = meta
        data.purpose[name] = purpose
    _load_define(define_folder or folder, purpose, data, problems)
    if define_folder is not None and purpose in data.defines:
        from dataclasses import replace

        data.defines[purpose] = replace(data.defines[purpose], path=str(folder / "define.xml"))
