"""Distinct values known from the held conversion (``validate.data.known_distinct``, #18).

A held dataset's text columns come with their codes and distinct values (made while the column was
converted as read back).  The helpers and the run-to-run snapshot use them instead of factorizing
the column again; each result must equal the one computed from the values (a copy of the column,
whose array is not known).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.validate.context import (
    complete_date, distinct, first_of_group, group_codes, is_null, map_unique, outside_values, text_bytes,
)
from cdisc_pipe.validate.data import _text_as_read, known_distinct

# a conformed text column as the XPT file gets it: trailing blanks ("A " reads as "A"), a NUL ends
# a value, blanks and None are missing, non-ASCII text, partial and complete dates
VALUES = ["A", "A ", None, "", "B\0x", "B", "é", "  ", "2024-01-05", "2024-01", "2024-01-05T10:00", "A", None]


def _held(values: list, index: pd.Index | None = None) -> pd.Series:
    return _text_as_read(np.array(values, dtype=object), pd.RangeIndex(len(values)) if index is None else index)


def _unknown(s: pd.Series) -> pd.Series:
    """The same values in a new array (nothing known of it)."""
    out = pd.Series(s.to_numpy(dtype=object).copy(), dtype="str")
    assert known_distinct(out) is None
    return out


def test_held_text_column_knows_its_distinct_values():
    s = _held(VALUES)
    # "A " reads as "A", "B\0x" as "B", "" and "  " as missing
    assert [v if isinstance(v, str) else None for v in s.tolist()[:8]] == ["A", "A", None, None, "B", "B", "é", None]
    codes, uniques = known_distinct(s)
    assert uniques.tolist() == ["A", "B", "é", "2024-01-05", "2024-01", "2024-01-05T10:00"]  # none repeated, none missing
    assert codes.dtype == np.int8
    rebuilt = [uniques[c] if c >= 0 else None for c in codes]
    assert rebuilt == [v if isinstance(v, str) else None for v in s.tolist()]
    # the same values in another array, a subset or a copy: not known (factorized when asked)
    assert known_distinct(_unknown(s)) is None
    assert known_distinct(s.iloc[1:]) is None
    c2, u2 = distinct(_unknown(s))
    assert [u2[c] if c >= 0 else None for c in c2] == rebuilt


def test_all_missing_and_wide_columns():
    empty = _held([None, "", " "])
    codes, uniques = known_distinct(empty)
    assert codes.tolist() == [-1, -1, -1] and len(uniques) == 0
    assert is_null(empty).tolist() == [True, True, True]
    # 200 distinct values need 2-byte codes
    wide = _held([f"V{i}" for i in range(200)] * 2)
    assert known_distinct(wide)[0].dtype == np.int16


@pytest.mark.parametrize("fn", [
    is_null,
    lambda s: np.concatenate(text_bytes(s)),
    lambda s: group_codes(pd.DataFrame({"a": s, "b": s.iloc[::-1].reset_index(drop=True)}), ["a", "b"]),
    lambda s: map_unique(s, lambda u: u.str.len().to_numpy(), -1),
    lambda s: complete_date(s).to_numpy(),
    lambda s: outside_values(s, ["A", "é", "2024-01"]),
    lambda s: first_of_group(group_codes(pd.DataFrame({"a": s}), ["a"])),
])
def test_helpers_give_the_same_from_known_distinct_values(fn):
    s = _held(VALUES)
    assert known_distinct(s) is not None
    got, expected = np.asarray(fn(s)), np.asarray(fn(_unknown(s)))
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert pd.isna(got).tolist() == pd.isna(expected).tolist()
    assert (got[~pd.isna(got)] == expected[~pd.isna(expected)]).all()


def test_snapshot_hashes_equal_pandas_hashes_of_the_values():
    from cdisc_pipe.validate.diff import _coded

    index = pd.RangeIndex(len(VALUES))  # one index, no copy: as held frames are made
    df = pd.DataFrame({"TEXT": _held(VALUES, index), "NUM": np.arange(len(VALUES), dtype="float64"),
                       "NONE": _held([None] * len(VALUES), index)}, index=index, copy=False)
    plain = pd.DataFrame({"TEXT": _unknown(df["TEXT"]), "NUM": df["NUM"], "NONE": _unknown(df["NONE"])})
    assert isinstance(_coded(df)["TEXT"].dtype, pd.CategoricalDtype)
    assert (pd.util.hash_pandas_object(_coded(df), index=False).to_numpy()
            == pd.util.hash_pandas_object(plain, index=False).to_numpy()).all()


def _group_codes_by_pandas(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """The reference: groups numbered in order of first appearance by pandas (missing a value)."""
    if not cols:
        return np.zeros(len(df), dtype=np.int64)
    return df.groupby(cols, sort=False, dropna=False).ngroup().to_numpy(dtype=np.int64)


@pytest.mark.parametrize("seed", range(20))
def test_group_codes_first_of_group_and_outside_values_equal_pandas(seed):
    """Random frames (held text columns with missing values, floats with NaN, a wide integer
    column): group numbers equal pandas' ngroup in order of appearance, first records equal
    ``~duplicated``, values outside a list equal the isin formula."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    pool = np.array(["A", "B", "é", "2024-01", None, ""], dtype=object)
    df = pd.DataFrame({
        "T1": _held(list(rng.choice(pool, n))),
        "T2": _held(list(rng.choice(pool[:3], n))),
        "F": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 3, n).astype(float)),
        "W": rng.integers(0, 10 ** 6, n),
    })
    for cols in (["T1"], ["T1", "T2"], ["T1", "F", "T2"], ["W", "T1"], []):
        got = group_codes(df, cols)
        assert got.tolist() == _group_codes_by_pandas(df, cols).tolist(), cols
        assert first_of_group(got).tolist() == (~df.duplicated(subset=cols or None, keep="first")).tolist() \
            if cols else first_of_group(got).tolist() == [i == 0 for i in range(n)]
    for allowed in (["A"], ["A", "é"], [], ["Z"]):
        for col in ("T1", "T2"):
            s = df[col]
            expected = ~is_null(_unknown(s)) & ~_unknown(s).isin(allowed).to_numpy(dtype=bool)
            assert outside_values(s, allowed).tolist() == expected.tolist()
            assert outside_values(_unknown(s), allowed).tolist() == expected.tolist()


