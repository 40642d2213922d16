"""Write a stage's datasets (XPT v5 + Dataset-JSON) and read them back.

``write_datasets`` conforms and checks every dataset first, raises one ``InputError`` listing
every violation of every dataset, and only then writes ``<name>.xpt`` and ``<name>.json`` (or
``.ndjson``) into ``out_dir``; it returns one :class:`~cdisc_pipe.written.WrittenDataset` per
dataset with the written lengths and order that define.xml must repeat.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
import pyreadstat

from cdisc_pipe.datasetjson import (
    DEFAULT_NDJSON_THRESHOLD,
    default_metadata_version_oid,
    read_dataset_json,
    write_dataset_json,
)
from cdisc_pipe.errors import InputError, Problem, raise_if
from cdisc_pipe.parallel import Forked, map_shared, return_free_memory, share
from cdisc_pipe.spec.model import Dataset, StudySpec
from cdisc_pipe.written import WrittenColumn, WrittenDataset
from cdisc_pipe.xpt.conform import ascii_frame, check_frame, conform_frame, format_kind, text_byte_lengths
from cdisc_pipe.xpt.reader import (
    XptData,
    XptMetadata,
    XptReadError,
    build_metadata,
    column_names,
    decode_values,
    read_data,
    str_column,
)
from cdisc_pipe.xpt.v5 import RECORD, XptVariable, format_timestamp, pandas_row_count, read_format, xpt_v5_chunks

Engine = Literal["numpy", "pyreadstat"]
#: Folder of each purpose under the output root; ``WrittenDataset.xpt_path`` is relative to the
#: output root (``sdtm/dm.xpt``) whatever temporary folder the stage writes into.
PURPOSE_FOLDER = {"Tabulation": "sdtm", "Analysis": "adam"}
#: Byte ranges of the four header time stamps in an XPT v5 file (records 2, 3, 6 and 7).
TIMESTAMP_SPANS = ((144, 160), (160, 176), (464, 480), (480, 496))


def xpt_arguments(df: pd.DataFrame, dataset: Dataset) -> dict:
    """Labels, formats and types for the XPT writer, from the spec (numeric formats only)."""
    labels = {n: dataset.variable(n).label for n in df.columns}
    formats = {
        n: dataset.variable(n).display_format
        for n in df.columns
        if dataset.variable(n).is_numeric and dataset.variable(n).display_format
    }
    types = {n: ("numeric" if dataset.variable(n).is_numeric else "text") for n in df.columns}
    return {"column_labels": labels, "variable_format": formats, "types": types}


def write_xpt_file(
    df: pd.DataFrame,
    dataset: Dataset,
    path: Path,
    *,
    timestamp: str,
    engine: Engine = "numpy",
) -> tuple[list[XptVariable], str]:
    """Write a conformed frame to ``path`` atomically; return the written variables and SHA-256.

    ``engine="pyreadstat"`` writes through ``pyreadstat.write_xport`` (the reference) and then
    stamps the header with ``timestamp`` so both engines give the same bytes.
    """
    args = xpt_arguments(df, dataset)
    tmp = path.with_name(path.name + ".tmp")
    digest = hashlib.sha256()
    if engine == "numpy":
        variables, chunks = xpt_v5_chunks(df, table_name=dataset.name, file_label=dataset.label, timestamp=timestamp, **args)
        with open(tmp, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                digest.update(chunk)
    elif engine == "pyreadstat":
        variables = write_xpt_pyreadstat(df, tmp, table_name=dataset.name, file_label=dataset.label, timestamp=timestamp,
                                         column_labels=args["column_labels"], variable_format=args["variable_format"],
                                         types=args["types"])
        digest.update(tmp.read_bytes())
    else:
        raise ValueError(f"unknown XPT engine {engine!r}")
    os.replace(tmp, path)
    return variables, digest.hexdigest()


def reader_warnings(path: Path, variables: list[XptVariable], records: int) -> list[str]:
    """Known reader limitations that apply to this file (the file itself is correct).

    - ``pandas.read_sas`` miscounts records when rows are <= 80 bytes and the last record holds
      8-byte blank words (see :func:`cdisc_pipe.xpt.v5.pandas_row_count`);
    - ``pandas.read_sas`` reads the numeric value 0 as 5.4e-79 (2**-260; pandas issue 50670) and
      fails on a file with no records.
    """
    warnings = []
    row_len = sum(v.length for v in variables)
    size = path.stat().st_size
    data_len = -(-records * row_len // RECORD) * RECORD
    with open(path, "rb") as fh:
        fh.seek(max(size - RECORD, 0))
        tail = fh.read(RECORD)
    if records and pandas_row_count(tail, data_len, row_len) != records:
        warnings.append(
            f"pandas.read_sas would read {pandas_row_count(tail, data_len, row_len)} of {records} records "
            f"(rows of {row_len} bytes; pandas reader limitation); pyreadstat and SAS read all"
        )
    if records == 0:
        warnings.append("pandas.read_sas cannot read an XPT file with no records (pandas reader limitation)")
    return warnings


def write_xpt_pyreadstat(
    df: pd.DataFrame,
    path: Path,
    *,
    table_name: str,
    file_label: str,
    timestamp: str,
    column_labels: Mapping[str, str | None],
    variable_format: Mapping[str, str],
    types: Mapping[str, str],
) -> list[XptVariable]:
    """The reference writer: ``pyreadstat.write_xport`` (v5), header stamped with ``timestamp``.

    Text columns go in as object columns of ``str`` ('' for missing) so pyreadstat types them as
    character even when all values are missing.
    """
    frame = pd.DataFrame(
        {
            n: (df[n].astype("float64") if types[n] == "numeric" else df[n].astype(object).where(df[n].notna(), ""))
            for n in df.columns
        }
    )
    frame = frame.astype({n: object for n in df.columns if types[n] != "numeric"})
    pyreadstat.write_xport(
        frame,
        str(path),
        file_format_version=5,
        table_name=table_name,
        file_label=file_label,
        column_labels=[column_labels.get(n) for n in df.columns],
        variable_format=dict(variable_format) or None,
    )
    raw = bytearray(Path(path).read_bytes())
    stamp = timestamp.encode("ascii")
    for a, b in TIMESTAMP_SPANS:
        raw[a:b] = stamp
    Path(path).write_bytes(bytes(raw))
    variables = []
    for n in df.columns:
        if types[n] == "numeric":
            length = 8
        else:
            vals = frame[n]
            length = max(1, int(vals.str.encode("utf-8").str.len().max() or 1)) if len(vals) else 1
        variables.append(XptVariable(n, column_labels.get(n) or "", "numeric" if types[n] == "numeric" else "text",
                                     length, variable_format.get(n)))
    return variables


def prepare_datasets(
    frames: Mapping[str, pd.DataFrame], spec: StudySpec, *, purpose: str
) -> tuple[dict[str, tuple[Dataset, pd.DataFrame]], list[Problem]]:
    """Conform and FDA-check every frame; return the conformed frames (as the XPT file gets them:
    text made ASCII, see :func:`~cdisc_pipe.xpt.conform.ascii_frame`) and all problems."""
    ready, problems = _prepare(frames, spec, purpose=purpose)
    return {n: (r.dataset, r.xpt) for n, r in ready.items()}, problems


@dataclass(frozen=True)
class _Ready:
    dataset: Dataset
    xpt: pd.DataFrame  # ASCII text (XPT v5)
    original: pd.DataFrame  # the conformed frame, UTF-8 text as built (Dataset-JSON)
    transliterated: dict[str, int]  # variable -> rows whose XPT text differs from the original


def _prepare_one(name: str, df: pd.DataFrame, spec: StudySpec, purpose: str, consume: bool = False
                 ) -> tuple[_Ready | None, list[Problem]]:
    """One dataset conformed to its spec, its XPT text made ASCII and checked; or its problems.
    ``consume``: the caller gives ``df`` up (its columns are taken out as they are converted)."""
    try:
        dataset = spec.dataset(name)
    except KeyError:
        return None, [Problem(file=name.upper(), message="no dataset spec for this dataset",
                              hint="add specs/sdtm|adam/<name>.yaml or drop the dataset")]
    if dataset.purpose != purpose:
        return None, [Problem(file=dataset.name, message=f"dataset purpose is {dataset.purpose}, writing {purpose} datasets",
                              hint="write SDTM and ADaM datasets in separate calls")]
    conformed, problems = conform_frame(df, dataset, spec, consume=consume)
    del df
    if conformed is None:
        return None, problems
    xpt, changed = ascii_frame(conformed, dataset)
    return _Ready(dataset, xpt, conformed, changed), problems + check_frame(xpt, dataset)


def _prepare(frames: Mapping[str, pd.DataFrame], spec: StudySpec, *, purpose: str, share_cores: bool = False,
             consume: bool = False) -> tuple[dict[str, _Ready], list[Problem]]:
    """Every dataset through :func:`_prepare_one`, problems in ``frames`` order; ``share``: about
    half the records in a forked second process (``cdisc_pipe.parallel.map_shared``), for a caller
    with a core to spare; ``consume`` (``frames`` a dict, not shared): each frame is taken out of
    ``frames`` as it is conformed, so that its memory is freed before the next one's is taken."""
    if consume and not share_cores:
        if not isinstance(frames, dict):
            raise TypeError("consume=True needs the frames in a dict (they are taken out of it)")
        done = {}
        for name in list(frames):
            done[name] = _prepare_one(name, frames.pop(name), spec, purpose, consume=True)
            return_free_memory()
    else:
        done = map_shared(lambda name: _prepare_one(name, frames[name], spec, purpose),
                          [(name, len(df)) for name, df in frames.items()], enabled=share_cores)
    problems: list[Problem] = []
    ready: dict[str, _Ready] = {}
    for r, probs in done.values():
        problems += probs
        if r is not None:
            ready[r.dataset.name] = r
    return ready, problems


