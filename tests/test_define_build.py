"""define.xml rendering: schema validity, written facts, escaping, codelists, determinism."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from lxml import etree

from cdisc_pipe.define import build_define, validate_define, write_define, written_from_folder
from cdisc_pipe.written import WrittenColumn
from tests.test_define_support import tiny_spec, write_study

NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1",
      "xlink": "http://www.w3.org/1999/xlink"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny study written to XPT: (spec, sdtm written, adam written, output root)."""
    root = tmp_path_factory.mktemp("define")
    spec = tiny_spec(root / "specs")
    sdtm, adam = write_study(root / "out", spec)
    return spec, sdtm, adam, root / "out"


@pytest.fixture(scope="module")
def sdtm_define(study):
    spec, sdtm, _, _ = study
    return build_define(spec, sdtm, "Tabulation")


@pytest.fixture(scope="module")
def adam_define(study):
    spec, _, adam, _ = study
    return build_define(spec, adam, "Analysis")


def tree(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def item_def(root, oid):
    found = root.find(f".//odm:ItemDef[@OID='{oid}']", NS)
    assert found is not None, oid
    return found


# -- schema ------------------------------------------------------------------------------------


def test_both_defines_are_schema_valid(sdtm_define, adam_define):
    assert validate_define(sdtm_define.xml) == []
    assert validate_define(adam_define.xml) == []


def test_cdisc_examples_are_accepted_by_the_validator(shared):
    """The validator itself agrees with CDISC's published examples (the ADaM one uses ARM 1.0)."""
    folder = shared / "reference" / "define-xml-2.1-examples"
    assert validate_define((folder / "defineV21-SDTM.xml").read_bytes()) == []
    assert validate_define((folder / "defineV21-ADaM.xml").read_bytes()) == []


def test_missing_datatype_is_caught_with_its_line(sdtm_define):
    text = sdtm_define.xml.decode()
    broken = text.replace('<ItemDef OID="IT.DM.SEX" Name="SEX" DataType="text"', '<ItemDef OID="IT.DM.SEX" Name="SEX"', 1)
    assert broken != text
    line = broken[: broken.index('<ItemDef OID="IT.DM.SEX"')].count("\n") + 1
    problems = validate_define(broken.encode())
    assert problems, "a missing DataType must fail the schema"
    assert any("DataType" in p.message and p.entry == f"line {line}" for p in problems), problems


def test_misplaced_element_and_bad_enumeration_are_caught(adam_define):
    text = adam_define.xml.decode()
    bad = text.replace('<def:Class Name="BASIC DATA STRUCTURE">', '<def:Class Name="BASIC DATA STUFF">', 1)
    assert any("BASIC DATA STUFF" in p.message for p in validate_define(bad.encode()))


def test_dangling_references_are_caught(sdtm_define):
    text = sdtm_define.xml.decode()
    bad = text.replace('MethodOID="MT.DY"', 'MethodOID="MT.NOPE"', 1).replace(
        '<CodeListRef CodeListOID="CL.SEX"/>', '<CodeListRef CodeListOID="CL.GONE"/>', 1)
    problems = validate_define(bad.encode())
    values = {p.value for p in problems}
    assert {"MT.NOPE", "CL.GONE"} <= values
    assert validate_define(bad.encode(), references=False) == []  # the schema alone cannot see them


def test_text_input_is_accepted(sdtm_define):
    assert validate_define(sdtm_define.xml.decode("utf-8")) == []


def test_not_well_formed_is_a_problem_not_a_traceback():
    problems = validate_define(b"<ODM>\n<Study></ODM>")
    assert len(problems) == 1 and "well-formed" in problems[0].message and problems[0].entry == "line 2"


# -- what was written ----------------------------------------------------------------------------


def test_order_length_label_follow_the_written_files(study, sdtm_define):
    _, sdtm, _, _ = study
    root = tree(sdtm_define.xml)
    for w in sdtm:
        refs = root.findall(f".//odm:ItemGroupDef[@Name='{w.name}']/odm:ItemRef", NS)
        assert [r.get("ItemOID") for r in refs] == [f"IT.{w.name}.{c.name}" for c in w.columns]
        assert [int(r.get("OrderNumber")) for r in refs] == [c.order for c in w.columns]
        for c in w.columns:
            it = item_def(root, f"IT.{w.name}.{c.name}")
            assert int(it.get("Length")) == c.length
            assert it.find("odm:Description/odm:TranslatedText", NS).text == c.label
    # DM.SEX is "F"/"M": written length 1 although the spec allows 2
    assert item_def(root, "IT.DM.SEX").get("Length") == "1"


def test_order_is_the_written_order_even_when_the_spec_differs(study):
    spec, sdtm, _, _ = study
    dm = next(w for w in sdtm if w.name == "DM")
    cols = list(dm.columns)
    cols[4], cols[5] = cols[5], cols[4]  # AGEU written before AGE
    cols = tuple(dataclasses.replace(c, order=i) for i, c in enumerate(cols, start=1))
    res = build_define(spec, [dataclasses.replace(dm, columns=cols)], "Tabulation")
    refs = tree(res.xml).findall(".//odm:ItemGroupDef[@Name='DM']/odm:ItemRef", NS)
    assert [r.get("ItemOID").split(".")[-1] for r in refs][4:6] == ["AGEU", "AGE"]


def test_only_written_datasets_and_variables_appear(study, sdtm_define, adam_define):
    spec, sdtm, adam, _ = study
    root = tree(sdtm_define.xml)
    assert [g.get("Name") for g in root.findall(".//odm:ItemGroupDef", NS)] == ["DM", "AE", "LB", "SUPPAE"]
    assert root.find(".//odm:ItemDef[@OID='IT.LB.LBNAM']", NS) is None  # in the spec, not written
    # the value-level entry selected by LBNAM is left out, and that is reported
    assert any("LB.LBNAM" == p.value for p in sdtm_define.problems)
    only_adsl = build_define(spec, [w for w in adam if w.name == "ADSL"], "Analysis")
    assert [g.get("Name") for g in tree(only_adsl.xml).findall(".//odm:ItemGroupDef", NS)] == ["ADSL"]
    assert validate_define(only_adsl.xml) == []


def test_written_variable_or_dataset_without_spec_is_a_problem(study):
    spec, sdtm, _, _ = study
    dm = next(w for w in sdtm if w.name == "DM")
    extra = WrittenColumn(name="XTRA", label="Extra", type="text", length=3, order=len(dm.columns) + 1)
    stray = dataclasses.replace(dm, name="ZZ", xpt_path="sdtm/zz.xpt")
    res = build_define(spec, [dataclasses.replace(dm, columns=dm.columns + (extra,)), stray], "Tabulation")
    msgs = [(p.message, p.value) for p in res.problems]
    assert any("not in the spec" in m and v == "XTRA" for m, v in msgs)
    assert any("has no spec" in m and v == "ZZ" for m, v in msgs)
    root = tree(res.xml)
    assert item_def(root, "IT.DM.XTRA").get("Length") == "3"  # still described, so define matches the file
    assert root.find(".//odm:ItemGroupDef[@Name='ZZ']", NS) is None
    assert validate_define(res.xml) == []


def test_spec_gaps_are_reported(tmp_path, study):
    """A Derived variable without method and a Collected origin without source are problems."""
    _, sdtm, _, _ = study
    from tests.test_define_support import FILES

    ae = (FILES["sdtm/ae.yaml"]
          .replace("core: Perm, role: Timing, origin: {type: Derived, source: Sponsor}, method: MT.DY}",
                   "core: Perm, role: Timing, origin: {type: Derived, source: Sponsor}}")
          .replace("role: Timing, origin: {type: Collected, source: Investigator}}",
                   "role: Timing, origin: {type: Collected}}"))
    assert ae.count("{type: Derived, source: Sponsor}}") == 2 and "{type: Collected}}" in ae
    spec = tiny_spec(tmp_path / "specs", {"sdtm/ae.yaml": ae})
    res = build_define(spec, sdtm, "Tabulation")
    entries = {(p.message.split(" (")[0], p.entry) for p in res.problems}
    assert ("Derived variable has no method", "variables[AEENRF]") in entries
    assert any(e == "variables[AESTDTC].origin" for _, e in entries)


@pytest.mark.parametrize("keys, expected", [
    (["STUDYID", "USUBJID"], False),                    # DM, ADSL: one record per subject
    (["USUBJID"], False),
    (["STUDYID", "TSPARMCD", "TSSEQ"], False),          # trial design: no subject data
    (["STUDYID", "ARMCD", "TAETORD"], False),
    (["STUDYID", "USUBJID", "AEDECOD", "AESTDTC"], True),
    (["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM"], True),
    (["STUDYID", "USUBJID", "PARAMCD"], True),
    ([], None),
])
def test_repeating_follows_the_keys(keys, expected):
    from cdisc_pipe.define.builder import repeating_from_keys

    assert repeating_from_keys(keys) is expected


def test_repeating_is_derived_and_a_contradicting_spec_is_reported(tmp_path, study):
    """DM without ``repeating:`` is still Repeating=No (its keys are the subject); a spec that says
    otherwise than its keys is a problem and the keys win."""
    _, sdtm, _, _ = study
    from tests.test_define_support import FILES

    dm = FILES["sdtm/dm.yaml"].replace("        repeating: false\n", "")
    ae = FILES["sdtm/ae.yaml"].replace("domain: AE\n", "domain: AE\n        repeating: false\n")
    assert dm != FILES["sdtm/dm.yaml"] and ae != FILES["sdtm/ae.yaml"]
    res = build_define(tiny_spec(tmp_path / "specs", {"sdtm/dm.yaml": dm, "sdtm/ae.yaml": ae}), sdtm, "Tabulation")
    root = tree(res.xml)
    rep = {g.get("Name"): g.get("Repeating") for g in root.findall(".//odm:ItemGroupDef", NS)}
    assert rep == {"DM": "No", "AE": "Yes", "LB": "Yes", "SUPPAE": "Yes"}
    bad = [p for p in res.problems if p.entry == "repeating"]
    assert [(p.file, "contradicts the keys" in p.message) for p in bad] == [("specs/sdtm/ae.yaml", True)]


def test_value_level_description_from_the_where_clause(tmp_path, study):
    """A value-level entry without label is described by what its where clause selects: the decode
    of the tested value when its codelist has one, else the variable's label and the condition."""
    spec, sdtm, _, _ = study
    root = tree(build_define(spec, sdtm, "Tabulation").xml)

    def desc(oid):
        return item_def(root, oid).find("odm:Description/odm:TranslatedText", NS).text

    assert desc("IT.LB.LBORRES.LBTESTCD.EQ.ALB") == "Albumin result"  # the spec's label wins
    assert desc("IT.LB.LBORRES.LBTESTCD.IN.HGB_PLAT") == "Hemoglobin Measurement, Platelet Count"
    assert root.find(".//odm:ItemDef[@OID='IT.LB.LBORRES.LBNAM.EQ.CENTRAL']", NS) is None
    from cdisc_pipe.define.builder import _Builder
    from cdisc_pipe.spec.model import WhereClause, WhereCondition

    b = _Builder(spec, "Tabulation", None)
    lb = spec.datasets["LB"]
    var = lb.variable("LBORRES")
    two = WhereClause(oid="WC.X", conditions=[WhereCondition(variable="LBTESTCD", values=["ALB"]),
                                              WhereCondition(variable="LBNAM", comparator="NE", values=["LOCAL"])])
    assert b._vl_description(lb, var, two) == "Albumin Measurement (LBNAM not LOCAL)"
    plain = WhereClause(oid="WC.Y", conditions=[WhereCondition(variable="LBNAM", values=["CENTRAL"])])
    assert b._vl_description(lb, var, plain) == "Result or Finding in Original Units where LBNAM = CENTRAL"


def test_collected_without_crf_pages_is_reported_once_per_dataset(sdtm_define, adam_define):
    crf = [p for p in sdtm_define.problems if "aCRF page" in p.message]
    assert [(p.file, p.value) for p in crf] == [("specs/sdtm/ae.yaml", "AESTDTC")]  # QVAL has value-level pages
    assert not any("aCRF page" in p.message for p in adam_define.problems)  # ADaM is not collected on the CRF


# -- content -------------------------------------------------------------------------------------


def test_header_standards_documents(study, sdtm_define):
    spec = study[0]
    root = tree(sdtm_define.xml)
    assert sdtm_define.xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<?xml-stylesheet type="text/xsl" '
                                      b'href="define2-1.xsl"?>\n')
    assert root.get("CreationDateTime") == spec.study.metadata_datetime == "2025-06-30T00:00:00"
    assert root.get("{http://www.cdisc.org/ns/def/v2.1}Context") == "Submission"
    stds = {(s.get("Name"), s.get("Type"), s.get("PublishingSet"), s.get("Version"))
            for s in root.findall(".//def:Standards/def:Standard", NS)}
    assert ("SDTMIG", "IG", None, "3.4") in stds
    assert ("CDISC/NCI", "CT", "SDTM", "2025-03-28") in stds
    assert not any(name == "ADaMIG" for name, *_ in stds)
    assert [r.get("leafID") for r in root.findall(".//def:AnnotatedCRF/def:DocumentRef", NS)] == ["LF.acrf"]
    leaf = root.find(".//def:leaf[@ID='LF.acrf']", NS)
    assert leaf.get("{http://www.w3.org/1999/xlink}href") == "acrf.pdf"
    dm = root.find(".//odm:ItemGroupDef[@Name='DM']", NS)
    assert dm.get("{http://www.cdisc.org/ns/def/v2.1}ArchiveLocationID") == "LF.DM"
    assert dm.find("def:leaf", NS).get("{http://www.w3.org/1999/xlink}href") == "dm.xpt"
    assert dm.get("Repeating") == "No" and dm.get("Purpose") == "Tabulation"
    assert dm.find("def:Class", NS).get("Name") == "SPECIAL PURPOSE"
    keys = {r.get("ItemOID"): r.get("KeySequence") for r in dm.findall("odm:ItemRef", NS)}
    assert keys["IT.DM.STUDYID"] == "1" and keys["IT.DM.USUBJID"] == "2" and keys["IT.DM.SEX"] is None