def test_group_codes_renumber_before_overflow():
    """Many wide columns: the combined number would pass 2**62, so it is renumbered on the way."""
    rng = np.random.default_rng(7)
    df = pd.DataFrame({f"C{i}": rng.integers(0, 50_000, 3_000) for i in range(6)})
    assert group_codes(df, list(df.columns)).tolist() == _group_codes_by_pandas(df, list(df.columns)).tolist()


def test_subject_lookup_by_distinct_subjects_equals_the_lookup_by_record():
    """The reference value of each record's subject, looked up once per distinct USUBJID (held
    column), equals the lookup per record (a copy), also converted per subject (complete_date);
    a subject absent from the reference gets a missing value, a record without USUBJID too."""
    from cdisc_pipe.validate.context import subject_lookup

    dm = pd.DataFrame({"USUBJID": pd.Series(["S1", "S2", "S3"], dtype="str"),
                       "RFSTDTC": pd.Series(["2024-01-05T10:00", "2024-02", None], dtype="str"),
                       "AGE": [50.0, 61.0, np.nan]})
    for subjects in (["S2", "S1", "S9", "S1", "S3", "S2"], ["S2", None, "S1"]):
        held = pd.DataFrame({"USUBJID": _held(subjects)}, copy=False)  # as held frames are made
        assert (known_distinct(held["USUBJID"]) is not None)
        plain = pd.DataFrame({"USUBJID": _unknown(held["USUBJID"])})
        for column, convert in (("RFSTDTC", None), ("RFSTDTC", complete_date), ("AGE", None)):
            got = subject_lookup(held, dm, column, per_subject=convert)
            ref = subject_lookup(plain, dm, column, per_subject=convert)
            assert got.dtype == ref.dtype
            assert pd.isna(got).tolist() == pd.isna(ref).tolist()
            assert got[got.notna()].tolist() == ref[ref.notna()].tolist()
    got = subject_lookup(pd.DataFrame({"USUBJID": _held(["S2", "S9", "S1"])}, copy=False), dm, "RFSTDTC", per_subject=complete_date)
    # 2024-02 is partial: no complete date; S9 is not in DM
    assert got.tolist()[0] is pd.NaT and got.tolist()[1] is pd.NaT and got.iloc[2] == pd.Timestamp("2024-01-05")


