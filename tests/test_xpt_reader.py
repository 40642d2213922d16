"""The vectorised XPT reader (``cdisc_pipe.xpt.reader``) against pyreadstat, the reference.

Every comparison is value by value and field by field: ``assert_frame_equal`` exact, dtypes
included (float64 numerics with NaN where pyreadstat has NaN; text in pandas' default string
dtype with ``""`` where pyreadstat has ``""``), and every field of pyreadstat's metadata.  Format
spellings differ between pyreadstat releases (1.2.x: ``"NULL"``/``"DATE9"``, 1.3.8: ``None``/
``"DATE9."``); the reader spells them as 1.3.8 does, and with an older pyreadstat the format
fields are compared through ``read_format`` (one spelling), as every other reader of XPT metadata
in cdisc-pipe does.

Corpora: every file of the writer's equivalence corpus (``tests/test_xpt_equivalence.CORPUS``,
built by the numpy writer), files crafted around ReadStat's edge cases (formats, odd numeric
lengths, IBM bit patterns, NUL bytes, blank rows, v8 long names and labels, duplicated names),
CDISC's MSG sample and the CDISC pilot files in ``../shared`` (skipped when absent), and
hypothesis-generated numbers, byte patterns and text.  Bad input (truncated, not XPT, damaged
headers) must give an ``XptReadError`` naming the file and the problem, never another exception.
"""

from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from benchmarks.bench_xpt_read import FORMAT_FIELDS, META_FIELDS  # every field of pyreadstat's XPORT metadata
from cdisc_pipe.errors import InputError
from cdisc_pipe.xpt import reader
from cdisc_pipe.xpt.conform import format_kind
from cdisc_pipe.xpt.datasets import read_xpt, read_xpt_file
from cdisc_pipe.xpt.reader import XptReadError, ibm_to_ieee_bits, read_data, read_header, read_xport
from cdisc_pipe.xpt.v5 import XptVariable, header_bytes, ibm_to_ieee, ieee_to_ibm, read_format, xpt_v5_bytes
from tests.conftest import SHARED
from tests.test_xpt_equivalence import CORPUS, STAMP

PYREADSTAT_SPELLING = tuple(int(x) for x in pyreadstat.__version__.split(".")[:3]) >= (1, 3, 8)
MSG = SHARED / "reference" / "sdtm-msg-2.0-cdiscpilot01"
PILOT = SHARED / "reference" / "cdiscpilot01" / "sdtm"
NAMESTR_HEADER = b"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!"
OBS_HEADER = b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!"


def _formats(value: dict) -> dict:
    return {k: read_format(v) for k, v in value.items() if read_format(v) is not None}