def write_datasets(
    frames: Mapping[str, pd.DataFrame],
    spec: StudySpec,
    out_dir: Path,
    *,
    purpose: Literal["Tabulation", "Analysis"],
    write_json: bool = True,
    ndjson_threshold: int | None = DEFAULT_NDJSON_THRESHOLD,
    engine: Engine = "numpy",
    metadata_version_oid: str | None = None,
) -> list[WrittenDataset]:
    """Conform, check and write every dataset; return what was written, in ``frames`` order.

    Args:
        frames: dataset name (any case) -> frame with the spec's variable names.
        spec: the study spec (dataset metadata, ``study.metadata_datetime`` for the headers).
        out_dir: folder receiving ``<name>.xpt`` and ``<name>.json``/``.ndjson`` (created).
        purpose: ``"Tabulation"`` (SDTM) or ``"Analysis"`` (ADaM); every frame must match.
        write_json: also write Dataset-JSON 1.1.
        ndjson_threshold: datasets with more records are written as ``.ndjson``; None = never.
        engine: ``"numpy"`` (fast writer) or ``"pyreadstat"`` (reference); same bytes.
        metadata_version_oid: Dataset-JSON ``metaDataVersionOID`` (default: the define.xml
            MetaDataVersion OID of these datasets, see ``default_metadata_version_oid``).

    Raises:
        InputError: every conform and FDA-rule problem of every dataset, before any file is written.

    ``WrittenDataset.xpt_path``/``json_path`` are relative to the output root: ``sdtm/dm.xpt`` for
    Tabulation, ``adam/adsl.xpt`` for Analysis (the file name alone is ``Path(xpt_path).name``).
    This is :func:`prepare_write` followed by :meth:`PreparedWrite.write` (whose
    :meth:`PreparedWrite.frames` are the frames as the XPT files get them).
    """
    return prepare_write(frames, spec, out_dir, purpose=purpose, write_json=write_json,
                         ndjson_threshold=ndjson_threshold, engine=engine,
                         metadata_version_oid=metadata_version_oid).write()


