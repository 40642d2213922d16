"""Dataset-JSON 1.1: schema-valid, deterministic, consistent with the XPT files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cdisc_pipe.datasetjson import json_data_type, read_dataset_json
from cdisc_pipe.xpt import read_xpt, write_datasets
from tests.test_xpt_support import adsl_frame, ae_frame, make_spec


def _schemas(shared: Path):
    jsonschema = pytest.importorskip("jsonschema")
    folder = shared / "reference" / "dataset-json-1.1"
    full = json.loads((folder / "dataset.schema.json").read_text())
    nd = json.loads((folder / "dataset-ndjson-schema.json").read_text())
    return jsonschema.Draft201909Validator(full), jsonschema.Draft201909Validator(nd)


def validate_file(path: Path, full, nd) -> None:
    """A .json file against dataset.schema.json; a .ndjson file: line 1 against the NDJSON
    metadata schema, every other line a row of the right width, and the whole re-assembled
    document against dataset.schema.json."""
    if path.suffix == ".ndjson":
        lines = path.read_text(encoding="utf-8").splitlines()
        meta = json.loads(lines[0])
        errors = sorted(nd.iter_errors(meta), key=str)
        assert not errors, f"{path.name}: {errors[0].message}"
        rows = [json.loads(ln) for ln in lines[1:]]
        assert all(isinstance(r, list) and len(r) == len(meta["columns"]) for r in rows)
        doc = {**meta, "rows": rows}
    else:
        doc = json.loads(path.read_text(encoding="utf-8"))
    errors = sorted(full.iter_errors(doc), key=str)
    assert not errors, f"{path.name}: {errors[0].message}"
    assert doc["records"] == len(doc["rows"])
    assert all(len(r) == len(doc["columns"]) for r in doc["rows"])


def _write(spec, out: Path, **kw) -> list:
    return (write_datasets({"AE": ae_frame()}, spec, out / "sdtm", purpose="Tabulation", **kw)
            + write_datasets({"ADSL": adsl_frame()}, spec, out / "adam", purpose="Analysis", **kw))


def test_every_written_file_validates_against_the_schema(shared: Path, tmp_path: Path) -> None:
    full, nd = _schemas(shared)
    spec = make_spec()
    written = _write(spec, tmp_path / "json") + _write(spec, tmp_path / "nd", ndjson_threshold=1)
    assert {Path(w.json_path).suffix for w in written} == {".json", ".ndjson"}
    for w in written:
        root = tmp_path / ("nd" if w.json_path.endswith(".ndjson") else "json")
        validate_file(root / w.json_path, full, nd)


def test_bundled_outputs_validate(shared: Path, bundled_run: Path) -> None:
    full, nd = _schemas(shared)
    files = [p for p in sorted(bundled_run.glob("*/*.json")) + sorted(bundled_run.glob("*/*.ndjson"))
             if p.stem not in ("manifest", "validation", "results")]  # reports, not datasets
    assert len(files) >= 30
    for p in files:
        validate_file(p, full, nd)


def test_content_metadata_and_determinism(tmp_path: Path) -> None:
    spec = make_spec()
    ae, adsl = _write(spec, tmp_path / "a")
    again = _write(spec, tmp_path / "b")
    for w, v in zip((ae, adsl), again):
        assert (tmp_path / "a" / w.json_path).read_bytes() == (tmp_path / "b" / v.json_path).read_bytes()
        assert w.json_sha256 == v.json_sha256
    doc = json.loads((tmp_path / "a" / ae.json_path).read_text())
    assert doc["datasetJSONCreationDateTime"] == "2025-06-30T08:15:42"  # the spec's, not the clock
    assert doc["datasetJSONVersion"] == "1.1"
    assert (doc["itemGroupOID"], doc["name"], doc["records"], doc["metaDataRef"]) == ("IG.AE", "AE", 3, "define.xml")
    assert (doc["studyOID"], doc["fileOID"]) == ("STDY.T1", "STDY.T1.AE")
    cols = {c["name"]: c for c in doc["columns"]}
    assert [c["name"] for c in doc["columns"]] == [c.name for c in ae.columns]
    assert cols["USUBJID"] == {"itemOID": "IT.AE.USUBJID", "name": "USUBJID", "label": "Unique Subject Identifier",
                               "dataType": "string", "length": 11, "keySequence": 2}
    assert cols["AESEQ"]["dataType"] == "integer" and "length" not in cols["AESEQ"]
    assert cols["AESTDTC"]["dataType"] == "datetime" and cols["AESTDTC"]["length"] == 10
    for c in ae.columns:  # same lengths as the XPT
        if c.type == "text":
            assert cols[c.name]["length"] == c.length
    assert doc["rows"][0] == ["T1", "AE", "T1-101-1001", 1, None, None, None, "3", None]
    adoc = json.loads((tmp_path / "a" / adsl.json_path).read_text())
    acols = {c["name"]: c for c in adoc["columns"]}
    assert acols["TRTSDT"] == {"itemOID": "IT.ADSL.TRTSDT", "name": "TRTSDT", "label": "Date of First Exposure to Treatment",
                               "dataType": "date", "targetDataType": "integer", "displayFormat": "DATE9."}
    assert acols["WEIGHTBL"]["dataType"] == "double"
    assert adoc["rows"][1] == ["T1", "T1-101-1002", 61, "DL2: 3.0x10^6 CAR-T cells/kg", 72.5, "2024-01-03",
                               "2024-01-03T10:30:00", "10:30:00"]


def test_ndjson_reads_like_json_and_like_xpt(tmp_path: Path) -> None:
    spec = make_spec()
    as_json = _write(spec, tmp_path / "a")
    as_nd = _write(spec, tmp_path / "b", ndjson_threshold=2)
    assert [Path(w.json_path).suffix for w in as_nd] == [".ndjson", ".json"]  # AE has 3 > 2 records
    for j, n in zip(as_json, as_nd):
        a = read_dataset_json(tmp_path / "a" / j.json_path)
        b = read_dataset_json(tmp_path / "b" / n.json_path)
        pd.testing.assert_frame_equal(a, b)
        pd.testing.assert_frame_equal(a, read_xpt(tmp_path / "a" / j.xpt_path))


def test_data_type_mapping() -> None:
    spec = make_spec()
    ae, adsl = spec.dataset("AE"), spec.dataset("ADSL")
    assert json_data_type(ae.variable("STUDYID")) == ("string", None)
    assert json_data_type(ae.variable("AESTDTC")) == ("datetime", None)
    assert json_data_type(adsl.variable("TRTSTM")) == ("time", "integer")
    assert json_data_type(adsl.variable("AGE")) == ("integer", None)


def test_oids_match_define_xml(tmp_path: Path) -> None:
    """itemGroupOID, itemOIDs and metaDataVersionOID are the OIDs define.xml uses."""
    define = pytest.importorskip("cdisc_pipe.define")
    from lxml import etree

    spec = make_spec()
    spec.dataset("AE").standard = "STD.SDTMIG.3-4"
    written = write_datasets({"AE": ae_frame()}, spec, tmp_path, purpose="Tabulation")
    try:
        result = define.build_define(spec, written, "Tabulation", ct_dir=None)
    except Exception as exc:  # the define builder may need more of the spec than this fixture has
        pytest.skip(f"define.xml cannot be built for the test spec: {type(exc).__name__}: {exc}")
    xml = result.xml.encode() if isinstance(result.xml, str) else result.xml
    root = etree.fromstring(xml)
    ns = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
    mdv = root.find(".//odm:MetaDataVersion", ns).get("OID")
    groups = {g.get("OID") for g in root.findall(".//odm:ItemGroupDef", ns)}
    items = {i.get("OID") for i in root.findall(".//odm:ItemDef", ns)}
    doc = json.loads((tmp_path / "ae.json").read_text())
    assert doc["metaDataVersionOID"] == mdv
    assert doc["itemGroupOID"] in groups
    assert {c["itemOID"] for c in doc["columns"]} <= items


def test_row_lines_are_exactly_json_dumps(tmp_path: Path) -> None:
    """The per-distinct-value encoder writes what json.dumps would, one record per line."""
    spec = make_spec()
    df = adsl_frame()
    df["WEIGHTBL"] = [0.1 + 0.2, -0.0]  # repr-sensitive floats
    df["ARM"] = ['He said "x"\\y', "tab\there"]  # escapes
    (w,) = write_datasets({"ADSL": df}, spec, tmp_path, purpose="Analysis")
    text = (tmp_path / "adsl.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    lines = text.split("\n")[1: 1 + doc["records"]]
    for row, line in zip(doc["rows"], lines):
        assert line.rstrip(",") == json.dumps(row, ensure_ascii=False, separators=(",", ":"))
    assert doc["rows"][0][4] == -0.0 and doc["rows"][1][4] == 0.1 + 0.2