def test_adam_class_subclass_numeric_dates_predecessor(adam_define):
    root = tree(adam_define.xml)
    adtte = root.find(".//odm:ItemGroupDef[@Name='ADTTE']", NS)
    cls = adtte.find("def:Class", NS)
    assert cls.get("Name") == "BASIC DATA STRUCTURE"
    assert cls.find("def:SubClass", NS).get("Name") == "TIME-TO-EVENT"
    trtsdt = item_def(root, "IT.ADSL.TRTSDT")
    assert trtsdt.get("DataType") == "integer"
    assert trtsdt.get("{http://www.cdisc.org/ns/def/v2.1}DisplayFormat") == "DATE9."
    origin = item_def(root, "IT.ADSL.AGE").find("def:Origin", NS)
    assert origin.get("Type") == "Predecessor"
    assert origin.find("odm:Description/odm:TranslatedText", NS).text == "DM.AGE"
    assert all(r.get("Role") is None for r in root.findall(".//odm:ItemRef", NS))  # no SDTM roles in ADaM
    method = root.find(".//odm:MethodDef[@OID='MT.OS']", NS)
    assert method.find("odm:FormalExpression", NS).get("Context") == "Python"
    pages = root.find(".//odm:MethodDef[@OID='MT.TRTSDT']/def:DocumentRef/def:PDFPageRef", NS)
    assert (pages.get("FirstPage"), pages.get("LastPage")) == ("4", "5")