def assert_same(path: Path, *, reference: dict | None = None, **kw) -> tuple[pd.DataFrame, reader.XptMetadata]:
    """The reader returns pyreadstat's frame and metadata for ``path`` (``kw`` for both readers,
    ``reference`` overrides pyreadstat's arguments, e.g. an iconv encoding name)."""
    ref_kw = dict(kw, **(reference or {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both readers warn alike on duplicated names
        ref, ref_meta = pyreadstat.read_xport(str(path), disable_datetime_conversion=True, **ref_kw)
        got, meta = read_xport(path, **kw)
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    for name in META_FIELDS:
        if not hasattr(ref_meta, name):  # older pyreadstat releases have fewer fields
            continue
        want, have = getattr(ref_meta, name), getattr(meta, name)
        if name in FORMAT_FIELDS and not PYREADSTAT_SPELLING:
            want, have = _formats(want), _formats(have)
        assert have == want, f"{path.name}: metadata {name}: {have!r} != {want!r}"
    return got, meta


def xpt(df: pd.DataFrame, **kw) -> bytearray:
    """A file from the project's numpy writer (the mirror this reader is built against)."""
    kw.setdefault("table_name", "T")
    return bytearray(xpt_v5_bytes(df, timestamp=STAMP, **kw))


def namestr_at(raw: bytes, k: int) -> int:
    return raw.index(NAMESTR_HEADER) + 80 + 140 * k


def patch(raw: bytearray, k: int, offset: int, fmt: str, value) -> bytearray:
    """Overwrite one field of namestr ``k`` (TS-140 offsets: 4 nlng, 8 nname, 16 nlabel, 56 nform,
    64 nfl, 66 nfd, 68 nfj, 72 niform, 80 nifl, 82 nifd)."""
    struct.pack_into(fmt, raw, namestr_at(raw, k) + offset, value)
    return raw


def crafted(variables: list[XptVariable], rows: list[bytes], table_name: str = "CRAFT") -> bytes:
    """A file with the writer's header for ``variables`` and raw rows, blank-padded to 80 bytes."""
    data = b"".join(rows)
    return header_bytes(variables, table_name=table_name, file_label="", timestamp=STAMP) + data + \
        b" " * (-len(data) % 80)


def put(path: Path, raw: bytes) -> Path:
    path.write_bytes(bytes(raw))
    return path


# --------------------------------------------------------------------------------------------
# the writer's equivalence corpus


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_equivalence_corpus_reads_like_pyreadstat(case: str, tmp_path: Path) -> None:
    df, kw = CORPUS[case]
    path = put(tmp_path / f"{case}.xpt", xpt(df, **kw))
    got, meta = assert_same(path)
    assert meta.number_rows == len(got)


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_equivalence_corpus_across_many_blocks(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny blocks (80 rows each): every block boundary, the per-block factorization and the
    representative words carried across blocks are exercised on the same files."""
    monkeypatch.setattr(reader, "BLOCK_BYTES", 1)
    df, kw = CORPUS[case]
    assert_same(put(tmp_path / f"{case}.xpt", xpt(df, **kw)))


def test_hash_collisions_fall_back_to_exact_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every long value hashed to the same key: the row check catches it and the column is
    factorized exactly; values still equal pyreadstat's (also when it happens in a later block)."""

    def constant(words, out):
        out[...] = 7
        return out

    monkeypatch.setattr(reader, "_text_hash", constant)
    monkeypatch.setattr(reader, "BLOCK_BYTES", 1)
    df, kw = CORPUS["random_mix"]
    assert_same(put(tmp_path / "rnd.xpt", xpt(df, **kw)))
    df = pd.DataFrame({"N": np.arange(500.0), "T": pd.Series(["same long value"] * 400 + ["other long value"] * 100,
                                                             dtype=object)})
    assert_same(put(tmp_path / "late.xpt", xpt(df)))


def test_factorizer_fallback_gives_the_same_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "_FAST_FACTORIZER", False)
    monkeypatch.setattr(reader, "BLOCK_BYTES", 1)
    for case in ("random_mix", "strings", "many_columns"):
        df, kw = CORPUS[case]
        assert_same(put(tmp_path / f"{case}.xpt", xpt(df, **kw)))


# --------------------------------------------------------------------------------------------
# ReadStat's edge cases, crafted


BASE = pd.DataFrame({"A": [1.0, 2.0], "B": [3.0, 4.0], "C": pd.Series(["x", "y"], dtype=object)})


@pytest.mark.parametrize("nform,nfl,nfd", [
    (b"DATE    ", 9, 0), (b"DATE    ", 0, 0), (b"        ", 8, 2), (b"        ", 0, 2), (b"$CHAR   ", 20, 0),
    (b"F       ", 0, 3), (b"BEST    ", 12, 0), (b"E8601DA ", 10, 0), (b"        ", 8, 0), (b"DATETIME", 20, 3),
])
def test_formats_and_informats_are_spelled_like_pyreadstat(nform: bytes, nfl: int, nfd: int, tmp_path: Path) -> None:
    raw = xpt(BASE)
    patch(raw, 0, 56, "8s", nform), patch(raw, 0, 64, ">h", nfl), patch(raw, 0, 66, ">h", nfd)
    patch(raw, 1, 72, "8s", nform), patch(raw, 1, 80, ">h", nfl), patch(raw, 1, 82, ">h", nfd)
    assert_same(put(tmp_path / "f.xpt", raw))


@pytest.mark.parametrize("what", ["ntype3", "nfj", "label_nul", "name_nul", "name_lead_blank", "duplicated_name",
                                  "text_length_0", "label_only_blanks", "table_name_blank"])
def test_namestr_oddities_read_like_pyreadstat(what: str, tmp_path: Path) -> None:
    raw = xpt(BASE, column_labels={"A": "lab A", "C": "C label"}, file_label="File")
    if what == "ntype3":
        patch(raw, 0, 0, ">h", 3)
    elif what == "nfj":
        patch(raw, 2, 68, ">h", 5)
    elif what == "label_nul":
        patch(raw, 0, 16, "40s", b"lab\0A" + b" " * 35)
    elif what == "name_nul":
        patch(raw, 1, 8, "8s", b"\0" * 8)
    elif what == "name_lead_blank":
        patch(raw, 1, 8, "8s", b"   B    ")
    elif what == "duplicated_name":
        patch(raw, 1, 8, "8s", b"A       ")
    elif what == "text_length_0":  # C has no bytes: every value is "" (rows shrink by one byte)
        patch(raw, 2, 4, ">h", 0)
    elif what == "label_only_blanks":
        patch(raw, 2, 16, "40s", b" " * 40)
    elif what == "table_name_blank":
        at = raw.index(b"SASDATA")
        raw[at - 8: at] = b" " * 8
    assert_same(put(tmp_path / f"{what}.xpt", raw))


def test_duplicated_names_are_renamed_and_warned_about(tmp_path: Path) -> None:
    path = put(tmp_path / "dup.xpt", patch(xpt(BASE), 1, 8, "8s", b"A       "))
    with pytest.warns(UserWarning, match="column 'A' is duplicated, renamed to 'A_duplicated1'"):
        df, meta = read_xport(path)
    assert meta.column_names == ["A", "A_duplicated1", "C"] == list(df.columns)


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 6, 7, 8, 9, 12])
def test_numeric_storage_lengths_read_like_pyreadstat(width: int, tmp_path: Path) -> None:
    """SAS allows numerics of 3-8 bytes (truncated IBM doubles, zero-extended on reading); ReadStat
    returns NaN for other lengths.  Rows here: the numeric then a one-byte text value."""
    words = [bytes([0x41, 0x18, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE]), bytes([0xC2, 0x64] + [0x11] * 6),
             b"." + b"\0" * 7, b"A" + b"\0" * 7, bytes(8), bytes([0x80] + [0] * 7), b"\x7f" + b"\xff" * 7,
             bytes([0x3F, 0x19, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9A])]
    rows = [(w * 2)[:width] + b"x" for w in words]
    variables = [XptVariable("X", "num", "numeric", width), XptVariable("T", "", "text", 1)]
    assert_same(put(tmp_path / f"w{width}.xpt", crafted(variables, rows)))


def test_text_bytes_are_stripped_like_readstat(tmp_path: Path) -> None:
    """Trailing blanks and NULs go, the value ends at its first NUL, leading blanks stay, an
    all-blank or all-NUL value is ""."""
    values = [b"ab  cd    ", b"x\0y       ", b"          ", b"\0" * 10, b"   lead   ", b"ab \0   zz ", b"tail\0\0\0\0\0\0",
              b"\0abc      ", b"0123456789"]
    rows = [v + b"n" for v in values]
    variables = [XptVariable("S", "", "text", 10), XptVariable("N", "", "text", 1)]
    path = put(tmp_path / "s.xpt", crafted(variables, rows))
    df, _ = assert_same(path)
    # "ab \\0   zz ": stripped at the end first, then cut at the NUL, which leaves a blank
    assert list(df["S"]) == ["ab  cd", "x", "", "", "   lead", "ab ", "tail", "", "0123456789"]


def test_blank_rows_inside_are_kept_trailing_ones_dropped(tmp_path: Path) -> None:
    """ReadStat drops trailing all-blank rows (XPT-NOTES pitfall 5), keeps blank rows followed by
    data; more than one backward scan step of trailing blank rows."""
    values = ["a", "", "b", "", "", "c"] + [""] * 1500
    df = pd.DataFrame({"S": pd.Series(values, dtype=object), "U": pd.Series([""] * len(values), dtype=object)})
    got, meta = assert_same(put(tmp_path / "blank.xpt", xpt(df)))
    assert list(got["S"]) == ["a", "", "b", "", "", "c"] and meta.number_rows == 6


def test_special_missing_values_are_nan_as_in_pyreadstat(tmp_path: Path) -> None:
    """pyreadstat's read_xport has no user_missing option: .A-.Z and ._ read as plain NaN and
    missing_user_values stays empty; the reader does the same."""
    col = pd.Series([1.5, "A", np.nan, "Z", "_", -2.0, "Q"], dtype=object)
    df = pd.DataFrame({"X": col, "T": pd.Series(list("abcdefg"), dtype=object)})
    got, meta = assert_same(put(tmp_path / "sm.xpt", xpt(df, types={"X": "numeric", "T": "text"})))
    assert got["X"].isna().tolist() == [False, True, True, True, True, False, True]
    assert meta.missing_user_values == {}


def test_ibm_bit_patterns_read_like_pyreadstat(tmp_path: Path) -> None:
    """Non-normalised fractions, negative zero, exponent-only patterns, the infinity pattern,
    blanks in a numeric field: whatever ReadStat makes of them, bit for bit."""
    words = [bytes([0x80] + [0] * 7), bytes([0x40] + [0] * 7), bytes([0x35] + [0] * 7), b"\x7f" + b"\xff" * 7,
             b"\xff" * 8, bytes([0x41, 0x01] + [0] * 6), bytes([0x00, 0x10] + [0] * 6), bytes(7) + b"\x01",
             b"\x41\x10\0\0\0\0\0\x0f", b"\x7f\x7f" + b"\xff" * 6, b"\x20" * 8, bytes([0x00, 0xFF] + [0xFF] * 6),
             bytes([0xC1, 0x10] + [0] * 6), bytes([0x41, 0x80] + [0] * 5 + [1])]
    rows = [w + b"t" for w in words]
    variables = [XptVariable("X", "", "numeric", 8), XptVariable("T", "", "text", 1)]
    got, _ = assert_same(put(tmp_path / "ibm.xpt", crafted(variables, rows)))
    ref = np.array([readstat_double(w) for w in words])
    assert np.array_equal(got["X"].to_numpy(), ref, equal_nan=True)


def test_usecols_and_metadataonly_like_pyreadstat(tmp_path: Path) -> None:
    df, kw = CORPUS["many_columns"]
    path = put(tmp_path / "wide.xpt", xpt(df, **kw))
    assert_same(path, usecols=["V05", "V02", "V30", "NOPE"])  # file order kept, unknown names ignored
    got, meta = assert_same(path, metadataonly=True)
    assert len(got) == 0 and meta.number_rows is None


def test_encodings_like_pyreadstat(tmp_path: Path) -> None:
    """Values, labels and the dataset label in latin-1/cp1252: pyreadstat's iconv names and the
    reader's Python codec names give the same text; UTF-8 (the default) fails in both."""
    df = pd.DataFrame({"N": [1.0, 2.0], "S": pd.Series(["caf~", "It~s"], dtype=object)})
    raw = bytes(xpt(df, column_labels={"S": "lab~"}, file_label="fl~"))
    raw = raw.replace(b"caf~", b"caf\xe9").replace(b"It~s", b"It\x92s").replace(b"lab~", b"lab\xe9")
    path = put(tmp_path / "enc.xpt", raw.replace(b"fl~", b"fl\xe9"))
    got, meta = assert_same(path, encoding="cp1252", reference={"encoding": "WINDOWS-1252"})
    assert list(got["S"]) == ["café", "It’s"] and meta.file_label == "flé"
    assert_same(path, encoding="latin-1", reference={"encoding": "ISO-8859-1"})
    with pytest.raises(UnicodeDecodeError):
        pyreadstat.read_xport(str(path))
    with pytest.raises(UnicodeDecodeError, match="enc.xpt"):
        read_xport(path)


def test_utf8_failure_names_variable_and_row(tmp_path: Path) -> None:
    df = pd.DataFrame({"N": [1.0, 2.0, 3.0], "S": pd.Series(["ok", "ok", "caf~"], dtype=object)})
    path = put(tmp_path / "bad.xpt", bytes(xpt(df)).replace(b"caf~", b"caf\xe9"))
    with pytest.raises(UnicodeDecodeError, match=r"bad\.xpt: variable S, row 3"):
        read_xport(path)
    with pytest.raises(ValueError, match="unknown encoding"):
        read_xport(path, encoding="no-such-codec")


def test_v8_long_names_and_labels_like_pyreadstat(tmp_path: Path) -> None:
    df = pd.DataFrame({"LONGNAME_VARIABLE": [1.0, 2.0], "T": ["a", "b"], "ANOTHER_LONG_ONE": ["x" * 300, "y"]})
    path = tmp_path / "v8.xpt"
    pyreadstat.write_xport(df, str(path), file_format_version=8, table_name="LONGTABLENAME", file_label="x" * 40,
                           column_labels=["L" * 60, "short", "M" * 45])
    got, meta = assert_same(path)
    assert meta.xport_version == 8 and meta.column_names[0] == "LONGNAME_VARIABLE"
    assert got["ANOTHER_LONG_ONE"][0] == "x" * 300


def test_v8_labelv9_records_like_pyreadstat(tmp_path: Path) -> None:
    """LABELV9 entries: variable number and the lengths of name, label, format and informat, then
    those texts; rebuilt by hand from pyreadstat's LABELV8 file."""
    df = pd.DataFrame({"LONGNAME_VARIABLE": [1.0, 2.0], "T": ["a", "b"]})
    path = tmp_path / "v8.xpt"
    pyreadstat.write_xport(df, str(path), file_format_version=8, table_name="T9", column_labels=["L" * 60, "short"],
                           variable_format={"LONGNAME_VARIABLE": "DATE9."})
    raw = path.read_bytes()
    start = raw.index(b"HEADER RECORD*******LABELV8 ")
    end = raw.index(b"HEADER RECORD*******OBSV8   ")
    for fmt, informat in [(b"DATETIME", b"ANYDTDTM"), (b"", b""), (b"  X  ", b"Y\0Z")]:
        name, label = b"LONGNAME_VARIABLE", b"Q" * 50
        entry = struct.pack(">5H", 1, len(name), len(label), len(fmt), len(informat)) + name + label + fmt + informat
        section = b"HEADER RECORD*******LABELV9 HEADER RECORD!!!!!!!1".ljust(80) + entry
        section += b" " * (-len(section) % 80)
        patched = bytearray(raw[:start] + section + raw[end:])
        at = patched.index(b"HEADER RECORD*******NAMSTV8 ") + 80
        patch_at = {64: 20, 80: 19}  # nfl, nifl of the first namestr
        for offset, value in patch_at.items():
            struct.pack_into(">h", patched, at + offset, value)
        _, meta = assert_same(put(path, patched))
        assert meta.column_labels[0] == "Q" * 50


def test_vax_136_byte_namestrs(tmp_path: Path) -> None:
    """TS-140: namestrs are 136 bytes on VAX/VMS (the MEMBER record says so); pyreadstat assumes 140,
    the reader follows the header and reads the same values as from the 140-byte file."""
    df, kw = CORPUS["formats"]
    raw = bytes(xpt(df, **kw))
    start = namestr_at(raw, 0)
    obs = raw.index(OBS_HEADER)
    count = df.shape[1]
    namestrs = b"".join(raw[start + 140 * k: start + 140 * k + 136] for k in range(count))
    namestrs += b" " * (-len(namestrs) % 80)
    vax = bytearray(raw[:start] + namestrs + raw[obs:])
    member = vax.index(b"HEADER RECORD*******MEMBER  ")
    vax[member + 75: member + 78] = b"136"
    want, want_meta = read_xport(put(tmp_path / "std.xpt", raw))
    got, meta = read_xport(put(tmp_path / "vax.xpt", vax))
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert meta.original_variable_types == want_meta.original_variable_types


def test_second_member_ends_the_first(tmp_path: Path) -> None:
    """A file holding two datasets: the first is read exactly as on its own, ``more_members`` says
    more follow.  (pyreadstat reads the second member's headers as rows of the first: it fails on
    them or returns extra rows, so it is no reference here.)"""
    first = xpt(pd.DataFrame({"A": [1.0, 2.0], "C": pd.Series(["x", "y"], dtype=object)}), table_name="FIRST")
    second = xpt(pd.DataFrame({"Z": np.arange(300.0)}), table_name="SECOND")
    alone, alone_meta = read_xport(put(tmp_path / "first.xpt", first))
    path = put(tmp_path / "two.xpt", first + second[240:])
    for block in (reader.BLOCK_BYTES, 1):
        reader.BLOCK_BYTES, saved = block, reader.BLOCK_BYTES
        try:
            got, meta = read_xport(path)
        finally:
            reader.BLOCK_BYTES = saved
        pd.testing.assert_frame_equal(got, alone, check_exact=True)
        assert meta.more_members and not alone_meta.more_members and meta.table_name == "FIRST"
    read = read_xpt_file(path)
    assert read.note and "holds more than one dataset" in read.note and len(read.frame) == 2


# --------------------------------------------------------------------------------------------
# CDISC's files (../shared; skipped when absent)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.xpt")) if folder.is_dir() else []


@pytest.mark.parametrize("name", _files(MSG))
def test_cdisc_msg_sample_reads_like_pyreadstat(name: str) -> None:
    got, meta = assert_same(MSG / name)
    assert meta.number_rows == len(got) > 0


@pytest.mark.parametrize("name", _files(PILOT))
def test_cdisc_pilot_files_read_like_pyreadstat(name: str) -> None:
    path = PILOT / name
    try:
        pyreadstat.read_xport(str(path), metadataonly=True)
        pyreadstat.read_xport(str(path))
    except UnicodeDecodeError:  # ts.xpt holds a cp1252 byte: both readers refuse it as UTF-8 ...
        with pytest.raises(UnicodeDecodeError, match=name):
            read_xport(path)
        # ... and read it alike in cp1252 and latin-1
        got, _ = assert_same(path, encoding="cp1252", reference={"encoding": "WINDOWS-1252"})
        assert got.map(lambda v: isinstance(v, str) and "\u2019" in v).any().any()
        assert_same(path, encoding="latin-1", reference={"encoding": "ISO-8859-1"})
        return
    assert_same(path)


def test_pilot_cp1252_file_is_there() -> None:
    if not PILOT.is_dir():
        pytest.skip("../shared/reference/cdiscpilot01 is not present")
    with pytest.raises(UnicodeDecodeError):
        read_xport(PILOT / "ts.xpt")


# --------------------------------------------------------------------------------------------
# the pipeline's reader (read_xpt / read_xpt_file) keeps pyreadstat-based semantics


def _sas_dates(values: pd.Series, kind: str) -> pd.Series:
    unit = {"date": "D", "datetime": "s", "time": "s"}[kind]
    with np.errstate(invalid="ignore"):  # pandas 3.0.0 casts NaN to int64 on its way to NaT
        delta = pd.to_timedelta(values.to_numpy(dtype=np.float64), unit=unit)
    if kind == "time":
        return pd.Series(delta.astype("timedelta64[ns]"), index=values.index)
    return pd.Series((pd.Timestamp("1960-01-01") + delta).astype("datetime64[ns]"), index=values.index)


def pipeline_conventions(path: Path, encoding: str | None = None) -> pd.DataFrame:
    """What ``read_xpt`` returned when it was built on pyreadstat: text blanks -> None in object
    columns of ``str``, numerics float64, DATE/DATETIME/TIME formats -> datetime64/timedelta64."""
    df, meta = pyreadstat.read_xport(str(path), disable_datetime_conversion=True, encoding=encoding)
    cols = {}
    for name in df.columns:
        if meta.readstat_variable_types[name] == "string":
            obj = df[name].astype(object)
            cols[name] = obj.where(obj.notna() & (obj != ""), None).astype(object)
            continue
        kind = format_kind(read_format(meta.original_variable_types.get(name)))
        cols[name] = _sas_dates(df[name], kind) if kind else df[name].astype("float64")
    return pd.DataFrame(cols, columns=list(df.columns))


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_read_xpt_keeps_the_pipeline_conventions(case: str, tmp_path: Path) -> None:
    df, kw = CORPUS[case]
    path = put(tmp_path / f"{case}.xpt", xpt(df, **kw))
    pd.testing.assert_frame_equal(read_xpt(path), pipeline_conventions(path), check_exact=True)


def test_read_xpt_file_on_cdisc_files() -> None:
    files = [MSG / n for n in _files(MSG)] + [PILOT / n for n in _files(PILOT)]
    if not files:
        pytest.skip("../shared is not present")
    for path in files:
        read = read_xpt_file(path)
        enc = "WINDOWS-1252" if read.encoding == "cp1252" else None
        pd.testing.assert_frame_equal(read.frame, pipeline_conventions(path, enc), check_exact=True,
                                      obj=str(path))
        _, ref_meta = pyreadstat.read_xport(str(path), metadataonly=True, encoding=enc)
        for name in ("column_names", "column_labels", "file_label", "table_name", "variable_storage_width",
                     "readstat_variable_types"):
            assert getattr(read.meta, name) == getattr(ref_meta, name), (path.name, name)
        assert read.meta.file_encoding == read.encoding
    if PILOT.is_dir():
        assert read_xpt_file(PILOT / "ts.xpt").encoding == "cp1252"


# --------------------------------------------------------------------------------------------
# numbers: hypothesis


def readstat_double(word: bytes, width: int = 8) -> float:
    """ReadStat's reading of one numeric field in plain Python, written from its C source
    (``xport_process_row`` + TS-140's ``xpt2ieee``), independently of the vectorised code."""
    if not 3 <= width <= 8:
        return math.nan
    b = word[:width] + bytes(8 - width)
    if b[1:] == bytes(7) and (b[0] in b"._" or 0x41 <= b[0] <= 0x5A):
        return math.nan  # SAS missing value
    if b[0] and b[1:] == bytes(7):
        return math.nan  # xpt2ieee: 0xFFFF.. pattern (a NaN)
    x1, x2 = int.from_bytes(b[:4], "big"), int.from_bytes(b[4:], "big")
    if (x1 & 0x7FFFFFFF) == 0x7FFFFFFF and x2 == 0xFFFFFFFF:
        return -math.inf if x1 >> 31 else math.inf
    if x1 == 0 and x2 == 0:
        return 0.0
    ieee1, ieee2 = x1 & 0x00FFFFFF, x2
    shift = 3 if x1 & 0x00800000 else 2 if x1 & 0x00400000 else 1 if x1 & 0x00200000 else 0
    if shift:
        ieee1 >>= shift
        ieee2 = ((x2 >> shift) | ((x1 & 7) << (29 + (3 - shift)))) & 0xFFFFFFFF
    ieee1 &= 0xFFEFFFFF
    ieee1 |= ((((b[0] & 0x7F) - 65) << 2) + shift + 1023) << 20 | (x1 & 0x80000000)
    return struct.unpack(">d", struct.pack(">II", ieee1 & 0xFFFFFFFF, ieee2))[0]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=64))