def test_decimal_text_per_distinct_value_equals_per_record():
    from cdisc_pipe.validate.functions import _decimal_text

    values = [" 1.5", "1E3", "<0.1", None, "abc", "1.5", "-.25", "2.", "1E3"]
    held = _held(values)
    got, ref = _decimal_text(held), _decimal_text(_unknown(held))
    assert got.fillna(-999).tolist() == ref.fillna(-999).tolist() == [1.5, 1000.0, -999, -999, -999, 1.5, -0.25, 2.0, 1000.0]
    assert _decimal_text(pd.Series([1.0, np.nan])).fillna(-999).tolist() == [1.0, -999]


def test_define_value_columns_from_known_distinct_values_equal_factorized():
    """define.xml's value checks (codelist, value-level conditions) see, record by record, the same
    text and presence from a held column's known distinct values as from factorizing a copy."""
    from cdisc_pipe.define.consistency import _column

    s = _held(VALUES)
    for col in (_column(s), _column(_unknown(s))):
        assert len(col.codes) == len(VALUES)
    a, b = _column(s), _column(_unknown(s))
    assert [a.text[c] if a.present[c] else None for c in a.codes] == [b.text[c] if b.present[c] else None for c in b.codes]
    assert a.present[a.codes].tolist() == b.present[b.codes].tolist() == [v is not None for v in
                                                                          [x if isinstance(x, str) else None for x in s]]


@pytest.mark.parametrize("values", [
    ["A", "B", "C", "D"],            # distinct keys: known distinct without comparing the texts
    ["A", "B", "A", "B"],            # repeated keys: numbered #1
    ["A|1", "A", "B", "C"],          # a "|" in a value: compared as texts ("A|1" + "" vs "A" + "1")
    [None, "A", None, "A"],
])
def test_snapshot_keys_equal_with_and_without_known_distinct_values(values):
    from cdisc_pipe.validate.data import StudyData
    from cdisc_pipe.validate.diff import snapshot_frame

    index = pd.RangeIndex(4)
    df = pd.DataFrame({"USUBJID": _held(values, index), "XXSEQ": [1.0, np.nan, 1.0, np.nan] if values[1] == "A" else
                       [np.nan, 1.0, np.nan, 2.0], "XXTESTCD": _held(["T", "1", "T", "1"], index)}, index=index, copy=False)
    plain = pd.DataFrame({c: _unknown(df[c]) if c != "XXSEQ" else df[c] for c in df.columns})
    keys = ["USUBJID", "XXSEQ", "XXTESTCD"]
    data = StudyData()
    from unittest import mock
    with mock.patch("cdisc_pipe.validate.diff.record_keys", return_value=keys):
        got, ref = snapshot_frame("XX", df, data, None), snapshot_frame("XX", plain, data, None)
    assert got["key"].tolist() == ref["key"].tolist()
    assert got["hash"].tolist() == ref["hash"].tolist()
    assert len(set(got["key"])) == 4  # unique in a snapshot (repeats numbered)