def test_every_derived_item_has_a_method_def(sdtm_define, adam_define):
    for res in (sdtm_define, adam_define):
        root = tree(res.xml)
        methods = {m.get("OID") for m in root.findall(".//odm:MethodDef", NS)}
        for ref in root.iter("{http://www.cdisc.org/ns/odm/v1.3}ItemRef"):
            it = item_def(root, ref.get("ItemOID"))
            origin = it.find("def:Origin", NS)
            if origin is not None and origin.get("Type") == "Derived":
                assert ref.get("MethodOID") in methods, ref.get("ItemOID")


def test_codelists_aliases_extended_external(sdtm_define, adam_define):
    root = tree(sdtm_define.xml)
    oids = [c.get("OID") for c in root.findall(".//odm:CodeList", NS)]
    assert oids == ["CL.AEDECOD", "CL.AGEU", "CL.LBTESTCD", "CL.NY", "CL.SEX"]  # used ones only, sorted
    sex = root.find(".//odm:CodeList[@OID='CL.SEX']", NS)
    assert sex.find("odm:Alias", NS).get("Name") == "C66731"
    f = sex.find("odm:CodeListItem[@CodedValue='F']", NS)
    assert f.find("odm:Decode/odm:TranslatedText", NS).text == "Female"
    assert f.find("odm:Alias", NS).attrib == {"Context": "nci:ExtCodeID", "Name": "C16576"}
    assert sex.get("{http://www.cdisc.org/ns/def/v2.1}StandardOID") == "STD.SDTM.CT.2025-03-28"
    sponsor = root.find(".//odm:CodeList[@OID='CL.LBTESTCD']/odm:CodeListItem[@CodedValue='XQ<1']", NS)
    assert sponsor.get("{http://www.cdisc.org/ns/def/v2.1}ExtendedValue") == "Yes"
    assert sponsor.find("odm:Alias", NS) is None
    ageu = root.find(".//odm:CodeList[@OID='CL.AGEU']", NS)
    assert ageu.find("odm:EnumeratedItem", NS).get("CodedValue") == "YEARS"  # no decodes -> EnumeratedItem
    ext = root.find(".//odm:CodeList[@OID='CL.AEDECOD']/odm:ExternalCodeList", NS)
    assert (ext.get("Dictionary"), ext.get("Version")) == ("MedDRA", "27.0")
    adam = tree(adam_define.xml)
    paramcd = adam.find(".//odm:CodeList[@OID='CL.PARAMCD']", NS)
    assert paramcd.get("{http://www.cdisc.org/ns/def/v2.1}IsNonStandard") == "Yes"
    assert [i.get("OrderNumber") for i in paramcd.findall("odm:CodeListItem", NS)] == ["1", "2"]


