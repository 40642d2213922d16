"""A vectorised SAS transport (XPORT) version 5 writer.

The byte layout follows SAS technical note TS-140 and reproduces what ReadStat (pyreadstat's
``write_xport(..., file_format_version=5)``) writes, byte for byte, except the header time stamps,
which here come from the caller (the study's ``metadata_datetime``) instead of the wall clock.
``tests/test_xpt_equivalence.py`` proves the equivalence over a corpus of edge cases.

Layout of a file (all records 80 bytes):

1. ``LIBRARY`` header record, the first real header (``SAS SAS SASLIB 6.06 bsd4.2`` + created
   stamp), a record holding the modified stamp;
2. ``MEMBER`` and ``DSCRPTR`` header records, the member record (dataset name + stamp), the file
   label record (stamp + label);
3. ``NAMESTR`` header record with the variable count, then one 140-byte namestr per variable
   (big-endian integers), the block padded with blanks to a multiple of 80 bytes;
4. ``OBS`` header record, then the observations: fixed-width rows written back to back (numerics
   as 8-byte IBM 370 floats, character values blank-padded), padded with blanks to 80 bytes.

Numeric conversion (IEEE 754 -> IBM hexadecimal floating point) is exact for every finite
double whose binary exponent lies in [-260, 248]; smaller magnitudes become 0 and larger ones the
largest IBM value, exactly as TS-140's ``ieee2xpt`` (and ReadStat) do.  NaN is the standard missing
value ``.`` (byte 0x2E followed by zeros); special missing values ``.A``-``.Z`` and ``._`` are
written from one-letter strings in a numeric column (the representation pyreadstat's reader gives
with ``user_missing=True``).
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

RECORD = 80
NAMESTR_LEN = 140
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
#: Rows encoded per block: bounds memory (rows x row length bytes) without slowing the writer.
CHUNK_ROWS = 131_072
SPECIAL_MISSING = frozenset([chr(c) for c in range(ord("A"), ord("Z") + 1)] + ["_", "."])

_FORMAT_RE = re.compile(r"^(?P<name>\$?[A-Za-z_](?:[A-Za-z0-9_]*[A-Za-z_])?)?(?P<width>\d*)(?:\.(?P<dec>\d*))?$")


@dataclass(frozen=True)
class XptVariable:
    """One variable as written: name, label, type, storage length and SAS display format."""

    name: str
    label: str
    type: Literal["text", "numeric"]
    length: int  # storage bytes: 8 for numerics, longest value (>= 1) for text
    format: str | None = None  # e.g. "DATE9."


@dataclass(frozen=True)
class SasFormat:
    """A parsed SAS format: ``DATE9.`` -> name ``DATE``, width 9, decimals 0."""

    name: str
    width: int
    decimals: int


def parse_format(text: str) -> SasFormat:
    """Split a SAS format (``DATE9.``, ``8.2``, ``DATETIME20.``, ``E8601DA10.``) into its parts.

    Raises ``ValueError`` for text that is not a SAS format or whose name exceeds 8 characters
    (XPT v5 stores format names in 8 bytes).
    """
    m = _FORMAT_RE.match(text.strip())
    if not m or not text.strip():
        raise ValueError(f"not a SAS format: {text!r}")
    name = m.group("name") or ""
    if len(name) > 8:
        raise ValueError(f"SAS format name longer than 8 characters (XPT v5): {text!r}")
    width = int(m.group("width")) if m.group("width") else 0
    dec = int(m.group("dec")) if m.group("dec") else 0
    return SasFormat(name=name, width=width, decimals=dec)


def read_format(text: str | None) -> str | None:
    """The display format a reader reports, in one spelling: ``"DATE9."``, ``"8.2"``, or ``None``.

    Readers spell the NAMESTR format fields differently across versions: pyreadstat 1.2 reports a
    variable without a format as the text ``"NULL"`` and 1.3 as ``None``; pyreadstat up to 1.3.7
    reports ``DATE`` width 9 as ``"DATE9"``, 1.3.8 as ``"DATE9."``.  Every reader of XPT metadata
    goes through this function so that no check depends on the reader's release.  Text that is not
    a SAS format is returned stripped, unchanged otherwise (never dropped).
    """
    if text is None:
        return None
    raw = str(text).strip()
    if not raw or raw.upper() == "NULL":
        return None
    try:
        fmt = parse_format(raw)
    except ValueError:
        return raw
    width = str(fmt.width) if fmt.width else ""
    return f"{fmt.name}{width}.{fmt.decimals if fmt.decimals else ''}"


def format_timestamp(metadata_datetime: str | _dt.datetime) -> str:
    """The 16-character XPT stamp ``DDMONYY:HH:MM:SS`` for an ISO 8601 date-time."""
    if isinstance(metadata_datetime, str):
        when = _dt.datetime.fromisoformat(metadata_datetime)
    else:
        when = metadata_datetime
    return (
        f"{when.day:02d}{MONTHS[when.month - 1]}{when.year % 100:02d}:"
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    )


# --------------------------------------------------------------------------------------------
# numerics


def ieee_to_ibm(values: np.ndarray) -> np.ndarray:
    """Convert float64 values to IBM 370 double precision, returned as big-endian bytes (n, 8).

    NaN becomes the SAS missing value ``.`` (0x2E then seven zero bytes).  The arithmetic mirrors
    TS-140's ``ieee2xpt``: the 53-bit IEEE mantissa (implicit 1 restored) is shifted left by the
    binary exponent modulo 4, so no bits are lost; the hexadecimal exponent is excess 64.
    """
    x = np.ascontiguousarray(values, dtype=np.float64)
    bits = x.view(np.uint64).astype(np.int64, copy=False)
    sign = (bits >> 63) & 1
    ieee_exp = ((bits >> 52) & 0x7FF) - 1023
    frac = (bits & ((1 << 52) - 1)) | (1 << 52)
    shift = ieee_exp & 3
    fraction56 = frac << shift
    exp_byte = ((ieee_exp >> 2) + 65) | (sign << 7)
    out = (exp_byte << 56) | fraction56
    # Out-of-range exponents: underflow to 0 (also +-0.0 and subnormals), overflow to the largest
    # IBM magnitude with the sign kept (also +-inf).
    out = np.where(ieee_exp < -260, 0, out)
    big = np.int64(0x7FFFFFFFFFFFFFFF)
    out = np.where(ieee_exp > 248, big | (sign << 63), out)
    out = np.where(np.isnan(x), np.int64(0x2E) << 56, out)
    return out.astype(">i8").view(np.uint8).reshape(-1, 8)


def ibm_to_ieee(raw: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ieee_to_ibm` for (n, 8) big-endian IBM bytes; missing values -> NaN."""
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1, 8)
    ibm = raw.view(">u8").reshape(-1).astype(np.uint64)
    sign = np.where((ibm >> np.uint64(63)) == 1, -1.0, 1.0)
    exp = ((ibm >> np.uint64(56)) & np.uint64(0x7F)).astype(np.int64) - 64
    frac = (ibm & np.uint64((1 << 56) - 1)).astype(np.float64)
    # frac has at most 56 significant bits: float64 keeps 53; values written by ieee_to_ibm hold
    # only 53 significant bits, so the conversion below is exact for them.
    out = sign * np.ldexp(frac, (4 * exp - 56).astype(np.int64))
    missing = (raw[:, 1:] == 0).all(axis=1) & (raw[:, 0] != 0) & (raw[:, 0] != 0x80)
    out[missing] = np.nan
    return out


