"""The raw export reader: shape checks collected into one InputError, text-only forms, row numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.raw import read_export

ROOT = Path(__file__).resolve().parents[1]

DICTIONARY = """form,form_title,field,label,type,codelist,codes,required,unit,note
dm,Demography,SUBJID,Subject,text,,,Y,,
dm,Demography,SEX,Sex,text,SEX,M=Male|F=Female,Y,,
dm,Demography,AGE,Age,integer,,,N,,
ae,Adverse events,SUBJID,Subject,text,,,Y,,
ae,Adverse events,AETERM,Verbatim,text,,,Y,,
ae,Adverse events,AESTDAT,Start,date,,,Y,,DD MMM YYYY
"""
DM = "SUBJID,SEX,AGE\n007,M,61\n1002,F,\n"
AE = 'SUBJID,AETERM,AESTDAT\n007,"Fever, high",12 MAR 2024\n1002,NA,UN MAR 2024\n'


def _export(tmp_path: Path, **files: str | bytes) -> Path:
    content = {"data_dictionary.csv": DICTIONARY, "dm.csv": DM, "ae.csv": AE}
    content.update({k.replace("__", "."): v for k, v in files.items()})
    for name, text in content.items():
        if text is None:
            continue
        p = tmp_path / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return tmp_path


def _problems(path: Path) -> list[str]:
    with pytest.raises(InputError) as exc:
        read_export(path)
    return [str(p) for p in exc.value.problems]


def test_reads_every_value_as_text_with_source_rows(tmp_path):
    raw = read_export(_export(tmp_path))
    dm = raw.forms["dm"]
    assert dm["SUBJID"].tolist() == ["007", "1002"]  # leading zeros kept: nothing is coerced
    assert dm["AGE"].iloc[0] == "61" and pd.isna(dm["AGE"].iloc[1])  # blank = missing
    assert raw.forms["ae"]["AETERM"].tolist() == ["Fever, high", "NA"]  # 'NA' is text, not missing
    assert dm["__row"].tolist() == [2, 3]
    assert raw.source["ae"] == tmp_path / "ae.csv"
    assert raw.findings == []
    assert list(raw.dictionary["field"][:3]) == ["SUBJID", "SEX", "AGE"]


def test_utf8_bom_is_accepted_silently(tmp_path):
    raw = read_export(_export(tmp_path, dm__csv=b"\xef\xbb\xbf" + DM.encode()))
    assert list(raw.forms["dm"].columns) == ["SUBJID", "SEX", "AGE", "__row"]
    assert raw.findings == []


def test_quoted_line_break_is_one_record(tmp_path):
    ae = 'SUBJID,AETERM,AESTDAT\n007,"Fever\nand chills",12 MAR 2024\n1002,Rash,13 MAR 2024\n'
    raw = read_export(_export(tmp_path, ae__csv=ae))
    assert raw.forms["ae"]["__row"].tolist() == [2, 3]
    assert raw.forms["ae"]["AETERM"].iloc[0] == "Fever\nand chills"


def test_every_problem_is_collected_into_one_error(tmp_path):
    _export(tmp_path, dm__csv="SUBJID,SEX,AGE\n007,M,61\n1002,F\n", ae__csv=None)
    problems = _problems(tmp_path)
    assert len(problems) == 2, problems
    assert any("dm.csv, row 3, column AGE" in p and "truncated" in p and "'1002,F'" in p for p in problems)
    assert any("ae.csv" in p and "form file is missing" in p for p in problems)


def test_missing_and_renamed_required_columns(tmp_path):
    _export(tmp_path, dm__csv="SUBJECT_ID,SEX\n007,M\n", ae__csv="SUBJID,AETERM\n007,Rash\n")
    problems = _problems(tmp_path)
    assert any("dm.csv, row 1, column SUBJID: required column is missing (renamed?)" in p and "'SUBJECT_ID'" in p
               for p in problems), problems
    assert any("ae.csv, row 1, column AESTDAT: required column is missing" in p for p in problems)


def test_optional_and_unknown_columns_are_findings(tmp_path):
    raw = read_export(_export(tmp_path, dm__csv="SUBJID,SEX,BMI\n007,M,22.1\n"))
    rules = sorted(f.rule for f in raw.findings)
    assert rules == ["RAW.COLUMN.MISSING", "RAW.COLUMN.UNKNOWN"]
    assert raw.forms["dm"]["AGE"].isna().all()  # the missing optional column is added as blank
    assert raw.forms["dm"]["BMI"].tolist() == ["22.1"]  # the unknown column is kept


def test_other_encoding_names_row_column_and_byte(tmp_path):
    ae = "SUBJID,AETERM,AESTDAT\n007,Rash,12 MAR 2024\n1002,Fi\u00e8vre,13 MAR 2024\n".encode("cp1252")
    problems = _problems(_export(tmp_path, ae__csv=ae))
    assert len(problems) == 1
    assert "ae.csv, row 3, column AETERM: not valid UTF-8" in problems[0] and "\\\\xe8" in problems[0]


def test_empty_file_too_many_fields_unterminated_quote_duplicate_header(tmp_path):
    _export(tmp_path, dm__csv=b"", ae__csv='SUBJID,AETERM,AESTDAT\n007,Fever, high,12 MAR 2024\n')
    problems = _problems(tmp_path)
    assert any("dm.csv, row 1: empty file" in p for p in problems)
    assert any("ae.csv, row 2" in p and "4 fields but the header has 3" in p for p in problems)
    d2 = tmp_path / "b"
    d2.mkdir()
    _export(d2, ae__csv='SUBJID,AETERM,AESTDAT\n007,"Fever,12 MAR 2024\n', dm__csv="SUBJID,SEX,SEX\n007,M,F\n")
    problems = _problems(d2)
    assert any("ae.csv" in p and "never closed" in p for p in problems)
    assert any("dm.csv, row 1, column SEX: column name appears more than once" in p for p in problems)


def test_header_only_form_is_an_empty_form(tmp_path):
    raw = read_export(_export(tmp_path, ae__csv="SUBJID,AETERM,AESTDAT\n"))
    assert len(raw.forms["ae"]) == 0 and "__row" in raw.forms["ae"]


def test_dictionary_problems(tmp_path):
    with pytest.raises(InputError, match="data dictionary not found"):
        read_export(tmp_path)
    _export(tmp_path, data_dictionary__csv="form,field,label,type\ndm,SUBJID,Subject,text\n")
    problems = _problems(tmp_path)
    assert any("column codelist: data dictionary column is missing" in p for p in problems)
    bad = DICTIONARY.replace("dm,Demography,AGE,Age,integer,,,N", "dm,Demography,AGE,Age,number,,,maybe")
    problems = _problems(_export(tmp_path, data_dictionary__csv=bad))
    assert any("row 4, column required" in p and "'maybe'" in p for p in problems)
    assert any("row 4, column type" in p and "'number'" in p for p in problems)
    with pytest.raises(InputError, match="raw export not found"):
        read_export(tmp_path / "nowhere")


def test_xlsx_workbook(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    ws = wb.create_sheet("data_dictionary")
    for line in DICTIONARY.strip().split("\n"):
        ws.append(line.split(","))
    ws = wb.create_sheet("dm")
    ws.append(["SUBJID", "SEX", "AGE"])
    ws.append([1001, "M", 61])  # numeric cells typed by a person
    ws.append(["1002", "F", None])
    ws = wb.create_sheet("ae")
    ws.append(["SUBJID", "AETERM", "AESTDAT"])
    ws.append(["1001", "Rash", "12 MAR 2024"])
    wb.save(tmp_path / "book.xlsx")
    raw = read_export(tmp_path / "book.xlsx")
    assert raw.forms["dm"]["SUBJID"].tolist() == ["1001", "1002"]
    assert raw.forms["dm"]["AGE"].iloc[0] == "61" and pd.isna(raw.forms["dm"]["AGE"].iloc[1])
    assert raw.forms["dm"]["__row"].tolist() == [2, 3]
    assert read_export(tmp_path).forms.keys() == raw.forms.keys()  # a folder holding one workbook
    del wb["ae"]
    wb.save(tmp_path / "book.xlsx")
    problems = _problems(tmp_path / "book.xlsx")
    assert any("form sheet 'ae' is missing" in p for p in problems)


def test_bundled_export_reads_clean():
    raw = read_export(ROOT / "raw")
    assert raw.findings == []
    assert len(raw.forms) == 29
    assert all(df.drop(columns="__row").dtypes.map(lambda d: d == object or str(d) == "str").all() for df in raw.forms.values())


def test_unreadable_form_file_is_a_problem_not_a_traceback(tmp_path):
    _export(tmp_path, ae__csv=None)
    (tmp_path / "ae.csv").mkdir()  # a folder where the file should be
    problems = _problems(tmp_path)
    assert any("ae.csv" in p and "cannot read the file" in p for p in problems)


def test_xlsx_cell_types_are_read_as_stored_text(tmp_path):
    """Shared strings, numbers, booleans, line breaks and a text starting with '=' (never a formula)."""
    from openpyxl import Workbook

    from cdisc_pipe.raw.xlsx import read_workbook_text

    wb = Workbook()  # normal mode writes shared strings
    ws = wb.active
    ws.title = "s"
    ws.append(["A", "B", "C", "D", "E"])
    ws.append(["line1\nline2\tx", 1.5, 1001, True, "NA"])
    ws.append([None, -2.25, 0, False, "=1+1 (typed)"])
    ws["E3"].data_type = "s"
    ws["AB5"] = "far"
    wb.save(tmp_path / "t.xlsx")
    grid = read_workbook_text(tmp_path / "t.xlsx")["s"]
    assert grid.shape == (5, 28)
    assert grid.iloc[1, :5].tolist() == ["line1\nline2\tx", "1.5", "1001", "TRUE", "NA"]
    assert pd.isna(grid.iloc[2, 0])
    assert grid.iloc[2, 1:5].tolist() == ["-2.25", "0", "FALSE", "=1+1 (typed)"]
    assert grid.iloc[4, 27] == "far" and grid.iloc[3].isna().all()


def test_blank_lines_are_skipped_and_rows_keep_their_line_numbers(tmp_path):
    raw = read_export(_export(tmp_path, dm__csv="SUBJID,SEX,AGE\n\n007,M,61\n\n1002,F,\n"))
    assert raw.forms["dm"]["__row"].tolist() == [3, 5]
    problems = _problems(_export(tmp_path, dm__csv="SUBJID,SEX,AGE\n007,M,61\n   \n"))
    assert any("dm.csv, row 3" in p and "1 fields but the header has 3" in p for p in problems)


def test_form_file_with_other_case_gets_a_rename_hint(tmp_path):
    _export(tmp_path, ae__csv=None)
    (tmp_path / "AE.csv").write_text(AE, encoding="utf-8")
    problems = _problems(tmp_path)
    assert any("form file is missing" in p and "rename AE.csv to ae.csv" in p for p in problems), problems


# --- files that are not CSV text, or CSV with the wrong delimiter/quoting/case: the real cause (#16 item 7)
def _xlsx_bytes() -> bytes:
    import io

    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(["SUBJID", "AETERM", "AESTDAT"])
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("case, expected", [
    ("xlsx", "an Excel workbook (.xlsx) or another ZIP archive saved under a .csv name"),
    ("xls", "a legacy Excel workbook (.xls) saved under a .csv name"),
    ("utf16bom", "UTF-16 text (two bytes per character), not UTF-8"),
    ("utf16", "UTF-16 text (two bytes per character), not UTF-8"),
    ("binary", "a binary file (it holds NUL bytes), not CSV text"),
])
def test_a_file_that_is_not_csv_text_is_named_for_what_it_is(tmp_path, case, expected):
    data = {"xlsx": _xlsx_bytes,
            "xls": lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100,
            "utf16bom": lambda: AE.encode("utf-16"),  # with BOM
            "utf16": lambda: AE.encode("utf-16-le"),  # without BOM: every other byte NUL
            "binary": lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))}[case]()
    problems = _problems(_export(tmp_path, ae__csv=data))
    assert len(problems) == 1 and expected in problems[0] and "ae.csv" in problems[0]
    assert "\\x00" not in problems[0] and "\x00" not in problems[0]  # no NUL bytes printed


def test_a_stray_quote_is_reported_on_its_own_row(tmp_path):
    rows = [f'10{i},Term {i},01 MAR 2024' for i in range(40)]
    rows[4] = '104,Headache 5" tall,01 MAR 2024'  # file row 6 (header = row 1): a quote inside an unquoted value
    rows[20] = '120,"Nausea, mild",01 MAR 2024'  # a correctly quoted value later on
    problems = _problems(_export(tmp_path, ae__csv="SUBJID,AETERM,AESTDAT\n" + "\n".join(rows) + "\n"))
    assert len(problems) == 1 and "row 6" in problems[0] and "never closed" in problems[0]
    assert 'Headache 5" tall' in problems[0]


def test_a_file_cut_off_inside_a_quoted_value_points_at_where_the_value_opens(tmp_path):
    text = 'SUBJID,AETERM,AESTDAT\n101,"Fever, high",01 MAR 2024\n102,"Rash on the ar'
    problems = _problems(_export(tmp_path, ae__csv=text))
    assert len(problems) == 1 and "row 3" in problems[0] and "cut off" in problems[0]


def test_a_semicolon_delimited_file_is_named_as_such(tmp_path):
    problems = _problems(_export(tmp_path, ae__csv="SUBJID;AETERM;AESTDAT\n101;Fever;01 MAR 2024\n"))
    assert len(problems) == 1 and "delimited by semicolons, not commas" in problems[0]


def test_lower_case_headers_give_one_problem_not_one_per_column(tmp_path):
    problems = _problems(_export(tmp_path, ae__csv=AE.replace("SUBJID,AETERM,AESTDAT", "subjid,aeterm,aestdat")))
    assert len(problems) == 1
    assert "3 column name(s) differ from the data dictionary only in letter case" in problems[0]


def test_forms_parsed_in_two_processes_are_those_of_one(tmp_path, monkeypatch):
    """Exports of SHARE_BYTES or more are parsed in two processes: same forms, same problems in form
    order (the second process's problems included)."""
    from cdisc_pipe import parallel
    from cdisc_pipe.raw import reader

    if parallel.fork_context() is None:
        pytest.skip("no fork on this platform")
    one = read_export(ROOT / "raw")
    monkeypatch.setattr(reader, "SHARE_BYTES", 0)
    pids = tmp_path / "pids"
    real = reader._read_csv_alone

    def spy(path):
        with open(pids, "a") as fh:
            fh.write(f"{__import__('os').getpid()}\n")
        return real(path)
    monkeypatch.setattr(reader, "_read_csv_alone", spy)
    two = read_export(ROOT / "raw")
    assert len(set(pids.read_text().split())) == 2
    assert list(two.forms) == list(one.forms)
    for form in one.forms:
        pd.testing.assert_frame_equal(two.forms[form], one.forms[form], check_exact=True, obj=form)
    assert two.findings == one.findings and two.source == one.source
    bad = tmp_path / "bad"
    bad.mkdir()
    _export(bad, dm__csv="SUBJID,SEX,AGE\n007,M,61\n1002,F\n", ae__csv=b"")
    monkeypatch.setattr(reader, "SHARE_BYTES", 10**9)
    alone = _problems(bad)
    monkeypatch.setattr(reader, "SHARE_BYTES", 0)
    assert _problems(bad) == alone and len(alone) == 2
