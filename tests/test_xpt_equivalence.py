"""The vectorised XPT v5 writer against the format's definition and against pyreadstat.

Two independent references:

* SAS technical note TS-140 (the XPT v5 layout): ``test_namestr_fields_follow_ts140`` and
  ``test_header_records_follow_ts140`` unpack our header bytes field by field with ``struct`` and
  check each field's meaning, whatever pyreadstat release is installed.
* pyreadstat's ``write_xport(..., version 5)`` (ReadStat): header time stamps aside (pyreadstat stamps
  the wall clock; we stamp the study's metadata date), every file of the corpus has exactly
  pyreadstat's bytes, once the known differences between pyreadstat releases are accounted for (see
  :func:`reference_bytes`), and pyreadstat and ``pandas.read_sas`` read every file back with the same
  values, labels, formats, types and lengths.

Known differences between pyreadstat releases (measured; ``pyproject.toml`` allows >= 1.2.8):

* 1.2.8 - 1.3.0 copy each display format into the informat fields (``niform``/``nifl``/``nifd``);
  1.3.7 and later leave them blank, as SAS does for a variable that has no informat, and as our
  writer does.  The reference's informat fields are checked to be that copy, then blanked.
* 1.2.8 - 1.3.0 cannot write a dataset with no records and a text column (``IndexError``): there
  the byte comparison is skipped for that case (the TS-140 checks and the read-back still run).
* Reading back, 1.2.x reports "no format" as the text ``"NULL"``, 1.3.x as ``None``; up to 1.3.7
  ``DATE9.`` reads back as ``"DATE9"``, from 1.3.8 as ``"DATE9."``.  ``read_format`` gives one
  spelling, and every reader of XPT metadata in cdisc-pipe goes through it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from cdisc_pipe.xpt.datasets import TIMESTAMP_SPANS
from cdisc_pipe.xpt.v5 import (
    format_timestamp,
    ibm_to_ieee,
    ieee_to_ibm,
    pandas_row_count,
    read_format,
    xpt_v5_bytes,
)

STAMP = format_timestamp("2025-06-30T08:15:42")


NAMESTR_FORMAT = ">hhhh8s40s8shhh2s8shhi52s"  # TS-140: the 140-byte namestr, big-endian
NAMESTR_FIELDS = ("ntype", "nhfun", "nlng", "nvar0", "nname", "nlabel", "nform", "nfl", "nfd", "nfj", "nfill",
                  "niform", "nifl", "nifd", "npos", "rest")
INFORMAT = slice(72, 84)  # niform (8 bytes), nifl, nifd inside a namestr
FORMAT = slice(56, 68)  # nform (8 bytes), nfl, nfd


def namestr_offset(raw: bytes) -> int:
    """Byte offset of the first namestr: the record after the NAMESTR header record."""
    at = raw.index(b"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!")
    assert at % 80 == 0
    return at + 80


def namestrs(raw: bytes) -> list[dict]:
    """Every namestr of a file, unpacked by TS-140's layout (independent of the writer's code)."""
    start = namestr_offset(raw)
    count = int(raw[start - 80 + 54: start - 80 + 58])  # "00000" + 4-digit variable count
    out = []
    for k in range(count):
        values = struct.unpack(NAMESTR_FORMAT, raw[start + 140 * k: start + 140 * (k + 1)])
        out.append(dict(zip(NAMESTR_FIELDS, values)))
    return out


def pyreadstat_to_ts140(ref: bytes) -> bytes:
    """Undo pyreadstat 1.2.8-1.3.0's copy of the display format into the informat fields.

    Only a copy is undone (asserted field by field): any other informat content stays and fails
    the comparison.
    """
    raw = bytearray(ref)
    start = namestr_offset(ref)
    for k, ns in enumerate(namestrs(ref)):
        at = start + 140 * k
        informat = raw[at + INFORMAT.start: at + INFORMAT.stop]
        if informat == b" " * 8 + b"\0" * 4:
            continue
        assert informat == raw[at + FORMAT.start: at + FORMAT.stop], (
            f"pyreadstat {pyreadstat.__version__} wrote informat {bytes(informat)!r} for {ns['nname']!r}: "
            "not the known copy of the format")
        raw[at + INFORMAT.start: at + INFORMAT.stop] = b" " * 8 + b"\0" * 4
    return bytes(raw)


def reference_bytes(df: pd.DataFrame, path: Path, **kw) -> bytes:
    """pyreadstat's file for the same data and metadata, stamped with STAMP, in TS-140 terms.

    Skips the calling test when this pyreadstat release cannot write the frame at all (1.2.8-1.3.0
    with no records and a text column); the TS-140 checks cover those bytes instead.
    """
    labels = kw.get("column_labels") or {}
    try:
        pyreadstat.write_xport(
            df, str(path), file_format_version=5, table_name=kw["table_name"], file_label=kw.get("file_label", ""),
            column_labels=[labels.get(c) for c in df.columns], variable_format=kw.get("variable_format"),
        )
    except IndexError:
        if len(df):
            raise
        pytest.skip(f"pyreadstat {pyreadstat.__version__} cannot write a dataset with no records "
                    "(IndexError, fixed in later releases); TS-140 checks cover this case")
    raw = bytearray(pyreadstat_to_ts140(path.read_bytes()))
    for a, b in TIMESTAMP_SPANS:
        raw[a:b] = STAMP.encode()
    return bytes(raw)


def first_difference(a: bytes, b: bytes) -> str:
    n = min(len(a), len(b))
    diff = next((i for i in range(n) if a[i] != b[i]), n)
    return (f"lengths {len(a)} vs {len(b)}; first difference at byte {diff} (record {diff // 80}): "
            f"{a[diff - diff % 80: diff - diff % 80 + 80]!r} vs {b[diff - diff % 80: diff - diff % 80 + 80]!r}")


IBM_MAX = 7.237005577332262e75  # the largest IBM double, rounded to the nearest float64
PANDAS_IBM_MAX = (1 - 2.0**-53) * 2.0**252  # pandas truncates the 56-bit fraction instead
PANDAS_ZERO = 2.0**-260  # pandas.read_sas reads IBM 0 as 2**-260 (pandas-dev/pandas#50670)


def expected_values(df: pd.DataFrame, reader: str) -> dict[str, list]:
    """What a reader must return: text rstripped with '' for missing; IBM-rounded numerics.

    The IBM overflow value (only reachable by writing +-inf or |x| >= 2**249, which
    ``check_frame`` refuses) reads as +-inf in pyreadstat and as +-7.2e75 in pandas.
    """
    out = {}
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_numeric_dtype(s.dtype) and s.dtype != object:
            arr = ibm_to_ieee(ieee_to_ibm(s.to_numpy(dtype=np.float64, na_value=np.nan)))
            over = np.abs(arr) == IBM_MAX
            arr = np.where(over, np.copysign(np.inf if reader == "pyreadstat" else PANDAS_IBM_MAX, arr), arr)
            out[c] = list(arr)
        else:
            out[c] = ["" if pd.isna(v) else str(v).rstrip(" ") for v in s.astype(object)]
    return out


def same(a: list, b: list, *, pandas_zero: bool = False) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, float) or isinstance(y, float):
            if np.isnan(x) and np.isnan(y):
                continue
            if pandas_zero and y == 0.0 and x == PANDAS_ZERO:
                continue
            if not x == y:
                return False
        elif x != y:
            return False
    return True


def read_sas_pandas(path: Path, nrows: int, row_length: int) -> pd.DataFrame | None:
    """pandas.read_sas with its known limitations made explicit (see docs/XPT.md).

    Returns None for a file with no records (pandas raises StopIteration on those).  Otherwise
    asserts pandas reads exactly the record count :func:`pandas_row_count` predicts (all records
    unless rows are <= 80 bytes and the last record holds blank 8-byte words).
    """
    if nrows == 0:
        with pytest.raises(StopIteration):
            pd.read_sas(str(path), format="xport", encoding="utf-8")
        return None
    raw = path.read_bytes()
    data_len = -(-nrows * row_length // 80) * 80
    predicted = pandas_row_count(raw[-80:], data_len, row_length)
    pdf = pd.read_sas(str(path), format="xport", encoding="utf-8")
    assert len(pdf) == predicted
    if row_length > 80:
        assert predicted == nrows
    return pdf


def check_readback(path: Path, df: pd.DataFrame, kw: dict) -> None:
    labels = kw.get("column_labels") or {}
    formats = kw.get("variable_format") or {}
    # pyreadstat: every record, value, label, format, width
    got, meta = pyreadstat.read_xport(str(path), disable_datetime_conversion=True)
    expected = expected_values(df, "pyreadstat")
    assert list(got.columns) == list(df.columns)
    assert len(got) == len(df)
    assert meta.table_name == kw["table_name"]
    assert (meta.file_label or "") == kw.get("file_label", "")
    for c in df.columns:
        assert same(list(got[c].astype(object)), expected[c]), c
        assert (meta.column_names_to_labels.get(c) or "") == (labels.get(c) or ""), c
        assert read_format(meta.original_variable_types.get(c)) == read_format(formats.get(c)), c
    # pandas.read_sas: same values, labels, types and lengths (within its known limitations)
    row_length = sum(meta.variable_storage_width.values())
    pdf = read_sas_pandas(path, len(df), row_length)
    expected = expected_values(df, "pandas")
    if pdf is not None:
        assert list(pdf.columns) == list(df.columns)
        for c in df.columns:
            assert same(list(pdf[c].astype(object)), expected[c][: len(pdf)], pandas_zero=True), c
    reader = pd.read_sas(str(path), format="xport", iterator=True, encoding="utf-8")
    try:
        fields = {f["name"].decode(): f for f in reader.fields}
        assert reader.member_info["created"].isoformat() == "2025-06-30T08:15:42"
        assert reader.member_info["modified"].isoformat() == "2025-06-30T08:15:42"
        assert reader.member_info["label"] == kw.get("file_label", "")
    finally:
        reader.close()
    for c in df.columns:
        assert fields[c]["label"].decode() == (labels.get(c) or ""), c
        assert fields[c]["field_length"] == meta.variable_storage_width[c], c
        assert fields[c]["ntype"] == ("numeric" if meta.readstat_variable_types[c] == "double" else "char"), c


def rng_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mant = rng.uniform(-10, 10, n)
    exps = rng.integers(-80, 80, n)
    nums = mant * 10.0 ** exps
    nums[rng.random(n) < 0.1] = np.nan
    lens = rng.integers(0, 60, n)
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz0123456789-_/.,:;()"))
    text = ["".join(rng.choice(alphabet, k)) for k in lens]
    text = [t if rng.random() > 0.1 else None for t in text]
    return pd.DataFrame({"NUM": nums, "TEXT": pd.Series(text, dtype=object), "INT": rng.integers(-10**6, 10**6, n).astype(float)})


CORPUS: dict[str, tuple[pd.DataFrame, dict]] = {
    "numerics": (
        pd.DataFrame({"X": [np.nan, 0.0, -0.0, -1.5, 1e-300, 1e70, -2.25e-10, 123456789.123, 1.5 * 2.0**-260,
                            2.0**-261, 7.2e75, np.inf, -np.inf, 1e300, 5e-324, 1.0, -1.0, 0.1, 1 / 3]}),
        {"table_name": "NUM", "file_label": "Numerics", "column_labels": {"X": "A number"}},
    ),
    "strings": (
        pd.DataFrame({
            "LONG": pd.Series(["x" * 200, "", None, "  lead", "trail  ", "a"], dtype=object),
            "BLANK": pd.Series(["", "", "", "", "", ""], dtype=object),
            "N": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }),
        {"table_name": "STR", "file_label": "Strings", "column_labels": {"LONG": "Long", "BLANK": "Blank", "N": "N"}},
    ),
    "empty_dataset": (
        pd.DataFrame({"STUDYID": pd.Series([], dtype=object), "VAL": pd.Series([], dtype=float)}),
        {"table_name": "EMPTY", "file_label": "No records", "column_labels": {"STUDYID": "Study Identifier"}},
    ),
    "one_numeric_column": (pd.DataFrame({"A": [3.0]}), {"table_name": "ONE"}),
    "one_text_column": (pd.DataFrame({"A": pd.Series(["abc", "de", "f"], dtype=object)}), {"table_name": "ONET"}),
    "all_character": (
        pd.DataFrame({"STUDYID": pd.Series(["S1", "S1", "S1", "S1"], dtype=object),
                      "DOMAIN": pd.Series(["TS", "TS", "TS", "TS"], dtype=object),
                      "TSVAL": pd.Series(["A", "", "LONGER VALUE", "Z"], dtype=object)}),
        {"table_name": "TS", "file_label": "Trial Summary"},
    ),
    "labels_40": (
        pd.DataFrame({"ABCDEFGH": [1.0], "B": pd.Series(["b"], dtype=object)}),
        {"table_name": "ABCDEFGH", "file_label": "L" * 40, "column_labels": {"ABCDEFGH": "x" * 40, "B": "y" * 39}},
    ),
    "formats": (
        pd.DataFrame({"ADT": [0.0, -1.0, 23378.0, np.nan], "ADTM": [0.0, 2.0e9, np.nan, -86400.5],
                      "ATM": [0.0, 37800.0, 86399.0, np.nan], "AVAL": [1.25, 2.5, np.nan, -3.0],
                      "ISO": [23378.0, 1.0, 2.0, 3.0], "BEST": [1.0, 2.0, 3.0, 4.0]}),
        {"table_name": "FMT", "variable_format": {"ADT": "DATE9.", "ADTM": "DATETIME20.", "ATM": "TIME8.",
                                                  "AVAL": "8.2", "ISO": "E8601DA10.", "BEST": "BEST12."}},
    ),
    "utf8_values": (
        pd.DataFrame({"T": pd.Series(["caf\u00e9", "na\u00efve \u2013 x", None], dtype=object), "N": [1.0, 2.0, 3.0]}),
        {"table_name": "UTF", "column_labels": {"T": "Text"}},
    ),
    "many_columns": (
        pd.DataFrame({f"V{i:02d}": ([float(i)] * 3 if i % 2 else pd.Series([f"v{i}", "", "x" * i], dtype=object))
                      for i in range(31)}),
        {"table_name": "WIDE", "column_labels": {f"V{i:02d}": f"Variable {i}" for i in range(31)}},
    ),
    "random_mix": (rng_frame(997, 7), {"table_name": "RND", "file_label": "Random",
                                        "column_labels": {"NUM": "Number", "TEXT": "Text", "INT": "Integer"}}),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bytes_identical_to_pyreadstat(case: str, tmp_path: Path) -> None:
    df, kw = CORPUS[case]
    ours = xpt_v5_bytes(df, timestamp=STAMP, **kw)
    assert len(ours) % 80 == 0
    path = tmp_path / "ours.xpt"
    path.write_bytes(ours)
    if case != "utf8_values":  # pandas.read_sas decodes, pyreadstat too; both covered below
        check_readback(path, df, kw)
    else:
        got, _ = pyreadstat.read_xport(str(path))
        assert list(got["T"]) == ["caf\u00e9", "na\u00efve \u2013 x", ""]
    ref = reference_bytes(df, tmp_path / "ref.xpt", **kw)
    assert ours == ref, first_difference(ours, ref)


def test_namestr_fields_follow_ts140() -> None:
    """Each namestr field means what TS-140 defines, checked on our bytes without pyreadstat.

    The display format is stored as name / width / decimals (``DATE9.`` -> ``DATE``, 9, 0;
    ``8.2`` -> blank name, 8, 2); no informat is written (blank name, 0, 0), as SAS writes a
    variable that has none.
    """
    df, kw = CORPUS["formats"]
    got = namestrs(xpt_v5_bytes(df, timestamp=STAMP, **kw))
    expected_formats = [  # (nform, nfl, nfd) for ADT, ADTM, ATM, AVAL, ISO, BEST
        (b"DATE    ", 9, 0), (b"DATETIME", 20, 0), (b"TIME    ", 8, 0), (b"        ", 8, 2),
        (b"E8601DA ", 10, 0), (b"BEST    ", 12, 0)]
    assert [ns["nname"] for ns in got] == [b"ADT     ", b"ADTM    ", b"ATM     ", b"AVAL    ", b"ISO     ", b"BEST    "]
    for i, (ns, (nform, nfl, nfd)) in enumerate(zip(got, expected_formats)):
        assert (ns["nform"], ns["nfl"], ns["nfd"]) == (nform, nfl, nfd), ns["nname"]
        assert (ns["niform"], ns["nifl"], ns["nifd"]) == (b" " * 8, 0, 0), ns["nname"]
        assert (ns["ntype"], ns["nhfun"], ns["nlng"], ns["nvar0"]) == (1, 0, 8, i + 1)
        assert ns["npos"] == 8 * i  # numerics are 8 bytes, back to back
        assert ns["nlabel"] == b" " * 40
        assert ns["nfj"] == 1  # ReadStat right-justifies numerics (TS-140: 0 left, 1 right)
        assert ns["rest"] == b"\0" * 52

    df, kw = CORPUS["strings"]  # LONG: 200 bytes; BLANK: all blank -> length 1; N numeric
    got = namestrs(xpt_v5_bytes(df, timestamp=STAMP, **kw))
    assert [(ns["nname"], ns["ntype"], ns["nlng"], ns["npos"], ns["nfj"]) for ns in got] == [
        (b"LONG    ", 2, 200, 0, 0), (b"BLANK   ", 2, 1, 200, 0), (b"N       ", 1, 8, 201, 1)]
    assert [ns["nlabel"].rstrip() for ns in got] == [b"Long", b"Blank", b"N"]
    assert all(ns["nform"] == b" " * 8 and ns["nfl"] == 0 and ns["nfd"] == 0 for ns in got)

    df, kw = CORPUS["labels_40"]  # a 40-character label fills the field exactly
    got = namestrs(xpt_v5_bytes(df, timestamp=STAMP, **kw))
    assert [ns["nlabel"] for ns in got] == [b"x" * 40, b"y" * 39 + b" "]


def test_header_records_follow_ts140() -> None:
    """Library, member, descriptor, namestr and OBS records: TS-140 text at TS-140 places."""
    df, kw = CORPUS["strings"]
    raw = xpt_v5_bytes(df, timestamp=STAMP, **kw)
    rec = [raw[i: i + 80] for i in range(0, len(raw), 80)]
    zeros30 = b"0" * 30
    assert rec[0] == b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!" + zeros30 + b"  "
    assert rec[1][:40] == b"SAS     SAS     SASLIB  6.06    bsd4.2  " and rec[1][64:80] == STAMP.encode()
    assert rec[2][:16] == STAMP.encode() and rec[2][16:] == b" " * 64
    assert rec[3] == b"HEADER RECORD*******MEMBER  HEADER RECORD!!!!!!!" + b"000000000000000001600000000140  "
    assert rec[4] == b"HEADER RECORD*******DSCRPTR HEADER RECORD!!!!!!!" + zeros30 + b"  "
    assert rec[5][:40] == b"SAS     STR     SASDATA 6.06    bsd4.2  " and rec[5][64:80] == STAMP.encode()
    assert rec[6][:16] == STAMP.encode() and rec[6][32:72] == b"Strings".ljust(40)
    assert rec[7] == b"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!" + b"000000000300000000000000000000  "
    # 3 namestrs = 420 bytes, padded to 480 (6 records), then the OBS header
    assert rec[8 + 6] == b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!" + zeros30 + b"  "
    row_length = 200 + 1 + 8
    assert len(raw) == (8 + 6 + 1) * 80 + -(-6 * row_length // 80) * 80


def test_all_character_trailing_blank_rows_are_lost_by_readers(tmp_path: Path) -> None:
    """XPT-NOTES pitfall 5, pinned: an all-character dataset cannot carry trailing blank records.

    The writer still matches pyreadstat byte for byte; ``check_frame`` refuses such records (see
    test_xpt.py), because readers cannot tell them from the 80-byte padding.
    """
    df = pd.DataFrame({"A": pd.Series(["x", "", ""], dtype=object), "B": pd.Series(["y", "", ""], dtype=object)})
    kw = {"table_name": "P5"}
    ours = xpt_v5_bytes(df, timestamp=STAMP, **kw)
    assert ours == reference_bytes(df, tmp_path / "ref.xpt", **kw)
    path = tmp_path / "p5.xpt"
    path.write_bytes(ours)
    got, _ = pyreadstat.read_xport(str(path))
    assert len(got) == 1, "pyreadstat now keeps trailing blank rows: revisit pitfall 5 handling"


def test_special_missing_values(tmp_path: Path) -> None:
    """.A-.Z and ._ are written as the tag byte + zeros; readers see them as missing."""
    col = pd.Series([1.5, "A", np.nan, "Z", "_", -2.0], dtype=object)
    df = pd.DataFrame({"X": col, "T": pd.Series(list("abcdef"), dtype=object)})
    raw = xpt_v5_bytes(df, timestamp=STAMP, table_name="SM", types={"X": "numeric", "T": "text"})
    path = tmp_path / "sm.xpt"
    path.write_bytes(raw)
    obs = raw[-80:]  # 6 rows x 9 bytes = 54 bytes, one record
    tags = [obs[i * 9] for i in range(6)]
    assert tags[1] == ord("A") and tags[2] == 0x2E and tags[3] == ord("Z") and tags[4] == ord("_")
    assert obs[9 + 1: 9 + 8] == b"\0" * 7
    got, _ = pyreadstat.read_xport(str(path))
    assert got["X"].isna().tolist() == [False, True, True, True, True, False]
    plain = pd.read_sas(str(path), format="xport", encoding="utf-8")
    assert plain["X"].isna().tolist() == [False, True, True, True, True, False]
    assert plain["X"][0] == 1.5 and plain["X"][5] == -2.0


def test_ibm_conversion_round_trips_every_representable_double() -> None:
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**63 - 1, 200_000, dtype=np.int64)
    x = bits.view(np.float64)
    exp = ((bits >> 52) & 0x7FF) - 1023
    x = x[np.isfinite(x) & (exp >= -260) & (exp <= 248)]
    x = np.concatenate([x, -x])
    assert np.array_equal(ibm_to_ieee(ieee_to_ibm(x)), x)


def _bundled_xpts(request: pytest.FixtureRequest) -> list[Path]:
    """Every XPT of this session's bundled run (never a stale outputs/ folder)."""
    out = request.getfixturevalue("bundled_run")
    found = sorted(Path(out).glob("*/*.xpt"))
    assert len(found) >= 30, "the bundled run wrote too few XPT files"
    return found