def _numeric_block(col: np.ndarray) -> np.ndarray:
    """(n, 8) IBM bytes for a numeric column: floats, or objects mixing floats and missing tags.

    Object columns (the special-missing representation) get a per-value type test; float
    columns, the normal case, are converted in one vectorised pass.
    """
    if col.dtype != object:
        return ieee_to_ibm(col.astype(np.float64, copy=False))
    is_tag = np.fromiter((isinstance(v, str) for v in col), dtype=bool, count=len(col))
    nums = np.where(is_tag, np.nan, col)
    nums = pd.to_numeric(pd.Series(nums, dtype=object), errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    block = ieee_to_ibm(nums)
    if is_tag.any():
        tags = col[is_tag]
        bad = sorted({t for t in tags if t not in SPECIAL_MISSING})
        if bad:
            raise ValueError(f"not a SAS special missing value: {bad[:5]}")
        block[is_tag, 0] = np.frombuffer("".join(tags).encode("ascii"), dtype=np.uint8)
        block[is_tag, 1:] = 0
    return block


# --------------------------------------------------------------------------------------------
# text


def text_values(series: pd.Series) -> np.ndarray:
    """The column as an object array (missing values as they are; :func:`text_source` blanks them)."""
    return series.to_numpy(dtype=object)


def low_cardinality(values: np.ndarray, sample: int = 20_000, ratio: float = 0.3) -> bool:
    """Whether a column has few distinct values (judged on an evenly spaced sample).

    Low-cardinality text (codes, units, visit names, identifiers repeated per record) is cheaper
    to process once per distinct value and broadcast back; only speed depends on this answer.
    """
    n = len(values)
    if n <= sample:
        return True
    probe = values[:: n // sample]
    return len(pd.unique(probe)) < ratio * len(probe)


def factorize_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values) of an object array **by value**; missing -> code -1.

    Same result as ``pd.factorize(values, use_na_sentinel=True)``.  pandas' object hash table is
    used directly when available (it hashes by the cached Python hash and compares identity
    first: 3-4x faster than the string table ``pd.factorize`` picks for all-``str`` arrays).
    ``conform`` uses this on incoming data so that its output holds one object per distinct
    value; later passes can then use the faster :func:`factorize_objects`.
    """
    values = np.ascontiguousarray(values, dtype=object)
    if _FAST_FACTORIZE:
        try:
            from pandas._libs import hashtable

            uniques, codes = hashtable.PyObjectHashTable(min(max(len(values), 1), 1 << 16)).factorize(
                values, na_sentinel=-1)
            return np.asarray(codes), np.asarray(uniques, dtype=object)
        except (ImportError, AttributeError, TypeError, ValueError):
            pass  # a pandas without this internal table: the public function gives the same result
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes), np.asarray(uniques, dtype=object)


def factorize_objects(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values) of an object array; missing (None, NaN, NA, NaT) -> code -1.

    Objects are told apart by **identity**: the array's object pointers are read as integers
    (through ``ndarray.ctypes``) and factorized by pandas' integer hash table, which is several
    times faster than hashing strings.  Equal values held by different objects get different
    codes, so ``uniques`` may repeat a value: harmless for every caller (each code still maps to
    its own value), only the table is longer.  Conformed frames hold one object per distinct value
    (``conform`` builds text columns by gathering from a table), so there the codes are exact.
    Falls back to :func:`factorize_values` if the pointers cannot be read.
    """
    values = np.ascontiguousarray(values, dtype=object)
    n = len(values)
    if n == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=object)
    if _FAST_FACTORIZE:
        try:
            # The pointers stay valid while ``values`` (which holds the objects) is alive here.
            ptrs = np.ctypeslib.as_array((ctypes.c_ssize_t * n).from_address(values.ctypes.data))
            codes, ptr_uniques = pd.factorize(ptrs)
            # one row per code: every row of a code holds the very same object, so any will do
            row_of = np.empty(len(ptr_uniques), dtype=np.intp)
            row_of[codes] = np.arange(n, dtype=np.intp)
            uniques = values[row_of]
            missing = pd.isna(uniques)
            if missing.any():
                remap = np.cumsum(~missing) - 1
                remap[missing] = -1
                codes = remap[codes]
                uniques = uniques[~missing]
            return np.asarray(codes), uniques
        except (AttributeError, TypeError, ValueError, OSError):
            pass  # no ctypes access: factorize by value
    return factorize_values(values)


