"""The ODM-XML 1.3.2 reader: same RawExport as CSV, ODM rules (repeat keys, IsNull, Remove, audit), bad input, security."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cdisc_pipe.cli import main
from cdisc_pipe.errors import InputError
from cdisc_pipe.raw import read_export
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