def prepare_write(
    frames: Mapping[str, pd.DataFrame],
    spec: StudySpec,
    out_dir: Path,
    *,
    purpose: Literal["Tabulation", "Analysis"],
    write_json: bool = True,
    ndjson_threshold: int | None = DEFAULT_NDJSON_THRESHOLD,
    engine: Engine = "numpy",
    metadata_version_oid: str | None = None,
    share_cores: bool = False,
    consume: bool = False,
) -> PreparedWrite:
    """The first half of :func:`write_datasets` (same arguments): conform and check every dataset,
    raise one ``InputError`` with every problem; nothing is written yet.  The files are written by
    :meth:`PreparedWrite.write`, which a run may call in a second process while it goes on with
    the conformed frames (:meth:`PreparedWrite.frames`) in this one.  ``share_cores``: conform
    about half the records in a forked second process (for a caller whose other core is idle).
    ``consume`` (``frames`` a dict the caller needs no more; not with ``share_cores``): each frame
    is removed from ``frames`` once conformed (its memory freed before the next is conformed)."""
    ready, problems = _prepare(frames, spec, purpose=purpose, share_cores=share_cores, consume=consume)
    raise_if(problems, stage="write datasets")
    folder = PURPOSE_FOLDER[purpose]
    mdv_oid = metadata_version_oid or default_metadata_version_oid(spec, [r.dataset for r in ready.values()], purpose)
    job = _WriteJob(spec, Path(out_dir), purpose, folder, format_timestamp(spec.study.metadata_datetime), write_json,
                    ndjson_threshold, engine, mdv_oid)
    return PreparedWrite(job, ready)


@dataclass(frozen=True)
class PreparedWrite:
    """Conformed, checked datasets of one :func:`prepare_write` call, ready to be written."""

    job: _WriteJob
    ready: dict[str, _Ready]

    def frames(self) -> dict[str, pd.DataFrame]:
        """Each dataset with records, as its XPT file gets it (by dataset name)."""
        return {name: r.xpt for name, r in self.ready.items() if len(r.xpt)}

    def write(self) -> list[WrittenDataset]:
        """Write every file into ``out_dir``; the records of what was written, in ``frames`` order."""
        job, ready = self.job, self.ready
        job.out_dir.mkdir(parents=True, exist_ok=True)
        no_data = {name: _no_data(r.xpt, r.dataset, name, job.purpose, job.folder, job.out_dir, job.timestamp,
                                  job.write_json)
                   for name, r in ready.items() if len(r.xpt) == 0}
        # Each file is written by one process with the same code, so the bytes do not depend on how
        # the datasets are shared: about half the records go to a forked second process
        # (cdisc_pipe.parallel; none when this already runs in one)
        mine, theirs = share([(name, len(r.xpt)) for name, r in ready.items() if name not in no_data])
        child = Forked(_write_some, job, {n: ready[n] for n in theirs}) if theirs else None
        try:
            done = _write_some(job, {n: ready[n] for n in mine})
        except BaseException:
            if child is not None:
                child.cancel()
            raise
        if child is not None:
            done.update(child.result())
        _write_no_data(job.out_dir, list(no_data.values()), rewritten=set(ready))
        return [no_data[name] if name in no_data else done[name] for name in ready]


@dataclass(frozen=True)
class _WriteJob:
    """What every dataset file of one ``write_datasets`` call shares."""

    spec: StudySpec
    out_dir: Path
    purpose: str
    folder: str
    timestamp: str
    write_json: bool
    ndjson_threshold: int | None
    engine: Engine
    mdv_oid: str


def _write_some(job: _WriteJob, ready: dict[str, _Ready]) -> dict[str, WrittenDataset]:
    """Write the XPT (and Dataset-JSON) file of each dataset; their records by name."""
    return {name: _write_one(job, name, r) for name, r in ready.items()}