#: Module switch for tests: False forces the plain ``pd.factorize`` path everywhere.
_FAST_FACTORIZE = True


def encode_text(values: np.ndarray) -> np.ndarray:
    """Fixed-width UTF-8 bytes (numpy ``S``) of an object array of ``str`` (no missing values)."""
    try:
        return values.astype(np.bytes_)  # ASCII codec: one C loop; raises on a non-ASCII value
    except UnicodeEncodeError:
        return np.char.encode(values.astype(np.str_), "utf-8")


def _blank_padded(enc: np.ndarray) -> np.ndarray:
    """(k, itemsize) uint8 matrix of ``S`` values padded with blanks instead of NULs."""
    nbytes = max(enc.dtype.itemsize, 1)
    padded = np.strings.ljust(enc, nbytes, b" ").astype(f"S{nbytes}", copy=False)
    return padded.view(np.uint8).reshape(len(enc), nbytes)


@dataclass(frozen=True)
class ColumnBytes:
    """The encoded bytes of one variable, ready to be placed in the observation rows.

    Either a (n, width) ``block`` (numerics, high-cardinality text), or a (k, width) ``table`` of
    distinct values gathered by per-row ``codes`` straight into the row buffer.
    """

    width: int
    block: np.ndarray | None = None
    table: np.ndarray | None = None
    codes: np.ndarray | None = None

    def fill(self, out: np.ndarray, start: int, stop: int) -> None:
        """Write rows ``start:stop`` into ``out``: the column's field (``V<width>``) of the row buffer.

        Rows are moved as opaque ``width``-byte items (numpy void), one memcpy each, which is
        several times faster than copying a 2-D (rows, width) slice into a strided view.
        """
        if self.block is not None:
            out[...] = self.block[start:stop].view(f"V{self.width}").reshape(-1)
        else:
            out[...] = self.table.view(f"V{self.width}").reshape(-1)[self.codes[start:stop]]

    def matrix(self) -> np.ndarray:
        """The full (n, width) matrix."""
        return self.block if self.block is not None else self.table[self.codes]