def test_value_level_metadata(sdtm_define):
    root = tree(sdtm_define.xml)
    lborres = item_def(root, "IT.LB.LBORRES")
    assert lborres.find("def:ValueListRef", NS).get("ValueListOID") == "VL.LB.LBORRES"
    refs = root.findall(".//def:ValueListDef[@OID='VL.LB.LBORRES']/odm:ItemRef", NS)
    assert [r.find("def:WhereClauseRef", NS).get("WhereClauseOID") for r in refs] == [
        "WC.LB.LBTESTCD.EQ.ALB", "WC.LB.LBTESTCD.IN.HGB_PLAT"]
    rc = root.find(".//def:WhereClauseDef[@OID='WC.LB.LBTESTCD.IN.HGB_PLAT']/odm:RangeCheck", NS)
    assert rc.get("Comparator") == "IN" and rc.get("{http://www.cdisc.org/ns/def/v2.1}ItemOID") == "IT.LB.LBTESTCD"
    assert [cv.text for cv in rc.findall("odm:CheckValue", NS)] == ["HGB", "PLAT"]
    alb = item_def(root, "IT.LB.LBORRES.LBTESTCD.EQ.ALB")
    assert (alb.get("DataType"), alb.get("Length"), alb.get("SignificantDigits")) == ("float", "5", "1")
    # the spec allows 12 for HGB/PLAT but LBORRES was written with length 8 ("POSITIVE"): capped at 8
    hgb = item_def(root, "IT.LB.LBORRES.LBTESTCD.IN.HGB_PLAT")
    assert lborres.get("Length") == "8" and hgb.get("Length") == "8"
    qval = item_def(root, "IT.SUPPAE.QVAL.QNAM.EQ.AEDLT")
    assert qval.find("odm:CodeListRef", NS).get("CodeListOID") == "CL.NY"


