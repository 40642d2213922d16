"""#16 items 4 and 9: datasets without records, and non-ASCII text.

Item 4 - a dataset without records is not submitted (FDA Technical Conformance Guide): no XPT or
Dataset-JSON file, define.xml lists it with ``def:HasNoData="Yes"`` (its ItemRefs kept, no
``def:leaf``), the manifest names it, and what reads the folder (ADaM, ``cdisc-pipe define``,
validation) treats it as 0 records.

Item 9 - XPT v5 is ASCII, Dataset-JSON is UTF-8: the XPT writer transliterates, the Dataset-JSON
file keeps the text as collected (lengths in UTF-8 bytes), define.xml says so in a comment on the
variable, and the SDTM stage reports each value with its raw file and row.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cdisc_pipe.spec import load_specs
from cdisc_pipe.xpt import read_xpt, write_datasets
from cdisc_pipe.xpt.conform import ascii_frame, transliterate
from cdisc_pipe.xpt.datasets import declared_empty_frames, no_data_datasets
from tests.conftest import once_per_session

FEVER = "发热 (fever)"


@pytest.fixture(scope="module")
def spec(root: Path):
    return load_specs(root / "specs")


def _empty_frame(spec, name: str) -> pd.DataFrame:
    ds = spec.dataset(name)
    return pd.DataFrame({v.name: pd.Series([], dtype="float64" if v.is_numeric else object) for v in ds.variables})


def _group(xml: str, name: str) -> str:
    m = re.search(rf'<ItemGroupDef OID="IG\.{name}".*?</ItemGroupDef>', xml, re.S)
    assert m, f"IG.{name} not in define.xml"
    return m.group(0)


# --- item 4: unit ------------------------------------------------------------------------------


def test_writer_and_define_for_a_dataset_without_records(spec, tmp_path: Path):
    from cdisc_pipe.define import build_define, validate_define, written_from_folder

    folder = tmp_path / "sdtm"
    folder.mkdir()
    (folder / "ae.xpt").write_bytes(b"stale")  # a file of an earlier write must not survive
    written = write_datasets({"AE": _empty_frame(spec, "AE")}, spec, folder, purpose="Tabulation")
    (w,) = written
    assert w.has_no_data and w.records == 0 and w.xpt_sha256 == "" and w.json_sha256 is None
    assert [c.name for c in w.columns] == [v.name for v in sorted(spec.dataset("AE").variables, key=lambda v: v.order or 0)]
    assert not any(folder.glob("ae.*"))
    assert json.loads((folder / "_stage" / "no_data.json").read_text())[0]["name"] == "AE"

    result = build_define(spec, written, "Tabulation")
    assert validate_define(result.xml) == []
    xml = result.xml.decode() if isinstance(result.xml, bytes) else result.xml
    group = _group(xml, "AE")
    assert 'def:HasNoData="Yes"' in group
    assert "def:leaf" not in group and "ArchiveLocationID" not in group
    assert group.count("<ItemRef ") == len(w.columns)  # the ItemGroupDef keeps its ItemRefs

    # cdisc-pipe define re-renders from the folder: the dataset is still there, without data
    (again,) = written_from_folder(folder, "Tabulation")
    assert again.name == "AE" and again.has_no_data and again.columns == w.columns
    # a stage reading the folder (ADaM from SDTM) sees 0 records with the define.xml variables
    (folder / "define.xml").write_bytes(result.xml if isinstance(result.xml, bytes) else result.xml.encode())
    frames = declared_empty_frames(folder)
    assert list(frames) == ["AE"] and len(frames["AE"]) == 0
    assert list(frames["AE"].columns) == [c.name for c in w.columns]
    assert frames["AE"]["AESEQ"].dtype == "float64" and frames["AE"]["AETERM"].dtype == object


def test_the_no_data_record_follows_later_writes(spec, tmp_path: Path):
    write_datasets({"AE": _empty_frame(spec, "AE")}, spec, tmp_path, purpose="Tabulation")
    write_datasets({"CM": _empty_frame(spec, "CM")}, spec, tmp_path, purpose="Tabulation")
    assert [w.name for w in no_data_datasets(tmp_path)] == ["AE", "CM"]  # another write keeps AE's entry
    ae = _empty_frame(spec, "AE")
    row = {c: None for c in ae.columns} | {"STUDYID": "S", "DOMAIN": "AE", "USUBJID": "S-1", "AESEQ": 1.0,
                                           "AETERM": "Nausea", "AEDECOD": "Nausea"}
    write_datasets({"AE": pd.DataFrame([row], columns=ae.columns)}, spec, tmp_path, purpose="Tabulation")
    assert (tmp_path / "ae.xpt").exists()
    assert [w.name for w in no_data_datasets(tmp_path)] == ["CM"]


# --- item 4: one run with several forms emptied --------------------------------------------------

#: AE (and with it CRS/ICANS, which FA links to AE records), CM (every form it is built from) and a
#: findings form (VS): header only, as in an export before any record was entered.
EMPTIED = ("ae", "crs", "icans", "cm", "priortx", "bridge", "subtx", "vs")


@pytest.fixture(scope="module")
def empty_run(root: Path, tmp_path_factory) -> tuple[int, Path]:
    """The run, once per session (shared by the xdist workers; read-only for the tests)."""
    from cdisc_pipe.cli import main

    def build(base: Path) -> tuple[int, str]:
        raw = base / "raw"
        shutil.copytree(root / "raw", raw)
        for form in EMPTIED:
            path = raw / f"{form}.csv"
            header = path.read_text(encoding="utf-8").splitlines()[0]
            path.write_text(header + "\n", encoding="utf-8")
        out = base / "outputs"
        code = main(["run", "--raw", str(raw), "--out", str(out), "-q"])
        return code, str(out)

    code, out = once_per_session(tmp_path_factory, "empty", build)
    return code, Path(out)


NO_DATA = {"sdtm": ["AE", "CM", "SUPPAE", "SUPPCM", "VS"], "adam": ["ADAE"]}


def test_empty_forms_run_clean_and_write_no_empty_file(empty_run):
    code, out = empty_run
    assert code == 0, (out / "logs" / "cdisc-pipe-run.log").read_text()
    report = json.loads((out / "reports" / "validation.json").read_text())
    assert not [f for f in report["findings"] if f["severity"] == "Error"]
    assert not [f for f in report["findings"] if f["rule"].startswith("DEF.")]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["datasets_without_data"] == NO_DATA
    for sub, names in NO_DATA.items():
        xml = (out / sub / "define.xml").read_text(encoding="utf-8")
        for name in names:
            assert not list((out / sub).glob(f"{name.lower()}.*")), name
            assert not any(k.startswith(f"{sub}/{name.lower()}.") for k in manifest["outputs"])
            group = _group(xml, name)
            assert 'def:HasNoData="Yes"' in group and "def:leaf" not in group and "<ItemRef " in group
        assert (out / sub / "dm.xpt").exists() or sub == "adam"


def test_adsl_flags_from_ae_without_aes(empty_run):
    _, out = empty_run
    adsl = read_xpt(out / "adam" / "adsl.xpt")
    treated = adsl["TRTSDT"].notna()
    assert (adsl.loc[treated, "DLTFL"] == "N").all()  # no AE, so no DLT: N, not missing
    assert adsl.loc[~treated, "DLTFL"].isna().all()


def test_adam_and_validate_read_an_sdtm_folder_with_datasets_without_data(empty_run, tmp_path: Path):
    from cdisc_pipe.cli import main

    _, out = empty_run
    assert main(["adam", "--sdtm", str(out / "sdtm"), "--out", str(tmp_path), "-q"]) == 0
    for f in sorted((out / "adam").glob("*.xpt")) + sorted((out / "adam").glob("*.json")):
        assert (tmp_path / "adam" / f.name).read_bytes() == f.read_bytes(), f.name
    assert not (tmp_path / "adam" / "adae.xpt").exists()
    assert main(["validate", "--sdtm", str(out / "sdtm"), "--adam", str(out / "adam"),
                 "--out", str(tmp_path / "v"), "-q"]) == 0


def test_reference_to_a_dataset_without_data_is_a_finding_not_a_skip():
    """FA records pointing at AE records when AE has no data: the reference rule runs on 0 AE records."""
    from types import SimpleNamespace

    from cdisc_pipe.validate.data import DefineDataset, DefineVariable, StudyData

    data = StudyData.__new__(StudyData)
    var = DefineVariable(name="AESEQ", label=None, data_type="integer", length=None, order=1, key_sequence=None,
                         mandatory=True, codelist=None, origin=None, method=None)
    data.datasets = {}
    data.defines = {"Tabulation": SimpleNamespace(datasets={"AE": DefineDataset(
        name="AE", label=None, klass=None, purpose="Tabulation", archive=None, variables={"AESEQ": var},
        has_no_data=True)})}
    frame = data.empty_frame("AE")
    assert list(frame.columns) == ["AESEQ"] and len(frame) == 0
    assert data.empty_frame("CM") is None


# --- item 9 --------------------------------------------------------------------------------------


def test_transliterate_and_ascii_frame(spec):
    assert transliterate(FEVER) == "?? (fever)"
    assert transliterate("caf\u00e9 \u2264 5\u00b0C") == "cafe <= 5 deg C"
    assert transliterate("plain") == "plain"
    ds = spec.dataset("AE")
    df = pd.DataFrame({"AETERM": [FEVER, "Nausea", None, FEVER], "AESEQ": [1.0, 2.0, 3.0, 4.0]})
    out, changed = ascii_frame(df, ds)
    assert out["AETERM"].tolist() == ["?? (fever)", "Nausea", None, "?? (fever)"]
    assert changed == {"AETERM": 2}
    assert df["AETERM"].iloc[0] == FEVER  # the original frame is untouched
    same, none = ascii_frame(df.iloc[[1]], ds)
    assert none == {} and same is not None


@pytest.fixture(scope="module")
def unicode_sdtm(root: Path, tmp_path_factory) -> Path:
    from cdisc_pipe.cli import main

    base = tmp_path_factory.mktemp("unicode")
    raw = base / "raw"
    shutil.copytree(root / "raw", raw)
    path = raw / "ae.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[2][rows[0].index("AETERM")] = FEVER  # the second AE record: line 3 of ae.csv
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    out = base / "outputs"
    assert main(["sdtm", "--raw", str(raw), "--out", str(out), "-q"]) == 0
    return out


def test_xpt_has_the_transliteration_and_json_the_original(unicode_sdtm: Path):
    sdtm = unicode_sdtm / "sdtm"
    xpt = read_xpt(sdtm / "ae.xpt")
    assert "?? (fever)" in set(xpt["AETERM"]) and FEVER not in set(xpt["AETERM"])
    doc = json.loads((sdtm / "ae.json").read_text(encoding="utf-8"))
    names = [c["name"] for c in doc["columns"]]
    terms = [r[names.index("AETERM")] for r in doc["rows"]]
    assert FEVER in terms and "?? (fever)" not in terms
    assert terms == [FEVER if t == "?? (fever)" else t for t in xpt["AETERM"]]  # same records otherwise
    # lengths: define.xml (the XPT file) in ASCII bytes, Dataset-JSON in UTF-8 bytes of its text
    col = doc["columns"][names.index("AETERM")]
    longest = max(len(t.encode("utf-8")) for t in terms if t)
    assert col["length"] == longest
    xml = (sdtm / "define.xml").read_text(encoding="utf-8")
    item = re.search(r'<ItemDef OID="IT\.AE\.AETERM"[^>]*>', xml).group(0)
    assert f'Length="{max(len(t) for t in xpt["AETERM"] if t)}"' in item
    assert 'def:CommentOID="COM.AE.AETERM.ASCII"' in item
    comment = re.search(r'<def:CommentDef OID="COM\.AE\.AETERM\.ASCII">.*?</def:CommentDef>', xml, re.S).group(0)
    assert "ae.json" in comment and "original UTF-8" in comment


def test_nonascii_finding_names_the_raw_file_and_row(unicode_sdtm: Path):
    findings = json.loads((unicode_sdtm / "sdtm" / "_stage" / "findings.json").read_text(encoding="utf-8"))
    hits = [f for f in findings if f["rule"] == "SDTM.TEXT.NONASCII"]
    assert len(hits) == 1
    (f,) = hits
    assert f["dataset"] == "AE" and f["variable"] == "AETERM" and f["severity"] == "Warning"
    assert f["value"] == FEVER and "XPT" in f["message"] and "Dataset-JSON" in f["message"]
    assert f["source_file"] == "ae" and f["source_row"] == 3