@example([b"\x41\x10" + bytes(6), bytes(8), b"\x80" + bytes(7), b"\x7f" + b"\xff" * 7, b"\xff" * 8])
def test_ibm_conversion_is_readstats_bit_for_bit(words: list[bytes]) -> None:
    ibm = np.frombuffer(b"".join(words), dtype=">u8").astype(np.uint64)
    got = ibm_to_ieee_bits(ibm)
    want = np.array([readstat_double(w) for w in words])
    # a SAS missing value keeps NaN; otherwise the very same bits
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.array_equal(got[ok].view(np.uint64), want[ok].view(np.uint64))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hypothesis")


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64)
edges = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0**-260, -(2.0**-260), 2.0**-261, 2.0**248, (2 - 2.0**-52) * 2.0**248,
                         2.0**249, 5e-324, 1.7976931348623157e308, 1e-300, 1e70, -2.25e-10, 0.1, 1 / 3, math.nan])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(finite_or_not, edges, st.sampled_from(["A", "Z", "_"])), min_size=1, max_size=40))
def test_numbers_written_by_the_writer_read_like_pyreadstat(scratch: Path, values: list) -> None:
    """Whatever the writer makes of a double (exact in the IBM range, 0 below it, the largest IBM
    value above it, NaN as ".", tags as ".A"...), both readers read the same bits back, and in the
    IBM range (and 0, NaN) the value itself comes back."""
    col = pd.Series(values, dtype=object)
    df = pd.DataFrame({"X": col, "T": pd.Series(["t"] * len(values), dtype=object)})
    path = put(scratch / "num.xpt", xpt(df, types={"X": "numeric", "T": "text"}))
    got, _ = assert_same(path)
    nums = np.array([np.nan if isinstance(v, str) else v for v in values], dtype=np.float64)
    back = got["X"].to_numpy()
    exp = np.frexp(np.abs(nums))[1] - 1
    exact = np.isnan(nums) | (nums == 0) | ((exp >= -260) & (exp <= 248) & np.isfinite(nums))
    assert np.array_equal(back[exact], np.where(nums[exact] == 0, 0.0, nums[exact]), equal_nan=True)
    assert np.array_equal(back, ibm_to_ieee(ieee_to_ibm(nums)), equal_nan=True) or np.isinf(back).any()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=3, max_value=8), st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=40))
