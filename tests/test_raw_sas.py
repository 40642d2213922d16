"""SAS datasets (one per form) as a raw export: text values like CSV, SAS dates as raw date text, labels/formats."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.raw import read_export


def _write(path: Path, frame: pd.DataFrame, formats: dict[str, str] | None = None, labels=None, title="Demography"):
    pyreadstat.write_xport(frame, str(path), file_label=title, table_name=path.stem[:8].upper(), file_format_version=8,
                           column_labels=labels, variable_format=formats or {})


def _problems(path: Path) -> list[str]:
    with pytest.raises(InputError) as exc:
        read_export(path)
    return [str(p) for p in exc.value.problems]


def _dm(tmp_path: Path) -> Path:
    frame = pd.DataFrame({
        "SUBJID": ["007", "1002", "1003"],
        "BRTHDT": [dt.date(1960, 3, 5), None, dt.date(1971, 12, 31)],
        "ENTRYDTM": pd.to_datetime(["2024-01-02 10:11:12", None, "2024-02-03 00:00:00"]),
        "VSTIM": [9 * 3600 + 34 * 60, None, 23 * 3600 + 59 * 60 + 1],
        "AGE": [61.0, None, 47.0],
        "WEIGHT": [61.5, 70.0, None],
        "RACEOTH": ["", "Other text", "  "],
    })
    _write(tmp_path / "dm.xpt", frame, {"BRTHDT": "DATE9.", "ENTRYDTM": "DATETIME19.", "VSTIM": "TIME5.", "AGE": "F3."},
           ["Subject", "Birth date", "Entered", "Time", "Age", "Weight", "Race other"])
    return tmp_path


def test_values_become_raw_text_and_metadata_the_dictionary(tmp_path):
    raw = read_export(_dm(tmp_path))
    dm = raw.forms["dm"]
    assert dm["SUBJID"].tolist() == ["007", "1002", "1003"]
    assert dm["BRTHDT"].tolist()[::2] == ["05 MAR 1960", "31 DEC 1971"] and pd.isna(dm["BRTHDT"].iloc[1])
    assert dm["ENTRYDTM"].iloc[0] == "2024-01-02 10:11:12" and pd.isna(dm["ENTRYDTM"].iloc[1])
    assert dm["VSTIM"].iloc[0] == "09:34" and dm["VSTIM"].iloc[2] == "23:59:01" and pd.isna(dm["VSTIM"].iloc[1])
    assert dm["AGE"].iloc[0] == "61" and pd.isna(dm["AGE"].iloc[1])
    assert dm["WEIGHT"].tolist()[:2] == ["61.5", "70"]
    assert pd.isna(dm["RACEOTH"].iloc[0]) and dm["RACEOTH"].iloc[1] == "Other text" and pd.isna(dm["RACEOTH"].iloc[2])
    assert dm["__row"].tolist() == [2, 3, 4]  # observation number + 1, as the CSV row of the same record
    dd = raw.dictionary.set_index("field")
    assert dd.loc["BRTHDT", "label"] == "Birth date" and dd.loc["BRTHDT", "type"] == "date"
    assert dd.loc["ENTRYDTM", "type"] == "datetime" and dd.loc["VSTIM", "type"] == "time"
    assert dd.loc["AGE", "type"] == "integer" and dd.loc["WEIGHT", "type"] == "float"
    assert dd.loc["BRTHDT", "note"] == "SAS format DATE9" or dd.loc["BRTHDT", "note"].startswith("SAS format DATE")
    assert set(dd["form_title"]) == {"Demography"} and set(dd["form"]) == {"dm"}


def test_dictionary_beside_the_datasets_is_used_and_checked(tmp_path):
    _dm(tmp_path)
    (tmp_path / "data_dictionary.csv").write_text(
        "form,form_title,field,label,type,codelist,codes,required,unit,note\n"
        "dm,Demography,SUBJID,Subject,text,,,Y,,\ndm,Demography,AGE,Age,integer,,,Y,years,\n"
        "ae,Adverse events,AETERM,Term,text,,,Y,,\n")
    probs = _problems(tmp_path)
    assert any("ae.xpt" in p and "form dataset is missing" in p for p in probs)
    (tmp_path / "data_dictionary.csv").write_text(
        "form,form_title,field,label,type,codelist,codes,required,unit,note\n"
        "dm,Demography,SUBJID,Subject,text,,,Y,,\ndm,Demography,AGE,Age,integer,,,Y,years,\n"
        "dm,Demography,SEX,Sex,text,,,N,,\n")
    raw = read_export(tmp_path)
    assert raw.dictionary["unit"].tolist()[1] == "years"
    rules = {f.rule for f in raw.findings}
    assert {"RAW.COLUMN.MISSING", "RAW.COLUMN.UNKNOWN"} <= rules  # SEX missing (optional), BRTHDT etc. unknown


def test_damaged_dataset_and_mixtures_are_input_errors(tmp_path):
    _dm(tmp_path)
    (tmp_path / "ae.sas7bdat").write_bytes(b"not a sas file at all" * 10)
    probs = _problems(tmp_path)
    assert any("ae.sas7bdat" in p and "cannot read the SAS dataset" in p for p in probs)
    (tmp_path / "ae.sas7bdat").unlink()
    (tmp_path / "dm.sas7bdat").write_bytes(b"x")
    assert "both as .sas7bdat and as .xpt" in _problems(tmp_path)[0]
    (tmp_path / "dm.sas7bdat").unlink()
    (tmp_path / "ae.csv").write_text("SUBJID\n1\n")
    assert "mixes export formats" in _problems(tmp_path)[0]
    (tmp_path / "ae.csv").unlink()
    assert "single SAS dataset" in _problems(tmp_path / "dm.xpt")[0]


def test_synth_sas_is_byte_identical_on_rerun(tmp_path):
    from cdisc_pipe.synth import generate

    generate(2, 3, tmp_path / "a", "sas")
    generate(2, 3, tmp_path / "b", "sas")
    a = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    assert a == {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()} and "dm.xpt" in a
