"""The ODM-XML 1.3.2 reader: same RawExport as CSV, ODM rules (repeat keys, IsNull, Remove, audit), bad input, security.

The reader has a fast path (the file's bytes scanned as they are, in one or two processes) and a tree
path (lxml serialises each SubjectData first); every document here is also read both ways and must
give the same RawExport.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.cli import main
from cdisc_pipe.errors import InputError
from cdisc_pipe.raw import odm, read_export
from cdisc_pipe.synth import generate

NS = "http://www.cdisc.org/ns/odm/v1.3"

META = """<Study OID="S1"><GlobalVariables><StudyName>S1</StudyName><StudyDescription>t</StudyDescription>
<ProtocolName>S1</ProtocolName></GlobalVariables>
<BasicDefinitions><MeasurementUnit OID="MU.KG" Name="kg"><Symbol><TranslatedText>kg</TranslatedText></Symbol>
</MeasurementUnit></BasicDefinitions>
<MetaDataVersion OID="MDV.1" Name="v1">
<StudyEventDef OID="SCR" Name="Screening" Repeating="No" Type="Scheduled"><FormRef FormOID="dm" Mandatory="Yes"/></StudyEventDef>
<StudyEventDef OID="AELOG" Name="Adverse events" Repeating="No" Type="Common"><FormRef FormOID="ae" Mandatory="No"/></StudyEventDef>
<FormDef OID="dm" Name="Demography" Repeating="No"><ItemGroupRef ItemGroupOID="IG.dm" Mandatory="Yes"/></FormDef>
<FormDef OID="ae" Name="Adverse events" Repeating="No"><ItemGroupRef ItemGroupOID="IG.ae" Mandatory="Yes"/></FormDef>
<ItemGroupDef OID="IG.dm" Name="dm" Repeating="No"><ItemRef ItemOID="IT.SEX" Mandatory="Yes"/>
<ItemRef ItemOID="IT.BRTHDAT" Mandatory="No"/><ItemRef ItemOID="IT.WEIGHT" Mandatory="No"/></ItemGroupDef>
<ItemGroupDef OID="IG.ae" Name="ae" Repeating="Yes"><ItemRef ItemOID="IT.AETERM" Mandatory="Yes"/>
<ItemRef ItemOID="IT.AESTDAT" Mandatory="Yes"/></ItemGroupDef>
<ItemDef OID="IT.SEX" Name="SEX" DataType="text"><Description><TranslatedText>Sex</TranslatedText></Description>
<CodeListRef CodeListOID="CL.SEX"/></ItemDef>
<ItemDef OID="IT.BRTHDAT" Name="BRTHDAT" DataType="partialDate"><Question><TranslatedText>Birth date</TranslatedText></Question></ItemDef>
<ItemDef OID="IT.WEIGHT" Name="WEIGHT" DataType="float"><Description><TranslatedText>Weight</TranslatedText></Description>
<MeasurementUnitRef MeasurementUnitOID="MU.KG"/></ItemDef>
<ItemDef OID="IT.AETERM" Name="AETERM" DataType="text"><Description><TranslatedText>Term</TranslatedText></Description></ItemDef>
<ItemDef OID="IT.AESTDAT" Name="AESTDAT" DataType="date"><Description><TranslatedText>Start</TranslatedText></Description></ItemDef>
<CodeList OID="CL.SEX" Name="SEX" DataType="text"><CodeListItem CodedValue="M"><Decode><TranslatedText>Male</TranslatedText>
</Decode></CodeListItem><CodeListItem CodedValue="F"><Decode><TranslatedText>Female</TranslatedText></Decode></CodeListItem></CodeList>
</MetaDataVersion></Study>"""

DATA = """<ClinicalData StudyOID="S1" MetaDataVersionOID="MDV.1">
<SubjectData SubjectKey="007"><SiteRef LocationOID="101"/>
 <StudyEventData StudyEventOID="SCR"><FormData FormOID="dm"><ItemGroupData ItemGroupOID="IG.dm">
  <ItemData ItemOID="IT.SEX" Value="M"><AuditRecord><UserRef UserOID="U1"/><LocationRef LocationOID="101"/>
   <DateTimeStamp>2024-01-01T10:00:00</DateTimeStamp></AuditRecord></ItemData>
  <ItemData ItemOID="IT.BRTHDAT" Value="1960-03"/><ItemData ItemOID="IT.WEIGHT" IsNull="Yes"/>
 </ItemGroupData></FormData></StudyEventData>
 <StudyEventData StudyEventOID="AELOG"><FormData FormOID="ae" FormRepeatKey="1">
  <ItemGroupData ItemGroupOID="IG.ae" ItemGroupRepeatKey="1"><ItemData ItemOID="IT.AETERM" Value="Fever, &quot;high&quot;&#10;x"/>
   <ItemData ItemOID="IT.AESTDAT" Value="2024-03-12"/></ItemGroupData>
  <ItemGroupData ItemGroupOID="IG.ae" ItemGroupRepeatKey="2" TransactionType="Remove"><ItemData ItemOID="IT.AETERM" Value="Entered in error"/>
  </ItemGroupData>
  <ItemGroupData ItemGroupOID="IG.ae" ItemGroupRepeatKey="3"><ItemData ItemOID="IT.AETERM" Value="Rash"/>
   <ItemData ItemOID="IT.AESTDAT" Value="12 MAR 2024"/></ItemGroupData>
  <Signature><UserRef UserOID="U1"/><LocationRef LocationOID="101"/><SignatureRef SignatureOID="SIG"/>
   <DateTimeStamp>2024-01-01T10:00:00</DateTimeStamp></Signature>
 </FormData></StudyEventData>