def test_text_is_escaped_not_injected(tmp_path, study):
    _, sdtm, _, _ = study
    from tests.test_define_support import FILES

    evil = FILES["study.yaml"].replace(
        "description: Lab data from the central lab & local labs",
        "description: \"</TranslatedText><script>alert(1)</script> & ]]> 'x'\"")
    spec = tiny_spec(tmp_path / "specs", {"study.yaml": evil})
    res = build_define(spec, sdtm, "Tabulation")
    assert validate_define(res.xml) == []
    comment = tree(res.xml).find(".//def:CommentDef[@OID='COM.LB']/odm:Description/odm:TranslatedText", NS)
    assert comment.text == "</TranslatedText><script>alert(1)</script> & ]]> 'x'"
    assert b"<script>" not in res.xml and b"<script>" not in res.html
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in res.html
    decode = tree(res.xml).find(".//odm:CodeListItem[@CodedValue='XQ<1']/odm:Decode/odm:TranslatedText", NS)
    assert decode.text == 'Sponsor test <&> "quoted"'


def test_control_characters_are_replaced_and_reported(tmp_path, study):
    _, sdtm, _, _ = study
    from tests.test_define_support import FILES

    bad = FILES["study.yaml"].replace("Lab data from the central lab & local labs", '"Lab data\\x01 from labs"')
    spec = tiny_spec(tmp_path / "specs", {"study.yaml": bad})
    res = build_define(spec, sdtm, "Tabulation")
    assert validate_define(res.xml) == []
    assert any("characters XML cannot carry" in p.message and "\\x01" in (p.value or "") for p in res.problems)


