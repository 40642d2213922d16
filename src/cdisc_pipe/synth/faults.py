"""Catalogue of faulty raw exports: reproducible mutations of a clean export, each with its expected outcome.

Each :class:`Fault` mutates a copy of a clean CSV export in place and returns the
:class:`Expected` outcome worked out from the data it touched (file, row, column, value):

* ``error``: the raw reader (or a later stage) stops with exit code 2; the message names the
  file, row, column and value.
* ``finding``: the run goes on; the stage's findings (``<out>/sdtm/_stage/findings.json``, merged into
  ``<out>/reports/validation.json``) hold a finding whose rule id starts with one of
  ``rule_prefixes``, located at the mutated record, and the record is kept.
* ``accepted``: the export reads exactly like the clean one (e.g. a UTF-8 byte-order mark).

``python -m cdisc_pipe.synth.faults OUT_DIR [--subjects N --seed S]`` writes every faulty export of a
freshly generated clean export into ``OUT_DIR/<fault id>/`` with an ``EXPECTED.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal

import pandas as pd

Outcome = Literal["error", "finding", "accepted"]
Stage = Literal["raw", "sdtm", "validate"]


@dataclass(frozen=True)
class Expected:
    """What must happen when the pipeline reads a faulty export.

    Attributes:
        outcome: ``error`` | ``finding`` | ``accepted``.
        stage: the stage that must notice (``raw`` reader, ``sdtm`` findings, ``validate`` report).
        file: file name the message/finding must name (e.g. ``ae.csv``).
        row: record number (header = 1) the message/finding must name, when there is one.
        column: column the message/finding must name, when there is one.
        value: (part of) the offending value the message must show, when there is one.
        rule_prefixes: for findings: accepted rule-id prefixes (any one matches).
        dataset: for findings: the SDTM dataset the mutated record must still reach (record kept).
        traced_ok: the record may instead be left out of ``dataset`` if the SDTM traceability lists it
            with a reason (an exact duplicate transfer is one record, not two).
    """

    outcome: Outcome
    stage: Stage
    file: str | None = None
    row: int | None = None
    column: str | None = None
    value: str | None = None
    rule_prefixes: tuple[str, ...] = ()
    dataset: str | None = None
    traced_ok: bool = False


@dataclass(frozen=True)
class Fault:
    """One kind of faulty export: an id, what it simulates, and the mutation (returns :class:`Expected`)."""

    id: str
    description: str
    stage: Stage
    outcome: Outcome
    mutate: Callable[[Path], Expected]


# ------------------------------------------------------------------------------------------------
# helpers: read/write a form exactly as the generator writes it
def _read(d: Path, form: str) -> pd.DataFrame:
    return pd.read_csv(d / f"{form}.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _write(df: pd.DataFrame, d: Path, form: str, encoding: str = "utf-8") -> None:
    df.to_csv(d / f"{form}.csv", index=False, encoding=encoding, lineterminator="\n")


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.str.title(), format="%d %b %Y", errors="coerce")


def _fmt(ts: pd.Timestamp) -> str:
    return ts.strftime("%d %b %Y").upper()


def _row(i: int) -> int:
    """Record number of DataFrame position ``i`` (header = row 1)."""
    return i + 2


def _complete_rows(df: pd.DataFrame, col: str) -> list[int]:
    return [int(i) for i in df.index[_dates(df[col]).notna()]]


# ------------------------------------------------------------------------------------------------
# reader-level faults
def missing_form_file(d: Path) -> Expected:
    (d / "ae.csv").unlink()
    return Expected("error", "raw", file="ae.csv")


def missing_required_column(d: Path) -> Expected:
    df = _read(d, "ae")
    _write(df.drop(columns=["AESTDAT"]), d, "ae")
    return Expected("error", "raw", file="ae.csv", row=1, column="AESTDAT")


def renamed_required_column(d: Path) -> Expected:
    df = _read(d, "ae")
    _write(df.rename(columns={"AETERM": "AE_TERM"}), d, "ae")
    return Expected("error", "raw", file="ae.csv", row=1, column="AETERM", value="AE_TERM")


def empty_file(d: Path) -> Expected:
    (d / "vs.csv").write_bytes(b"")
    return Expected("error", "raw", file="vs.csv", row=1)


def utf8_bom(d: Path) -> Expected:
    p = d / "dm.csv"
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    return Expected("accepted", "raw", file="dm.csv")


def windows_1252_encoding(d: Path) -> Expected:
    df = _read(d, "ae")
    i = 0
    df.loc[i, "AETERM"] = "Fi\u00e8vre"
    _write(df, d, "ae", encoding="cp1252")
    return Expected("error", "raw", file="ae.csv", row=_row(i), column="AETERM", value="\\xe8")


def gbk_encoding(d: Path) -> Expected:
    df = _read(d, "cm")
    i = 1
    df.loc[i, "CMINDC"] = "\u53d1\u70ed"  # "fever" in Chinese, saved by a GBK editor
    _write(df, d, "cm", encoding="gbk")
    return Expected("error", "raw", file="cm.csv", row=_row(i), column="CMINDC", value="\\xb7")


def truncated_row(d: Path) -> Expected:
    p = d / "cbc.csv"
    lines = p.read_text(encoding="utf-8").split("\n")
    header = lines[0].split(",")
    k = 4  # the 4th record (row 5) loses its tail, as when a transfer is cut mid-line
    fields = lines[k].split(",")
    lines[k] = ",".join(fields[:15])
    p.write_text("\n".join(lines), encoding="utf-8")
    return Expected("error", "raw", file="cbc.csv", row=k + 1, column=header[15], value=lines[k][:30])


def unquoted_comma(d: Path) -> Expected:
    p = d / "mh.csv"
    lines = p.read_text(encoding="utf-8").split("\n")
    header = lines[0].split(",")
    pos = header.index("MHTERM")
    k = 2
    fields = lines[k].split(",")
    fields[pos] = fields[pos] + ", treated"  # a comma typed into free text, written without quotes
    lines[k] = ",".join(fields)
    p.write_text("\n".join(lines), encoding="utf-8")
    return Expected("error", "raw", file="mh.csv", row=k + 1, value=lines[k][:30])


def duplicate_column_name(d: Path) -> Expected:
    p = d / "pe.csv"
    lines = p.read_text(encoding="utf-8").split("\n")
    lines[0] = lines[0].replace("PEABN", "PERES")
    p.write_text("\n".join(lines), encoding="utf-8")
    return Expected("error", "raw", file="pe.csv", row=1, column="PERES")


def missing_dictionary(d: Path) -> Expected:
    (d / "data_dictionary.csv").unlink()
    return Expected("error", "raw", file="data_dictionary.csv")


def unknown_column(d: Path) -> Expected:
    df = _read(d, "vs")
    df["BMI"] = ""
    _write(df, d, "vs")
    return Expected("finding", "raw", file="vs.csv", row=1, column="BMI", rule_prefixes=("RAW.COLUMN.UNKNOWN",))


def missing_optional_column(d: Path) -> Expected:
    df = _read(d, "ae")
    _write(df.drop(columns=["AELLT"]), d, "ae")
    return Expected("finding", "raw", file="ae.csv", row=1, column="AELLT", rule_prefixes=("RAW.COLUMN.MISSING",))


# ------------------------------------------------------------------------------------------------
# value-level faults: the SDTM stage keeps the record and reports a finding
def unparseable_date(d: Path) -> Expected:
    df = _read(d, "ae")
    i = _complete_rows(df, "AESTDAT")[0]
    df.loc[i, "AESTDAT"] = "2024/13/45"
    _write(df, d, "ae")
    return Expected("finding", "sdtm", file="ae.csv", row=_row(i), column="AESTDAT", value="2024/13/45",
                    dataset="AE", rule_prefixes=("SDTM.DATE.INVALID",))


def impossible_date(d: Path) -> Expected:
    df = _read(d, "cm")
    i = _complete_rows(df, "CMSTDAT")[2]
    df.loc[i, "CMSTDAT"] = "31 FEB 2024"
    _write(df, d, "cm")
    return Expected("finding", "sdtm", file="cm.csv", row=_row(i), column="CMSTDAT", value="31 FEB 2024",
                    dataset="CM", rule_prefixes=("SDTM.DATE.INVALID",))


def end_before_start(d: Path) -> Expected:
    df = _read(d, "ae")
    st, en = _dates(df["AESTDAT"]), _dates(df["AEENDAT"])
    i = [int(k) for k in df.index[st.notna() & en.notna() & (en > st)]][3]
    df.loc[i, "AEENDAT"] = _fmt(st[i] - pd.Timedelta(days=5))
    _write(df, d, "ae")
    return Expected("finding", "sdtm", file="ae.csv", row=_row(i), column="AEENDAT", value=df.loc[i, "AEENDAT"],
                    dataset="AE", rule_prefixes=("SDTM.DATE.ENDBEFORESTART",))


def unknown_coded_value(d: Path) -> Expected:
    df = _read(d, "dm")
    i = 2
    df.loc[i, "SEX"] = "X"
    _write(df, d, "dm")
    # SEX is a non-extensible codelist: an Error at the raw cell, the record kept with SEX empty
    return Expected("finding", "sdtm", file="dm.csv", row=_row(i), column="SEX", value="X",
                    dataset="DM", rule_prefixes=("SDTM.CT.INVALID",))


def subject_not_enrolled(d: Path) -> Expected:
    df = _read(d, "ae")
    extra = df.iloc[[5]].copy()
    extra["SUBJID"] = "9999"
    extra["AESPID"] = "1"
    out = pd.concat([df, extra], ignore_index=True)
    _write(out, d, "ae")
    return Expected("finding", "sdtm", file="ae.csv", row=_row(len(out) - 1), column="SUBJID", value="9999",
                    dataset="AE", rule_prefixes=("SDTM.SUBJ.NOTENROLLED",))


def duplicate_record(d: Path) -> Expected:
    df = _read(d, "lbcent")
    i = 10
    out = pd.concat([df.iloc[: i + 1], df.iloc[[i]], df.iloc[i + 1:]], ignore_index=True)
    _write(out, d, "lbcent")
    return Expected("finding", "sdtm", file="lbcent.csv", row=_row(i + 1), dataset="LB", traced_ok=True,
                    rule_prefixes=("SDTM.KEY.DUPLICATE", "SDTM.RAW.DUPLICATE"))


def non_ascii_text(d: Path) -> Expected:
    df = _read(d, "ae")
    i = 6
    df.loc[i, "AETERM"] = "Fi\u00e8vre \u53d1\u70ed"
    _write(df, d, "ae")
    return Expected("finding", "sdtm", file="ae.csv", row=_row(i), column="AETERM", value=df.loc[i, "AETERM"],
                    dataset="AE", rule_prefixes=("SDTM.TEXT.NONASCII",))


def long_text(d: Path) -> Expected:
    df = _read(d, "ae")
    i = 8
    df.loc[i, "AETERM"] = ("Persistent fatigue with reduced exercise tolerance " * 6).strip()  # ~300 bytes
    _write(df, d, "ae")
    return Expected("finding", "sdtm", file="ae.csv", row=_row(i), column="AETERM",
                    dataset="AE", rule_prefixes=("SDTM.TEXT.SPLIT", "SDTM.LENGTH"))


def unknown_lab_unit(d: Path) -> Expected:
    df = _read(d, "chem")
    i = int(df.index[df["LBTESTCD"].eq("CREAT")][1])
    df.loc[i, "LBORRESU"] = "umol/dL"
    _write(df, d, "chem")
    return Expected("finding", "sdtm", file="chem.csv", row=_row(i), column="LBORRESU",
                    dataset="LB", rule_prefixes=("SDTM.UNIT.UNKNOWN",))


def wrong_lab_unit(d: Path) -> Expected:
    df = _read(d, "chem")
    i = int(df.index[df["LBTESTCD"].eq("ALT")][2])
    df.loc[i, "LBORRESU"] = "g/L"  # a real unit, but not one for ALT
    _write(df, d, "chem")
    return Expected("finding", "sdtm", file="chem.csv", row=_row(i), column="LBORRESU",
                    dataset="LB", rule_prefixes=("SDTM.UNIT.UNKNOWN",))


def text_in_numeric(d: Path) -> Expected:
    df = _read(d, "vs")
    i = 3
    df.loc[i, "SYSBP"] = "not done"
    _write(df, d, "vs")
    return Expected("finding", "sdtm", file="vs.csv", row=_row(i), column="SYSBP", value="not done",
                    dataset="VS", rule_prefixes=("SDTM.NUM.INVALID",))


def inconsistent_subject_id(d: Path) -> Expected:
    df = _read(d, "cm")
    subj = df["SUBJID"].iloc[-1]
    rows = df.index[df["SUBJID"].eq(subj)]
    df.loc[rows, "SITEID"] = "01"  # the site typed without its leading digit on one form
    _write(df, d, "cm")
    return Expected("finding", "sdtm", file="cm.csv", row=_row(int(rows[0])), column="SITEID", value="01",
                    dataset="CM", rule_prefixes=("SDTM.SUBJ",))


def record_after_death(d: Path) -> Expected:
    death = _read(d, "death")
    ae = _read(d, "ae")
    with_ae = death[death["SUBJID"].isin(ae["SUBJID"])]
    if with_ae.empty:
        raise ValueError("record_after_death needs an export with a subject who died and has AEs (e.g. the bundled one)")
    dead = with_ae["SUBJID"].iloc[0]
    dth = _dates(with_ae["DTHDAT"]).iloc[0]
    base = ae[ae["SUBJID"].eq(dead)].iloc[[-1]].copy()
    base["AESPID"] = str(int(ae.loc[ae["SUBJID"].eq(dead), "AESPID"].astype(int).max()) + 1)
    base["AETERM"] = "Fatigue"
    base["AEDECOD"] = "Fatigue"
    base["AELLT"] = "Fatigue"
    base["AESOC"] = "General disorders and administration site conditions"
    base["AESTDAT"] = _fmt(dth + pd.Timedelta(days=10))
    base["AEENDAT"] = ""
    base["AEONGO"] = "Y"
    base["AEOUT"] = "UNK"
    out = pd.concat([ae, base], ignore_index=True)
    _write(out, d, "ae")
    return Expected("finding", "sdtm", file="ae.csv", row=_row(len(out) - 1), column="AESTDAT",
                    value=base["AESTDAT"].iloc[0], dataset="AE", rule_prefixes=("SDTM.DATE.AFTERDEATH",))


FAULTS: tuple[Fault, ...] = (
    Fault("missing_form_file", "a form file (ae.csv) is missing from the export",
          "raw", "error", missing_form_file),
    Fault("missing_required_column", "a required column (AESTDAT) was dropped",
          "raw", "error", missing_required_column),
    Fault("renamed_required_column", "a required column was renamed (AETERM -> AE_TERM)",
          "raw", "error", renamed_required_column),
    Fault("empty_file", "a form file is empty (0 bytes, no header)",
          "raw", "error", empty_file),
    Fault("utf8_bom", "a form file starts with a UTF-8 byte-order mark (accepted silently)",
          "raw", "accepted", utf8_bom),
    Fault("windows_1252_encoding", "a form saved as Windows-1252 with an accented verbatim",
          "raw", "error", windows_1252_encoding),
    Fault("gbk_encoding", "a form saved as GBK with Chinese free text",
          "raw", "error", gbk_encoding),
    Fault("truncated_row", "a CSV record cut mid-line (too few fields)",
          "raw", "error", truncated_row),
    Fault("unquoted_comma", "a comma typed into free text written without quotes (too many fields)",
          "raw", "error", unquoted_comma),
    Fault("duplicate_column_name", "two columns with the same name in a header",
          "raw", "error", duplicate_column_name),
    Fault("missing_dictionary", "data_dictionary.csv is missing",
          "raw", "error", missing_dictionary),
    Fault("unknown_column", "a column not described in the data dictionary",
          "raw", "finding", unknown_column),
    Fault("missing_optional_column", "an optional column (AELLT) is missing",
          "raw", "finding", missing_optional_column),
    Fault("unparseable_date", "a date typed in an unparseable form (2024/13/45)",
          "sdtm", "finding", unparseable_date),
    Fault("impossible_date", "an impossible calendar date (31 FEB 2024)",
          "sdtm", "finding", impossible_date),
    Fault("end_before_start", "an AE ending before it started",
          "sdtm", "finding", end_before_start),
    Fault("unknown_coded_value", "a coded value not in the codelist (SEX = X)",
          "sdtm", "finding", unknown_coded_value),
    Fault("subject_not_enrolled", "a subject on the AE form who was never enrolled",
          "sdtm", "finding", subject_not_enrolled),
    Fault("duplicate_record", "a central-lab record transferred twice",
          "sdtm", "finding", duplicate_record),
    Fault("non_ascii_text", "non-ASCII verbatim text (accents, Chinese)",
          "sdtm", "finding", non_ascii_text),
    Fault("long_text", "a verbatim over 200 bytes",
          "sdtm", "finding", long_text),
    Fault("unknown_lab_unit", "a lab unit nobody knows (umol/dL)",
          "sdtm", "finding", unknown_lab_unit),
    Fault("wrong_lab_unit", "a real unit that is wrong for the test (ALT in g/L)",
          "sdtm", "finding", wrong_lab_unit),
    Fault("text_in_numeric", "text in a numeric field (SYSBP = 'not done')",
          "sdtm", "finding", text_in_numeric),
    Fault("inconsistent_subject_id", "a subject's site typed differently on one form",
          "sdtm", "finding", inconsistent_subject_id),
    Fault("record_after_death", "an AE dated after the subject's death",
          "sdtm", "finding", record_after_death),
)
FAULT_BY_ID: dict[str, Fault] = {f.id: f for f in FAULTS}


def make_faulty(clean_dir: Path, out_dir: Path, fault: Fault | str) -> Expected:
    """Copy the clean CSV export ``clean_dir`` to ``out_dir`` and apply one fault; return its expectation."""
    f = FAULT_BY_ID[fault] if isinstance(fault, str) else fault
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(clean_dir, out_dir)
    return f.mutate(out_dir)


def make_combined(clean_dir: Path, out_dir: Path, faults: tuple[Fault, ...]) -> dict[str, Expected]:
    """Apply several value-level faults to ONE copy (they touch different records); one run checks all.

    The faults must not remove rows or files (true for every ``sdtm``-stage fault).  Rows added by a
    fault are appended at the end of a file, so the rows named by the other faults stay valid.
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(clean_dir, out_dir)
    return {f.id: f.mutate(out_dir) for f in faults}


def main(argv: list[str] | None = None) -> int:
    """Write every faulty export of a clean generated export into ``OUT/<fault id>/``."""
    from cdisc_pipe.synth import BUNDLED_SEED, generate

    ap = argparse.ArgumentParser(prog="python -m cdisc_pipe.synth.faults")
    ap.add_argument("out", type=Path)
    ap.add_argument("--subjects", type=int, default=18)
    ap.add_argument("--seed", type=int, default=BUNDLED_SEED)
    args = ap.parse_args(argv)
    clean = args.out / "_clean"
    generate(args.subjects, args.seed, clean)
    for f in FAULTS:
        exp = make_faulty(clean, args.out / f.id, f)
        (args.out / f"{f.id}.EXPECTED.json").write_text(json.dumps(asdict(exp), indent=2) + "\n", encoding="utf-8")
    print(f"{len(FAULTS)} faulty exports in {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