def test_short_numeric_lengths_read_like_pyreadstat(scratch: Path, width: int, words: list[bytes]) -> None:
    rows = [w[:width] + b"x" for w in words]
    variables = [XptVariable("X", "", "numeric", width), XptVariable("T", "", "text", 1)]
    got, _ = assert_same(put(scratch / "short.xpt", crafted(variables, rows)))
    want = np.array([readstat_double(w, width) for w in words])
    assert np.array_equal(got["X"].to_numpy(), want, equal_nan=True)


text_bytes = st.binary(max_size=24).map(lambda b: bytes(c if c in (0, 0x20) or c >= 0x21 else 0x41 for c in b))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=1, max_value=24), st.lists(text_bytes, min_size=1, max_size=60))
def test_text_bytes_read_like_pyreadstat(scratch: Path, width: int, values: list[bytes]) -> None:
    """Any bytes (blanks, NULs, high bytes) in a text field of any width (exact keys up to 8
    bytes, hashed and verified above), read as latin-1 by both."""
    rows = [v[:width].ljust(width, b" ") + b"\x41\x10" + bytes(6) for v in values]
    variables = [XptVariable("S", "", "text", width), XptVariable("N", "", "numeric", 8)]
    assert_same(put(scratch / "text.xpt", crafted(variables, rows)), encoding="latin-1",
                reference={"encoding": "ISO-8859-1"})