def test_ct_dir_checks_emitted_codelists(tmp_path, study, shared):
    _, sdtm, _, _ = study
    from tests.test_define_support import FILES

    wrong = FILES["codelists/sex.yaml"].replace("nci_code: C20197", "nci_code: C99999")
    spec = tiny_spec(tmp_path / "specs", {"codelists/sex.yaml": wrong})
    clean = build_define(spec, sdtm, "Tabulation")
    assert not any("CT" in p.message for p in clean.problems)  # no CT folder, no CT check
    checked = build_define(spec, sdtm, "Tabulation", ct_dir=shared / "ct")
    assert any(p.value == "M=C99999" for p in checked.problems), checked.problems


def test_extra_methods_replace_spec_methods(study):
    spec, _, adam, _ = study
    from cdisc_pipe.spec import Method

    nca = Method(oid="MT.OS", name="Overall survival", description="Computed at run time: 42 subjects")
    res = build_define(spec, adam, "Analysis", extra_methods=[nca, Method(oid="MT.UNUSED", name="x", description="y")])
    text = tree(res.xml).find(".//odm:MethodDef[@OID='MT.OS']/odm:Description/odm:TranslatedText", NS).text
    assert text == "Computed at run time: 42 subjects"
    assert any(p.value == "MT.UNUSED" for p in res.problems)


# -- determinism ---------------------------------------------------------------------------------


def test_rerun_is_byte_identical_and_folder_rebuild_matches(study, sdtm_define, adam_define):
    spec, sdtm, adam, out = study
    again = build_define(spec, sdtm, "Tabulation")
    assert again.xml == sdtm_define.xml and again.html == sdtm_define.html
    assert build_define(spec, list(reversed(adam)), "Analysis").xml == adam_define.xml
    # written facts re-read from the files give the same define (the `cdisc-pipe define` path)
    assert build_define(spec, written_from_folder(out / "sdtm", "Tabulation"), "Tabulation").xml == sdtm_define.xml
    assert build_define(spec, written_from_folder(out / "adam", "Analysis"), "Analysis").xml == adam_define.xml


def test_write_define_writes_both_files(tmp_path, sdtm_define):
    paths = write_define(sdtm_define, tmp_path)
    assert [p.name for p in paths] == ["define.xml", "define.html"]
    assert (tmp_path / "define.xml").read_bytes() == sdtm_define.xml
    assert not list(tmp_path.glob(".*.tmp"))


def test_unknown_purpose_is_rejected(study):
    with pytest.raises(ValueError):
        build_define(study[0], study[1], "Tabulations")  # type: ignore[arg-type]


def test_source_path_is_not_absolute(sdtm_define):
    # the leaf points at the file beside define.xml, never at the machine's folder layout
    for leaf in tree(sdtm_define.xml).iter("{http://www.cdisc.org/ns/def/v2.1}leaf"):
        href = leaf.get("{http://www.w3.org/1999/xlink}href")
        assert "/" not in href and not Path(href).is_absolute()