def _write_one(job: _WriteJob, name: str, r: _Ready) -> WrittenDataset:
    dataset, df = r.dataset, r.xpt
    xpt_path = job.out_dir / f"{name.lower()}.xpt"
    variables, xpt_sha = write_xpt_file(df, dataset, xpt_path, timestamp=job.timestamp, engine=job.engine)
    lengths = {v.name: v.length for v in variables}
    json_rel, json_sha = None, None
    if job.write_json:
        # Dataset-JSON carries UTF-8: the original text, with lengths of that text (UTF-8 bytes)
        json_lengths = dict(lengths)
        for var in r.transliterated:
            nbytes, _ = text_byte_lengths(r.original[var])
            json_lengths[var] = max(1, int(nbytes.max(initial=0)))
        res = write_dataset_json(r.original, dataset, job.spec, job.out_dir, json_lengths,
                                 ndjson_threshold=job.ndjson_threshold, metadata_version_oid=job.mdv_oid)
        json_rel, json_sha = f"{job.folder}/{res.path.name}", res.sha256
    columns = tuple(
        WrittenColumn(name=v.name, label=v.label, type=v.type, length=v.length, display_format=v.format, order=i)
        for i, v in enumerate(variables, start=1)
    )
    warnings = reader_warnings(xpt_path, variables, len(df))
    extra: dict[str, Any] = {"reader_warnings": warnings} if warnings else {}
    if r.transliterated:
        extra["transliterated"] = dict(r.transliterated)
    return WrittenDataset(name=name, label=dataset.label, purpose=job.purpose, records=len(df), columns=columns,
                          xpt_path=f"{job.folder}/{xpt_path.name}", json_path=json_rel, xpt_sha256=xpt_sha,
                          json_sha256=json_sha, extra=extra)


#: The datasets of a folder that had no records (no file written), with their written metadata:
#: ``cdisc-pipe define`` and the reviewer's guides read it (see :func:`no_data_datasets`).
NO_DATA_FILE = "_stage/no_data.json"


def _no_data(df: pd.DataFrame, dataset: Dataset, name: str, purpose: str, folder: str, out_dir: Path,
             timestamp: str, write_json: bool) -> WrittenDataset:
    """A dataset without records is not submitted (FDA Technical Conformance Guide: empty datasets are
    not submitted; define.xml lists it with ``def:HasNoData="Yes"`` and no leaf): no file is written
    (a stale one of an earlier write is removed) and the record says what the file would have held."""
    variables, _ = xpt_v5_chunks(df, table_name=dataset.name, file_label=dataset.label, timestamp=timestamp,
                                 **xpt_arguments(df, dataset))
    for ext in (".xpt", ".json", ".ndjson"):
        (out_dir / f"{name.lower()}{ext}").unlink(missing_ok=True)
    columns = tuple(
        WrittenColumn(name=v.name, label=v.label, type=v.type, length=v.length, display_format=v.format, order=i)
        for i, v in enumerate(variables, start=1)
    )
    return WrittenDataset(name=name, label=dataset.label, purpose=purpose, records=0, columns=columns,
                          xpt_path=f"{folder}/{name.lower()}.xpt",
                          json_path=f"{folder}/{name.lower()}.json" if write_json else None,
                          has_no_data=True)


def _write_no_data(out_dir: Path, no_data: list[WrittenDataset], rewritten: set[str]) -> None:
    """Update ``_stage/no_data.json``: the datasets of this write without records replace what it
    said of the datasets this write rewrote; entries of other datasets are kept (removed file when
    none is left)."""
    path = out_dir / NO_DATA_FILE
    try:
        kept = [r for r in json.loads(path.read_text(encoding="utf-8")) if str(r["name"]).upper() not in rewritten]
    except (OSError, ValueError, TypeError, KeyError):
        kept = []
    rows = kept + [{"name": w.name, "label": w.label, "purpose": w.purpose,
                    "columns": [dict(name=c.name, label=c.label, type=c.type, length=c.length,
                                     display_format=c.display_format, order=c.order) for c in w.columns]}
                   for w in no_data]
    if not rows:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.sort(key=lambda r: r["name"])
    path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


def no_data_datasets(folder: str | os.PathLike[str], purpose: str | None = None) -> list[WrittenDataset]:
    """The datasets :func:`write_datasets` left out of ``folder`` for having no records (sorted by
    name; a dataset whose file is there after all is not listed).  Empty when there were none."""
    folder = Path(folder)
    path = folder / NO_DATA_FILE
    if not path.is_file():
        return []
    out = []
    for row in json.loads(path.read_text(encoding="utf-8")):
        name = str(row["name"]).upper()
        if (folder / f"{name.lower()}.xpt").exists():
            continue
        columns = tuple(WrittenColumn(**c) for c in row["columns"])
        out.append(WrittenDataset(name=name, label=row.get("label") or "", purpose=purpose or row["purpose"],
                                  records=0, columns=columns, xpt_path=f"{folder.name}/{name.lower()}.xpt",
                                  json_path=None, has_no_data=True))
    return out


# --------------------------------------------------------------------------------------------
# reading