def text_source(values: np.ndarray, width: int | None = None) -> ColumnBytes:
    """Encode text values as blank-padded UTF-8 bytes; missing values (None, NaN, NA) are blanks.

    The width defaults to the longest UTF-8 byte length present (at least 1), which is what
    ReadStat writes and what the FDA asks for.  Low-cardinality columns are encoded once per
    distinct value (``pd.factorize``) and gathered by code; others go through numpy's fixed-width
    bytes conversion.  Raises ``ValueError`` if a value is longer than an explicit ``width``.
    """
    n = len(values)
    if n == 0:
        w = max(width or 1, 1)
        return ColumnBytes(width=w, block=np.zeros((0, w), dtype=np.uint8))
    values = np.asarray(values, dtype=object)
    codes = None
    if low_cardinality(values):
        codes, uniques = factorize_objects(values)  # missing -> -1
        enc = encode_text(np.append(uniques, ""))
        codes = np.where(codes < 0, len(enc) - 1, codes)  # the blank value appended last
        codes = codes.astype(np.int32 if len(enc) > 32_000 else np.int16)
    else:
        mask = pd.isna(values)
        if mask.any():
            values = values.copy()
            values[mask] = ""
        enc = encode_text(values)
    mat = _blank_padded(enc)
    nbytes = mat.shape[1]
    if width is None:
        width = nbytes
    if nbytes > width:
        lens = np.strings.str_len(enc)
        if (lens > width).any():
            first = int(np.flatnonzero(lens > width)[0])
            row = int(np.flatnonzero(codes == first)[0]) if codes is not None else first
            raise ValueError(f"value of {int(lens[first])} bytes at row {row + 1} exceeds length {width}")
        mat = mat[:, :width]
    if mat.shape[1] < width:
        mat = np.hstack([mat, np.full((len(mat), width - mat.shape[1]), 0x20, dtype=np.uint8)])
    mat = np.ascontiguousarray(mat)
    if codes is not None:
        return ColumnBytes(width=width, table=mat, codes=codes)
    return ColumnBytes(width=width, block=mat)


def text_matrix(values: np.ndarray, width: int | None = None) -> tuple[np.ndarray, int]:
    """(n, width) blank-padded UTF-8 matrix of text values and its width (see :func:`text_source`)."""
    src = text_source(values, width)
    return src.matrix(), src.width


# --------------------------------------------------------------------------------------------
# headers


def _pad(text: str, n: int) -> bytes:
    """ReadStat's ``copypad``: the UTF-8 bytes cut to n, blank-padded to n."""
    raw = text.encode("utf-8")[:n]
    return raw + b" " * (n - len(raw))