</SubjectData>
<SubjectData SubjectKey="1002"><SiteRef LocationOID="102"/>
 <StudyEventData StudyEventOID="SCR"><FormData FormOID="dm"><ItemGroupData ItemGroupOID="IG.dm">
  <ItemData ItemOID="IT.SEX" Value="F"/><ItemData ItemOID="IT.BRTHDAT" Value="1971"/><ItemData ItemOID="IT.WEIGHT" Value="61.5"/>
 </ItemGroupData></FormData></StudyEventData>
</SubjectData>
</ClinicalData>"""


def _odm(tmp_path: Path, meta: str = META, data: str = DATA, prolog: str = "", name: str = "export.xml") -> Path:
    p = tmp_path / name
    p.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n{prolog}<ODM xmlns="{NS}" ODMVersion="1.3.2" FileType="Snapshot" '
                 f'FileOID="F1" CreationDateTime="2024-01-01T00:00:00">{meta}{data}</ODM>\n', encoding="utf-8")
    return p


def _problems(path: Path) -> list[str]:
    with pytest.raises(InputError) as exc:
        read_export(path)
    return [str(p) for p in exc.value.problems]


def test_forms_rows_values_and_dictionary(tmp_path):
    raw = read_export(_odm(tmp_path))
    dm, ae = raw.forms["dm"], raw.forms["ae"]
    assert list(dm.columns) == ["STUDYID", "SITEID", "SUBJID", "FOLDER", "FOLDERNAME", "FORMINST", "RECPOS", "SEX",
                                "BRTHDAT", "WEIGHT", "__row"]
    assert dm["SUBJID"].tolist() == ["007", "1002"]  # keys stay text, leading zeros kept
    assert dm["SITEID"].tolist() == ["101", "102"] and dm["STUDYID"].tolist() == ["S1", "S1"]
    assert dm["BRTHDAT"].tolist() == ["UN MAR 1960", "UN UNK 1971"]  # ISO partial dates -> raw text
    assert pd.isna(dm["WEIGHT"].iloc[0]) and dm["WEIGHT"].iloc[1] == "61.5"  # IsNull -> missing
    assert dm["FORMINST"].tolist() == ["1", "1"] and dm["RECPOS"].tolist() == ["0", "0"]
    # the removed log line is excluded, listed, and keeps its place in the row numbering
    assert ae["RECPOS"].tolist() == ["1", "3"] and ae["__row"].tolist() == [2, 4]
    assert ae["AETERM"].iloc[0] == 'Fever, "high"\nx'
    assert ae["AESTDAT"].tolist() == ["12 MAR 2024", "12 MAR 2024"]  # ISO converted, site text kept
    assert ae["FOLDER"].tolist() == ["AELOG", "AELOG"] and ae["FOLDERNAME"].iloc[0] == "Adverse events"
    assert raw.excluded[["form", "source_row", "usubjid"]].values.tolist() == [["ae", 3, "007"]]
    rules = [f.rule for f in raw.findings]
    assert rules.count("RAW.ODM.IGNORED") == 1 and "RAW.ODM.REMOVED" in rules
    assert "2 audit-trail" in next(f.message for f in raw.findings if f.rule == "RAW.ODM.IGNORED")
    dd = raw.dictionary.set_index(["form", "field"])
    assert dd.loc[("dm", "SEX"), "codes"] == "M=Male|F=Female" and dd.loc[("dm", "SEX"), "codelist"] == "SEX"
    assert dd.loc[("dm", "SEX"), "required"] == "Y" and dd.loc[("dm", "WEIGHT"), "unit"] == "kg"
    assert dd.loc[("dm", "BRTHDAT"), "label"] == "Birth date" and dd.loc[("dm", "BRTHDAT"), "type"] == "date"
    assert dd.loc[("ae", "RECPOS"), "type"] == "integer" and dd.loc[("ae", "AETERM"), "form_title"] == "Adverse events"


def test_folder_holding_one_odm_file(tmp_path):
    _odm(tmp_path)
    assert set(read_export(tmp_path).forms) == {"dm", "ae"}


@pytest.mark.parametrize("n", [3])
def test_synth_odm_and_sas_read_like_csv(tmp_path, n):
    generate(n, 7, tmp_path / "csv", "csv")
    generate(n, 7, tmp_path / "odm", "odm")
    generate(n, 7, tmp_path / "sas", "sas")
    csv = read_export(tmp_path / "csv")
    for kind in ("odm", "sas"):
        other = read_export(tmp_path / kind)
        assert list(other.forms) == list(csv.forms)
        for form, df in csv.forms.items():
            pd.testing.assert_frame_equal(other.forms[form], df, obj=f"{kind}:{form}")
        pd.testing.assert_frame_equal(other.dictionary.reset_index(drop=True), csv.dictionary.reset_index(drop=True))


def test_synth_odm_is_byte_identical_on_rerun(tmp_path):
    generate(2, 3, tmp_path / "a", "odm")
    generate(2, 3, tmp_path / "b", "odm")
    assert (tmp_path / "a" / "export.xml").read_bytes() == (tmp_path / "b" / "export.xml").read_bytes()


def test_not_well_formed_names_file_and_line(tmp_path):
    p = _odm(tmp_path)
    p.write_text(p.read_text()[:2500], encoding="utf-8")  # cut off in ClinicalData
    probs = _problems(p)
    assert len(probs) == 1 and "not well-formed XML" in probs[0] and str(p) in probs[0] and "line" in probs[0]
    assert "export it again" in probs[0]


def test_undeclared_oids_name_their_path(tmp_path):
    data = DATA.replace('ItemOID="IT.BRTHDAT" Value="1971"', 'ItemOID="IT.NOPE" Value="1971"')
    data = data.replace('StudyEventOID="AELOG"', 'StudyEventOID="AE_LOG"')
    probs = _problems(_odm(tmp_path, data=data))
    assert any("undeclared ItemOID" in p and "1002/SCR/dm/IG.dm/IT.NOPE" in p and "declare the ItemDef" in p for p in probs)
    assert any("undeclared StudyEventOID" in p and "007/AE_LOG/ae/IG.ae" in p for p in probs)
    data = DATA.replace('FormOID="dm"><ItemGroupData ItemGroupOID="IG.dm"', 'FormOID="dm"><ItemGroupData ItemGroupOID="IG.ae"', 1)
    probs = _problems(_odm(tmp_path, data=data))
    assert any("ItemGroupOID not declared for this form" in p and "007/SCR/dm/IG.ae" in p for p in probs)


@pytest.mark.parametrize("change, expect", [
    (lambda m: m.split("<MetaDataVersion")[0] + "</Study>", "no MetaDataVersion"),
    (lambda m: m.replace('Name="AETERM" ', ""), "ItemDef without Name"),
    (lambda m: m.replace('<CodeListRef CodeListOID="CL.SEX"/>', '<CodeListRef CodeListOID="CL.GENDER"/>'),
     "undeclared CodeList"),
    (lambda m: m.replace('<ItemRef ItemOID="IT.AESTDAT" Mandatory="Yes"/>', '<ItemRef ItemOID="IT.AESTDTC" Mandatory="Yes"/>'),
     "undeclared ItemDef"),
    (lambda m: re.sub("<FormDef .*?</FormDef>", "", m, flags=re.DOTALL), "declares no FormDef"),
])
def test_missing_required_metadata(tmp_path, change, expect):
    probs = _problems(_odm(tmp_path, meta=change(META)))
    assert any(expect in p and str(tmp_path) in p for p in probs), probs


BOMB = """<!DOCTYPE ODM [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
"""
EXTERNAL = '<!DOCTYPE ODM [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'


@pytest.mark.parametrize("prolog", [BOMB, EXTERNAL, '<!DOCTYPE ODM SYSTEM "http://example.invalid/odm.dtd">\n'])
def test_entities_and_dtds_are_refused(tmp_path, prolog):
    data = DATA.replace('Value="Rash"', 'Value="&d;"' if "ENTITY a" in prolog else 'Value="&x;"')
    probs = _problems(_odm(tmp_path, data=data, prolog=prolog))
    assert len(probs) == 1 and "DOCTYPE" in probs[0] and "refused" in probs[0]


def test_cli_exit_2_without_traceback(tmp_path, capsys):
    p = _odm(tmp_path, prolog=EXTERNAL)
    assert main(["sdtm", "--raw", str(p), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "DOCTYPE" in err and "Traceback" not in err


def test_mixed_and_ambiguous_folders_are_errors(tmp_path):
    _odm(tmp_path)
    (tmp_path / "dm.csv").write_text("SUBJID\n1\n")
    probs = _problems(tmp_path)
    assert "mixes export formats" in probs[0] and "dm.csv" in probs[0] and "export.xml" in probs[0]
    (tmp_path / "dm.csv").unlink()
    _odm(tmp_path, name="second.xml")
    assert "expected exactly one ODM export" in _problems(tmp_path)[0]
    other = tmp_path / "x"
    other.mkdir()
    (other / "notodm.xml").write_text("<root/>")
    assert "not a CDISC ODM" in _problems(other / "notodm.xml")[0]


def test_wrong_root_namespace(tmp_path):
    p = tmp_path / "e.xml"
    p.write_text('<ODM xmlns="http://www.cdisc.org/ns/odm/v1.2"><Study OID="x"/></ODM>')
    assert "not a CDISC ODM 1.3 file" in _problems(p)[0]


def test_prefixed_namespace_and_typed_item_data(tmp_path):
    """``odm:`` prefixed elements and ODM 1.3 typed ItemData (value as element text) read like plain ItemData."""
    meta = META.replace("<", "<odm:").replace("<odm:/", "</odm:")
    data = DATA.replace('<ItemData ItemOID="IT.SEX" Value="F"/>', '<ItemDataString ItemOID="IT.SEX">F</ItemDataString>')
    data = data.replace("<", "<odm:").replace("<odm:/", "</odm:")
    p = tmp_path / "prefixed.xml"
    p.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<odm:ODM xmlns:odm="{NS}" ODMVersion="1.3.2" FileType="Snapshot" '
                 f'FileOID="F1" CreationDateTime="2024-01-01T00:00:00">{meta}{data}</odm:ODM>\n', encoding="utf-8")
    raw = read_export(p)
    (tmp_path / "plain").mkdir()
    plain = read_export(_odm(tmp_path / "plain"))
    for form in ("dm", "ae"):
        pd.testing.assert_frame_equal(raw.forms[form], plain.forms[form])
    assert raw.forms["dm"]["SEX"].tolist() == ["M", "F"]


def test_export_date_is_as_of_else_creation_date_time(tmp_path):
    """The export's own date (the data cut-off's default, cdisc_pipe.cutoff): AsOfDateTime, else
    CreationDateTime; CSV exports have none."""
    assert read_export(_odm(tmp_path)).export_date == "2024-01-01T00:00:00"
    p = _odm(tmp_path, name="asof.xml")
    p.write_text(p.read_text(encoding="utf-8").replace('CreationDateTime="2024-01-01T00:00:00"',
                 'CreationDateTime="2024-01-01T00:00:00" AsOfDateTime="2023-12-15T18:00:00"'), encoding="utf-8")
    assert read_export(p).export_date == "2023-12-15T18:00:00"


# ------------------------------------------------------------------------------------------------
# StudyEventRepeatKey: read and checked, not a column (docs/RAW.md, "ODM-XML")
REPEATED = """<ClinicalData StudyOID="S1" MetaDataVersionOID="MDV.1">
<SubjectData SubjectKey="007"><SiteRef LocationOID="101"/>
 <StudyEventData StudyEventOID="AELOG" StudyEventRepeatKey="1"><FormData FormOID="ae">
  <ItemGroupData ItemGroupOID="IG.ae" ItemGroupRepeatKey="1"><ItemData ItemOID="IT.AETERM" Value="Fever"/></ItemGroupData>
 </FormData></StudyEventData>
 <StudyEventData StudyEventOID="AELOG" StudyEventRepeatKey="2"><FormData FormOID="ae">
  <ItemGroupData ItemGroupOID="IG.ae" ItemGroupRepeatKey="1"><ItemData ItemOID="IT.AETERM" Value="Fever"/></ItemGroupData>
 </FormData></StudyEventData>
 <StudyEventData StudyEventOID="SCR"><FormData FormOID="dm"><ItemGroupData ItemGroupOID="IG.dm">
  <ItemData ItemOID="IT.SEX" Value="M"/></ItemGroupData></FormData></StudyEventData>
