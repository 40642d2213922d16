"""Reading a CDISC ODM-XML 1.3.2 export as a :class:`~cdisc_pipe.raw.RawExport` (rules: docs/RAW.md, "ODM-XML").

Streaming: ``lxml.etree.iterparse`` hands over one finished ``SubjectData`` at a time; an XSLT (in C)
flattens it into tab-separated lines (one per ItemGroupData record, one per ItemData), the element
is cleared, and the lines are parsed once at the end by pandas.  No Python code runs per item.

Security: a DOCTYPE (and so any entity declaration, internal or external) is refused before
parsing; the parser itself runs with ``resolve_entities=False``, ``no_network=True``,
``load_dtd=False`` and ``huge_tree=False``.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
from lxml import etree

from cdisc_pipe.errors import Finding, InputError, Problem

NS = "http://www.cdisc.org/ns/odm/v1.3"
_O = f"{{{NS}}}"
_MAX_LISTED = 10
ROW = "__row"
#: columns every form gets from the ODM structure (not from ItemData), with their dictionary rows
STRUCTURAL = (
    ("STUDYID", "Study identifier", "text", "ClinicalData/@StudyOID"),
    ("SITEID", "Site number", "text", "SubjectData/SiteRef/@LocationOID"),
    ("SUBJID", "Subject number", "text", "SubjectData/@SubjectKey"),
    ("FOLDER", "Folder (visit) OID", "text", "StudyEventData/@StudyEventOID"),
    ("FOLDERNAME", "Folder (visit) name", "text", "StudyEventDef/@Name"),
    ("FORMINST", "Form instance within the folder", "integer", "FormData/@FormRepeatKey (default 1)"),
    ("RECPOS", "Record position (0 = single-record form, 1..n = log line)", "integer",
     "ItemGroupData/@ItemGroupRepeatKey (default 0)"),
)
_TYPES = {"text": "text", "string": "text", "integer": "integer", "float": "float", "double": "float",
          "hexFloat": "float", "date": "date", "partialDate": "date", "time": "time", "partialTime": "time",
          "datetime": "datetime", "partialDatetime": "datetime", "incompleteDatetime": "datetime",
          "incompleteDate": "date", "incompleteTime": "time", "durationDatetime": "text", "intervalDatetime": "text",
          "boolean": "text", "hexBinary": "text", "base64Binary": "text", "base64Float": "float", "URI": "text"}
_MONTHS = np.array(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], dtype=object)
_ESC_FROM, _ESC_TO = "\t\n\r", "\ue000\ue001\ue002"
_SEP = "\ue003"  # joins the keys of a record on its line (a private-use character)
_AUDIT = "o:AuditRecord|o:Signature|o:Annotation"
_ESCAPED = "translate(@Value, '&#9;&#10;&#13;', '&#xE000;&#xE001;&#xE002;')"
# One finished SubjectData -> lines "R<TAB>keys<TAB>n ignored", "I<TAB>ItemOID<TAB>V|N<TAB>value", "N<TAB>n ignored".
# Child axes only (no '//' and no sorted unions over the subtree): libxslt then visits each node once.
# Tab/LF/CR are escaped in values only; a key holding one breaks the line layout and is reported.
_FLAT = etree.XSLT(etree.XML(f"""<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:o="{NS}">
  <xsl:output method="text" encoding="UTF-8"/>
  <xsl:template match="/">
    <xsl:for-each select="o:SubjectData">
      <xsl:variable name="sk" select="concat(@SubjectKey, '&#xE003;', o:SiteRef/@LocationOID, '&#xE003;', @TransactionType)"/>
      <xsl:text>N&#9;</xsl:text>
      <xsl:value-of select="count({_AUDIT}|o:StudyEventData/o:AuditRecord|o:StudyEventData/o:Signature|o:StudyEventData/o:Annotation|o:StudyEventData/o:FormData/o:AuditRecord|o:StudyEventData/o:FormData/o:Signature|o:StudyEventData/o:FormData/o:Annotation)"/>
      <xsl:text>&#10;</xsl:text>
      <xsl:for-each select="o:StudyEventData">
        <xsl:variable name="ek" select="concat($sk, '&#xE003;', @StudyEventOID, '&#xE003;', @StudyEventRepeatKey, '&#xE003;', @TransactionType)"/>
        <xsl:for-each select="o:FormData">
          <xsl:variable name="fk" select="concat($ek, '&#xE003;', @FormOID, '&#xE003;', @FormRepeatKey, '&#xE003;', @TransactionType)"/>
          <xsl:for-each select="o:ItemGroupData">
            <xsl:text>R&#9;</xsl:text><xsl:value-of select="$fk"/><xsl:text>&#xE003;</xsl:text><xsl:value-of select="@ItemGroupOID"/>
            <xsl:text>&#xE003;</xsl:text><xsl:value-of select="@ItemGroupRepeatKey"/><xsl:text>&#xE003;</xsl:text>
            <xsl:value-of select="@TransactionType"/><xsl:text>&#9;</xsl:text>
            <xsl:value-of select="count({_AUDIT}|*/o:AuditRecord|*/o:Signature|*/o:Annotation)"/><xsl:text>&#10;</xsl:text>
            <xsl:for-each select="*[starts-with(local-name(), 'ItemData')]">
              <xsl:text>I&#9;</xsl:text><xsl:value-of select="@ItemOID"/><xsl:text>&#9;</xsl:text>
              <xsl:choose>
                <xsl:when test="@TransactionType = 'Remove' or @IsNull = 'Yes'">N&#9;</xsl:when>
                <xsl:when test="@Value">
                  <xsl:text>V&#9;</xsl:text>
                  <xsl:choose>
                    <xsl:when test="contains(@Value, '&#9;') or contains(@Value, '&#10;') or contains(@Value, '&#13;')"><xsl:value-of select="{_ESCAPED}"/></xsl:when>
                    <xsl:otherwise><xsl:value-of select="@Value"/></xsl:otherwise>
                  </xsl:choose>
                </xsl:when>
                <xsl:otherwise>V&#9;<xsl:value-of select="translate(., '&#9;&#10;&#13;', '&#xE000;&#xE001;&#xE002;')"/></xsl:otherwise>
              </xsl:choose>
              <xsl:text>&#10;</xsl:text>
            </xsl:for-each>
          </xsl:for-each>
        </xsl:for-each>
      </xsl:for-each>
    </xsl:for-each>
  </xsl:template>