def _sas_to_datetimes(values: pd.Series, kind: str) -> pd.Series:
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    if kind == "date":
        unit = 86_400
    else:
        unit = 1
    ns = np.round(arr * unit * 1e9)
    nat = np.isnan(ns)
    ints = np.where(nat, 0, ns).astype(np.int64)
    if kind == "time":
        out = ints.astype("timedelta64[ns]")
        out[nat] = np.timedelta64("NaT")
        return pd.Series(out, index=values.index)
    out = np.datetime64("1960-01-01T00:00:00", "ns") + ints.astype("timedelta64[ns]")
    out[nat] = np.datetime64("NaT")
    return pd.Series(out, index=values.index)


# Character data.  An XPT file does not say how its text is encoded.  The file is read once, by
# the vectorised reader (cdisc_pipe.xpt.reader), which keeps each text variable as its distinct
# raw values (stripped as ReadStat strips them) and per-row codes.  They are decoded here: as UTF-8
# (the pipeline writes ASCII; pyreadstat decodes UTF-8 by default) and, when some text (a value or
# a label) is not valid UTF-8, byte-transparently (latin-1: byte b -> U+00bb, what pyreadstat's
# ``encoding="ISO-8859-1"`` gave) and then with the first of DETECT_ENCODINGS that decodes every
# value, so that the encoding that fits is found and a value that fits none is named (variable,
# row, bytes).  What pyreadstat, the reference reader, does (measured, 1.2.8 and 1.3.8 behave the
# same; tests/test_xpt.py::test_pyreadstat_encoding_behaviour):
# - ``encoding=None`` hands ReadStat's bytes to Python's strict UTF-8 decoder: the first bad value
#   raises ``UnicodeDecodeError`` (a position inside that value; no variable, no row);
# - ``encoding="cp1252"`` (ReadStat converts with iconv) raises ``ReadstatError`` "Unable to
#   convert string to the requested encoding (invalid byte sequence)" on the five bytes cp1252
#   leaves undefined (0x81 0x8D 0x8F 0x90 0x9D), again without a location; ``"utf-8"`` spelt in
#   lower case goes through iconv and fails the same way, ``"UTF-8"`` skips it (as ``None``);
# - iconv names only: ``"latin-1"`` is "File has an unsupported character set";
# - ``encoding="ISO-8859-1"`` never fails and turns byte b into U+00bb: the lossless transport
#   the decoding below starts from (here a latin-1 decode of the distinct values, no second read);
# - trailing blanks are stripped by ReadStat in every mode, leading blanks kept, an all-blank
#   value is "" (the vectorised reader does the same, on the raw bytes).

#: Encodings tried, in this order, when a file's character data are not valid UTF-8.  latin-1
#: decodes every byte, so detection always ends with an encoding (and says so).
DETECT_ENCODINGS: tuple[str, ...] = ("cp1252", "latin-1")
#: The codec of the byte-transparent decoding (byte b -> U+00bb) that detection starts from.
_TRANSPORT = "latin-1"
EncodingSource = Literal["default", "detected", "forced"]
TextKind = Literal["object", "str"]


class XptDecodeError(InputError):
    """Character data that do not decode under a forced encoding (one Problem per variable)."""


@dataclass(frozen=True)
class XptRead:
    """One XPT file as read: the frame, pyreadstat's metadata and how its text was decoded.

    Attributes:
        frame: the data in the pipeline's conventions (see :func:`read_xpt`).
        meta: the metadata pyreadstat would give (:class:`~cdisc_pipe.xpt.reader.XptMetadata`:
            same fields); labels decoded like the data, ``file_encoding`` set to ``encoding``.
        encoding: Python codec name the character data and labels were decoded with.
        source: ``"default"`` (valid UTF-8), ``"detected"`` (not valid UTF-8: the first of
            :data:`DETECT_ENCODINGS` that decodes every value) or ``"forced"`` (the caller's).
        note: what to tell the user (``None`` for plain UTF-8 and for a forced encoding of a file
            without non-ASCII text): which encoding, why, and an example value; also that the file
            holds more than one dataset (only the first is read).
    """

    frame: pd.DataFrame
    meta: XptMetadata
    encoding: str
    source: EncodingSource
    note: str | None = None


@dataclass(frozen=True)
class _Text:
    """The distinct values of one character variable (``codes`` per row, -1 = missing), or one
    label (``codes`` None; ``variable`` None for the dataset label), as read byte-transparently."""

    variable: str | None
    codes: np.ndarray | None
    values: np.ndarray  # object array of str, every character <= U+00FF (one per byte)
    nonascii: np.ndarray  # positions in ``values`` of those with a byte >= 0x80


@dataclass(frozen=True)
class _Failure:
    """The values of one ``_Text`` that do not decode: the first by row, and how many rows."""

    text: _Text
    row: int | None  # 0-based row of the first such value; None for a label
    rows: int
    raw: bytes
    error: UnicodeDecodeError