@pytest.mark.slow
def test_bundled_study_outputs_match_pyreadstat(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Every SDTM/ADaM XPT of the bundled study: pyreadstat rewriting it gives the same bytes."""
    for path in _bundled_xpts(request):
        data, meta = pyreadstat.read_xport(str(path), disable_datetime_conversion=True)
        raw = path.read_bytes()
        kw = {
            "table_name": meta.table_name, "file_label": meta.file_label or "",
            "column_labels": meta.column_names_to_labels,
            "variable_format": {c: read_format(f) for c, f in meta.original_variable_types.items() if read_format(f)} or None,
        }
        frame = pd.DataFrame({c: (data[c].astype(object) if meta.readstat_variable_types[c] == "string" else data[c])
                              for c in data.columns})
        ref = bytearray(reference_bytes(frame, tmp_path / "ref.xpt", **kw))
        for a, b in TIMESTAMP_SPANS:
            ref[a:b] = raw[a:b]
        assert raw == bytes(ref), f"{path.name}: {first_difference(raw, bytes(ref))}"
        pdf = read_sas_pandas(path, len(data), sum(meta.variable_storage_width.values()))
        if pdf is not None:
            assert list(pdf.columns) == list(data.columns), path.name
            for c in data.columns:
                want = list(data[c].astype(object))[: len(pdf)]
                assert same(list(pdf[c].astype(object)), want, pandas_zero=True), f"{path.name} {c}"
        assert os.path.getsize(path) % 80 == 0