</xsl:stylesheet>"""))
_KEYS = ["subject", "site", "s_tt", "event", "event_rk", "e_tt", "form", "form_rk", "f_tt", "group", "group_rk", "g_tt"]


def looks_like_odm(path: Path) -> bool:
    """True if the file's first bytes hold an ``<ODM`` root (namespace checked when parsing)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return b"<ODM" in head or b":ODM" in head


def _refuse_dtd(path: Path, problems: list[Problem]) -> bool:
    """A DOCTYPE (internal subset, entity declarations, external DTD) is refused before parsing."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    start = re.search(rb"<[A-Za-z_]", head)
    prolog = head[:start.start()] if start else head
    if b"<!DOCTYPE" in prolog or b"<!ENTITY" in prolog:
        problems.append(Problem(str(path), "the ODM file declares a DOCTYPE / entities, which are refused (entity expansion "
                                "and external entities are a security risk, and ODM does not use them)", entry="prolog",
                                hint="export the ODM file again without a DOCTYPE; ODM 1.3.2 files need none"))
        return False
    return True


def _text(el, path: str) -> str | None:
    found = el.find(path)
    return None if found is None else (found.text or "")


class _Meta:
    """The MetaDataVersion: forms, item groups, items, code lists, units, study events."""

    def __init__(self, mdv, file: str, problems: list[Problem]):
        self.oid = mdv.get("OID")
        units = {}
        study = mdv.getparent()
        if study is not None:
            for mu in study.iter(f"{_O}MeasurementUnit"):
                units[mu.get("OID")] = mu.get("Name") or _text(mu, f"{_O}Symbol/{_O}TranslatedText") or ""
        self.codelists: dict[str, tuple[str, str]] = {}
        for cl in mdv.iter(f"{_O}CodeList"):
            items = [(i.get("CodedValue"), _text(i, f"{_O}Decode/{_O}TranslatedText") or i.get("CodedValue"))
                     for i in cl.iter(f"{_O}CodeListItem")]
            items += [(i.get("CodedValue"), i.get("CodedValue")) for i in cl.iter(f"{_O}EnumeratedItem")]
            self.codelists[cl.get("OID")] = (cl.get("Name") or cl.get("OID"), "|".join(f"{c}={d}" for c, d in items))
        self.events = {e.get("OID"): e.get("Name") for e in mdv.iter(f"{_O}StudyEventDef")}
        self.items: dict[str, dict] = {}
        where = f"{file} MetaDataVersion {self.oid}"
        for it in mdv.iter(f"{_O}ItemDef"):
            oid, name, dtype = it.get("OID"), it.get("Name"), it.get("DataType")
            if not name or not dtype:
                problems.append(Problem(where, f"ItemDef without {'Name' if not name else 'DataType'}", entry=f"ItemDef {oid}",
                                        hint="every ItemDef needs a Name (the raw column) and a DataType"))
                continue
            cl = it.find(f"{_O}CodeListRef")
            cl_oid = cl.get("CodeListOID") if cl is not None else None
            if cl_oid is not None and cl_oid not in self.codelists:
                problems.append(Problem(where, "CodeListRef names an undeclared CodeList", entry=f"ItemDef {oid}",
                                        value=cl_oid, hint="add the CodeList to the MetaDataVersion or fix the OID"))
            mu = it.find(f"{_O}MeasurementUnitRef")
            mu_oid = mu.get("MeasurementUnitOID") if mu is not None else None
            if mu_oid is not None and mu_oid not in units:
                problems.append(Problem(where, "MeasurementUnitRef names an undeclared MeasurementUnit", entry=f"ItemDef {oid}",
                                        value=mu_oid, hint="declare it under BasicDefinitions or fix the OID"))
            notes = [a.get("Name") for a in it.iter(f"{_O}Alias") if a.get("Context") == "note"]
            self.items[oid] = {
                "name": name, "odm_type": dtype, "type": _TYPES.get(dtype, "text"),
                "label": _text(it, f"{_O}Description/{_O}TranslatedText") or _text(it, f"{_O}Question/{_O}TranslatedText") or name,
                "codelist": self.codelists[cl_oid][0] if cl_oid in self.codelists else "",
                "codes": self.codelists[cl_oid][1] if cl_oid in self.codelists else "",
                "unit": units.get(mu_oid, "") if mu_oid else "", "note": notes[0] if notes else ""}
        self.groups: dict[str, list[tuple[str, str]]] = {}
        for ig in mdv.iter(f"{_O}ItemGroupDef"):
            refs = sorted(enumerate(ig.iter(f"{_O}ItemRef")), key=lambda r: (int(r[1].get("OrderNumber") or 0), r[0]))
            out = []
            for _, r in refs:
                if r.get("ItemOID") not in self.items:
                    problems.append(Problem(where, "ItemRef names an undeclared ItemDef", entry=f"ItemGroupDef {ig.get('OID')}",
                                            value=r.get("ItemOID"), hint="declare the ItemDef or fix the OID"))
                    continue
                out.append((r.get("ItemOID"), "Y" if r.get("Mandatory") == "Yes" else "N"))
            self.groups[ig.get("OID")] = out
        self.forms: dict[str, dict] = {}
        for fd in mdv.iter(f"{_O}FormDef"):
            oid = fd.get("OID")
            if not fd.get("Name"):
                problems.append(Problem(where, "FormDef without Name", entry=f"FormDef {oid}",
                                        hint="every FormDef needs a Name (the form title)"))
            igs = []
            for r in fd.iter(f"{_O}ItemGroupRef"):
                if r.get("ItemGroupOID") not in self.groups:
                    problems.append(Problem(where, "ItemGroupRef names an undeclared ItemGroupDef", entry=f"FormDef {oid}",
                                            value=r.get("ItemGroupOID"), hint="declare the ItemGroupDef or fix the OID"))
                    continue
                igs.append(r.get("ItemGroupOID"))
            self.forms[oid] = {"title": fd.get("Name") or oid, "groups": igs}
        if not self.forms:
            problems.append(Problem(where, "the MetaDataVersion declares no FormDef", entry="MetaDataVersion",
                                    hint="export the ODM file with its metadata (FormDef/ItemGroupDef/ItemDef)"))

    def columns(self, form: str) -> list[tuple[str, str, str]]:
        """(item OID, column name, required) of a form, in ItemGroupRef/ItemRef order, first occurrence kept."""
        seen, out = set(), []
        for ig in self.forms[form]["groups"]:
            for oid, req in self.groups[ig]:
                name = self.items[oid]["name"]
                if name not in seen:
                    seen.add(name)
                    out.append((oid, name, req))
        return out


def _iso_to_raw(values: pd.Series, kind: str) -> pd.Series:
    """ISO 8601 ODM values -> the raw text of the CSV layout; anything else is kept as written."""
    if kind == "date":
        m = values.str.extract(r"^(\d{4})(?:-(\d\d)(?:-(\d\d))?)?$")
        ok = m[0].notna()
        if not ok.any():
            return values
        mon = pd.to_numeric(m[1], errors="coerce")
        good_mon = mon.between(1, 12) | mon.isna()
        ok &= good_mon
        mname = pd.Series(_MONTHS[(mon.fillna(1).astype(int) - 1).clip(0, 11).to_numpy()], index=values.index)
        mname = mname.where(mon.notna(), "UNK")
        day = m[2].where(m[2].notna(), "UN")
        out = day + " " + mname + " " + m[0]
        return values.where(~ok, out)
    if kind == "datetime":
        full = values.str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?$")
        return values.where(~full.fillna(False).astype(bool), values.str.replace("T", " ", n=1, regex=False))
    return values


def _flatten(path: Path, problems: list[Problem]) -> tuple[_Meta | None, dict, list[str], int] | None:
    meta: _Meta | None = None
    chunks: list[str] = []
    clinical: dict = {}
    ignored = 0
    last = "the start of the file"
    try:
        ctx = etree.iterparse(str(path), events=("end",), tag=(f"{_O}MetaDataVersion", f"{_O}SubjectData"),
                              resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                              remove_comments=True, remove_pis=True)
        for _, el in ctx:
            if el.tag == f"{_O}MetaDataVersion":
                if meta is None:
                    meta = _Meta(el, str(path), problems)
                    study = el.getparent()
                    clinical["study_oid"] = study.get("OID") if study is not None else None
                el.clear()
                continue
            cd = el.getparent()
            if not clinical.get("seen"):
                clinical.update(seen=True, StudyOID=cd.get("StudyOID"), MetaDataVersionOID=cd.get("MetaDataVersionOID"))
            last = f"SubjectKey {el.get('SubjectKey')}"
            text = str(_FLAT(el))
            chunks.append(text)
            el.clear()
            while el.getprevious() is not None:
                del cd[0]
        root = ctx.root
    except etree.XMLSyntaxError as exc:
        line = getattr(exc, "lineno", None) or (exc.position[0] if getattr(exc, "position", None) else None)
        problems.append(Problem(str(path), f"not well-formed XML: {exc.msg if hasattr(exc, 'msg') else exc} (after {last})",
                                entry=f"line {line}" if line else None,
                                hint="the file is damaged or cut off: export it again from the EDC"))
        return None
    if root is None or root.tag != f"{_O}ODM":
        problems.append(Problem(str(path), "not a CDISC ODM 1.3 file (the root element is not ODM in the namespace "
                                f"{NS})", entry="root", value=None if root is None else str(root.tag),
                                hint="give an ODM-XML 1.3.2 export"))
        return None
    if meta is None:
        problems.append(Problem(str(path), "no MetaDataVersion: the metadata describing forms, item groups and items is "
                                "missing", entry="Study/MetaDataVersion",
                                hint="export the ODM file with its metadata (Study/MetaDataVersion), not ClinicalData alone"))
        return None
    clinical["export_date"] = root.get("AsOfDateTime") or root.get("CreationDateTime")
    return meta, clinical, chunks, ignored


def _parse_lines(chunks: list[str], file: str, problems: list[Problem]) -> tuple[pd.DataFrame, pd.DataFrame, int] | None:
    """The flattened lines -> (records with their keys, items (rec, oid, code, value), number of ignored elements)."""
    text = "".join(chunks)
    del chunks[:]
    try:
        lines = pd.read_csv(io.StringIO(text), sep="\t", header=None, names=["kind", "a", "b", "c"], dtype=str,
                            keep_default_na=False, na_filter=False, quoting=3, engine="c")
    except (pd.errors.ParserError, ValueError) as exc:
        problems.append(Problem(file, f"an OID, key or repeat key holds a tab or line break ({exc})",
                                hint="OIDs and keys must not contain whitespace: fix the export"))
        return None
    kind = lines["kind"].to_numpy()
    is_rec, is_item = kind == "R", kind == "I"
    ignored = int(pd.to_numeric(lines["a"][kind == "N"], errors="coerce").fillna(0).sum()
                  + pd.to_numeric(lines["b"][is_rec], errors="coerce").fillna(0).sum())
    rec_id = np.cumsum(is_rec) - 1
    keys = lines["a"][is_rec].str.split(_SEP, expand=True, regex=False) if is_rec.any() else pd.DataFrame(columns=range(12))
    if keys.shape[1] != len(_KEYS) or keys.isna().any().any() or not (is_rec | is_item | (kind == "N")).all():
        problems.append(Problem(file, "an OID, key or repeat key holds a tab, line break or the character U+E003",
                                hint="OIDs and keys must not contain whitespace: fix the export"))
        return None
    keys.columns = _KEYS
    recs = keys.reset_index(drop=True).astype("str")
    items = pd.DataFrame({"rec": rec_id[is_item], "oid": lines["a"].to_numpy()[is_item], "code": lines["b"].to_numpy()[is_item],
                          "value": lines["c"].to_numpy()[is_item]})
    if any(ch in text for ch in _ESC_TO):
        v = items["value"].astype("str")
        for x, y in zip(_ESC_TO, _ESC_FROM):
            v = v.str.replace(x, y, regex=False)
        items["value"] = v
    return recs, items, ignored


def _report(problems: list[Problem], file: str, mask: np.ndarray, what: str, column: str, values: np.ndarray,
            paths: np.ndarray, hint: str) -> None:
    idx = np.flatnonzero(mask)
    for i in idx[:_MAX_LISTED]:
        problems.append(Problem(file, what, entry=str(paths[i]), column=column, value=str(values[i]), hint=hint))
    if len(idx) > _MAX_LISTED:
        problems.append(Problem(file, f"{len(idx) - _MAX_LISTED} more: {what}", hint=hint))


def read_odm(path: Path) -> RawExport:  # noqa: F821 - imported lazily below
    """Read an ODM-XML 1.3.2 file as a RawExport (see the module docstring and docs/RAW.md)."""
    from cdisc_pipe.raw.reader import RawExport

    path = Path(path)
    file = str(path)
    problems: list[Problem] = []
    findings: list[Finding] = []
    if not _refuse_dtd(path, problems):
        raise InputError(problems, stage="raw")
    flat = _flatten(path, problems)
    if flat is None or problems:
        raise InputError(problems, stage="raw")
    meta, clinical, chunks, _ = flat
    parsed = _parse_lines(chunks, file, problems)
    if parsed is None:
        raise InputError(problems, stage="raw")
    recs, items, ignored = parsed
    if clinical.get("seen") and clinical.get("MetaDataVersionOID") != meta.oid:
        problems.append(Problem(file, "ClinicalData names another MetaDataVersion than the one in the file",
                                entry="ClinicalData", value=clinical.get("MetaDataVersionOID"),
                                hint=f"the file's MetaDataVersion is {meta.oid}: export data and metadata together"))

    # --- OIDs: checked on the distinct values, then mapped back with integer codes
    rec_path = (recs["subject"] + "/" + recs["event"] + "/" + recs["form"] + "/" + recs["group"]).to_numpy(dtype=object)
    hint_path = " (path SubjectKey/StudyEventOID/FormOID/ItemGroupOID[/ItemOID])"
    form_names = list(meta.forms)
    fcode = pd.Categorical(recs["form"], categories=form_names).codes.astype(np.int64)  # -1: undeclared
    _report(problems, file, (recs["subject"] == "").to_numpy(), "SubjectData without SubjectKey" + hint_path, "SubjectKey",
            recs["subject"].to_numpy(), rec_path, "every SubjectData needs its SubjectKey")
    _report(problems, file, ~recs["event"].isin(list(meta.events)).to_numpy(), "undeclared StudyEventOID" + hint_path,
            "StudyEventOID", recs["event"].to_numpy(), rec_path, "declare the StudyEventDef in the MetaDataVersion or fix the OID")
    _report(problems, file, fcode < 0, "undeclared FormOID" + hint_path, "FormOID", recs["form"].to_numpy(), rec_path,
            "declare the FormDef in the MetaDataVersion or fix the OID")
    pair_ok = np.zeros(len(recs), dtype=bool)
    for k, f in enumerate(form_names):
        sel = fcode == k
        pair_ok[sel] = recs["group"][sel].isin(meta.forms[f]["groups"]).to_numpy()
    _report(problems, file, (fcode >= 0) & ~pair_ok, "ItemGroupOID not declared for this form" + hint_path, "ItemGroupOID",
            recs["group"].to_numpy(), rec_path, "declare the ItemGroupDef and reference it from the FormDef, or fix the OID")
    icode, ioids = pd.factorize(items["oid"])
    irec = items["rec"].to_numpy()
    declared_u = np.array([o in meta.items for o in ioids], dtype=bool)
    declared = declared_u[icode] if len(icode) else np.zeros(0, bool)
    if not declared.all():
        _report(problems, file, ~declared, "undeclared ItemOID" + hint_path, "ItemOID", items["oid"].to_numpy(),
                _item_paths(rec_path, irec, items["oid"], ~declared),
                "declare the ItemDef (and reference it from the ItemGroupDef) or fix the OID")
    group_of_rec = recs["group"].to_numpy(dtype=object)
    gcode, gnames = pd.factorize(group_of_rec)
    member = np.zeros((len(gnames), len(ioids)), dtype=bool)
    for gi, g in enumerate(gnames):
        refs = {o for o, _ in meta.groups.get(g, [])}
        member[gi] = [o in refs for o in ioids]
    in_group = member[gcode[irec], icode] if len(items) else np.zeros(0, bool)
    stray = declared & ~in_group & pair_ok[irec] if len(items) else np.zeros(0, bool)
    if stray.any():
        _report(problems, file, stray, "ItemOID not referenced by its ItemGroupDef" + hint_path, "ItemOID",
                items["oid"].to_numpy(), _item_paths(rec_path, irec, items["oid"], stray),
                "add an ItemRef to the ItemGroupDef or move the item to its own group")
    if problems:
        raise InputError(problems, stage="raw")

    # --- values: IsNull / removed item / empty -> missing; ISO dates -> raw text (per distinct ItemOID type)
    value = items["value"].astype("str")
    value = value.where((items["code"] == "V").to_numpy() & (value != "").to_numpy())
    utype = np.array([meta.items[o]["type"] for o in ioids], dtype=object)
    itype = utype[icode] if len(icode) else np.zeros(0, object)
    for kind in ("date", "datetime"):
        sel = (itype == kind) & value.notna().to_numpy()
        if sel.any():
            value[sel] = _iso_to_raw(value[sel], kind).to_numpy()
    vals = value.to_numpy(dtype=object)
    vals[pd.isna(vals)] = None

    removed = (recs[["s_tt", "e_tt", "f_tt", "g_tt"]] == "Remove").any(axis=1).to_numpy()
    recs["FORMINST"] = recs["form_rk"].where(recs["form_rk"] != "", "1")
    recs["RECPOS"] = recs["group_rk"].where(recs["group_rk"] != "", "0")
    local = recs.groupby(fcode, sort=False).cumcount().to_numpy()
    recs[ROW] = (local + 2).astype("int64")
    site = recs["site"].where(recs["site"] != "")
    study_oid = clinical.get("StudyOID") or clinical.get("study_oid")
    # records and items sorted by form once, then sliced
    r_order = np.argsort(fcode, kind="stable")
    r_bounds = np.searchsorted(fcode[r_order], np.arange(len(form_names) + 1))
    ifc = fcode[irec] if len(irec) else np.zeros(0, np.int64)
    i_order = np.argsort(ifc, kind="stable")
    i_bounds = np.searchsorted(ifc[i_order], np.arange(len(form_names) + 1))
    forms: dict[str, pd.DataFrame] = {}
    dd_rows = []
    excluded = []
    for k, form in enumerate(form_names):
        fdef = meta.forms[form]
        cols = meta.columns(form)
        names = [n for _, n, _ in cols]
        for n in [n for n, *_ in STRUCTURAL if n in names]:
            problems.append(Problem(file, "an item has the name of a column the ODM structure provides", entry=f"FormDef {form}",
                                    column=n, hint="rename the ItemDef (its Name becomes the raw column)"))
        for n, label, typ, _src in STRUCTURAL:
            dd_rows.append((form, fdef["title"], n, label, typ, "", "", "Y", "", "EDC metadata"))
        for oid, name, req in cols:
            d = meta.items[oid]
            dd_rows.append((form, fdef["title"], name, d["label"], d["type"], d["codelist"], d["codes"], req, d["unit"], d["note"]))
        rsel = r_order[r_bounds[k]:r_bounds[k + 1]]
        isel = i_order[i_bounds[k]:i_bounds[k + 1]]
        col_u = np.array([-1] * len(ioids), dtype=np.int64)
        for j, (oid, _, _) in enumerate(cols):
            pos = ioids.get_indexer([oid])[0] if len(ioids) else -1
            if pos >= 0:
                col_u[pos] = j
        grid = np.full((len(rsel), len(cols)), None, dtype=object)
        if len(isel):
            j = col_u[icode[isel]]
            ok = j >= 0
            grid[local[irec[isel]][ok], j[ok]] = vals[isel][ok]
        r = recs.iloc[rsel]
        data = {"STUDYID": np.full(len(r), study_oid, dtype=object), "SITEID": site.to_numpy()[rsel],
                "SUBJID": r["subject"].to_numpy(), "FOLDER": r["event"].to_numpy(),
                "FOLDERNAME": r["event"].map(meta.events).to_numpy(), "FORMINST": r["FORMINST"].to_numpy(),
                "RECPOS": r["RECPOS"].to_numpy()}
        data.update({n: grid[:, c] for c, n in enumerate(names)})
        df = pd.DataFrame({c: pd.Series(v, dtype="str") for c, v in data.items()})
        df[ROW] = r[ROW].to_numpy()
        rm = removed[rsel]
        if rm.any():
            gone = df[rm]
            excluded.append(pd.DataFrame({"form": form, "source_row": gone[ROW].to_numpy(), "usubjid": gone["SUBJID"].to_numpy(),
                                          "reason": "removed in the EDC (ODM TransactionType=Remove)"}))
            findings.extend(Finding("RAW.ODM.REMOVED", "Notice", f"record removed in the EDC (TransactionType=Remove) at "
                                    f"{s}/{e}/{form}/{g}: excluded", source_file=form, source_row=int(w))
                            for s, e, g, w in zip(gone["SUBJID"], gone["FOLDER"], r.loc[rm, "group"], gone[ROW]))
            df = df[~rm]
        forms[form] = df.reset_index(drop=True)
    if problems:
        raise InputError(problems, stage="raw")
    if ignored:
        findings.append(Finding("RAW.ODM.IGNORED", "Notice", f"{ignored} audit-trail/signature/annotation element(s) "
                                "in ClinicalData ignored (the raw export keeps the current values only)", source_file=file))
    dd = pd.DataFrame(dd_rows, columns=["form", "form_title", "field", "label", "type", "codelist", "codes", "required",
                                        "unit", "note"])
    dd = pd.DataFrame({c: pd.Series(dd[c].where(dd[c] != "", None).to_numpy(dtype=object), dtype="str") for c in dd.columns})
    dd[ROW] = (np.arange(len(dd)) + 2).astype("int64")
    exc = (pd.concat(excluded, ignore_index=True) if excluded
           else pd.DataFrame({"form": pd.Series(dtype="str"), "source_row": pd.Series(dtype="int64"),
                              "usubjid": pd.Series(dtype="str"), "reason": pd.Series(dtype="str")}))
    return RawExport(forms=forms, dictionary=dd, source={f: path for f in forms}, findings=findings, excluded=exc,
                     export_date=clinical.get("export_date"))


def _item_paths(rec_path: np.ndarray, irec: np.ndarray, oids: pd.Series, mask: np.ndarray) -> np.ndarray:
    """Element paths (SubjectKey/StudyEventOID/FormOID/ItemGroupOID/ItemOID) of the masked items only."""
    out = np.full(len(mask), "", dtype=object)
    idx = np.flatnonzero(mask)[:_MAX_LISTED]
    out[idx] = [f"{rec_path[irec[i]]}/{oids.iat[i]}" for i in idx]
    return out