# --------------------------------------------------------------------------------------------
# bad input: a clear XptReadError, never another exception, never silent garbage


def _expect_error(path: Path, *fragments: str) -> XptReadError:
    with pytest.raises(XptReadError) as exc:
        read_xport(path)
    assert str(path) in str(exc.value)
    for fragment in fragments:
        assert fragment in exc.value.problem, exc.value.problem
    return exc.value


def test_not_xport_files_are_named(tmp_path: Path) -> None:
    _expect_error(put(tmp_path / "empty.xpt", b""), "empty file")
    _expect_error(put(tmp_path / "text.xpt", b"not an xpt file"), "not a SAS transport (XPORT) file",
                  "not an xpt file")
    sas7bdat = bytes.fromhex("000000000000000000000000c2ea8160b31411cfbd92080009c7318c181f1011") + bytes(1000)
    _expect_error(put(tmp_path / "ds.xpt", sas7bdat), "SAS7BDAT")
    _expect_error(put(tmp_path / "cport.xpt", b"**COMPRESSED** **COMPRESSED** " * 10), "CPORT")
    with pytest.raises(FileNotFoundError):
        read_xport(tmp_path / "missing.xpt")


def test_truncated_header_says_where(tmp_path: Path) -> None:
    df, kw = CORPUS["many_columns"]
    raw = bytes(xpt(df, **kw))
    obs = raw.index(OBS_HEADER) + 80
    for cut in sorted({1, 79, 80, 81, 160, 240, 320, 400, 480, 560, 640, 700, 1000, 2000, obs - 1, obs - 80}):
        err = _expect_error(put(tmp_path / "cut.xpt", raw[:cut]))
        assert "truncated" in err.problem or "empty" in err.problem or "not a" in err.problem, (cut, err.problem)


