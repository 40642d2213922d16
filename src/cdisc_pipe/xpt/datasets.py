"""Write a stage's datasets (XPT v5 + Dataset-JSON) and read them back.

``write_datasets`` conforms and checks every dataset first, raises one ``InputError`` listing
every violation of every dataset, and only then writes ``<name>.xpt`` and ``<name>.json`` (or
``.ndjson``) into ``out_dir``; it returns one :class:`~cdisc_pipe.written.WrittenDataset` per
dataset with the written lengths and order that define.xml must repeat.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal, Mapping

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
from cdisc_pipe.spec.model import Dataset, StudySpec
from cdisc_pipe.written import WrittenColumn, WrittenDataset
from cdisc_pipe.xpt.conform import check_frame, conform_frame, format_kind
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
    """Conform and FDA-check every frame; return the conformed frames and all problems."""
    problems: list[Problem] = []
    ready: dict[str, tuple[Dataset, pd.DataFrame]] = {}
    for name, df in frames.items():
        try:
            dataset = spec.dataset(name)
        except KeyError:
            problems.append(Problem(file=name.upper(), message="no dataset spec for this dataset",
                                    hint="add specs/sdtm|adam/<name>.yaml or drop the dataset"))
            continue
        if dataset.purpose != purpose:
            problems.append(Problem(file=dataset.name, message=f"dataset purpose is {dataset.purpose}, writing {purpose} datasets",
                                    hint="write SDTM and ADaM datasets in separate calls"))
            continue
        conformed, probs = conform_frame(df, dataset, spec)
        problems += probs
        if conformed is None:
            continue
        problems += check_frame(conformed, dataset)
        ready[dataset.name] = (dataset, conformed)
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
    """
    ready, problems = prepare_datasets(frames, spec, purpose=purpose)
    raise_if(problems, stage="write datasets")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timestamp = format_timestamp(spec.study.metadata_datetime)
    folder = PURPOSE_FOLDER[purpose]
    mdv_oid = metadata_version_oid or default_metadata_version_oid(spec, [d for d, _ in ready.values()], purpose)
    written: list[WrittenDataset] = []
    for name, (dataset, df) in ready.items():
        xpt_path = out_dir / f"{name.lower()}.xpt"
        variables, xpt_sha = write_xpt_file(df, dataset, xpt_path, timestamp=timestamp, engine=engine)
        lengths = {v.name: v.length for v in variables}
        json_rel, json_sha = None, None
        if write_json:
            res = write_dataset_json(df, dataset, spec, out_dir, lengths, ndjson_threshold=ndjson_threshold,
                                     metadata_version_oid=mdv_oid)
            json_rel, json_sha = f"{folder}/{res.path.name}", res.sha256
        columns = tuple(
            WrittenColumn(name=v.name, label=v.label, type=v.type, length=v.length, display_format=v.format, order=i)
            for i, v in enumerate(variables, start=1)
        )
        warnings = reader_warnings(xpt_path, variables, len(df))
        written.append(
            WrittenDataset(name=name, label=dataset.label, purpose=purpose, records=len(df), columns=columns,
                           xpt_path=f"{folder}/{xpt_path.name}", json_path=json_rel, xpt_sha256=xpt_sha,
                           json_sha256=json_sha, extra={"reader_warnings": warnings} if warnings else {})
        )
    return written


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


def read_xpt(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read an XPT file with pyreadstat, in the pipeline's in-memory conventions.

    Character blanks -> ``None`` (object columns of ``str``); numerics float64; numerics with a
    DATE-type format -> datetime64[ns], DATETIME-type -> datetime64[ns], TIME-type ->
    timedelta64[ns].  Raises ``InputError`` for an unreadable file.
    """
    df, _ = read_xpt_with_meta(path)
    return df


def read_xpt_with_meta(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, "pyreadstat.metadata_container"]:
    """:func:`read_xpt` plus pyreadstat's metadata (labels, formats, storage widths, table name)."""
    try:
        df, meta = pyreadstat.read_xport(str(path), disable_datetime_conversion=True)
    except Exception as exc:  # pyreadstat raises its own error types for unreadable files
        raise InputError(Problem(file=str(path), message=f"cannot read XPT file: {exc}",
                                 hint="check that it is a SAS transport (v5/v8) file")) from None
    cols: dict[str, pd.Series] = {}
    for name in df.columns:
        s = df[name]
        if meta.readstat_variable_types.get(name) == "string":
            obj = s.astype(object)
            cols[name] = obj.where(obj.notna() & (obj != ""), None).astype(object)
            continue
        kind = format_kind(read_format(meta.original_variable_types.get(name)))
        cols[name] = _sas_to_datetimes(s, kind) if kind else s.astype("float64")
    return pd.DataFrame(cols, columns=list(df.columns)), meta


def read_folder(folder: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """Every dataset of a folder by upper-case name: ``*.xpt``, or Dataset-JSON when no XPT."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(Problem(file=str(folder), message="dataset folder does not exist"))
    xpts = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".xpt")
    if xpts:
        return {p.stem.upper(): read_xpt(p) for p in xpts}
    jsons = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".json", ".ndjson") and p.stem.lower() != "manifest")
    return {p.stem.upper(): read_dataset_json(p) for p in jsons}