</SubjectData>
</ClinicalData>"""


def test_study_event_repeats_are_both_read(tmp_path, monkeypatch):
    """Two repeats of one StudyEvent holding the same form instance and log line: both records are
    read, in document order, and (without a repeat-key column) differ only in ``__row``."""
    raw = read_export(_odm(tmp_path, data=REPEATED))
    ae = raw.forms["ae"]
    assert ae["__row"].tolist() == [2, 3] and ae["FOLDER"].tolist() == ["AELOG", "AELOG"]
    assert ae["FORMINST"].tolist() == ["1", "1"] and ae["RECPOS"].tolist() == ["1", "1"]
    assert ae.drop(columns="__row").duplicated().tolist() == [False, True]
    assert list(raw.dictionary["field"][:7]) == [c for c, *_ in odm.STRUCTURAL]
    probs = _problems(_odm(tmp_path, data=REPEATED.replace('StudyEventRepeatKey="2"', 'StudyEventRepeatKey="2&#9;"')))
    assert len(probs) == 1 and "column StudyEventRepeatKey" in probs[0] and "tab or line break" in probs[0]
    with monkeypatch.context() as m:
        _tree_only(m)
        _same(raw, read_export(_odm(tmp_path, data=REPEATED)))


# ------------------------------------------------------------------------------------------------
# fast path (bytes as written, one or two processes) and tree path (lxml first) give the same result
def _tree_only(monkeypatch):
    monkeypatch.setattr(odm, "_read_raw", lambda *a, **k: None)


def _same(a, b) -> None:
    assert list(a.forms) == list(b.forms)
    for form in a.forms:
        pd.testing.assert_frame_equal(a.forms[form], b.forms[form], obj=form)
    pd.testing.assert_frame_equal(a.dictionary, b.dictionary)
    pd.testing.assert_frame_equal(a.excluded, b.excluded)
    assert [(f.rule, f.message, f.source_row) for f in a.findings] == [(f.rule, f.message, f.source_row) for f in b.findings]


ITEM_SEX_F = '<ItemData ItemOID="IT.SEX" Value="F"/>'
# (name, replacements in DATA, fast path expected?, SEX of subject 1002, AETERM of 007's line 3)
VARIANTS = [
    ("plain", [], True, "F", "Rash"),
    ("entities", [('Value="Rash"', 'Value="a&amp;b &lt;c&gt; &#233;&#xE9; &apos;q&apos; &quot;x&quot; t&#9;x c&#13;y"')], True,
     "F", "a&b <c> éé 'q' \"x\" t\tx c\ry"),
    ("non-ASCII", [('Value="Rash"', 'Value="Érythème 发热 😀"')], True, "F", "Érythème 发热 😀"),
    ("literal tab/CR/LF in a value (attribute-value normalisation)", [('Value="Rash"', 'Value="a\r\nb\tc\nd\re"')], True,
     "F", "a b c d e"),
    ("typed ItemData", [(ITEM_SEX_F, '<ItemDataString ItemOID="IT.SEX">F</ItemDataString>')], True, "F", "Rash"),
    ("typed ItemData with quotes and a line break", [(ITEM_SEX_F, '<ItemDataString ItemOID="IT.SEX">"F"\r\nx\'s</ItemDataString>')],
     True, '"F"\nx\'s', "Rash"),
    ("typed ItemData empty", [(ITEM_SEX_F, '<ItemDataString ItemOID="IT.SEX"/>')], True, None, "Rash"),
    ("typed ItemData IsNull", [(ITEM_SEX_F, '<ItemDataString ItemOID="IT.SEX" IsNull="Yes">F</ItemDataString>')], True, None, "Rash"),
    ("typed ItemData holding an element (not ODM): its own text", [
        (ITEM_SEX_F, '<ItemDataString ItemOID="IT.SEX">F<AuditRecord><ReasonForChange>r</ReasonForChange></AuditRecord>x</ItemDataString>')],
     True, "Fx", "Rash"),
    ("ItemData without Value", [(ITEM_SEX_F, '<ItemData ItemOID="IT.SEX"/>')], True, None, "Rash"),
    ("empty Value", [(ITEM_SEX_F, '<ItemData ItemOID="IT.SEX" Value=""/>')], True, None, "Rash"),
    ("item removed", [(ITEM_SEX_F, '<ItemData ItemOID="IT.SEX" Value="F" TransactionType="Remove"/>')], True, None, "Rash"),
    ("duplicate item: the last wins", [(ITEM_SEX_F, ITEM_SEX_F + '<ItemData ItemOID="IT.SEX" Value="G"/>')], True, "G", "Rash"),
    ("audit elements at every level", [
        ('<SiteRef LocationOID="102"/>', '<SiteRef LocationOID="102"/><Annotation SeqNum="1"/>'),
        (ITEM_SEX_F, ('<ItemData ItemOID="IT.SEX" Value="F"><Annotation SeqNum="2"><Comment>c</Comment></Annotation>'
                      '</ItemData><AuditRecord><UserRef UserOID="U"/></AuditRecord>'))], True, "F", "Rash"),
    ("vendor namespace elements and attributes", [
        (ITEM_SEX_F, ('<ItemData ItemOID="IT.SEX" Value="F" v:Value="X" xml:lang="en"/><v:ItemData ItemOID="IT.SEX" Value="Z"/>'
                      '<v:Extra><ItemData ItemOID="IT.SEX" Value="Q"/></v:Extra>'))], True, "F", "Rash"),
    ("CRLF line ends", [("\n", "\r\n")], True, "F", "Rash"),
    ("a comment", [('<SubjectData SubjectKey="1002">', '<!-- c --><SubjectData SubjectKey="1002"><!-- <x> -->')], False, "F", "Rash"),
    ("a processing instruction", [('<SubjectData SubjectKey="1002">', '<?pi x?><SubjectData SubjectKey="1002">')], False, "F", "Rash"),
    ("CDATA", [(ITEM_SEX_F, '<ItemDataString ItemOID="IT.SEX"><![CDATA[F<&>]]></ItemDataString>')], False, "F<&>", "Rash"),
    ("single quotes", [('ItemOID="IT.AETERM" Value="Rash"', "ItemOID='IT.AETERM' Value='Ra\"sh'")], False, "F", 'Ra"sh'),
    ("attributes on several lines", [(ITEM_SEX_F, '<ItemData\n  ItemOID="IT.SEX"\n  Value="F"/>')], False, "F", "Rash"),
    ("spaces around =", [(ITEM_SEX_F, '<ItemData ItemOID = "IT.SEX"  Value= "F" />')], False, "F", "Rash"),
    ("> in a value", [('Value="Rash"', 'Value="a>b"')], False, "F", "a>b"),
    ("namespace declared inside ClinicalData", [('<FormData FormOID="dm">', '<FormData FormOID="dm" xmlns:v="urn:v">')],
     False, "F", "Rash"),
    ("ODM namespace under a second prefix inside", [
        ('<ItemGroupData ItemGroupOID="IG.dm">\n  <ItemData ItemOID="IT.SEX" Value="F"/>',
         f'<q:ItemGroupData xmlns:q="{NS}" ItemGroupOID="IG.dm">\n  <q:ItemData ItemOID="IT.SEX" Value="F"/>'),
        ('Value="61.5"/>\n </ItemGroupData>', 'Value="61.5"/>\n </q:ItemGroupData>')], False, "F", "Rash"),
    ("a second ClinicalData", [("</ClinicalData>", '</ClinicalData><ClinicalData StudyOID="S1" MetaDataVersionOID="MDV.1"/>')],
     False, "F", "Rash"),
]


@pytest.mark.parametrize("name, changes, fast, sex, term", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_fast_and_tree_paths_agree(tmp_path, monkeypatch, name, changes, fast, sex, term):
    data = DATA
    for old, new in changes:
        assert old in data, old
        data = data.replace(old, new)
    root = f'xmlns="{NS}" xmlns:v="urn:vendor"' if "v:" in data else f'xmlns="{NS}"'
    p = tmp_path / "export.xml"
    p.write_bytes((f'<?xml version="1.0" encoding="UTF-8"?>\n<ODM {root} ODMVersion="1.3.2">{META}{data}</ODM>\n').encode())
    assert (odm._read_raw(p, 1) is not None) == fast
    raw = read_export(p)
    got = raw.forms["dm"]["SEX"].iloc[1]
    assert pd.isna(got) if sex is None else got == sex
    assert raw.forms["ae"]["AETERM"].tolist()[-1] == term
    with monkeypatch.context() as m:
        _tree_only(m)
        _same(raw, read_export(p))


def test_audit_elements_counted_where_the_tree_path_counts_them(tmp_path, monkeypatch):
    """Children of SubjectData, StudyEventData, FormData and ItemGroupData, and grandchildren of
    ItemGroupData (inside an item); not deeper, not outside the ODM hierarchy."""
    data = DATA.replace('<SiteRef LocationOID="102"/>', '<SiteRef LocationOID="102"/><Annotation SeqNum="1"/>'
                        '<StudyEventData StudyEventOID="SCR"><Signature/></StudyEventData>')
    data = data.replace(ITEM_SEX_F, '<ItemData ItemOID="IT.SEX" Value="F"><Annotation SeqNum="2"><Flag><FlagValue>x</FlagValue>'
                        '</Flag></Annotation></ItemData><AuditRecord/>')
    data = data.replace("</ClinicalData>", "<Annotation/></ClinicalData>")  # ClinicalData's own: not counted
    raw = read_export(_odm(tmp_path, data=data))
    assert "6 audit-trail" in next(f.message for f in raw.findings if f.rule == "RAW.ODM.IGNORED")
    with monkeypatch.context() as m:
        _tree_only(m)
        _same(raw, read_export(_odm(tmp_path, data=data)))


def test_prefixed_and_two_prefixes_agree(tmp_path, monkeypatch):
    """One ``odm:`` prefix is read as written; ODM under two prefixes goes through the tree path."""
    meta = META.replace("<", "<odm:").replace("<odm:/", "</odm:")
    data = DATA.replace("<", "<odm:").replace("<odm:/", "</odm:")
    one = tmp_path / "one.xml"
    one.write_text(f'<odm:ODM xmlns:odm="{NS}" ODMVersion="1.3.2">{meta}{data}</odm:ODM>', encoding="utf-8")
    two = tmp_path / "two.xml"
    mixed = DATA.replace("<ItemGroupData ItemGroupOID", "<odm:ItemGroupData ItemGroupOID").replace("</ItemGroupData>", "</odm:ItemGroupData>")
    two.write_text(f'<ODM xmlns="{NS}" xmlns:odm="{NS}" ODMVersion="1.3.2">{META}{mixed}</ODM>', encoding="utf-8")
    assert odm._read_raw(one, 1) is not None and odm._read_raw(two, 1) is None
    (tmp_path / "plain").mkdir()
    plain = read_export(_odm(tmp_path / "plain"))
    _same(read_export(one), plain)
    _same(read_export(two), plain)
    with monkeypatch.context() as m:
        _tree_only(m)
        _same(read_export(one), plain)


def test_two_processes_and_small_windows_agree(tmp_path, monkeypatch):
    """Windows cut at SubjectData, in one process or two (forked or spawned), give one result, and a
    failing second process falls back to this one."""
    generate(4, 5, tmp_path / "odm", "odm")
    p = tmp_path / "odm" / "export.xml"
    whole = read_export(p)
    monkeypatch.setattr(odm, "_WINDOW", 2000)  # many windows, each a few subjects' worth
    head = odm._head(p)
    assert head is not None and len(odm._read_raw(p, 1)[2]) > 3
    _same(odm.read_odm(p, processes=1), whole)
    _same(odm.read_odm(p, processes=2), whole)
    _same(odm.read_odm(p, processes=2), odm.read_odm(p, processes=2))  # deterministic

    with monkeypatch.context() as m:  # a second process that imports the module instead of forking
        m.setattr(odm, "_context", lambda: __import__("multiprocessing").get_context("spawn"))
        _same(odm.read_odm(p, processes=2), whole)

    for error in (OSError("no process for you"), AssertionError("daemonic processes are not allowed to have children")):
        def broken(*a, error=error, **k):
            raise error

        monkeypatch.setattr(odm, "ProcessPoolExecutor", broken)
        _same(odm.read_odm(p, processes=2), whole)


def test_error_in_the_second_half_names_its_line(tmp_path, monkeypatch):
    """A parse error found by the second process: the file is read again by the tree path, whose
    message names the real line and the last SubjectKey read."""
    generate(4, 5, tmp_path / "odm", "odm")
    p = tmp_path / "odm" / "export.xml"
    text = p.read_text(encoding="utf-8")
    at = text.rindex("<ItemData ")
    p.write_text(text[:at] + "<ItemData <" + text[at + 10:], encoding="utf-8")
    line = text[:at].count("\n") + 1
    monkeypatch.setattr(odm, "_WINDOW", 2000)
    with pytest.raises(InputError) as exc:
        odm.read_odm(p, processes=2)
    (prob,) = exc.value.problems
    assert "not well-formed XML" in str(prob) and prob.entry == f"line {line}" and "SubjectKey" in prob.message


def test_undeclared_prefix_is_not_well_formed(tmp_path):
    """libxml2's namespace errors are errors on the fast path too (its check reads the error log)."""
    probs = _problems(_odm(tmp_path, data=DATA.replace(ITEM_SEX_F, ITEM_SEX_F + "<v:Foo/>")))
    assert len(probs) == 1 and "not well-formed XML" in probs[0] and "Namespace prefix v" in probs[0]