def test_truncated_observations_are_errors_not_fewer_rows(tmp_path: Path) -> None:
    """pyreadstat silently returns the rows it could read; the reader says the file is cut."""
    df = pd.DataFrame({"A": np.arange(100.0), "C": pd.Series(["abc"] * 100, dtype=object)})
    raw = bytes(xpt(df))
    _expect_error(put(tmp_path / "c1.xpt", raw[:-5]), "not a multiple of 80")
    err = _expect_error(put(tmp_path / "c2.xpt", raw[:-80]), "inside a row")
    assert "row" in err.problem
    assert len(pyreadstat.read_xport(str(tmp_path / "c2.xpt"))[0]) < 100  # what the reference does


def test_damaged_header_records_are_named(tmp_path: Path) -> None:
    raw = bytearray(xpt(BASE))
    bad = bytearray(raw)
    bad[240:248] = b"XXXXXXXX"  # the MEMBER header record
    _expect_error(put(tmp_path / "m.xpt", bad), "expected the MEMBER header record at byte 240")
    bad = bytearray(raw)
    at = bad.index(OBS_HEADER)
    bad[at + 20: at + 28] = b"OBX     "
    _expect_error(put(tmp_path / "o.xpt", bad), "expected the OBS header record", "OBX")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_files_never_give_another_exception(scratch: Path, data: st.DataObject) -> None:
    """Cut anywhere, or bytes overwritten anywhere: either a frame or XptReadError/UnicodeDecodeError
    (text that is not UTF-8 any more), nothing else."""
    case = data.draw(st.sampled_from(["strings", "formats", "random_mix", "all_character", "empty_dataset"]))
    df, kw = CORPUS[case]
    raw = bytearray(xpt(df, **kw))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(min_value=0, max_value=len(raw)))]
    else:
        for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
            at = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
            raw[at] = data.draw(st.integers(min_value=0, max_value=255))
    path = put(scratch / "damaged.xpt", raw)
    try:
        frame, meta = read_xport(path)
    except (XptReadError, UnicodeDecodeError):
        return
    assert meta.number_rows == len(frame)


