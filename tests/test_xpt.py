"""conform, the FDA transport checks, write_datasets and the readers (issue 2's done-when)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.xpt import check_frame, conform, read_folder, read_xpt, write_datasets
from cdisc_pipe.xpt.conform import MAX_LISTED, format_kind
from cdisc_pipe.xpt.datasets import read_xpt_file
from cdisc_pipe.xpt.v5 import read_format
from tests.test_xpt_equivalence import pyreadstat_to_ts140, read_sas_pandas
from tests.test_xpt_support import adsl_frame, ae_dataset, ae_frame, make_spec


def problems_of(exc: pytest.ExceptionInfo) -> list:
    return exc.value.problems


# ------------------------------------------------------------------ conform


def test_conform_orders_types_sorts_and_fills_expected() -> None:
    spec = make_spec()
    out = conform(ae_frame(), spec.dataset("AE"), spec)
    # spec order; Exp AEBODSYS added although absent; Perm AEENDY absent -> left out
    assert list(out.columns) == ["STUDYID", "DOMAIN", "USUBJID", "AESEQ", "AETERM", "AEDECOD", "AEBODSYS", "AETOXGR",
                                 "AESTDTC"]
    assert out["AEBODSYS"].isna().all()
    # sorted by STUDYID, USUBJID, AESEQ
    assert list(zip(out["USUBJID"], out["AESEQ"])) == [("T1-101-1001", 1.0), ("T1-101-1001", 2.0), ("T1-101-1002", 1.0)]
    assert out["AESEQ"].dtype == np.float64
    # integers in a text variable become their decimal text; trailing blanks dropped; '' -> missing
    assert list(out["AETOXGR"]) == ["3", "2", "1"]
    assert list(out["AETERM"]) == [None, "CYTOKINE RELEASE SYNDROME", "HEADACHE"]
    # ISO 8601 text stays text, partial dates untouched
    assert list(out["AESTDTC"]) == [None, "2024-01", "2024-01-05"]


def test_conform_numeric_dates_become_sas_numbers() -> None:
    spec = make_spec()
    out = conform(adsl_frame(), spec.dataset("ADSL"), spec)
    first = out.iloc[0]  # T1-101-1001 sorts first
    assert first["TRTSDT"] == -1.0  # 1959-12-31 is SAS day -1
    assert np.isnan(first["TRTSDTM"])
    assert first["TRTSTM"] == 1.0
    second = out.iloc[1]
    # 2024-01-03: 64 years from 1960-01-01 incl. 16 leap days = 64*365+16 = 23376 days, +2 = 23378
    assert second["TRTSDT"] == 23378.0
    assert second["TRTSDTM"] == 23378 * 86400 + 10.5 * 3600
    assert second["TRTSTM"] == 37800.0
    assert np.isnan(first["AGE"]) and second["AGE"] == 61.0


def test_conform_refuses_unknown_columns_and_missing_required() -> None:
    spec = make_spec()
    df = ae_frame().drop(columns=["USUBJID"]).assign(AEXTRA="x")
    with pytest.raises(InputError) as exc:
        conform(df, spec.dataset("AE"), spec)
    msgs = {(p.column, p.message) for p in problems_of(exc)}
    assert ("AEXTRA", "column is not a variable of the dataset spec") in msgs
    assert ("USUBJID", "required variable is missing from the data") in msgs


def test_duplicate_keys_are_refused_with_their_values() -> None:
    spec = make_spec()
    df = ae_frame()
    df.loc[0, ["USUBJID", "AESEQ"]] = ["T1-101-1001", 2]
    with pytest.raises(InputError) as exc:
        conform(df, spec.dataset("AE"), spec)
    (p,) = problems_of(exc)
    assert p.message == "duplicate key values"
    assert p.value == "STUDYID=T1, USUBJID=T1-101-1001, AESEQ=2"
    assert p.entry == "rows 2, 3"


def test_type_problems_are_located() -> None:
    spec = make_spec()
    df = ae_frame()
    df["AESEQ"] = ["1", "two", "1.5"]
    with pytest.raises(InputError) as exc:
        conform(df, spec.dataset("AE"), spec)
    found = {(p.entry, p.value, p.message) for p in problems_of(exc)}
    assert ("input row 2 (USUBJID=T1-101-1001, AESEQ=two)", "two", "integer variable holds a non-numeric value") in found
    assert any(p.message == "integer variable holds a non-integer value" and p.value == "1.5" for p in problems_of(exc))


def test_text_dates_are_not_parsed_into_numeric_dates() -> None:
    spec = make_spec()
    df = adsl_frame()
    df["TRTSDT"] = ["2024-01-03", "2024-01"]
    with pytest.raises(InputError) as exc:
        conform(df, spec.dataset("ADSL"), spec)
    assert all(p.column == "TRTSDT" for p in problems_of(exc))


def test_date_with_time_of_day_is_refused() -> None:
    spec = make_spec()
    df = adsl_frame()
    df["TRTSDT"] = pd.to_datetime(["2024-01-03T10:00:00", "2024-01-04T00:00:00"])
    with pytest.raises(InputError) as exc:
        conform(df, spec.dataset("ADSL"), spec)
    assert [p.message for p in problems_of(exc)] == ["date variable holds a time of day"]


# ------------------------------------------------------------------ FDA checks


def _write_problems(frames: dict, spec, tmp_path: Path, purpose: str = "Tabulation") -> list:
    with pytest.raises(InputError) as exc:
        write_datasets(frames, spec, tmp_path / "out", purpose=purpose)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), "nothing may be written"
    return problems_of(exc)


def test_200_byte_limit_applies_to_the_xpt_text(tmp_path: Path) -> None:
    """XPT v5 gets the text transliterated to ASCII (#16 item 9): 199 characters of 200+ UTF-8 bytes
    are 199 ASCII bytes in the XPT file; the Dataset-JSON file keeps the UTF-8 original."""
    spec = make_spec()
    df = ae_frame()
    two_hundred_one = "\u00e9\u00e9" + "a" * 197  # 199 characters, 201 bytes
    df["AETERM"] = [two_hundred_one, "OK", "OK"]
    (w,) = write_datasets({"AE": df}, spec, tmp_path, purpose="Tabulation")
    assert w.column("AETERM").length == 199 and w.extra["transliterated"] == {"AETERM": 1}
    assert "ee" + "a" * 197 in set(read_xpt(tmp_path / "ae.xpt")["AETERM"])
    doc = json.loads((tmp_path / "ae.json").read_text(encoding="utf-8"))
    col = [c for c in doc["columns"] if c["name"] == "AETERM"][0]
    assert col["length"] == 201
    assert any(two_hundred_one in row for row in doc["rows"])
    df["AETERM"] = ["\u00e9" + "a" * 200, "OK", "OK"]  # 201 ASCII bytes in the XPT file: refused
    assert {p.message for p in _write_problems({"AE": df}, spec, tmp_path / "again")} == {
        "value is longer than 200 bytes"}


def test_41_character_label_is_refused(tmp_path: Path) -> None:
    spec = make_spec()
    spec.dataset("AE").variable("AETERM").label = "x" * 41  # specs from a workbook are not length-checked
    probs = _write_problems({"AE": ae_frame()}, spec, tmp_path)
    assert [(p.column, p.message) for p in probs] == [("AETERM", "label is 41 characters; XPT v5 allows 40")]


def test_non_ascii_value_is_transliterated_in_xpt_only(tmp_path: Path) -> None:
    """check_frame refuses non-ASCII text (XPT v5 is ASCII); write_datasets hands the XPT writer the
    transliterated frame and the Dataset-JSON writer the original (#16 item 9)."""
    spec = make_spec()
    df = ae_frame()
    df.loc[0, "AETERM"] = "C\u00e9phal\u00e9e"  # T1-101-1002, AESEQ 1: row 3 after sorting
    conformed = conform(df, spec.dataset("AE"), spec)
    (p,) = check_frame(conformed, spec.dataset("AE"))
    assert (p.file, p.entry, p.column, p.value, p.message) == (
        "AE", "row 3 (USUBJID=T1-101-1002, AESEQ=1)", "AETERM", "C\u00e9phal\u00e9e", "value is not ASCII")
    (w,) = write_datasets({"AE": df}, spec, tmp_path, purpose="Tabulation")
    assert read_xpt(tmp_path / "ae.xpt")["AETERM"].iloc[2] == "Cephalee"
    assert "C\u00e9phal\u00e9e" in (tmp_path / "ae.json").read_text(encoding="utf-8")
    assert w.extra["transliterated"] == {"AETERM": 1}


def test_value_longer_than_spec_length_is_refused(tmp_path: Path) -> None:
    spec = make_spec()
    df = ae_frame()
    df["STUDYID"] = "T1-TOO-LONG-ID"  # spec length 10
    df["DOMAIN"] = "AE"
    probs = _write_problems({"AE": df}, spec, tmp_path)
    assert {p.message for p in probs} == {"value is longer than the spec length 10"}
    assert len(probs) == 3


def test_problems_of_all_datasets_are_reported_together(tmp_path: Path) -> None:
    spec = make_spec()
    spec.dataset("AE").variable("AETERM").label = "x" * 41
    spec.dataset("ADSL").variable("TRTSDT").display_format = "8.2"
    ae = ae_frame()
    adsl = adsl_frame()
    adsl["WEIGHTBL"] = [np.inf, 1.0]
    spec.dataset("ADSL").purpose = "Tabulation"  # write both in one call
    probs = _write_problems({"AE": ae, "ADSL": adsl}, spec, tmp_path)
    got = {(p.file, p.column, p.message.split(";")[0]) for p in probs}
    assert ("AE", "AETERM", "label is 41 characters") in got
    assert ("ADSL", "TRTSDT", "numeric date variable needs a DATE display format") in got
    assert any(p.file == "ADSL" and p.column == "WEIGHTBL" and "IBM 370" in p.message for p in probs)


def test_bad_names_and_unknown_dataset(tmp_path: Path) -> None:
    spec = make_spec()
    spec.dataset("AE").name = "AE_TOO_LONG"
    probs = _write_problems({"AE": ae_frame(), "XX": ae_frame()}, spec, tmp_path)
    msgs = [p.message for p in probs]
    assert any(m.startswith("dataset name must be") for m in msgs)
    assert "no dataset spec for this dataset" in msgs


def test_all_blank_record_in_all_character_dataset_is_refused() -> None:
    spec = make_spec()
    ds = ae_dataset()
    ds.variables = [v for v in ds.variables if v.name in ("STUDYID", "DOMAIN", "USUBJID", "AETERM")]
    ds.keys = []
    df = pd.DataFrame({"STUDYID": ["T1", None], "DOMAIN": ["AE", None], "USUBJID": ["A", None], "AETERM": ["X", None]})
    out = conform(df, ds, spec)
    probs = check_frame(out, ds)
    assert [p.message.split(":")[0] for p in probs] == ["record with every variable blank in a dataset without numeric variables"]
    assert probs[0].entry == "row 2"


def test_many_offending_rows_are_capped_and_counted() -> None:
    spec = make_spec()
    ds = spec.dataset("AE")
    n = MAX_LISTED + 10
    df = pd.DataFrame({"STUDYID": ["T1"] * n, "DOMAIN": ["AE"] * n, "USUBJID": ["S"] * n, "AESEQ": range(1, n + 1),
                       "AETERM": ["\u00e9"] * n})
    probs = check_frame(conform(df, ds, spec), ds)
    assert len(probs) == MAX_LISTED + 1
    assert "10 more row(s) not listed (35 in all)" in probs[-1].message


def test_format_kinds() -> None:
    assert format_kind("DATE9.") == "date" and format_kind("E8601DA10.") == "date"
    assert format_kind("DATETIME20.") == "datetime" and format_kind("TIME8.") == "time"
    assert format_kind("8.2") is None and format_kind(None) is None


@pytest.mark.parametrize("reported, expected", [
    ("DATE9", "DATE9."),  # pyreadstat <= 1.3.7
    ("DATE9.", "DATE9."),  # pyreadstat >= 1.3.8
    ("NULL", None),  # pyreadstat 1.2.x: no format
    (None, None),  # pyreadstat 1.3.x: no format
    ("", None),
    ("8.2", "8.2"),
    ("8.2.", "8.2."),  # not a SAS format: kept as given, never dropped
    ("E8601DA10", "E8601DA10."),
    ("$CHAR20", "$CHAR20."),
    ("BEST", "BEST."),
    (" DATETIME20 ", "DATETIME20."),
])
def test_read_format_one_spelling_whatever_the_reader(reported: str | None, expected: str | None) -> None:
    assert read_format(reported) == expected


# ------------------------------------------------------------------ writing and reading


def _write_all(spec, out: Path, **kw) -> list:
    sdtm = write_datasets({"AE": ae_frame()}, spec, out / "sdtm", purpose="Tabulation", **kw)
    adam = write_datasets({"ADSL": adsl_frame()}, spec, out / "adam", purpose="Analysis", **kw)
    return sdtm + adam


def test_written_metadata_matches_the_files(tmp_path: Path) -> None:
    spec = make_spec()
    written = _write_all(spec, tmp_path)
    ae, adsl = written
    assert ae.xpt_path == "sdtm/ae.xpt" and ae.json_path == "sdtm/ae.json" and adsl.xpt_path == "adam/adsl.xpt"
    assert ae.records == 3
    cols = {c.name: c for c in ae.columns}
    assert [c.order for c in ae.columns] == list(range(1, 10))
    assert cols["USUBJID"].length == 11 and cols["AETERM"].length == len("CYTOKINE RELEASE SYNDROME")
    assert cols["AEBODSYS"].length == 1  # all missing: minimum length 1
    assert cols["AESEQ"].type == "numeric" and cols["AESEQ"].length == 8
    assert adsl.column("TRTSDT").display_format == "DATE9."
    for w in written:
        _, meta = pyreadstat.read_xport(str(tmp_path / w.xpt_path))
        assert meta.column_names == [c.name for c in w.columns]
        assert [meta.variable_storage_width[c.name] for c in w.columns] == [c.length for c in w.columns]
        assert meta.table_name == w.name and meta.file_label == w.label


def test_rerun_is_byte_identical_and_engines_agree(tmp_path: Path) -> None:
    spec = make_spec()
    first = _write_all(spec, tmp_path / "a")
    second = _write_all(spec, tmp_path / "b")
    reference = _write_all(spec, tmp_path / "c", engine="pyreadstat")
    for a, b, c in zip(first, second, reference):
        assert (tmp_path / "a" / a.xpt_path).read_bytes() == (tmp_path / "b" / b.xpt_path).read_bytes()
        assert (tmp_path / "a" / a.json_path).read_bytes() == (tmp_path / "b" / b.json_path).read_bytes()
        assert a == b
        # pyreadstat 1.2.8-1.3.0 also copy formats into the informat fields (see test_xpt_equivalence)
        ours, ref = (tmp_path / "a" / a.xpt_path).read_bytes(), (tmp_path / "c" / c.xpt_path).read_bytes()
        assert ours == pyreadstat_to_ts140(ref), f"{a.name}: numpy and pyreadstat engines differ"


def test_every_xpt_reads_back_identically_with_pandas_and_read_xpt(tmp_path: Path) -> None:
    spec = make_spec()
    for w in _write_all(spec, tmp_path):
        ds = spec.dataset(w.name)
        frame = {"AE": ae_frame, "ADSL": adsl_frame}[w.name]()
        expected = conform(frame, ds, spec)
        path = tmp_path / w.xpt_path
        # rows are > 80 bytes: pandas reads every record (its limitation on short rows is
        # covered by test_short_records_carry_a_pandas_reader_warning)
        assert sum(c.length for c in w.columns) > 80
        pdf = read_sas_pandas(path, w.records, sum(c.length for c in w.columns))
        assert len(pdf) == w.records
        assert list(pdf.columns) == list(expected.columns)
        expected_all, expected = expected, expected.iloc[: len(pdf)]
        for c in expected.columns:
            if ds.variable(c).is_numeric:
                got = pdf[c].to_numpy(dtype=float)
                want = expected[c].to_numpy(dtype=float)
                # pandas reads IBM 0 as 2**-260 (pandas-dev/pandas#50670); 0 is written exactly
                got = np.where((got == 2.0**-260) & (want == 0), 0.0, got)
                assert np.array_equal(got, want, equal_nan=True), c
            else:
                assert [None if v == "" else v for v in pdf[c]] == list(expected[c]), c
        expected = expected_all
        back = read_xpt(path)
        for c in expected.columns:
            var = ds.variable(c)
            if var.is_numeric and var.display_format:
                continue  # dates: checked below
            if var.is_numeric:
                assert np.array_equal(back[c].to_numpy(float), expected[c].to_numpy(float), equal_nan=True), c
            else:
                assert list(back[c]) == list(expected[c]), c
    adsl = read_xpt(tmp_path / "adam" / "adsl.xpt")
    src = adsl_frame().sort_values("USUBJID").reset_index(drop=True)
    assert adsl["TRTSDT"].dtype == "datetime64[ns]" and adsl["TRTSTM"].dtype == "timedelta64[ns]"
    assert list(adsl["TRTSDT"]) == list(src["TRTSDT"])
    assert adsl["TRTSDTM"].isna().tolist() == [True, False] and adsl["TRTSDTM"][1] == src["TRTSDTM"][1]
    assert list(adsl["TRTSTM"]) == list(src["TRTSTM"])


def test_read_folder_prefers_xpt_and_falls_back_to_json(tmp_path: Path) -> None:
    spec = make_spec()
    _write_all(spec, tmp_path)
    from_xpt = read_folder(tmp_path / "adam")
    assert list(from_xpt) == ["ADSL"]
    (tmp_path / "adam" / "adsl.xpt").unlink()
    from_json = read_folder(tmp_path / "adam")
    pd.testing.assert_frame_equal(from_json["ADSL"], from_xpt["ADSL"])
    with pytest.raises(InputError):
        read_folder(tmp_path / "nowhere")


def test_read_xpt_reports_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xpt"
    bad.write_bytes(b"not an xpt file")
    with pytest.raises(InputError) as exc:
        read_xpt(bad)
    assert "cannot read XPT file" in problems_of(exc)[0].message


def test_short_records_carry_a_pandas_reader_warning(tmp_path: Path) -> None:
    spec = make_spec()
    ds = ae_dataset()
    ds.variables = [v for v in ds.variables if v.name in ("STUDYID", "DOMAIN", "USUBJID", "AESEQ", "AETERM")]
    ds.keys = ["STUDYID", "USUBJID", "AESEQ"]
    spec.datasets["AE"] = ds
    df = pd.DataFrame({"STUDYID": ["T1"] * 4, "DOMAIN": ["AE"] * 4, "USUBJID": ["S"] * 4, "AESEQ": [1, 2, 3, 4],
                       "AETERM": ["A LONG VERBATIM TERM", "X", "Y", "Z"]})
    (w,) = write_datasets({"AE": df}, spec, tmp_path, purpose="Tabulation")
    # row = 2 + 2 + 1 + 8 + 20 = 33 bytes; last record holds blank words after the short terms
    assert sum(c.length for c in w.columns) == 33
    warning = w.extra["reader_warnings"][0]
    n = int(warning.split()[3])
    assert n < 4 and len(pd.read_sas(str(tmp_path / "ae.xpt"), format="xport", encoding="utf-8")) == n
    assert len(read_xpt(tmp_path / "ae.xpt")) == 4


def test_public_factorize_fallback_gives_identical_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cdisc_pipe.xpt import v5

    spec = make_spec()
    fast = _write_all(spec, tmp_path / "fast")
    monkeypatch.setattr(v5, "_FAST_FACTORIZE", False)
    slow = _write_all(spec, tmp_path / "slow")
    assert [w.xpt_sha256 for w in fast] == [w.xpt_sha256 for w in slow]
    assert [w.json_sha256 for w in fast] == [w.json_sha256 for w in slow]


def test_fractional_sas_date_is_refused() -> None:
    spec = make_spec()
    ds = spec.dataset("ADSL")
    df = adsl_frame()
    df["TRTSDT"] = [23378.0, 23378.5]  # numbers already on the SAS scale: the second is not a day
    out = conform(df, ds, spec)
    probs = check_frame(out, ds)
    assert [(p.column, p.message, p.value) for p in probs] == [
        ("TRTSDT", "numeric date is not a whole SAS day number", "23378.5")]


# ------------------------------------------------------------------ reading text in any encoding


def xpt_with_text(path: Path, values: list[bytes]) -> Path:
    """A TS-like XPT file whose TSVAL holds ``values`` as raw bytes (each >= 3 bytes long).

    pyreadstat writes what it is given as UTF-8, so the file is written with ASCII stand-ins of
    the same lengths and the stand-ins are then replaced byte for byte.
    """
    stand_ins = [f"<{i}>".ljust(len(v), "~").encode("ascii") for i, v in enumerate(values)]
    df = pd.DataFrame({"TSSEQ": [float(i + 1) for i in range(len(values))], "TSVAL": [s.decode() for s in stand_ins]})
    pyreadstat.write_xport(df, str(path), file_format_version=5, table_name="TS", column_labels=["Seq", "Value"])
    raw = path.read_bytes()
    for stand_in, value in zip(stand_ins, values):
        assert raw.count(stand_in) == 1
        raw = raw.replace(stand_in, value)
    path.write_bytes(raw)
    return path


def test_pyreadstat_encoding_behaviour(tmp_path: Path) -> None:
    """What the reader is built on (same in pyreadstat 1.2.8 and 1.3.8): the default read fails on
    the first non-UTF-8 value without saying where; iconv's ISO-8859-1 maps every byte to the same
    code point; cp1252 fails, again without a location, on a byte it leaves undefined; Python
    codec names are not iconv names; trailing blanks are stripped, leading ones kept."""
    cp1252 = xpt_with_text(tmp_path / "cp.xpt", [b"Alzheimer\x92s", b"   2   "])
    undefined = xpt_with_text(tmp_path / "undef.xpt", [b"A\x81B"])
    with pytest.raises(UnicodeDecodeError):
        pyreadstat.read_xport(str(cp1252))
    df, _ = pyreadstat.read_xport(str(cp1252), encoding="ISO-8859-1")
    assert list(df["TSVAL"]) == ["Alzheimer\x92s", "   2"]
    with pytest.raises(pyreadstat.ReadstatError, match="convert"):
        pyreadstat.read_xport(str(undefined), encoding="cp1252")
    with pytest.raises(pyreadstat.ReadstatError, match="unsupported character set"):
        pyreadstat.read_xport(str(undefined), encoding="latin-1")


def test_utf8_file_reads_as_before_without_a_note(tmp_path: Path) -> None:
    path = xpt_with_text(tmp_path / "ts.xpt", ["Alzheimer’s".encode("utf-8"), b"   2", b"   "])
    read = read_xpt_file(path)
    assert (read.encoding, read.source, read.note) == ("utf-8", "default", None)
    # leading blanks kept (an SDTMIG 3.1.x IDVARVAL such as "   2"), an all-blank value is missing
    assert list(read.frame["TSVAL"]) == ["Alzheimer’s", "   2", None]
    assert list(read.frame["TSSEQ"]) == [1.0, 2.0, 3.0]


def test_cp1252_file_is_detected_and_reported(tmp_path: Path) -> None:
    path = xpt_with_text(tmp_path / "ts.xpt", [b"plain", b"Alzheimer\x92s Disease", b"caf\xe9"])
    read = read_xpt_file(path)
    assert list(read.frame["TSVAL"]) == ["plain", "Alzheimer’s Disease", "café"]
    assert (read.encoding, read.source, read.meta.file_encoding) == ("cp1252", "detected", "cp1252")
    assert read.note.startswith("ts.xpt: character data are not valid utf-8 (TSVAL row 2: byte 0x92); read as cp1252")
    assert "2 distinct non-ASCII value(s), e.g. TSVAL 'Alzheimer’s Disease'" in read.note
    pd.testing.assert_frame_equal(read_xpt(path), read.frame)


def test_byte_cp1252_leaves_undefined_falls_back_to_latin1(tmp_path: Path) -> None:
    read = read_xpt_file(xpt_with_text(tmp_path / "ts.xpt", [b"A\x81B", b"caf\xe9"]))
    assert (read.encoding, list(read.frame["TSVAL"])) == ("latin-1", ["A\x81B", "café"])
    assert "nor cp1252 (TSVAL row 1: byte 0x81); read as latin-1 (the fallback" in read.note


def test_forced_latin1_is_used_even_for_valid_utf8(tmp_path: Path) -> None:
    cp1252 = xpt_with_text(tmp_path / "a.xpt", [b"Alzheimer\x92s"])
    utf8 = xpt_with_text(tmp_path / "b.xpt", ["café".encode("utf-8")])
    a, b = read_xpt_file(cp1252, encoding="latin-1"), read_xpt_file(utf8, encoding="ISO-8859-1")
    assert (a.source, list(a.frame["TSVAL"]), list(b.frame["TSVAL"])) == ("forced", ["Alzheimer\x92s"], ["cafÃ©"])
    assert a.note == "a.xpt: read as latin-1 (--encoding); 1 distinct non-ASCII value(s), e.g. TSVAL 'Alzheimer\\x92s'"


def test_forced_encoding_that_fails_names_file_variable_row_and_bytes(tmp_path: Path) -> None:
    from cdisc_pipe.xpt.datasets import XptDecodeError

    path = xpt_with_text(tmp_path / "ts.xpt", [b"ok!", b"Alzheimer\x92s", b"\x92b!"])
    with pytest.raises(XptDecodeError) as exc:
        read_xpt_file(path, encoding="utf-8")
    (p,) = problems_of(exc)
    assert (p.file, p.entry, p.column, p.value) == (str(path), "row 2", "TSVAL", "Alzheimer\\x92s")
    assert "byte 0x92 at position 10 is not valid utf-8" in p.message and "2 rows" in p.message
    assert "--encoding" in p.hint
    assert isinstance(exc.value, InputError)  # exit code 2 on the command line


@pytest.mark.parametrize("name", ["no-such-codec", "utf-16"])
def test_unknown_or_unsuitable_encoding_name_is_input_error(tmp_path: Path, name: str) -> None:
    path = xpt_with_text(tmp_path / "ts.xpt", [b"abc"])
    with pytest.raises(InputError) as exc:
        read_xpt_file(path, encoding=name)
    assert problems_of(exc)[0].file == "--encoding" and problems_of(exc)[0].value == name