def test_dataset_without_records_has_no_data_and_no_leaf(study):
    spec, sdtm, _, out = study
    from cdisc_pipe.define import check_define_against_data

    empty = [dataclasses.replace(w, records=0) if w.name == "SUPPAE" else w for w in sdtm]
    res = build_define(spec, empty, "Tabulation")
    assert validate_define(res.xml) == []
    g = tree(res.xml).find(".//odm:ItemGroupDef[@Name='SUPPAE']", NS)
    assert g.get("{http://www.cdisc.org/ns/def/v2.1}HasNoData") == "Yes"
    assert g.get("{http://www.cdisc.org/ns/def/v2.1}ArchiveLocationID") is None and g.find("def:leaf", NS) is None
    found = {(f.rule, f.severity) for f in check_define_against_data(res.xml, out / "sdtm")}
    assert found == {("DEFINE.DATA.HASNODATA", "Warning")}  # the file exists although define says no data


def test_float_without_significant_digits_is_reported(tmp_path, study):
    _, sdtm, _, _ = study
    from tests.test_define_support import FILES

    lb = FILES["sdtm/lb.yaml"].replace("data_type: float, significant_digits: 2,", "data_type: float,")
    res = build_define(tiny_spec(tmp_path / "specs", {"sdtm/lb.yaml": lb}), sdtm, "Tabulation")
    assert [(p.file, p.value) for p in res.problems if "significant_digits" in p.message] == [
        ("specs/sdtm/lb.yaml", "LBSTRESN")]
    assert tree(res.xml).find(".//odm:ItemDef[@OID='IT.LB.LBSTRESN']", NS).get("SignificantDigits") is None


def test_unsafe_document_links_are_neutralised(tmp_path, study):
    _, sdtm, _, _ = study
    from tests.test_define_support import FILES

    evil = FILES["study.yaml"].replace("href: csdrg.pdf", "href: \"javascript:alert(1)\"")
    res = build_define(tiny_spec(tmp_path / "specs", {"study.yaml": evil}), sdtm, "Tabulation")
    assert b"javascript:" not in res.xml and b"javascript:" not in res.html
    assert any(p.value == "javascript:alert(1)" for p in res.problems)
    leaf = tree(res.xml).find(".//def:leaf[@ID='LF.csdrg']", NS)
    assert leaf.get("{http://www.w3.org/1999/xlink}href") == "#"
    assert validate_define(res.xml) == []


def test_bytes_do_not_depend_on_hash_seed(study):
    """Set/dict ordering must not leak into the output: two interpreters, two hash seeds, same bytes."""
    import os
    import subprocess
    import sys

    _, _, _, out = study
    code = (
        "import sys, hashlib; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from tests.test_define_support import tiny_spec;"
        "from cdisc_pipe.define import build_define, written_from_folder;"
        "spec = tiny_spec(Path(sys.argv[2]));"
        "r = build_define(spec, written_from_folder(Path(sys.argv[3]), 'Tabulation'), 'Tabulation');"
        "print(hashlib.sha256(r.xml + r.html).hexdigest())"
    )
    digests = set()
    root = Path(__file__).resolve().parents[1]
    for seed in ("1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        res = subprocess.run([sys.executable, "-c", code, str(root), str(out.parent / f"specs-seed{seed}"),
                              str(out / "sdtm")], capture_output=True, text=True, env=env, timeout=120)
        assert res.returncode == 0, res.stderr
        digests.add(res.stdout.strip())
    assert len(digests) == 1


def test_bundled_study_specs_render_schema_valid_defines(root):
    """Every dataset of the bundled study's specs, written as the spec says (full spec lengths),
    renders a schema-valid define.xml for both purposes: no spec content breaks the schema."""
    from cdisc_pipe.spec import load_specs
    from cdisc_pipe.written import WrittenDataset

    spec = load_specs(root / "specs")
    for purpose in ("Tabulation", "Analysis"):
        written = []
        for ds in spec.by_purpose(purpose):
            cols = tuple(WrittenColumn(name=v.name, label=v.label, type="numeric" if v.is_numeric else "text",
                                       length=8 if v.is_numeric else (v.length or 1),
                                       display_format=v.display_format, order=i)
                         for i, v in enumerate(sorted(ds.variables, key=lambda v: v.order or 0), start=1))
            written.append(WrittenDataset(name=ds.name, label=ds.label, purpose=purpose, records=1, columns=cols,
                                          xpt_path=f"x/{ds.name.lower()}.xpt"))
        if not written:
            continue
        res = build_define(spec, written, purpose)
        assert validate_define(res.xml) == [], purpose
        names = [g.get("Name") for g in tree(res.xml).findall(".//odm:ItemGroupDef", NS)]
        assert sorted(names) == sorted(w.name for w in written)