def test_pipeline_reader_turns_errors_into_input_errors(tmp_path: Path) -> None:
    for name, raw in [("bad.xpt", b"not an xpt file"), ("cut.xpt", bytes(xpt(BASE))[:-3])]:
        with pytest.raises(InputError) as exc:
            read_xpt(put(tmp_path / name, raw))
        (problem,) = exc.value.problems
        assert problem.file == str(tmp_path / name) and problem.message.startswith("cannot read XPT file: ")
    with pytest.raises(InputError, match="cannot read XPT file"):
        read_xpt(tmp_path / "missing.xpt")


# --------------------------------------------------------------------------------------------
# header access and the benchmark


def test_read_header_and_read_data(tmp_path: Path) -> None:
    df, kw = CORPUS["formats"]
    path = put(tmp_path / "fmt.xpt", xpt(df, **kw))
    header = read_header(path)
    assert [v.name for v in header.variables] == [c.encode() for c in df.columns]
    assert header.row_length == 8 * df.shape[1] and header.version == 5
    assert header.created == header.modified and header.created.isoformat() == "2025-06-30T08:15:42"
    data = read_data(path, columns=[0, 3])
    assert sorted(data.numeric) == [0, 3] and data.rows == len(df)
    assert np.array_equal(data.numeric[3], df["AVAL"].to_numpy(), equal_nan=True)