def normalise_encoding(name: str) -> str:
    """The Python codec name of ``name``: ``"Windows-1252"`` -> ``"cp1252"``, ``"ISO-8859-1"`` ->
    ``"latin-1"``, ``"UTF8"`` -> ``"utf-8"``.

    Raises ValueError for a name Python does not know and for an encoding that does not read
    ASCII as ASCII (UTF-16, EBCDIC, ...): SAS transport files are ASCII-based.
    """
    try:
        codec = codecs.lookup(name).name
        ascii_compatible = bytes(range(128)).decode(codec) == bytes(range(128)).decode("ascii")
    except (LookupError, UnicodeDecodeError):
        raise ValueError(f"unknown encoding {name!r}: use a Python codec name such as utf-8, cp1252, latin-1, "
                         f"iso8859-15") from None
    if not ascii_compatible:
        raise ValueError(f"encoding {name!r} does not read ASCII bytes as ASCII; SAS transport files need one "
                         f"that does (utf-8, cp1252, latin-1, ...)")
    return "latin-1" if codec == "iso8859-1" else codec


def _read_data(path: Path) -> XptData:
    """The file's first member, raw (:func:`cdisc_pipe.xpt.reader.read_data`); a damaged or
    unreadable file is an InputError naming the file and what is wrong."""
    try:
        return read_data(path)
    except XptReadError as exc:
        problem = exc.problem
    except OSError as exc:
        problem = exc.strerror or str(exc)
    raise InputError(Problem(file=str(path), message=f"cannot read XPT file: {problem}",
                             hint="check that it is a SAS transport (v5/v8) file"))


def _nonascii(values: np.ndarray) -> np.ndarray:
    """Positions of the values holding a non-ASCII character (one C-level check when none do)."""
    if "".join(values).isascii():
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero(~pd.Series(values, dtype=object).str.isascii().to_numpy(dtype=bool))


def _metadata(data: XptData, encoding: str) -> XptMetadata:
    """pyreadstat's metadata of the file with every header text decoded by ``encoding`` (strict:
    raises UnicodeDecodeError); duplicated names renamed as pyreadstat renames them."""
    wanted = range(len(data.header.variables))
    names = column_names(data.header, encoding, wanted)
    return build_metadata(data.header, names, wanted, encoding, data.rows, data.more_members)


def _texts(data: XptData, meta: XptMetadata) -> list[_Text]:
    """Every character variable decoded byte-transparently, and every non-ASCII label."""
    texts = []
    for index, name in enumerate(meta.column_names):
        column = data.text.get(index)
        if column is None:
            continue
        values = np.array(decode_values(column.values, _TRANSPORT), dtype=object)
        texts.append(_Text(name, column.codes, values, _nonascii(values)))
    labels = [(n, lab) for n, lab in (meta.column_names_to_labels or {}).items() if lab] + \
             ([(None, meta.file_label)] if meta.file_label else [])
    for name, label in labels:
        if not label.isascii():
            texts.append(_Text(name, None, np.array([label], dtype=object), np.array([0])))
    return texts


def _decode(texts: list[_Text], encoding: str) -> tuple[list[np.ndarray], list[_Failure]]:
    """Decode the non-ASCII values of every text with ``encoding`` (strict).

    Returns the decoded distinct values of each text and one failure per text with values that
    do not decode.  Works on distinct non-ASCII values only; rows are located with numpy.
    """
    decoded, failures = [], []
    for text in texts:
        out = text.values.copy()
        bad: dict[int, tuple[bytes, UnicodeDecodeError]] = {}
        for i in text.nonascii:  # distinct non-ASCII values only (ASCII reads the same in any of them)
            raw = text.values[i].encode("latin-1")
            try:
                out[i] = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                bad[int(i)] = (raw, exc)
        decoded.append(out)
        if not bad:
            continue
        if text.codes is None:
            raw, exc = bad[0]
            failures.append(_Failure(text, None, 1, raw, exc))
            continue
        rows = np.flatnonzero(np.isin(text.codes, list(bad)))
        raw, exc = bad[int(text.codes[rows[0]])]
        failures.append(_Failure(text, int(rows[0]), len(rows), raw, exc))
    return decoded, failures


def _hex(raw: bytes) -> str:
    return " ".join(f"0x{b:02X}" for b in raw)


def _what(text: _Text) -> str:
    """``TSVAL``, ``label of TSVAL`` or ``dataset label``."""
    if text.codes is not None:
        return str(text.variable)
    return f"label of {text.variable}" if text.variable else "dataset label"


def _where(f: _Failure) -> str:
    """``TSVAL row 5: byte 0x92`` (rows 1-based), ``label of TSVAL: byte 0x92``."""
    bad = _hex(f.raw[f.error.start:f.error.end])
    return f"{_what(f.text)}{'' if f.row is None else f' row {f.row + 1}'}: byte {bad}"


def _decode_problems(path: Path, failures: list[_Failure], encoding: str) -> list[Problem]:
    """One Problem per variable (or label) whose values do not decode under a forced encoding."""
    problems = []
    for f in failures:
        bad = _hex(f.raw[f.error.start:f.error.end])
        more = f"; {f.rows} rows of {f.text.variable} hold such bytes, the first is shown" if f.rows > 1 else ""
        problems.append(Problem(
            file=str(path),
            entry=(f"row {f.row + 1}" if f.row is not None else "label" if f.text.variable else "dataset label"),
            column=f.text.variable,
            value=f.raw.decode("ascii", "backslashreplace"),
            message=f"byte {bad} at position {f.error.start + 1} is not valid {encoding} (--encoding {encoding}{more})",
            hint="Pass another --encoding (latin-1 decodes every byte), or leave --encoding out to detect the "
                 "encoding of each file"))
    return problems