def test_every_origin_has_a_source(sdtm_define, adam_define):
    """Define-XML 2.1 Origin Source (C170450): the spec's when given, Sponsor for what the sponsor
    assigns, derives, copies or takes from the protocol."""
    for res in (sdtm_define, adam_define):
        for o in tree(res.xml).iter("{http://www.cdisc.org/ns/def/v2.1}Origin"):
            assert o.get("Source") in ("Subject", "Investigator", "Vendor", "Sponsor"), o.get("Type")
            if o.get("Type") in ("Protocol", "Predecessor", "Assigned"):
                assert o.get("Source") in ("Sponsor", "Vendor", "Investigator")
    root = tree(sdtm_define.xml)
    assert item_def(root, "IT.DM.STUDYID").find("def:Origin", NS).attrib == {"Type": "Protocol", "Source": "Sponsor"}
    assert item_def(root, "IT.LB.LBORRES").find("def:Origin", NS).get("Source") == "Vendor"  # the spec's
    assert item_def(tree(adam_define.xml), "IT.ADSL.AGE").find("def:Origin", NS).get("Source") == "Sponsor"


def test_codelist_items_are_numbered_in_spec_order(sdtm_define, adam_define):
    root = tree(sdtm_define.xml)
    sex = root.findall(".//odm:CodeList[@OID='CL.SEX']/odm:CodeListItem", NS)
    assert [(i.get("CodedValue"), i.get("OrderNumber"), i.get("Rank")) for i in sex] == [("F", "1", None), ("M", "2", None)]
    ageu = root.find(".//odm:CodeList[@OID='CL.AGEU']/odm:EnumeratedItem", NS)
    assert ageu.get("OrderNumber") == "1"


def test_value_level_mandatory_defaults_to_the_variables(sdtm_define, adam_define):
    """Without ``mandatory:`` a value-level ItemRef is as mandatory as its variable: SUPPAE.QVAL (Req)
    is Yes for every QNAM, LBORRES (Exp) is No."""
    root = tree(sdtm_define.xml)
    qval = root.findall(".//def:ValueListDef[@OID='VL.SUPPAE.QVAL']/odm:ItemRef", NS)
    lborres = root.findall(".//def:ValueListDef[@OID='VL.LB.LBORRES']/odm:ItemRef", NS)
    assert {r.get("Mandatory") for r in qval} == {"Yes"} and {r.get("Mandatory") for r in lborres} == {"No"}


def test_every_standard_has_a_comment_the_spec_can_override(tmp_path, study, sdtm_define):
    """def:Standard/@def:CommentOID (the stylesheet's "Documentation"): what this define takes from the
    standard, or the spec's own comment COM.<standard OID>."""
    root = tree(sdtm_define.xml)
    comments = {c.get("OID"): " ".join(c.itertext()).strip() for c in root.findall(".//def:CommentDef", NS)}
    for s in root.findall(".//def:Standards/def:Standard", NS):
        assert s.get("{http://www.cdisc.org/ns/def/v2.1}CommentOID") in comments, s.get("OID")
    assert "all 4 datasets" in comments["COM.STD.SDTMIG.3-4"]
    assert "Sex" in comments["COM.STD.SDTM.CT.2025-03-28"]  # the codelists subset from the package
    _, sdtm, _, _ = study
    from tests.test_define_support import FILES

    own = FILES["study.yaml"].replace("        comments:\n", "        comments:\n"
                                      "          - {oid: COM.STD.SDTMIG.3-4, description: Our own words}\n")
    res = build_define(tiny_spec(tmp_path / "specs", {"study.yaml": own}), sdtm, "Tabulation")
    assert "Our own words" in " ".join(tree(res.xml).find(".//def:CommentDef[@OID='COM.STD.SDTMIG.3-4']", NS).itertext())
    assert validate_define(res.xml) == []