def _header(name: str, nums: Sequence[int] = (0, 0, 0, 0, 0, 0)) -> bytes:
    rec = "HEADER RECORD*******" + f"{name:<8}" + "HEADER RECORD!!!!!!!" + "".join(f"{v:05d}" for v in nums)
    return _pad(rec, RECORD)


def _namestr(var: XptVariable, index: int, position: int) -> bytes:
    numeric = var.type == "numeric"
    if var.format:
        fmt = parse_format(var.format)
        nform, nfl, nfd = fmt.name, fmt.width, fmt.decimals
    else:
        nform, nfl, nfd = "", 0, 0
    return struct.pack(
        ">hhhh8s40s8shhh2s8shhi52s",
        1 if numeric else 2,  # ntype
        0,  # nhfun
        var.length,  # nlng
        index,  # nvar0
        _pad(var.name, 8),
        _pad(var.label or "", 40),
        _pad(nform, 8),
        nfl,
        nfd,
        1 if numeric else 0,  # nfj: ReadStat right-aligns numerics, left-aligns text
        b"\0\0",
        _pad("", 8),  # niform (no informat)
        0,
        0,
        position,  # npos
        b"\0" * 52,
    )


def header_bytes(variables: Sequence[XptVariable], *, table_name: str, file_label: str, timestamp: str) -> bytes:
    """Everything before the first observation: library, member, namestr and OBS headers."""
    if len(timestamp) != 16:
        raise ValueError(f"XPT time stamp must be 16 characters, got {timestamp!r}")
    parts = [
        _header("LIBRARY"),
        _pad(f"{'SAS':<8}{'SAS':<8}{'SASLIB':<8}{'6.06':<8}{'bsd4.2':<8}{'':<24}{timestamp}", RECORD),
        _pad(timestamp, RECORD),
        _header("MEMBER", (0, 0, 0, 160, 0, 140)),
        _header("DSCRPTR"),
        _pad(f"{'SAS':<8}{table_name[:8]:<8}{'SASDATA':<8}{'6.06':<8}{'bsd4.2':<8}{'':<24}{timestamp}", RECORD),
        _pad(timestamp + " " * 16, 32) + _pad(file_label, 40) + b" " * 8,
        _header("NAMESTR", (0, len(variables), 0, 0, 0, 0)),
    ]
    pos = 0
    names = []
    for i, var in enumerate(variables, start=1):
        names.append(_namestr(var, i, pos))
        pos += var.length
    block = b"".join(names)
    block += b" " * (-len(block) % RECORD)
    parts.append(block)
    parts.append(_header("OBS"))
    return b"".join(parts)


# --------------------------------------------------------------------------------------------
# the writer


def plan_variables(
    df: pd.DataFrame,
    *,
    column_labels: Mapping[str, str | None] | None = None,
    variable_format: Mapping[str, str] | None = None,
    types: Mapping[str, Literal["text", "numeric"]] | None = None,
) -> tuple[list[XptVariable], list[ColumnBytes]]:
    """Decide each variable's type and storage length and encode its column.

    Type: from ``types`` when given, else numeric for numeric/bool dtypes and text otherwise.
    """
    variables: list[XptVariable] = []
    sources: list[ColumnBytes] = []
    labels = column_labels or {}
    formats = variable_format or {}
    for name in df.columns:
        s = df[name]
        kind = (types or {}).get(name)
        if kind is None:
            kind = "numeric" if (s.dtype != object and pd.api.types.is_numeric_dtype(s.dtype)) else "text"
        if kind == "numeric":
            col = s.to_numpy(dtype=object) if s.dtype == object else s.to_numpy(dtype=np.float64, na_value=np.nan)
            src = ColumnBytes(width=8, block=_numeric_block(col))
        else:
            src = text_source(text_values(s))
        variables.append(
            XptVariable(name=str(name), label=labels.get(name) or "", type=kind, length=src.width, format=formats.get(name))
        )
        sources.append(src)
    return variables, sources