def test_key_with_a_tab_names_path_and_column(tmp_path):
    probs = _problems(_odm(tmp_path, data=DATA.replace('SubjectKey="1002"', 'SubjectKey="10&#9;02"')))
    assert len(probs) == 1 and "tab or line break" in probs[0] and "10\\t02/SCR/dm/IG.dm" in probs[0]
    assert "column SubjectKey" in probs[0]
    probs = _problems(_odm(tmp_path, data=DATA.replace('ItemOID="IT.WEIGHT" Value="61.5"', 'ItemOID="IT.WEIGHT&#10;" Value="61.5"')))
    assert len(probs) == 1 and "1002/SCR/dm/IG.dm/IT.WEIGHT\\n" in probs[0] and "column ItemOID" in probs[0]


def test_more_than_ten_undeclared_items_are_counted(tmp_path):
    many = DATA.replace(ITEM_SEX_F, "".join(f'<ItemData ItemOID="IT.X{i}" Value="{i}"/>' for i in range(14)))
    probs = _problems(_odm(tmp_path, data=many))
    assert sum("undeclared ItemOID" in p for p in probs) == 11 and "4 more: undeclared ItemOID" in probs[-1]


@pytest.mark.parametrize("data", ['<ClinicalData StudyOID="S1" MetaDataVersionOID="MDV.1"/>', ""])
def test_no_clinical_data_gives_empty_forms(tmp_path, data):
    raw = read_export(_odm(tmp_path, data=data))
    assert list(raw.forms) == ["dm", "ae"] and all(len(f) == 0 for f in raw.forms.values())
    assert list(raw.forms["ae"].columns)[:7] == [c for c, *_ in odm.STRUCTURAL] and raw.findings == []