def _example(texts: list[_Text], decoded: list[np.ndarray]) -> str:
    """The first non-ASCII value (variables in file order, then labels) as decoded, for notes."""
    for text, values in zip(texts, decoded):
        if len(text.nonascii):
            first = int(text.nonascii[0])
            if text.codes is not None:  # the non-ASCII value on the lowest row
                rows = np.flatnonzero(np.isin(text.codes, text.nonascii))
                first = int(text.codes[rows[0]])
            value = str(values[first])
            value = value if len(value) <= 60 else value[:57] + "..."
            return f"{_what(text)} {value!r}"
    return ""


def _text_column(codes: np.ndarray, values: np.ndarray, index: pd.Index) -> pd.Series:
    """Rows from distinct decoded values: blank -> None, object column of ``str``.

    The reader already stripped trailing blanks (on the bytes, as ReadStat), so each distinct
    value is only tested for ``""`` once and the rows are gathered in one numpy take.
    """
    values = np.asarray(values, dtype=object)
    if not len(values):
        return pd.Series(np.full(len(codes), None, dtype=object), index=index, dtype=object)
    values = np.where(values == "", None, values).astype(object)
    return pd.Series(values.take(codes), index=index, dtype=object, copy=False)


def _frame(data: XptData, meta: XptMetadata, texts: dict[int, np.ndarray], text: TextKind = "object") -> pd.DataFrame:
    """The pipeline's in-memory conventions; ``texts`` holds the decoded distinct values of each
    character variable (by variable index); ``text``: see :func:`read_xpt_file`."""
    index = pd.RangeIndex(data.rows)
    cols: dict[Any, pd.Series] = {}
    for i, name in enumerate(meta.column_names):
        if i in data.text:
            if text == "str":
                cols[name] = pd.Series(str_column(data.text[i].codes, texts[i]), index=index, copy=False)
            else:
                cols[name] = _text_column(data.text[i].codes, texts[i], index)
            continue
        values = pd.Series(data.numeric[i], index=index, copy=False)
        kind = format_kind(read_format(meta.original_variable_types.get(name)))
        cols[name] = _sas_to_datetimes(values, kind) if kind else values.astype("float64")
    # copy=False: no consolidation of the object columns into one 2-D block (a full copy of every
    # pointer, ~100 ms per million rows of LB); the values are the same
    return pd.DataFrame(cols, columns=list(meta.column_names), index=index, copy=False)


def _utf8(data: XptData) -> tuple[XptMetadata, dict[int, np.ndarray]] | None:
    """Metadata and decoded values when every text of the file is valid UTF-8, else None."""
    try:
        meta = _metadata(data, "utf-8")
        texts = {i: np.array(decode_values(col.values, "utf-8"), dtype=object) for i, col in data.text.items()}
    except UnicodeDecodeError:
        return None
    return meta, texts


def _members_note(path: Path, data: XptData, meta: XptMetadata) -> str | None:
    if not data.more_members:
        return None
    return (f"{path.name}: holds more than one dataset (member); only the first, {meta.table_name}, is read "
            f"(a submission transport file holds one dataset)")


def read_xpt_file(path: str | os.PathLike[str], *, encoding: str | None = None, text: TextKind = "object") -> XptRead:
    """Read one XPT file, decoding its character data; see :class:`XptRead`.

    Args:
        path: the ``.xpt`` file.
        text: how character variables are held: ``"object"`` (default; the pipeline's
            convention: object columns of ``str``, blank -> ``None``) or ``"str"`` (pandas' ``str``
            dtype, blank -> missing, each column's distinct values known to
            ``cdisc_pipe.xpt.reader.known_distinct``: what validation works on).
        encoding: ``None`` (default): UTF-8; a file whose text (values or labels) is not valid
            UTF-8 is decoded with the first of :data:`DETECT_ENCODINGS` (cp1252, then latin-1,
            which decodes every byte) that decodes all of it, and ``note`` says so.  A name
            (``"latin-1"``, ``"cp1252"``, ``"utf-8"``, any ASCII-compatible Python codec): that
            encoding for every value, strictly.

    Raises:
        InputError: an unreadable file or an unknown/unsuitable encoding name.
        XptDecodeError: (an InputError) values that do not decode under the forced encoding: one
            Problem per variable naming the first row, the bytes and how many rows have them.
    """
    path = Path(path)
    text_kind = text  # (``text`` names each decoded text below)
    forced = None
    if encoding is not None:
        try:
            forced = normalise_encoding(encoding)
        except ValueError as exc:
            raise InputError(Problem(file="--encoding", message=str(exc), value=encoding)) from None
    data = _read_data(path)
    if forced in (None, "utf-8"):
        plain = _utf8(data)
        if plain is not None:
            meta, values = plain
            meta.file_encoding = "utf-8"
            return XptRead(_frame(data, meta, values, text_kind), meta, "utf-8", "forced" if forced else "default",
                           _members_note(path, data, meta))
        # not valid UTF-8 somewhere: decode byte-transparently below and find out where
    meta = _metadata(data, _TRANSPORT)
    texts = _texts(data, meta)
    if forced is not None:
        chosen, source = forced, "forced"
        decoded, failures = _decode(texts, forced)
        if failures:
            raise XptDecodeError(_decode_problems(path, failures, forced))
    else:
        source = "detected"
        rejected: list[tuple[str, _Failure]] = []
        for chosen in ("utf-8", *DETECT_ENCODINGS):
            decoded, failures = _decode(texts, chosen)
            if not failures:
                break
            rejected.append((chosen, failures[0]))
    for text, values in zip(texts, decoded):
        if text.codes is None and text.variable is None:
            meta.file_label = str(values[0])
        elif text.codes is None:
            meta.column_names_to_labels[text.variable] = str(values[0])
    meta.column_labels = [meta.column_names_to_labels.get(n) for n in meta.column_names]
    meta.file_encoding = chosen
    nonascii = sum(len(t.nonascii) for t in texts)
    note = None
    if source == "detected":
        why = ", nor ".join(f"{enc} ({_where(f)})" for enc, f in rejected)
        how = "the fallback: every byte is a character, check these values" if chosen == "latin-1" else "detected"
        note = (f"{path.name}: character data are not valid {why}; read as {chosen} ({how}). {nonascii} distinct "
                f"non-ASCII value(s), e.g. {_example(texts, decoded)}. Pass --encoding NAME to read it otherwise")
    elif nonascii and chosen != "utf-8":
        note = f"{path.name}: read as {chosen} (--encoding); {nonascii} distinct non-ASCII value(s), e.g. " \
               f"{_example(texts, decoded)}"
    members = _members_note(path, data, meta)
    if members:
        note = f"{note}. {members}" if note else members
    # _texts lists the character variables first, in file order
    values = dict(zip(sorted(data.text), decoded))
    return XptRead(_frame(data, meta, values, text_kind), meta, chosen, source, note)