def iter_observation_bytes(sources: Sequence[ColumnBytes], nrows: int, chunk_rows: int = CHUNK_ROWS) -> Iterable[memoryview]:
    """Yield the observation section in chunks of rows (fresh buffers), then the blank padding."""
    row_len = sum(src.width for src in sources)
    offsets = np.cumsum([0] + [src.width for src in sources[:-1]]).tolist()
    row = np.dtype({"names": [f"c{i}" for i in range(len(sources))],
                    "formats": [f"V{src.width}" for src in sources], "offsets": offsets, "itemsize": row_len})
    total = 0
    for start in range(0, nrows, chunk_rows):
        stop = min(start + chunk_rows, nrows)
        buf = np.empty(stop - start, dtype=row)
        for i, src in enumerate(sources):
            src.fill(buf[f"c{i}"], start, stop)
        total += buf.nbytes
        yield memoryview(buf.view(np.uint8).reshape(-1))
    pad = -total % RECORD
    if pad:
        yield memoryview(b" " * pad)


def xpt_v5_chunks(
    df: pd.DataFrame,
    *,
    table_name: str,
    file_label: str = "",
    timestamp: str,
    column_labels: Mapping[str, str | None] | None = None,
    variable_format: Mapping[str, str] | None = None,
    types: Mapping[str, Literal["text", "numeric"]] | None = None,
) -> tuple[list[XptVariable], Iterable[bytes | memoryview]]:
    """The variables as written and an iterator over the file's bytes (header first).

    ``timestamp`` is the 16-character XPT stamp (see :func:`format_timestamp`).
    """
    if df.shape[1] == 0:
        raise ValueError("an XPT file needs at least one variable")
    variables, sources = plan_variables(df, column_labels=column_labels, variable_format=variable_format, types=types)
    head = header_bytes(variables, table_name=table_name, file_label=file_label, timestamp=timestamp)

    def gen() -> Iterable[bytes]:
        yield head
        yield from iter_observation_bytes(sources, len(df))

    return variables, gen()


def write_xpt_v5(
    path: str | os.PathLike[str],
    df: pd.DataFrame,
    *,
    table_name: str,
    file_label: str = "",
    timestamp: str,
    column_labels: Mapping[str, str | None] | None = None,
    variable_format: Mapping[str, str] | None = None,
    types: Mapping[str, Literal["text", "numeric"]] | None = None,
) -> list[XptVariable]:
    """Write ``df`` as an XPT v5 file at ``path``; return the variables as written.

    The arguments mirror ``pyreadstat.write_xport`` (column labels, table name, file label,
    formats), plus the fixed ``timestamp`` and optional explicit ``types``.  No FDA checks happen
    here (see :func:`cdisc_pipe.xpt.check_datasets`); this function only encodes.
    """
    variables, chunks = xpt_v5_chunks(
        df,
        table_name=table_name,
        file_label=file_label,
        timestamp=timestamp,
        column_labels=column_labels,
        variable_format=variable_format,
        types=types,
    )
    with open(Path(path), "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
    return variables


def xpt_v5_bytes(df: pd.DataFrame, **kwargs) -> bytes:
    """The whole file as bytes (same keyword arguments as :func:`write_xpt_v5`)."""
    _, chunks = xpt_v5_chunks(df, **kwargs)
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------
# what common readers will make of a file (known reader limitations, see docs/XPT.md)

BLANK_WORD = np.uint64(0x2020202020202020)


def pandas_row_count(last_record: bytes, data_length: int, row_length: int) -> int:
    """The record count ``pandas.read_sas`` (3.x) infers for an XPT v5 file.

    pandas has no record count to read (v5 stores none): for rows longer than 80 bytes it divides
    the observation section by the row length, which is right; for rows of 80 bytes or less it
    subtracts 8 bytes for *every* 8-byte all-blank word of the last 80-byte record, wherever it is,
    so blank text near the end of the data makes it drop real records.  ``data_length`` is the
    length of the observation section including the final padding.
    """
    if row_length <= 0:
        return 0
    if row_length > RECORD:
        return data_length // row_length
    words = np.frombuffer(last_record[-RECORD:], dtype=np.uint64)
    tail_pad = 8 * int(np.count_nonzero(words == BLANK_WORD))
    return max(data_length - tail_pad, 0) // row_length