def test_iso_dates_on_distinct_values_match_the_regex_rules():
    """The numpy rewrite of ISO dates equals the regex one, non-ASCII digits and final line feeds included."""
    rng = np.random.default_rng(3)
    alphabet = list("0123456789-T: ٣\n")
    base = "2024-03-12T10:11:12xxxx"
    values = ["2024", "2024-03", "2024-03-12", "2024-13", "2024-00-01", "2024-02-31", "12 MAR 2024", "٢٠٢٤", "2024\n",
              "2024-03-12T10:11", "2024-03-12T10:11:12", "2024-03-12T10:11:12\n", "٢٠٢٤-03-12T10:11", ""]
    for _ in range(20000):
        n = int(rng.choice([4, 5, 7, 8, 10, 11, 16, 17, 19, 20]))
        values.append("".join(str(rng.choice(alphabet)) if rng.random() < 0.15 else base[i] for i in range(n)))
    values = np.array(list(dict.fromkeys(values)), dtype=object)
    for kind in ("date", "datetime"):
        expected = odm._iso_to_raw(pd.Series(values, dtype="str"), kind).to_numpy(dtype=object)
        assert odm._iso_to_raw_distinct(values, kind).tolist() == expected.tolist(), kind
    assert re.fullmatch(r"\d\d [A-Z]{3} \d{4}", odm._iso_to_raw_distinct(np.array(["2024-03-12"], dtype=object), "date")[0])


@pytest.mark.parametrize("multiplier", [None, 0])
def test_value_codes_are_exact(monkeypatch, multiplier):
    """Equal codes exactly for equal byte spans, also when every fingerprint collides (multiplier 0:
    the fingerprint is then the last 8 bytes, and the exact word-by-word factorization takes over)."""
    if multiplier is not None:
        monkeypatch.setattr(odm, "_FP", np.uint64(multiplier))
    rng = np.random.default_rng(11)
    pool = ["", "a", "ab", "abcdefgh", "abcdefghi", "xbcdefghi", "Xabcdefgh", "abcdefghabcdefgh", "12345678abcdefgh", "é😀x"]
    texts = [pool[i] for i in rng.integers(0, len(pool), 400)]
    data, starts, ends = b"", [], []
    for t in texts:
        raw = t.encode()
        starts.append(len(data) + 1)
        data += b'"' + raw + b'"'
        ends.append(len(data) - 1)
    col = odm._Buf(data).col(np.array(starts), np.array(ends), np.arange(len(texts)), len(texts), True)
    assert [col.uniques[c] for c in col.codes] == texts
    assert len(col.uniques) == len(set(texts))