def read_xpt(path: str | os.PathLike[str], *, encoding: str | None = None) -> pd.DataFrame:
    """Read an XPT file (vectorised reader, same values as pyreadstat) in the pipeline's in-memory
    conventions.

    Character values: trailing blanks stripped, blank -> ``None`` (object columns of ``str``),
    leading blanks kept; numerics float64; numerics with a DATE-type format -> datetime64[ns],
    DATETIME-type -> datetime64[ns], TIME-type -> timedelta64[ns].  Text is UTF-8 unless it is not
    (then detected) or ``encoding`` forces one: see :func:`read_xpt_file`, which also returns the
    note to report when the encoding was not plain UTF-8.  Raises ``InputError`` for an unreadable
    file and for text a forced encoding does not decode.
    """
    return read_xpt_file(path, encoding=encoding).frame


def read_xpt_with_meta(path: str | os.PathLike[str], *,
                       encoding: str | None = None) -> tuple[pd.DataFrame, XptMetadata]:
    """:func:`read_xpt` plus the metadata pyreadstat would give (labels, formats, storage widths,
    table name; ``file_encoding`` = the codec the text was decoded with)."""
    read = read_xpt_file(path, encoding=encoding)
    return read.frame, read.meta


def read_folder(folder: str | os.PathLike[str], *, encoding: str | None = None) -> dict[str, pd.DataFrame]:
    """Every dataset of a folder by upper-case name: ``*.xpt``, or Dataset-JSON when no XPT.

    ``encoding`` applies to the XPT files (:func:`read_xpt_file`); Dataset-JSON is UTF-8.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(Problem(file=str(folder), message="dataset folder does not exist"))
    xpts = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".xpt")
    if xpts:
        return {p.stem.upper(): read_xpt(p, encoding=encoding) for p in xpts}
    jsons = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".json", ".ndjson") and p.stem.lower() != "manifest")
    return {p.stem.upper(): read_dataset_json(p) for p in jsons}


def declared_empty_frames(folder: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """Empty frames of the datasets the folder's ``define.xml`` declares ``def:HasNoData="Yes"`` and
    that have no file: a stage reading the folder (ADaM from an SDTM folder) sees the dataset with
    its variables and no records, as when it was built in memory.  Text (and ISO 8601 text) columns
    are object columns, numbers float64; ``{}`` without a define.xml."""
    import xml.etree.ElementTree as ET

    folder = Path(folder)
    path = folder / "define.xml"
    if not path.is_file():
        return {}
    odm = "{http://www.cdisc.org/ns/odm/v1.3}"
    has_no_data = "{http://www.cdisc.org/ns/def/v2.1}HasNoData"
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return {}
    items = {it.get("OID"): (it.get("Name"), it.get("DataType")) for it in root.iter(f"{odm}ItemDef")}
    present = {p.stem.upper() for p in folder.iterdir() if p.suffix.lower() in (".xpt", ".json", ".ndjson")}
    out: dict[str, pd.DataFrame] = {}
    for ig in root.iter(f"{odm}ItemGroupDef"):
        name = (ig.get("Name") or "").upper()
        if ig.get(has_no_data) != "Yes" or not name or name in present:
            continue
        refs = sorted(ig.findall(f"{odm}ItemRef"), key=lambda r: int(r.get("OrderNumber") or 0))
        cols = {}
        for ref in refs:
            var, dtype = items.get(ref.get("ItemOID"), (None, None))
            if var:
                cols[var] = pd.Series([], dtype="float64" if dtype in ("integer", "float") else object)
        out[name] = pd.DataFrame(cols)
    return out