def test_benchmark_runs_and_checks_equality(tmp_path: Path) -> None:
    from benchmarks.bench_xpt_read import bench

    res = bench(rows=2000, repeat=1, work=tmp_path)
    assert res["identical_to_pyreadstat"] and res["speedup_vs_pyreadstat"] is not None
    assert set(res["readers"]) >= {"pyreadstat.read_xport", "cdisc_pipe.xpt.reader.read_xport"}


@pytest.mark.parametrize("accent", [b"\xc3\xa9", b"\xe9"])  # UTF-8, then cp1252 (detected)
def test_text_as_str_holds_the_same_values_and_knows_their_distinct_values(accent: bytes, tmp_path: Path) -> None:
    """``read_xpt_file(text="str")`` (what validation reads): the values of ``text="object"`` in
    pandas' str dtype (blank missing), and each column's codes and distinct values known, equal to
    factorizing the column: "ab" and "ab " read the same, a NUL ends a value, blanks are missing."""
    from cdisc_pipe.xpt.reader import known_distinct

    values = [b"ab        ", b"ab  ", b"          ", b"x\0y", b"caf" + accent, b"ab", b"", b"x", b"   lead"]
    rows = [v.ljust(10) + b"n" for v in values]
    variables = [XptVariable("S", "", "text", 10), XptVariable("N", "", "text", 1)]
    path = put(tmp_path / "s.xpt", crafted(variables, rows))
    plain = read_xpt_file(path).frame
    held = read_xpt_file(path, text="str")
    assert isinstance(held.frame["S"].dtype, pd.StringDtype)
    got = [v if isinstance(v, str) else None for v in held.frame["S"].tolist()]
    assert got == plain["S"].tolist() == ["ab", "ab", None, "x", "café", "ab", None, "x", "   lead"]
    codes, uniques = known_distinct(held.frame["S"])
    assert uniques.tolist() == ["ab", "x", "café", "   lead"]  # first seen, none repeated, none missing
    assert codes.tolist() == [0, 0, -1, 1, 2, 0, -1, 1, 3]
    ref_codes, ref_uniques = pd.factorize(plain["S"].to_numpy(dtype=object), use_na_sentinel=True)
    assert codes.tolist() == ref_codes.tolist() and uniques.tolist() == list(ref_uniques)
    # a column with one distinct value and the empty dataset
    assert known_distinct(held.frame["N"])[1].tolist() == ["n"]
    empty = read_xpt_file(put(tmp_path / "e.xpt", crafted(variables, [])), text="str").frame
    assert len(empty) == 0 and isinstance(empty["S"].dtype, pd.StringDtype)
