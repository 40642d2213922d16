"""CDISC Dataset-JSON v1.1 writer and reader (``.json``, or NDJSON ``.ndjson`` for large datasets).

Written from the same conformed frame and the same metadata as the XPT file, so the two carry the
same variables, order, labels, lengths and values.  Deterministic: the creation date-time is the
study's ``metadata_datetime`` (never the clock), keys are written in a fixed order, one row per
line.

Column data types (Dataset-JSON 1.1 section "dataType"):

============================================  =====================================================
spec ``data_type``                            Dataset-JSON
============================================  =====================================================
text                                          ``string`` (+ ``length`` = written length)
integer                                       ``integer``
float                                         ``double``
date/datetime/time with a ``display_format``  ``date``/``datetime``/``time`` with
(numeric ADaM dates)                          ``targetDataType: integer``: ISO 8601 values that a
                                              receiver turns back into SAS numbers
date/datetime/time without format (--DTC)     ``date``/``datetime``/``time`` (ISO 8601 text)
partial*/incomplete/duration/interval types   ``string``
============================================  =====================================================

OIDs: ``itemOID`` ``IT.<DATASET>.<VARIABLE>``, ``itemGroupOID`` ``IG.<DATASET>``,
``fileOID`` ``<study oid>.<DATASET>``, ``studyOID`` the study OID, ``metaDataVersionOID`` the
define.xml MetaDataVersion OID (:func:`default_metadata_version_oid`) unless given;
``metaDataRef`` ``define.xml``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import pandas as pd

from cdisc_pipe import __version__
from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.spec.model import Dataset, StudySpec, Variable

DATASET_JSON_VERSION = "1.1"
#: Datasets with more records than this are written as NDJSON by default.
DEFAULT_NDJSON_THRESHOLD = 100_000
SAS_EPOCH = np.datetime64("1960-01-01T00:00:00", "ns")
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_ENCODE_STR = json.encoder.encode_basestring  # the C string encoder behind json.dumps(ensure_ascii=False)


def item_oid(dataset: str, variable: str) -> str:
    """``IT.<DATASET>.<VARIABLE>``: must match the ItemDef OID in define.xml."""
    return f"IT.{dataset}.{variable}"


def item_group_oid(dataset: str) -> str:
    """``IG.<DATASET>``: must match the ItemGroupDef OID in define.xml."""
    return f"IG.{dataset}"


def default_metadata_version_oid(spec: StudySpec, datasets: list[Dataset] | None = None,
                                 purpose: str | None = None) -> str:
    """The MetaDataVersion OID of the define.xml describing ``datasets`` (written together).

    Same rule as ``cdisc_pipe.define``: ``MDV.<study name>.<purpose>.<IG name>.<IG version>`` with
    the IG the datasets declare (first by name, version, OID), or ``MDV.<study name>.<purpose>``
    when they declare none.  ``tests/test_datasetjson.py`` checks it against define.xml.
    """
    datasets = datasets or []
    purpose = purpose or (datasets[0].purpose if datasets else "Tabulation")
    wanted = {d.standard for d in datasets if d.standard}
    igs = sorted((s for s in spec.standards if s.oid in wanted and s.type == "IG"),
                 key=lambda s: (s.name, s.publishing_set or "", s.version, s.oid))
    base = f"MDV.{spec.study.name}.{purpose}"
    return f"{base}.{igs[0].name}.{igs[0].version}" if igs else base


def json_data_type(var: Variable) -> tuple[str, str | None]:
    """(dataType, targetDataType) of a spec variable (see the module table)."""
    if var.data_type in ("date", "datetime", "time"):
        return var.data_type, ("integer" if var.display_format else None)
    if var.data_type == "integer":
        return "integer", None
    if var.data_type == "float":
        return "double", None
    return "string", None


def columns_metadata(dataset: Dataset, names: list[str], lengths: Mapping[str, int]) -> list[dict]:
    """The ``columns`` array: one entry per written variable, in written order."""
    cols = []
    for name in names:
        var = dataset.variable(name)
        dtype, target = json_data_type(var)
        col: dict = {"itemOID": item_oid(dataset.name, name), "name": name, "label": var.label, "dataType": dtype}
        if target:
            col["targetDataType"] = target
        if not var.is_numeric and name in lengths:
            col["length"] = int(lengths[name])
        if var.display_format:
            col["displayFormat"] = var.display_format
        ks = dataset.key_sequence(name)
        if ks is not None:
            col["keySequence"] = ks
        cols.append(col)
    return cols


def _iso_from_sas(values: np.ndarray, kind: str) -> np.ndarray:
    """SAS day/second numbers -> ISO 8601 strings (object array, None for missing)."""
    out = np.full(len(values), None, dtype=object)
    ok = ~np.isnan(values)
    if not ok.any():
        return out
    v = values[ok]
    if kind == "date":
        stamps = (np.datetime64("1960-01-01", "D") + v.astype(np.int64)).astype("datetime64[D]")
        out[ok] = np.datetime_as_string(stamps, unit="D").astype(object)
    elif kind == "datetime":
        whole = np.all(v == np.floor(v))
        unit = "s" if whole else "ms"
        scale = 1 if whole else 1000
        stamps = np.datetime64("1960-01-01T00:00:00", unit) + np.round(v * scale).astype(np.int64).astype(f"timedelta64[{unit}]")
        out[ok] = np.datetime_as_string(stamps, unit=unit).astype(object)
    else:  # time of day (or a duration in seconds)
        secs = np.round(v).astype(np.int64)
        h, rem = np.divmod(secs, 3600)
        m, s = np.divmod(rem, 60)
        out[ok] = np.char.add(
            np.char.add(np.char.add(np.char.zfill(h.astype(str), 2), ":"), np.char.add(np.char.zfill(m.astype(str), 2), ":")),
            np.char.zfill(s.astype(str), 2),
        ).astype(object)
    return out


def column_values(series: pd.Series, var: Variable) -> np.ndarray:
    """JSON-ready values of one conformed column (object array; None for missing)."""
    if var.is_numeric:
        arr = series.to_numpy(dtype=np.float64, na_value=np.nan)
        if var.data_type in ("date", "datetime", "time"):
            return _iso_from_sas(arr, var.data_type)
        out = np.full(len(arr), None, dtype=object)
        ok = ~np.isnan(arr)
        if var.data_type == "integer":
            out[ok] = arr[ok].astype(np.int64).astype(object)
        else:
            out[ok] = arr[ok].astype(object)
        return out
    arr = series.to_numpy(dtype=object)
    mask = pd.isna(arr)
    if mask.any():
        arr = arr.copy()
        arr[mask] = None
    return arr


@dataclass(frozen=True)
class DatasetJsonResult:
    """What :func:`write_dataset_json` wrote."""

    path: Path
    sha256: str
    records: int
    ndjson: bool


def dataset_json_metadata(
    df: pd.DataFrame,
    dataset: Dataset,
    spec: StudySpec,
    lengths: Mapping[str, int],
    *,
    metadata_version_oid: str | None = None,
) -> dict:
    """The top-level Dataset-JSON object without ``rows`` (keys in the standard's order)."""
    meta: dict = {
        "datasetJSONCreationDateTime": spec.study.metadata_datetime,
        "datasetJSONVersion": DATASET_JSON_VERSION,
        "fileOID": f"{spec.study.oid}.{dataset.name}",
    }
    if spec.study.sponsor:
        meta["originator"] = spec.study.sponsor
    meta.update(
        {
            "sourceSystem": {"name": "cdisc-pipe", "version": __version__},
            "studyOID": spec.study.oid,
            "metaDataVersionOID": metadata_version_oid or default_metadata_version_oid(spec, [dataset]),
            "metaDataRef": "define.xml",
            "itemGroupOID": item_group_oid(dataset.name),
            "records": int(len(df)),
            "name": dataset.name,
            "label": dataset.label,
            "columns": columns_metadata(dataset, list(df.columns), lengths),
        }
    )
    return meta


#: Rows turned into JSON text per block (bounds memory on large datasets).
ROW_BLOCK = 100_000


def _json_token(value: object) -> str:
    """The JSON text of one value (str, int, float or None) as ``json.dumps`` would write it."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return _ENCODE_STR(value)
    return _ENCODE(value)


def column_tokens(series: pd.Series, var: Variable, prefix: str = "", suffix: str = "") -> np.ndarray:
    """JSON text of every value of a conformed column (object array of ``str``), with prefix/suffix.

    Each distinct value is encoded once (factorized: numbers by numpy/pandas hash tables, text by
    object identity) and gathered back by code, so the cost per record is a pointer copy, not an
    encoder call.  Values are those of :func:`column_values`.
    """
    # imported here: cdisc_pipe.xpt imports this module (XPT and JSON are written together)
    from cdisc_pipe.xpt.v5 import factorize_objects

    if var.is_numeric:
        arr = series.to_numpy(dtype=np.float64, na_value=np.nan)
        codes, uniq = pd.factorize(arr, use_na_sentinel=True)  # NaN -> -1
        uniq = np.asarray(uniq, dtype=np.float64)
        if not np.isfinite(uniq).all():
            raise ValueError(f"{var.name}: infinite values cannot be written to JSON")
        if var.data_type in ("date", "datetime", "time"):
            tokens = [_ENCODE_STR(v) for v in _iso_from_sas(uniq, var.data_type)]
        elif var.data_type == "integer":
            tokens = list(map(str, uniq.astype(np.int64).tolist()))
        else:  # float.__repr__ is exactly what json.dumps writes for a finite float
            tokens = list(map(float.__repr__, uniq.tolist()))
    else:
        codes, uniques = factorize_objects(series.to_numpy(dtype=object))
        tokens = [_json_token(u) for u in uniques]
    table = np.array([prefix + t + suffix for t in tokens] + [prefix + "null" + suffix], dtype=object)
    return table[np.where(codes < 0, len(table) - 1, codes)]


def iter_row_blocks(df: pd.DataFrame, dataset: Dataset) -> Iterator[list[str]]:
    """Blocks of up to :data:`ROW_BLOCK` records, each record one compact JSON array (``[v1,v2]``)."""
    names = list(df.columns)
    if not names:
        return
    for start in range(0, len(df), ROW_BLOCK):
        part = df.iloc[start : start + ROW_BLOCK]
        cols = []
        for i, name in enumerate(names):
            cols.append(column_tokens(part[name], dataset.variable(name), "[" if i == 0 else "",
                                      "]" if i == len(names) - 1 else ""))
        yield list(map(",".join, zip(*cols)))


def iter_row_lines(df: pd.DataFrame, dataset: Dataset) -> Iterator[str]:
    """One compact JSON array per record, in frame order."""
    for block in iter_row_blocks(df, dataset):
        yield from block


def write_dataset_json(
    df: pd.DataFrame,
    dataset: Dataset,
    spec: StudySpec,
    out_dir: Path,
    lengths: Mapping[str, int],
    *,
    ndjson_threshold: int | None = DEFAULT_NDJSON_THRESHOLD,
    metadata_version_oid: str | None = None,
) -> DatasetJsonResult:
    """Write a conformed frame as ``<name>.json`` (or ``<name>.ndjson`` above the threshold).

    ``lengths`` are the written character lengths (from the XPT writer) so both files agree.
    NDJSON: line 1 is the metadata object, then one row array per line.  Written to a temporary
    file and renamed into place.
    """
    ndjson = ndjson_threshold is not None and len(df) > ndjson_threshold
    path = Path(out_dir) / f"{dataset.name.lower()}.{'ndjson' if ndjson else 'json'}"
    meta = dataset_json_metadata(df, dataset, spec, lengths, metadata_version_oid=metadata_version_oid)
    head = _ENCODE(meta)
    digest = hashlib.sha256()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:

        def put(text: str) -> None:  # encoded once, for the file and its digest
            data = text.encode("utf-8")
            fh.write(data)
            digest.update(data)

        if ndjson:
            put(head + "\n")
            for block in iter_row_blocks(df, dataset):
                put("\n".join(block) + "\n")
        else:
            put(head[:-1] + ',"rows":[')
            sep = "\n"
            for block in iter_row_blocks(df, dataset):
                put(sep + ",\n".join(block))
                sep = ",\n"
            put("\n]}\n")
    os.replace(tmp, path)
    return DatasetJsonResult(path=path, sha256=digest.hexdigest(), records=len(df), ndjson=ndjson)


def _load(path: Path) -> tuple[dict, list]:
    text = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix.lower() == ".ndjson":
        lines = [ln for ln in text.splitlines() if ln.strip()]
        meta = json.loads(lines[0])
        return meta, [json.loads(ln) for ln in lines[1:]]
    doc = json.loads(text)
    return doc, doc.get("rows", [])


def read_dataset_json(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a Dataset-JSON 1.1 file (``.json`` or ``.ndjson``) into a frame.

    Same conventions as :func:`cdisc_pipe.xpt.read_xpt`: text -> ``str``/``None``; integer and
    double -> float64; ISO values of columns with ``targetDataType: integer`` -> datetime64[ns]
    (date, datetime) or timedelta64[ns] (time); ISO text dates stay text.
    """
    path = Path(path)
    try:
        meta, rows = _load(path)
        columns = meta["columns"]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise InputError(Problem(file=str(path), message=f"not a readable Dataset-JSON file: {exc}")) from None
    names = [c["name"] for c in columns]
    width = len(names)
    bad = [i for i, r in enumerate(rows) if not isinstance(r, list) or len(r) != width]
    if bad:
        raise InputError(Problem(file=str(path), entry=f"row {bad[0] + 1}", message=f"row does not have {width} values"))
    data = np.array(rows, dtype=object).reshape(len(rows), width) if rows else np.empty((0, width), dtype=object)
    out: dict[str, pd.Series] = {}
    for j, col in enumerate(columns):
        values = pd.Series(data[:, j], dtype=object)
        dtype, target = col["dataType"], col.get("targetDataType")
        if target == "integer" and dtype in ("date", "datetime"):
            out[col["name"]] = pd.to_datetime(values, format="ISO8601").astype("datetime64[ns]")
        elif target == "integer" and dtype == "time":
            out[col["name"]] = pd.to_timedelta(values).astype("timedelta64[ns]")
        elif dtype in ("integer", "double", "float", "decimal"):
            out[col["name"]] = pd.to_numeric(values).astype("float64")
        else:
            out[col["name"]] = values.where(values.notna(), None).astype(object)
    return pd.DataFrame(out, columns=names)
