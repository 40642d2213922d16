"""Reading a CDISC ODM-XML 1.3.2 export as a :class:`~cdisc_pipe.raw.RawExport` (rules: docs/RAW.md, "ODM-XML").

No Python code runs per element or per item; the work is numpy over bytes and over integer codes.

* **Scanner** (:class:`_Buf`, :func:`_tags`, :func:`_scan`): reads ClinicalData from bytes in the form
  lxml's serialiser writes: attribute values in double quotes, one space before each attribute name
  and none around ``=``, ``<`` ``>`` ``&`` ``"`` and tab/LF/CR escaped inside values, no comments,
  CDATA sections or processing instructions.  In that form every ``<``/``>`` is a tag boundary and the
  ``"`` inside a tag pair up as its attribute values, so one pass (``bytes.translate`` + nonzero) finds
  every marker, a cumulative sum gives each tag's depth, and the parent of a tag is the last start
  tag one level up (a running maximum).  Element and attribute names are compared 8 bytes at a time
  (unaligned uint64 reads); the usual ``<ItemData ItemOID="..." Value="..."/>`` is checked and read in
  one step, any other attribute layout through the general pass.  Every attribute value gets an
  integer code per distinct value: its 8-byte words are fingerprinted and factorized, then each value
  is compared word by word with the first value of its code, so the codes are exact (a fingerprint
  collision only costs a slower exact factorization).  Only distinct values become Python strings,
  with character/entity references resolved and XML's line-end and attribute-value normalisation
  applied (a parser would have done both; the file's own bytes still need them).  Anything else the
  scanner meets (another layout, ``<!``, ``<?``, ``'...'`` values, a literal ``>`` in a value or text,
  a second ClinicalData) makes it answer None rather than guess.
* **Build** (:func:`_build`, per scanned region): item checks counted on the distinct ItemOIDs, ISO
  dates rewritten on the distinct values, and per form a grid of value codes (one scatter of all items).
* **Fast path** (:func:`_read_raw`): a UTF-8 file whose ClinicalData is already in that form (what EDC
  exporters write) is scanned as it is on disk, in windows of ``_WINDOW`` bytes cut at ``<SubjectData``
  (memory stays bounded), after libxml2 has checked the file with the security options below (a SAX
  parse that builds no tree; its namespace errors count).  From ``_PARALLEL_MIN`` bytes on, with two
  cores, the file is split at a SubjectData boundary into two byte ranges (the second one checked after
  the ODM and ClinicalData start tags, the first one before their end tags), checked, scanned and built
  in two processes; the parts are joined in document order, so the output does not depend on the split,
  and a second process that cannot start (or dies) leaves the work to this one.  StudyEventRepeatKey
  is read and checked but, as before, not a column (docs/RAW.md says why).  Namespace declarations
  inside ClinicalData, another encoding, or any part saying None send the file to the tree path.
* **Tree path** (:func:`_read_tree`): ``lxml.etree.iterparse`` hands over one finished ``SubjectData``
  at a time, ``etree.tostring`` (C) writes it in the scanner's form, subjects are scanned in batches and
  cleared.  A subject whose ODM elements use more than one prefix or that redeclares namespaces inside
  is first rewritten by a small XSLT to one ``o:`` prefix.  Parse errors are reported from here (file,
  line, last SubjectKey read): the fast path steps aside on any error.

:func:`read_odm` then checks OIDs on distinct values and assembles the forms with numpy indexing.

Security: a DOCTYPE (and so any entity declaration, internal or external) is refused before
parsing; every parser runs with ``resolve_entities=False``, ``no_network=True``, ``load_dtd=False``
and ``huge_tree=False``.
"""

from __future__ import annotations

import io
import itertools
import multiprocessing
import re
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

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
#: parser options of every parse (security: see the module docstring)
_SAFE = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}
#: bytes scanned at once: bounds the scanner's temporary arrays (a few times this size)
_WINDOW = 16 << 20
#: files from this size are read by two processes when two cores are available
_PARALLEL_MIN = 48 << 20
#: this process's share of ClinicalData's bytes when two processes read: the second one also starts,
#: runs slower at first (copy-on-write pages) and hands its result over (pickling); measured balance
_SHARE = 0.51


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


def _iso_to_raw_distinct(values: np.ndarray, kind: str) -> np.ndarray:
    """:func:`_iso_to_raw` on an object array of distinct values, same result.  Plain-ASCII values of the
    ISO lengths are checked and rewritten with numpy on their characters (no Python per value); values
    with other characters (\\d also matches non-ASCII digits, ``$`` a final line feed) take the regex.
    Chunks of 64k values keep the character matrices small (fresh large arrays cost page faults)."""
    out = values.copy()
    shapes = (4, 7, 10) if kind == "date" else (16, 19) if kind == "datetime" else ()
    if not len(values) or not shapes:
        return out
    length = np.strings.str_len(np.array(values, dtype=np.dtypes.StringDType()))
    cand = np.flatnonzero(np.isin(length, shapes) | np.isin(length, [n + 1 for n in shapes]))
    width = max(shapes) + 1
    names = np.array([list(m) for m in _MONTHS.tolist() + ["UNK"]], dtype="U1").view(np.uint32).reshape(13, 3)
    for lo in range(0, len(cand), 1 << 16):
        at = cand[lo:lo + (1 << 16)]
        n = length[at]
        chars = np.array(values[at], dtype=f"U{width}").view(np.uint32).reshape(len(at), width)
        plain = (chars < 128).all(axis=1) & (chars != 10).all(axis=1) & np.isin(n, shapes)
        if not plain.all():
            slow = at[~plain]
            out[slow] = _iso_to_raw(pd.Series(values[slow], dtype="str"), kind).to_numpy(dtype=object)
        digit = (chars >= 48) & (chars <= 57)
        dash, colon = chars == 45, chars == 58
        if kind == "datetime":
            ok = plain & digit[:, [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15]].all(axis=1) & dash[:, 4] & dash[:, 7]
            ok &= (chars[:, 10] == 84) & colon[:, 13] & ((n == 16) | (colon[:, 16] & digit[:, 17] & digit[:, 18]))
            chars[:, 10] = 32  # the first "T" (position 10) becomes a space; only the ok rows are kept
            out[at[ok]] = chars.view(f"U{width}").reshape(-1)[ok].tolist()
            continue
        ok = plain & digit[:, :4].all(axis=1) & ((n == 4) | (dash[:, 4] & digit[:, 5] & digit[:, 6]))
        ok &= (n != 10) | (dash[:, 7] & digit[:, 8] & digit[:, 9])
        mon = (chars[:, 5].astype(np.int64) - 48) * 10 + chars[:, 6] - 48
        ok &= (n == 4) | ((mon >= 1) & (mon <= 12))
        res = np.full((len(at), 11), 32, np.uint32)
        res[:, 0:2] = np.where((n == 10)[:, None], chars[:, 8:10], np.array([ord("U"), ord("N")], np.uint32))
        res[:, 3:6] = names[np.where(n == 4, 12, np.clip(mon - 1, 0, 11))]
        res[:, 7:11] = chars[:, 0:4]
        out[at[ok]] = res.view("U11").reshape(-1)[ok].tolist()
    return out


# ------------------------------------------------------------------------------------------------
# The scanner
_LT, _GT, _QUOT, _APOS, _SLASH, _EQ, _SP, _COLON = 60, 62, 34, 39, 47, 61, 32, 58
_U64 = np.dtype("<u8")
_FP = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the span fingerprints (any odd constant works)
_SUBJ, _SITE, _EVT, _FORM, _GRP, _ITEM, _TYPED, _AUDIT, _CLIN = range(1, 10)
#: ODM elements the scanner tells apart (local names; the file's ODM prefix is put in front)
_KINDS = (("SubjectData", _SUBJ), ("SiteRef", _SITE), ("StudyEventData", _EVT), ("FormData", _FORM),
          ("ItemGroupData", _GRP), ("ItemData", _ITEM), ("AuditRecord", _AUDIT), ("Signature", _AUDIT),
          ("Annotation", _AUDIT), ("ClinicalData", _CLIN))
#: the attributes read, per level (s = SubjectData, site = SiteRef, e/f/g = StudyEvent/Form/ItemGroupData, i = ItemData)
_ATTRS = {"s": ("SubjectKey", "TransactionType"), "site": ("LocationOID",),
          "e": ("StudyEventOID", "StudyEventRepeatKey", "TransactionType"),
          "f": ("FormOID", "FormRepeatKey", "TransactionType"),
          "g": ("ItemGroupOID", "ItemGroupRepeatKey", "TransactionType"),
          "i": ("ItemOID", "Value", "IsNull", "TransactionType")}
_MARKERS = bytes(1 if c in b'<>"\'' else 0 for c in range(256))  # translate table of :meth:`_Buf.markers`
_ITEMOID = np.uint64(int.from_bytes(b"ItemOID=", "little"))  # the usual item layout, 8 bytes each
_VALUE = np.uint64(int.from_bytes(b' Value="', "little"))
_REF = re.compile(r"&(?:#x([0-9A-Fa-f]+)|#([0-9]+)|(lt|gt|amp|quot|apos));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


class _Col(NamedTuple):
    """One attribute (or text) of one level: a code per row (-1 = absent) and the distinct values."""

    codes: np.ndarray
    uniques: list[str]


@dataclass
class _Part:
    """What one scanned region holds, as arrays.  ``levels[x]["up"]`` is the row of the parent level
    (e -> s, f -> e, g -> f, i -> g); the other entries are :class:`_Col` named after the attribute
    (``site`` for the SiteRef's LocationOID, ``value`` for the item value)."""

    levels: dict[str, dict]
    null: np.ndarray  # per item: TransactionType="Remove" or IsNull="Yes"
    ignored: int  # audit-trail / signature / annotation elements in the read part of the tree
    end_depth: int  # depth after the region (0 = between SubjectData elements)


def _words(name: bytes) -> list[int]:
    """``name`` as little-endian 8-byte words (zero padded), the way :meth:`_Buf.word` reads bytes."""
    pad = name + b"\0" * (-len(name) % 8)
    return [int.from_bytes(pad[i:i + 8], "little") for i in range(0, len(pad), 8)]


#: _LOW[n]: uint64 mask keeping the low n bytes of a word (n = 0..8)
_LOW = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def _is_break(c: np.ndarray) -> np.ndarray:
    """Tab, LF or CR: white space the serialiser never writes inside a tag."""
    return (c == 9) | (c == 10) | (c == 13)


def _is_ws(c: np.ndarray) -> np.ndarray:
    return (c == _SP) | _is_break(c)


def _unescape(text: str, attr: bool) -> str:
    """An attribute value / text as written -> its XML value: line ends normalised, tab/LF in attribute
    values read as spaces (attribute-value normalisation), then character and entity references."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if attr and ("\n" in text or "\t" in text):
        text = text.replace("\n", " ").replace("\t", " ")
    if "&" in text:
        text = _REF.sub(lambda m: chr(int(m[1], 16)) if m[1] else chr(int(m[2])) if m[2] else _NAMED[m[3]], text)
    return text


class _Buf:
    """A region of bytes (padded with 8 zero bytes) and the vectorised reads the scanner makes on it."""

    def __init__(self, data: bytes | bytearray, n: int | None = None) -> None:
        """The region is ``data[:n]`` (all of it by default); 8 zero bytes must follow it in ``data``
        (else it is copied to get them)."""
        n = len(data) if n is None else n
        if len(data) < n + 8 or any(data[n:n + 8]):
            data = bytes(data[:n]) + bytes(8)
        self.data, self.n = data, n
        self.buf = np.frombuffer(data, np.uint8)
        self.a = self.buf[:n]
        # uint64 at every byte offset (unaligned, overlapping): one gather reads 8 bytes
        self._w = np.ndarray(shape=(n + 1,), dtype=_U64, buffer=self.buf, strides=(1,))

    def markers(self) -> np.ndarray:
        """Positions of every < > " and ' (bytes.translate maps them to 1 in one C pass, then one nonzero)."""
        return np.flatnonzero(np.frombuffer(self.data.translate(_MARKERS), dtype=bool, count=self.n))

    def word(self, pos: np.ndarray) -> np.ndarray:
        """The 8 bytes at each position as one little-endian uint64."""
        return self._w[pos]

    def match(self, pos: np.ndarray, name: bytes, w0: np.ndarray | None = None) -> np.ndarray:
        """Indices into ``pos`` where the bytes start with ``name`` (``w0``: the words at ``pos``, if known)."""
        ws = _words(name)
        cand = np.arange(len(pos))
        for k, w in enumerate(ws):
            x = w0 if k == 0 and w0 is not None else self.word(pos[cand] + 8 * k)
            cand = cand[(x & _LOW[min(8, len(name) - 8 * k)]) == np.uint64(w)]
            if k == 0 and w0 is not None:
                w0 = None
            if not len(cand):
                break
        return cand

    def codes(self, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes 0..u-1 with equal codes exactly for equal byte spans, and the first span of each code.

        A 64-bit fingerprint of the 8-byte words is factorized (one hash per span, not one per word);
        every span is then compared word by word with the first span of its code, and only if a
        fingerprint collided are the words factorized one after the other (exact, slower)."""
        n = len(starts)
        lens = ends - starts
        fp = lens.astype(np.uint64)
        words = []
        for k in range(0, int(lens.max(initial=0)), 8):
            live = None if lens.min() > k else np.flatnonzero(lens > k)  # spans with bytes at offset k
            rem = lens - k if live is None else lens[live] - k
            w = self._w[starts + k if live is None else starts[live] + k]
            if rem.min() < 8:
                w &= _LOW[np.minimum(rem, 8)]
            if live is None:
                fp *= _FP
                fp += w
            else:
                fp[live] = fp[live] * _FP + w
            words.append((live, w))
        codes, _ = pd.factorize(fp)
        first = _firsts(codes)
        rep = first[codes]
        ok = lens[rep] == lens
        for live, w in words:
            if live is None:
                ok &= w == w[rep]
            else:
                at = np.zeros(n, np.int64)  # where each span sits among the live spans
                at[live] = np.arange(len(live))
                ok[live] &= w == w[at[rep[live]]]
        if not ok.all():
            codes = self._exact_codes(words, n)
            first = _firsts(codes)
        return codes.astype(np.int32), first

    @staticmethod
    def _exact_codes(words: list, n: int) -> np.ndarray:
        """Word-by-word factorization (used only after a fingerprint collision)."""
        codes = np.zeros(n, np.int64)
        top = 1
        for sel, w in words:
            fw, uw = pd.factorize(w)
            idx = np.arange(n) if sel is None else sel
            fk, uk = pd.factorize(codes[idx] * len(uw) + fw)
            codes[idx] = fk + top  # spans that end before this word keep their (smaller) codes
            top += len(uk)
        return pd.factorize(codes)[0]

    def strings(self, starts: np.ndarray, ends: np.ndarray, attr: bool) -> list[str]:
        """The spans as str, references decoded (only the spans holding ``&``/CR/tab/LF go through Python)."""
        if not len(starts):
            return []
        lens = ends - starts + 1
        ostart = np.cumsum(lens) - lens
        out = self.buf[np.repeat(starts - ostart, lens) + np.arange(int(lens.sum()))]
        sep = ostart + lens - 1
        out[sep] = 0
        texts = out.tobytes().decode("utf-8").split("\0")[:-1]
        special = (out == 38) | (out == 13) | (((out == 9) | (out == 10)) if attr else False)
        for i in np.unique(np.searchsorted(sep, np.flatnonzero(special))):
            texts[i] = _unescape(texts[i], attr)
        return texts

    def col(self, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray, nrows: int, attr: bool) -> _Col:
        """The spans of ``rows`` (of ``nrows``) as a :class:`_Col`."""
        codes = np.full(nrows, -1, np.int32)
        if not len(rows):
            return _Col(codes, [])
        c, first = self.codes(starts, ends)
        uniq = self.strings(starts[first], ends[first], attr)
        c, uniq = _dedupe(c, uniq)
        codes[rows] = c
        return _Col(codes, uniq)


def _firsts(codes: np.ndarray) -> np.ndarray:
    """Index of the first occurrence of each code, for codes numbered in order of first occurrence."""
    if not len(codes):
        return np.zeros(0, np.int64)
    top = np.maximum.accumulate(codes)
    return np.flatnonzero(np.r_[True, top[1:] > top[:-1]])


def _dedupe(codes: np.ndarray, uniq: list[str]) -> tuple[np.ndarray, list[str]]:
    """Merge distinct spellings of one value ("a&amp;b", "a&#38;b"): equal codes for equal strings."""
    if len(set(uniq)) == len(uniq):
        return codes, uniq
    c, u = pd.factorize(np.array(uniq, dtype=object))
    return np.where(codes >= 0, c[np.maximum(codes, 0)], -1).astype(np.int32), list(u)


def _below(parent: np.ndarray, last_open: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mask`` restricted to tags whose parent (the last open tag one level up) is in ``parent``."""
    idx = np.flatnonzero(mask)
    up = last_open[idx]
    out = np.zeros(len(mask), bool)
    out[idx[(up >= 0) & parent[np.maximum(up, 0)]]] = True
    return out


@dataclass
class _Tags:
    """The tags of one region: position of ``<`` and ``>``, kind, depth, and the in-tag quotes."""

    lt: np.ndarray
    gt: np.ndarray
    is_end: np.ndarray
    is_empty: np.ndarray
    opens: np.ndarray  # start tags that are not empty-element tags
    after: np.ndarray  # depth after each tag
    depth: np.ndarray  # depth of the element (start tags); its end tags have one more
    kind: np.ndarray  # _SUBJ, _SITE, ... or 0 (anything else)
    nlen: np.ndarray  # length of the element name (classified tags)
    q: np.ndarray  # positions of the " inside tags, in pairs (value start - 1, value end)
    nq: np.ndarray  # how many of them each tag has


def _tags(B: _Buf, prefix: bytes, base: int) -> _Tags | None:
    """Tags, depths, element kinds and attribute quotes of a region; None if it is not in the form."""
    a, buf = B.a, B.buf
    nz = B.markers()
    kd = a[nz]
    quote = kd == _QUOT
    at = np.flatnonzero(quote ^ (kd != _APOS))  # where the < and > are among the markers
    lt, gt = nz[at[0::2]], nz[at[1::2]]
    # every < opens a tag that the next > closes (no literal > in text or values): they alternate
    if len(at) % 2 or not ((a[lt] == _LT).all() and (a[gt] == _GT).all()):
        return None
    nq = at[1::2] - at[0::2] - 1  # markers inside each tag: its quotes, and apostrophes
    q = nz[quote]
    ap = nz[kd == _APOS]
    del nz, kd, quote, at
    if len(ap):
        t = np.searchsorted(lt, ap, "right") - 1
        inside = (t >= 0) & (ap < gt[np.maximum(t, 0)])
        nq -= np.bincount(t[inside], minlength=len(lt))
        ap = ap[inside]
    if nq.sum() != len(q):  # quotes in text (allowed there): keep those inside tags
        t = np.searchsorted(lt, q, "right") - 1
        q = q[(t >= 0) & (q < gt[np.maximum(t, 0)])]
    # the quotes of each tag pair up, and an apostrophe in a tag lies inside a "..." value: no '...' values
    if (nq % 2).any() or (len(ap) and not (np.searchsorted(q, ap) % 2).all()):
        return None
    c1 = buf[lt + 1]
    if ((c1 == 33) | (c1 == 63)).any():  # <! (comment, CDATA) or <? (processing instruction)
        return None
    is_end = c1 == _SLASH
    is_empty = buf[gt - 1] == _SLASH
    opens = ~is_end & ~is_empty
    delta = opens.view(np.int8) - is_end.view(np.int8)
    after = np.cumsum(delta, dtype=np.int32) + np.int32(base)
    depth = after - delta
    # element names, compared 8 bytes at a time
    nt = len(lt)
    st = np.flatnonzero(~is_end)
    pos = lt[st] + 1
    w0 = B.word(pos)
    kind = np.zeros(nt, np.int8)
    nlen = np.zeros(nt, np.int64)
    for local, code in _KINDS:
        name = prefix + local.encode()
        cand = B.match(pos, name, w0)
        nxt = buf[pos[cand] + len(name)]
        if _is_break(nxt).any():
            return None  # a line break or tab after an element name: not the serialiser's layout
        ok = (nxt == _SP) | (nxt == _SLASH) | (nxt == _GT)
        kind[st[cand[ok]]] = code
        nlen[st[cand[ok]]] = len(name)
        if local == "ItemData":  # typed ItemDataString, ItemDataInteger, ...: where does the name end?
            typed = cand[~ok]
            end = pos[typed] + len(name)
            live = np.arange(len(typed))
            for _ in range(128):  # one step per character of the longest name, not per element
                c = buf[end[live]]
                go = ~((c == _SP) | (c == _SLASH) | (c == _GT) | (c == _COLON) | _is_ws(c))
                end[live[go]] += 1
                live = live[go]
                if not len(live):
                    break
            if len(live) or _is_break(buf[end]).any():
                return None
            ok = buf[end] != _COLON  # ItemDataX:y is an element of another namespace
            kind[st[typed[ok]]] = _TYPED
            nlen[st[typed[ok]]] = (end - pos[typed])[ok]
    return _Tags(lt, gt, is_end, is_empty, opens, after, depth, kind, nlen, q, nq)


def _scan(B: _Buf, prefix: bytes, base: int = 0) -> _Part | None:
    """Read one region in the serialiser's form; None when it is not in that form.

    ``prefix``: the ODM elements' prefix with its colon (``b""`` for the default namespace).
    ``base``: depth of the region's first tag, 0 being the SubjectData level (a region of the file
    starts inside ClinicalData, at 0; ClinicalData is at -1 and ODM at -2).
    """
    T = _tags(B, prefix, base)
    if T is None:
        return None
    kind, depth, opens, start = T.kind, T.depth, T.opens, ~T.is_end
    nt = len(T.lt)
    if (start & (kind == _CLIN) & (depth == -1)).any():
        return None  # a second ClinicalData: the tree path reads it
    # the ODM hierarchy, child axes only (as XPath SubjectData/StudyEventData/FormData/ItemGroupData/ItemData*):
    # the parent of a tag at depth d is the last start tag at depth d - 1 before it
    idx = np.arange(nt)
    lo = [np.maximum.accumulate(np.where(opens & (depth == d), idx, -1)) for d in range(5)]
    subj = start & (kind == _SUBJ) & (depth == 0)
    closed = np.flatnonzero(T.is_end & (depth == 0))  # </ClinicalData>: no SubjectData of it after that
    if len(closed):
        subj[closed[0]:] = False
    evt = _below(subj, lo[0], start & (kind == _EVT) & (depth == 1))
    frm = _below(evt, lo[1], start & (kind == _FORM) & (depth == 2))
    grp = _below(frm, lo[2], start & (kind == _GRP) & (depth == 3))
    itm = _below(grp, lo[3], start & ((kind == _ITEM) | (kind == _TYPED)) & (depth == 4))
    site = _below(subj, lo[0], start & (kind == _SITE) & (depth == 1))
    # audit trail, signatures, annotations: children of those elements, or of an item
    aud = start & (kind == _AUDIT)
    ignored = sum(int(_below(parent, lo[d - 1], aud & (depth == d)).sum())
                  for d, parent in ((1, subj), (2, evt), (3, frm), (4, grp)))
    deep = np.flatnonzero(aud & (depth == 5))
    if len(deep):
        up = lo[4][deep]
        up2 = np.where(up >= 0, lo[3][np.maximum(up, 0)], -1)
        ignored += int(((up2 >= 0) & grp[np.maximum(up2, 0)]).sum())
    # rows of each level, each row's parent row, and the first SiteRef of each subject
    tags = {"s": np.flatnonzero(subj), "e": np.flatnonzero(evt), "f": np.flatnonzero(frm),
            "g": np.flatnonzero(grp), "i": np.flatnonzero(itm)}
    row = np.full(nt, -1, np.int64)
    for t in tags.values():
        row[t] = np.arange(len(t))
    levels: dict[str, dict] = {x: {} for x in tags}
    for x, d in (("e", 0), ("f", 1), ("g", 2), ("i", 3)):
        levels[x]["up"] = row[lo[d][tags[x]]]
    site_t = np.flatnonzero(site)
    site_s = row[lo[0][site_t]]
    firsts = np.r_[True, site_s[1:] != site_s[:-1]] if len(site_t) else np.zeros(0, bool)
    site_row = np.full(nt, -1, np.int64)
    site_row[site_t[firsts]] = site_s[firsts]
    del lo
    spans = _attributes(B, T, tags, row, site_row)
    if spans is None:
        return None
    for (x, name), got in spans.items():
        starts, ends, rows = (np.concatenate([g[i] for g in got]) for i in range(3))
        levels[x][name] = B.col(starts, ends, rows, len(tags[x]), True)
    ti = tags["i"][kind[tags["i"]] == _TYPED]
    if len(ti):  # typed items: the value is the element's text
        levels["i"]["Value"] = _with_text(B, levels["i"]["Value"], ti, row, T)
    iv = levels["i"]
    null = np.zeros(len(tags["i"]), bool)
    for name, flag in (("TransactionType", "Remove"), ("IsNull", "Yes")):
        col = iv.pop(name)
        if flag in col.uniques:
            null |= col.codes == col.uniques.index(flag)
    iv["value"] = iv.pop("Value")
    return _Part(levels, null, ignored, int(T.after[-1]) if nt else base)


def _attributes(B: _Buf, T: _Tags, tags: dict[str, np.ndarray], row: np.ndarray, site_row: np.ndarray
                ) -> dict[tuple[str, str], list] | None:
    """(level, attribute) -> [(value starts, value ends, rows)] for the attributes in ``_ATTRS`` (every
    one present, empty when absent; SiteRef/@LocationOID as ("s", "site")); None if the layout differs."""
    buf, lt, q, nq, kind, nlen = B.buf, T.lt, T.q, T.nq, T.kind, T.nlen
    spans: dict[tuple[str, str], list] = {(x, n): [] for x, names in _ATTRS.items() if x != "site" for n in names}
    spans[("s", "site")] = []
    qstart = np.cumsum(nq) - nq  # each tag's first quote
    # most items are <ItemData ItemOID="..." Value="..."/>: checked and read in one go
    it = tags["i"]
    simple = (kind[it] == _ITEM) & (nq[it] == 4)
    at = np.flatnonzero(simple)
    t, k = it[at], qstart[it[at]]
    o = lt[t] + 1 + nlen[t] + 1
    q0, q1, q2, q3 = q[k], q[k + 1], q[k + 2], q[k + 3]
    ok = (B.word(o) == _ITEMOID) & (q0 == o + 8) & (B.word(q1 + 1) == _VALUE) & (q2 == q1 + 8)
    simple[at[~ok]] = False
    if not ok.all():
        at, q0, q1, q2, q3 = at[ok], q0[ok], q1[ok], q2[ok], q3[ok]
    spans[("i", "ItemOID")].append((q0 + 1, q1, at))
    spans[("i", "Value")].append((q2 + 1, q3, at))
    # any other attribute of the tags read: one space before its name, the name right before ="
    keep = (row >= 0) | (site_row >= 0)
    keep[it[simple]] = False
    kt = np.flatnonzero(keep)
    pairs = nq[kt] // 2
    owner = np.repeat(kt, pairs)
    pi = np.repeat(qstart[kt] - 2 * (np.cumsum(pairs) - pairs), pairs) + 2 * np.arange(int(pairs.sum()))
    qo, qc = q[pi], q[pi + 1]
    first = np.r_[True, owner[1:] != owner[:-1]] if len(owner) else np.zeros(0, bool)
    ns = np.where(first, lt[owner] + 1 + nlen[owner] + 1, np.r_[0, qc[:-1]] + 2)
    nl = qo - 1 - ns
    if len(ns) and not ((buf[ns - 1] == _SP).all() and (buf[qo - 1] == _EQ).all() and (nl > 0).all()
                        and not _is_ws(buf[ns]).any() and not _is_ws(buf[qo - 2]).any()):
        return None
    aw0 = B.word(ns)
    okind = kind[owner]
    level_of = {"s": okind == _SUBJ, "e": okind == _EVT, "f": okind == _FORM, "g": okind == _GRP,
                "i": (okind == _ITEM) | (okind == _TYPED), "site": site_row[owner] >= 0}
    named: dict[str, np.ndarray] = {}
    for x, names in _ATTRS.items():
        for name in names:
            if name not in named:
                hit = np.zeros(len(ns), bool)
                cand = np.flatnonzero(nl == len(name))
                hit[cand[B.match(ns[cand], name.encode(), aw0[cand])]] = True
                named[name] = hit
            h = np.flatnonzero(named[name] & level_of[x])
            if x == "site":
                spans[("s", "site")].append((qo[h] + 1, qc[h], site_row[owner[h]]))
                continue
            if x == "i" and name == "Value":
                h = h[okind[h] == _ITEM]  # a typed item's value is its text
            spans[(x, name)].append((qo[h] + 1, qc[h], row[owner[h]]))
    return spans


def _with_text(B: _Buf, values: _Col, ti: np.ndarray, row: np.ndarray, T: _Tags) -> _Col:
    """The item values with the text of the typed items (tags ``ti``) in place of their (ignored) @Value."""
    nrows = len(values.codes)
    nxt = np.minimum(ti + 1, len(T.lt) - 1)
    plain = T.is_empty[ti] | T.is_end[nxt]  # no child element: the text lies between the start and the end tag
    starts = np.where(T.is_empty[ti], T.gt[ti], T.gt[ti] + 1)[plain]
    ends = np.where(T.is_empty[ti], T.gt[ti], T.lt[nxt])[plain]
    text = B.col(starts, ends, row[ti[plain]], nrows, False)
    nested = ti[~plain]
    if len(nested):
        text = _nested_text(B, text, nested, row, T)
    codes = np.where(text.codes >= 0, text.codes + len(values.uniques), values.codes).astype(np.int32)
    return _Col(codes, values.uniques + text.uniques)


def _nested_text(B: _Buf, text: _Col, nested: np.ndarray, row: np.ndarray, T: _Tags) -> _Col:
    """Typed items holding child elements (not valid ODM): their own text pieces, joined (the XPath
    string value without the children's text)."""
    after = T.after
    level = after[nested]  # the depth inside such an item (all items are at the same depth)
    back = np.flatnonzero(after < level[0])  # tags after which the depth is below an item's content
    close = back[np.minimum(np.searchsorted(back, nested, "right"), len(back) - 1)]  # each item's end tag
    lens = close - nested
    k = np.repeat(nested, lens) + np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    own = np.repeat(np.arange(len(nested)), lens)
    inside = after[k] == level[own]  # the text after tag k belongs to the item itself, not to a child
    k, own = k[inside], own[inside]
    pieces = pd.Series(B.strings(T.gt[k] + 1, T.lt[k + 1], False), dtype=object)
    joined = pieces.groupby(own, sort=False).agg("".join)
    c, u = pd.factorize(joined.to_numpy(dtype=object))
    codes = text.codes.copy()
    codes[row[nested[joined.index.to_numpy()]]] = c + len(text.uniques)
    return _Col(codes, text.uniques + list(u))


# ------------------------------------------------------------------------------------------------
# Fast path: the file's own bytes
_XMLNS = re.compile(rb"xmlns")
_CLINICAL = re.compile(rb"<((?:[A-Za-z_][\w.\-]*:)?)ClinicalData[ \t\r\n/>]")


class _NullTarget:
    """Parser target that builds nothing: libxml2 checks the document (well-formedness, namespaces)."""

    def close(self) -> None:
        return None


class _Range(io.RawIOBase):
    """``head`` + bytes ``start:end`` of a file + ``tail``, as a stream for the checking parse."""

    def __init__(self, path: str, start: int, end: int, head: bytes = b"", tail: bytes = b"") -> None:
        super().__init__()
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close(), which the checking parse calls
        self._f.seek(start)
        self._left, self._head, self._tail = end - start, head, tail

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        # libxml2 asks for 4 KB at a time; lxml keeps what is beyond that for the next request, so
        # handing over 1 MB blocks saves the Python calls
        size = max(size or 0, 1 << 20)
        if self._head:
            out, self._head = self._head[:size], self._head[size:]
            return out
        if self._left > 0:
            data = self._f.read(min(size, self._left))
            self._left = self._left - len(data) if data else 0
            if data:
                return data
        out, self._tail = self._tail[:size], self._tail[size:]
        return out

    def close(self) -> None:
        self._f.close()
        super().close()


def _well_formed(source: str | _Range) -> bool:
    """libxml2's verdict on the document (namespace errors included), without building a tree."""
    parser = etree.XMLParser(target=_NullTarget(), **_SAFE)
    try:
        etree.parse(source, parser)
    except etree.XMLSyntaxError:
        return False
    finally:
        if isinstance(source, _Range):
            source.close()
    return not parser.error_log.filter_from_errors()


@dataclass
class _Head:
    """Everything before ClinicalData's content: metadata, ClinicalData, the ODM prefix, the region."""

    meta: _Meta
    clinical: dict
    problems: list[Problem]
    prefix: bytes  # of the ODM elements, with its colon (b"" for the default namespace)
    region: int  # first byte after the ClinicalData start tag
    opener: bytes  # start tags of ODM and ClinicalData (to check a range starting inside ClinicalData)
    closer: bytes  # their end tags (to check a range ending inside ClinicalData)


def _find(fh, pattern: re.Pattern, at: int, keep: bool = False) -> tuple[re.Match, int, bytes] | None:
    """The first match of ``pattern`` (a short one) at or after byte ``at`` of the file: the match, its
    offset in the file, and (``keep``) the bytes from ``at`` to the match's end; None if there is none
    (or, with ``keep``, none in the first 64 MB)."""
    fh.seek(at)
    data, base = b"", at
    while True:
        more = fh.read(1 << 20)
        start = max(0, len(data) - 256)  # a match may straddle two reads
        data += more
        found = pattern.search(data, start)
        if found is not None:
            return found, base + found.start(), data[:found.end()] if keep else b""
        if not more or (keep and len(data) > 1 << 26):
            return None
        if not keep and len(data) > 1 << 22:
            base += len(data) - 256
            data = data[-256:]


def _head(path: Path) -> _Head | None:
    """Parse the file up to the first ClinicalData start tag; None if the fast path cannot be used."""
    with open(path, "rb") as fh:
        hit = _find(fh, _CLINICAL, 0, keep=True)
        if hit is None:
            return None
        found, _, text = hit
        fh.seek(len(text))
        text += fh.read(1 << 16)  # the rest of the ClinicalData start tag
    end = text.find(b">", found.end() - 1)
    if end < 0 or text[end - 1:end] == b"/":
        return None
    text = text[:end + 1]
    try:
        for _, root in etree.iterparse(str(path), events=("start",), **_SAFE):
            break
        else:
            return None
    except etree.XMLSyntaxError:
        return None
    if root.tag != f"{_O}ODM":
        return None
    rq = (root.prefix + ":" if root.prefix else "") + "ODM"
    cq = found[1].decode("ascii") + "ClinicalData"
    text += f"</{cq}></{rq}>".encode()
    problems: list[Problem] = []
    meta, clinical, cd = None, {}, None
    try:
        ctx = etree.iterparse(io.BytesIO(text), events=("start", "end"), tag=(f"{_O}MetaDataVersion", f"{_O}ClinicalData"),
                              remove_comments=True, remove_pis=True, **_SAFE)
        for ev, el in ctx:
            if el.tag == f"{_O}ClinicalData":
                if ev == "start":
                    cd = el
                continue
            if ev == "end" and meta is None:
                meta = _Meta(el, str(path), problems)
                study = el.getparent()
                clinical["study_oid"] = study.get("OID") if study is not None else None
                el.clear()
        encoding = (ctx.root.getroottree().docinfo.encoding or "UTF-8").upper()
    except etree.XMLSyntaxError:
        return None
    if meta is None or cd is None or cd.getparent() is not ctx.root or encoding not in ("UTF-8", "UTF8", "US-ASCII", "ASCII"):
        return None
    odm = [p for p, uri in cd.nsmap.items() if uri == NS]
    if len(odm) != 1 or (odm[0] or "") != found[1].decode("ascii").rstrip(":"):
        return None
    clinical.update(StudyOID=cd.get("StudyOID"), MetaDataVersionOID=cd.get("MetaDataVersionOID"),
                    export_date=root.get("AsOfDateTime") or root.get("CreationDateTime"))
    shell = etree.Element(root.tag, nsmap=root.nsmap)
    etree.SubElement(shell, cd.tag, nsmap=cd.nsmap).text = "\u2063"
    opener, closer = etree.tostring(shell, encoding="UTF-8").split("\u2063".encode())
    return _Head(meta, clinical, problems, found[1], end + 1, opener, closer)


def _scan_file(path: str, prefix: bytes, windows: list[tuple[int, int]], check: tuple[int, int | None, bytes, bytes],
               layout: _Layout) -> list[_Built] | None:
    """Check ``check`` = (start, end, head, tail) with libxml2 (all of the file if start = 0 and end = None),
    then scan and build the windows (start, end) of the file; None if either says no.  Runs in the
    second process too."""
    start, end, head, tail = check
    if not _well_formed(path if end is None else _Range(path, start, end, head, tail)):
        return None
    parts = []
    longest = max((we - ws for ws, we in windows), default=0)
    data = bytearray(longest + 8)  # reused by every window (fresh memory costs page faults)
    with open(path, "rb") as fh:
        for ws, we in windows:
            fh.seek(ws)
            n = we - ws
            fh.readinto(memoryview(data)[:n])
            data[n:n + 8] = bytes(8)
            if _XMLNS.search(data, 0, n):
                return None  # namespace declarations inside ClinicalData: the tree path resolves them
            part = _scan(_Buf(data, n), prefix)
            if part is None:
                return None
            parts.append(_build(part, layout))
    return parts


def _processes(size: int, processes: int | None) -> int:
    """1 or 2: as asked, else 2 for a large file when this process may use two cores."""
    if processes is not None:
        return max(1, min(2, processes))
    from cdisc_pipe.parallel import cores

    return 2 if cores() >= 2 and size >= _PARALLEL_MIN else 1


def _context() -> multiprocessing.context.BaseContext:
    """fork (nothing to import) unless it is unsafe: Python warns about forking a threaded process."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and (threading.active_count() == 1 or sys.version_info < (3, 12)):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _read_raw(path: Path, processes: int | None) -> tuple[_Meta, dict, list[_Built], list[Problem]] | None:
    """The fast path (module docstring); None when the file is not in the scanner's form."""
    head = _head(path)
    if head is None:
        return None
    size = path.stat().st_size
    file = str(path)
    layout = _Layout.of(head.meta)
    # cut right before SubjectData start tags (that each one is one is checked by the depths below):
    # where the second process takes over, then windows of about _WINDOW bytes
    tag = re.compile(re.escape(b"<" + head.prefix + b"SubjectData") + rb"[ />]")
    with open(path, "rb") as fh:
        split = None
        if _processes(size, processes) == 2:
            hit = _find(fh, tag, head.region + int(_SHARE * (size - head.region)))
            split = hit[1] if hit is not None else None
        windows = []
        for lo, hi in ((head.region, split or size), (split, size)) if split else ((head.region, size),):
            cuts = [lo]
            while cuts[-1] + _WINDOW < hi:
                hit = _find(fh, tag, cuts[-1] + _WINDOW)
                if hit is None or hit[1] >= hi:
                    break
                cuts.append(hit[1])
            windows.append(list(itertools.pairwise([*cuts, hi])))
    parts: list[_Built] | None
    if split:
        mine = (0, split, b"", head.closer)
        theirs = (split, size, b'<?xml version="1.0" encoding="UTF-8"?>' + head.opener, b"")
        pool, job = None, None
        try:  # the second process; if it cannot start (a daemonic caller, no fork, limits), this one does it all
            pool = ProcessPoolExecutor(1, mp_context=_context())
            job = pool.submit(_scan_file, file, head.prefix, windows[1], theirs, layout)
        except Exception:  # noqa: BLE001 - whatever stops a process from starting, the work is done here
            job = None
        parts = other = None
        try:
            parts = _scan_file(file, head.prefix, windows[0], mine, layout)
            if parts is not None:  # (else the tree path reads the file: no need to wait for the other half)
                try:
                    other = job.result() if job is not None else _scan_file(file, head.prefix, windows[1], theirs, layout)
                except (BrokenProcessPool, OSError):  # the second process died (killed, out of memory)
                    other = _scan_file(file, head.prefix, windows[1], theirs, layout)
        finally:
            if pool is not None:
                pool.shutdown(wait=parts is not None, cancel_futures=True)
        parts = None if parts is None or other is None else parts + other
    else:
        parts = _scan_file(file, head.prefix, windows[0], (0, None, b"", b""), layout)
    # windows are cut at SubjectData start tags: each must end where the next begins, the last after </ODM>
    if parts is None or any(p.end_depth != 0 for p in parts[:-1]) or parts[-1].end_depth != -2:
        return None
    head.clinical["seen"] = any(len(p.levels["s"]["SubjectKey"].codes) for p in parts)
    return head.meta, head.clinical, parts, head.problems


# ------------------------------------------------------------------------------------------------
# Tree path: lxml builds each SubjectData, serialises it, the scanner reads that
_NORMALISE = etree.XSLT(etree.XML(f"""<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:o="{NS}">
  <xsl:template match="o:*"><xsl:element name="o:{{local-name()}}" namespace="{NS}">
    <xsl:copy-of select="@*[namespace-uri() = '']"/><xsl:apply-templates/></xsl:element></xsl:template>
  <xsl:template match="*"><xsl:element name="x:{{local-name()}}" namespace="urn:cdisc-pipe:not-odm">
    <xsl:apply-templates/></xsl:element></xsl:template>
</xsl:stylesheet>"""))


def _serialise(el) -> tuple[bytes, bytes]:
    """A SubjectData in the scanner's form, and its ODM prefix."""
    odm = [p for p, uri in el.nsmap.items() if uri == NS]
    text = etree.tostring(el, encoding="UTF-8", with_tail=False)
    if len(odm) == 1 and text.find(b"xmlns", text.find(b">")) < 0:
        return text, (odm[0] + ":" if odm[0] else "").encode()
    # several prefixes for ODM, or declarations inside: one "o:" prefix, other elements in a dummy namespace
    return etree.tostring(_NORMALISE(el).getroot(), encoding="UTF-8", with_tail=False), b"o:"


def _read_tree(path: Path, problems: list[Problem]) -> tuple[_Meta, dict, list[_Built]] | None:
    """The tree path (module docstring); None after reporting a parse error or a file that is not ODM."""
    meta: _Meta | None = None
    clinical: dict = {}
    layout: _Layout | None = None
    parts: list[_Part | _Built] = []  # built as soon as the metadata is known
    batch: list[bytes] = []
    size, prefix = 0, b""
    last = "the start of the file"

    def flush() -> None:
        nonlocal size
        if batch:
            batch.append(bytes(8))
            joined = b"".join(batch)
            part = _scan(_Buf(joined, len(joined) - 8), prefix)
            if part is None or part.end_depth != 0:  # lxml's output is always in the scanner's form
                raise RuntimeError("cdisc_pipe.raw.odm: the scanner rejected lxml's serialisation")
            parts.append(part if layout is None else _build(part, layout))
            batch.clear()
            size = 0

    try:
        ctx = etree.iterparse(str(path), events=("end",), tag=(f"{_O}MetaDataVersion", f"{_O}SubjectData"),
                              remove_comments=True, remove_pis=True, **_SAFE)
        for _, el in ctx:
            if el.tag == f"{_O}MetaDataVersion":
                if meta is None:
                    meta = _Meta(el, str(path), problems)
                    layout = _Layout.of(meta)
                    study = el.getparent()
                    clinical["study_oid"] = study.get("OID") if study is not None else None
                el.clear()
                continue
            cd = el.getparent()
            if cd is None or cd.tag != f"{_O}ClinicalData":
                continue  # not ODM's place for a SubjectData (the enclosing one reads it, or nothing does)
            if not clinical.get("seen"):
                clinical.update(seen=True, StudyOID=cd.get("StudyOID"), MetaDataVersionOID=cd.get("MetaDataVersionOID"))
            last = f"SubjectKey {el.get('SubjectKey')}"
            text, p = _serialise(el)
            if p != prefix or size >= _WINDOW:
                flush()
                prefix = p
            batch.append(text)
            size += len(text)
            el.clear()
            while el.getprevious() is not None:
                del cd[0]
        flush()
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
    return meta, clinical, [_build(p, layout) if isinstance(p, _Part) else p for p in parts]


# ------------------------------------------------------------------------------------------------
# From the scanned parts to the RawExport
_PARENT = {"e": "s", "f": "e", "g": "f", "i": "g"}
_BLANK = re.compile(r"[\t\n\r]")
_DATES = ("date", "datetime")


@dataclass
class _Layout:
    """What the per-part build needs from the MetaDataVersion (small: it is sent to the second process)."""

    forms: list[str]  # FormOIDs, in FormDef order
    columns: list[list[str]]  # per form: the ItemOID of each column
    form_groups: list[frozenset]  # per form: its ItemGroupOIDs
    group_items: dict[str, frozenset]  # ItemGroupOID -> the ItemOIDs it references
    kinds: dict[str, int]  # ItemOID -> index in _DATES (date or datetime items only)
    declared: frozenset  # every ItemOID with an ItemDef

    @classmethod
    def of(cls, meta: _Meta) -> _Layout:
        forms = list(meta.forms)
        return cls(forms, [[oid for oid, _, _ in meta.columns(f)] for f in forms],
                   [frozenset(meta.forms[f]["groups"]) for f in forms],
                   {g: frozenset(o for o, _ in refs) for g, refs in meta.groups.items()},
                   {o: _DATES.index(d["type"]) for o, d in meta.items.items() if d["type"] in _DATES},
                   frozenset(meta.items))


@dataclass
class _Built:
    """One part, built: its records (levels s/e/f/g of :class:`_Part`) and, per form, the records' value
    codes (rows = the part's records of that form in document order) into ``vtext``, whose last entry
    (None) stands for a missing value."""

    levels: dict[str, dict]
    grids: list[np.ndarray]
    vtext: np.ndarray  # object: distinct values as they go into the forms (ISO dates rewritten), None last
    item_problems: dict[str, tuple[int, list[tuple[str, str]]]]  # check -> (count, first (path, ItemOID))
    ignored: int
    end_depth: int

    def __getstate__(self) -> dict:
        # from the second process: the value texts as one string (pickled as a block, split again in C)
        state = dict(self.__dict__)
        state["vtext"] = (len(self.vtext) - 1, "\0".join(self.vtext[:-1].tolist()))
        return state

    def __setstate__(self, state: dict) -> None:
        n, text = state["vtext"]
        state["vtext"] = np.array((text.split("\0") if n else []) + [None], dtype=object)
        self.__dict__.update(state)


def _visible(path: str) -> str:
    """An element path with tab/LF/CR shown as escapes (a problem's location stays on one line)."""
    return path.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _strings(col: _Col, rows: np.ndarray, absent: str | None = "") -> np.ndarray:
    """The column's value at ``rows`` as an object array (``absent`` where the attribute is absent)."""
    return np.array(col.uniques + [absent], dtype=object)[col.codes[rows]]


def _per_unique(col: _Col, fn, absent, dtype=object) -> np.ndarray:
    """``fn`` applied to each distinct value, then looked up by code (``absent`` for code -1)."""
    return np.array([fn(u) for u in col.uniques] + [absent], dtype=dtype)[col.codes]


def _form_codes(levels: dict[str, dict], forms: list[str]) -> np.ndarray:
    """Per record (ItemGroupData): the index of its form in ``forms``, -1 if the FormOID is undeclared."""
    no = {f: k for k, f in enumerate(forms)}
    return _per_unique(levels["f"]["FormOID"], lambda u: no.get(u, -1), -1, np.int64)[levels["g"]["up"]]


def _build(part: _Part, lay: _Layout) -> _Built:
    """Items of one part -> per-form grids of value codes, ISO dates rewritten, item checks counted.
    Vectorised over the part's items; runs where the part was scanned (in the second process too)."""
    lv = part.levels
    items, G = lv["i"], lv["g"]
    g_f = G["up"]
    g_e = lv["f"]["up"][g_f]
    g_s = lv["e"]["up"][g_e]
    fcode = _form_codes(lv, lay.forms)
    irec, ioid = items["up"], items["ItemOID"]

    def listed(bad_u: np.ndarray, mask=None) -> tuple[int, list[tuple[str, str]]]:
        """Count and name the items failing a check: ``bad_u`` per distinct ItemOID (plus absent),
        ``mask(items)`` refining it per item; the items are only looked at when some OID fails."""
        if not bad_u.any():
            return 0, []
        bad = bad_u[ioid.codes]
        if mask is not None:
            bad &= mask()
        idx = np.flatnonzero(bad)[:_MAX_LISTED]
        r = irec[idx]
        keys = zip(_strings(lv["s"]["SubjectKey"], g_s[r]), _strings(lv["e"]["StudyEventOID"], g_e[r]),
                   _strings(lv["f"]["FormOID"], g_f[r]), _strings(G["ItemGroupOID"], r), _strings(ioid, idx))
        return int(bad.sum()), [(_visible(f"{s}/{e}/{f}/{g}/{o}"), o) for s, e, f, g, o in keys]

    # checks of the items (the parent reports them with the record checks)
    gu = G["ItemGroupOID"]
    in_form = np.array([[u in groups for u in gu.uniques] + [False] for groups in lay.form_groups]
                       + [[False] * (len(gu.uniques) + 1)], dtype=bool)  # [form, group OID]
    pair_ok = in_form[fcode, gu.codes] & (fcode >= 0)
    declared = np.array([u in lay.declared for u in ioid.uniques] + [False], dtype=bool)
    member = np.array([[o in lay.group_items.get(g, ()) for o in ioid.uniques] + [False] for g in gu.uniques]
                      + [[False] * (len(ioid.uniques) + 1)], dtype=bool)  # [group OID, item OID]
    problems = {"blank": listed(np.array([bool(_BLANK.search(u)) for u in ioid.uniques] + [False])),
                "undeclared": listed(~declared),
                # declared, but not referenced by its item group (when that group belongs to the form)
                "stray": listed(declared & ~member[:-1].all(axis=0),
                                lambda: ~member[gu.codes[irec], ioid.codes] & pair_ok[irec])}
    # values: IsNull / removed item / empty -> missing; ISO dates -> raw text (on the distinct values)
    V = items["value"]
    vcode = V.codes.astype(np.int64)
    vtext = np.array(V.uniques + [None], dtype=object)
    vcode[part.null | (vtext == "")[vcode]] = -1
    vtext = vtext[:-1]
    kind = _per_unique(ioid, lambda u: lay.kinds.get(u, -1), -1, np.int8)
    for k, name in enumerate(_DATES):
        sel = np.flatnonzero((kind == k) & (vcode >= 0))
        if len(sel):
            inv, used = pd.factorize(vcode[sel])
            vcode[sel] = len(vtext) + inv
            vtext = np.concatenate([vtext, _iso_to_raw_distinct(vtext[used], name)])
    vtext = np.append(vtext, None)  # the last entry stands for a missing value
    # one flat array holds every form's grid, row-major (a record's items land side by side): one scatter
    n = len(g_f)
    order = np.argsort(fcode.astype(np.int16) if len(lay.forms) < 32767 else fcode, kind="stable")  # radix sort
    bounds = np.searchsorted(fcode[order], np.arange(len(lay.forms) + 1))  # records of undeclared forms first
    nrec = np.diff(bounds)
    local = np.zeros(n, np.int64)  # place among the part's records of its form
    local[order[bounds[0]:]] = np.arange(n - bounds[0]) - np.repeat(bounds[:-1] - bounds[0], nrec)
    ncol = np.array([len(c) for c in lay.columns], dtype=np.int64)
    base = np.concatenate([[0], np.cumsum(nrec * ncol)])
    where = [{o: j for j, o in enumerate(cols)} for cols in lay.columns]
    col_of = np.array([[w.get(o, -1) for o in ioid.uniques] + [-1] for w in where]
                      + [[-1] * (len(ioid.uniques) + 1)], dtype=np.int64)  # [form, item OID] -> column
    safe = np.maximum(fcode, 0) if len(lay.forms) else np.zeros(0, np.int64)
    start = np.where(fcode >= 0, base[safe] + local * ncol[safe], 0) if len(lay.forms) else np.zeros(n, np.int64)
    j = col_of[fcode[irec], ioid.codes]  # (row -1 of col_of: records of undeclared forms)
    ok = np.flatnonzero(j >= 0)
    flat = np.full(int(base[-1]), len(vtext) - 1, np.int32)  # missing: the None at the end of vtext
    flat[start[irec[ok]] + j[ok]] = np.where(vcode[ok] >= 0, vcode[ok], len(vtext) - 1)
    grids = [flat[base[k]:base[k + 1]].reshape(nrec[k], ncol[k]) for k in range(len(lay.forms))]
    levels = {x: lv[x] for x in "sefg"}
    return _Built(levels, grids, vtext, problems, part.ignored, part.end_depth)


def _rows(level: dict) -> int:
    return len(level["up"]) if "up" in level else len(level["SubjectKey"].codes)


def _merge(built: list[_Built]) -> dict[str, dict]:
    """The records of all parts in document order (rows shifted, key columns' distinct values merged)."""
    names = {x: (("up",) if x != "s" else ("site",)) + _ATTRS[x] for x in "sefg"}
    out: dict[str, dict] = {}
    for x, cols in names.items():
        out[x] = {}
        for name in cols:
            vals = [b.levels[x][name] for b in built]
            if name == "up":
                shift = np.cumsum([0] + [_rows(b.levels[_PARENT[x]]) for b in built])
                out[x][name] = np.concatenate([v + s for v, s in zip(vals, shift)]) if vals else np.zeros(0, np.int64)
                continue
            offset = np.cumsum([0] + [len(v.uniques) for v in vals])
            codes = np.concatenate([np.where(v.codes >= 0, v.codes + o, -1) for v, o in zip(vals, offset)]) if vals \
                else np.zeros(0, np.int32)
            out[x][name] = _Col(*_dedupe(codes, [u for v in vals for u in v.uniques]))
    return out


def _report(problems: list[Problem], file: str, mask: np.ndarray, what: str, column: str, values: np.ndarray,
            paths, hint: str) -> None:
    """One problem per masked record (first ``_MAX_LISTED``), then a count; ``paths(idx)`` names them."""
    idx = np.flatnonzero(mask)
    shown = idx[:_MAX_LISTED]
    for i, where in zip(shown, paths(shown)):
        problems.append(Problem(file, what, entry=where, column=column, value=str(values[i]), hint=hint))
    if len(idx) > _MAX_LISTED:
        problems.append(Problem(file, f"{len(idx) - _MAX_LISTED} more: {what}", hint=hint))


def _report_items(problems: list[Problem], file: str, built: list[_Built], check: str, what: str, hint: str) -> None:
    """Like :func:`_report`, for an item check counted per part."""
    total = sum(b.item_problems[check][0] for b in built)
    shown = [p for b in built for p in b.item_problems[check][1]][:_MAX_LISTED]
    for where, value in shown:
        problems.append(Problem(file, what, entry=where, column="ItemOID", value=value, hint=hint))
    if total > _MAX_LISTED:
        problems.append(Problem(file, f"{total - _MAX_LISTED} more: {what}", hint=hint))


def read_odm(path: Path, processes: int | None = None) -> RawExport:  # noqa: F821 - imported lazily below
    """Read an ODM-XML 1.3.2 file as a RawExport (see the module docstring and docs/RAW.md).

    Args:
        path: the ODM file.
        processes: 1 or 2 processes for the fast path; default: 2 for files of ``_PARALLEL_MIN`` bytes
            or more when two cores are available.  The result does not depend on it.
    """
    from cdisc_pipe.raw.reader import RawExport

    path = Path(path)
    file = str(path)
    problems: list[Problem] = []
    findings: list[Finding] = []
    if not _refuse_dtd(path, problems):
        raise InputError(problems, stage="raw")
    fast = _read_raw(path, processes)
    if fast is not None:
        meta, clinical, built, problems = fast
    else:
        got = _read_tree(path, problems)
        if got is None:
            raise InputError(problems, stage="raw")
        meta, clinical, built = got
    if problems:
        raise InputError(problems, stage="raw")
    lv = _merge(built)
    S, E, F, G = (lv[x] for x in "sefg")
    if clinical.get("seen") and clinical.get("MetaDataVersionOID") != meta.oid:
        problems.append(Problem(file, "ClinicalData names another MetaDataVersion than the one in the file",
                                entry="ClinicalData", value=clinical.get("MetaDataVersionOID"),
                                hint=f"the file's MetaDataVersion is {meta.oid}: export data and metadata together"))

    # --- records (ItemGroupData) and their keys; checks run on the distinct values, mapped back by code
    n = len(G["up"])
    rec = np.arange(n)
    g_f = G["up"]
    g_e = F["up"][g_f]
    g_s = E["up"][g_e]
    subject = _strings(S["SubjectKey"], g_s)
    event = _strings(E["StudyEventOID"], g_e)
    group = _strings(G["ItemGroupOID"], rec)
    form = _strings(F["FormOID"], g_f)
    hint_path = " (path SubjectKey/StudyEventOID/FormOID/ItemGroupOID[/ItemOID])"

    def rec_paths(idx: np.ndarray) -> list[str]:
        return [_visible(f"{subject[i]}/{event[i]}/{form[i]}/{group[i]}") for i in idx]

    for col, rows, name in ((S["SubjectKey"], g_s, "SubjectKey"), (S["site"], g_s, "LocationOID"),
                            (E["StudyEventOID"], g_e, "StudyEventOID"), (E["StudyEventRepeatKey"], g_e, "StudyEventRepeatKey"),
                            (F["FormOID"], g_f, "FormOID"), (F["FormRepeatKey"], g_f, "FormRepeatKey"),
                            (G["ItemGroupOID"], rec, "ItemGroupOID"), (G["ItemGroupRepeatKey"], rec, "ItemGroupRepeatKey")):
        _report(problems, file, _per_unique(col, lambda u: bool(_BLANK.search(u)), False, bool)[rows],
                "an OID, key or repeat key holds a tab or line break" + hint_path, name, _strings(col, rows), rec_paths,
                "OIDs and keys must not contain whitespace: fix the export")
    _report_items(problems, file, built, "blank", "an OID, key or repeat key holds a tab or line break" + hint_path,
                  "OIDs and keys must not contain whitespace: fix the export")
    if problems:
        raise InputError(problems, stage="raw")
    form_names = list(meta.forms)
    fcode = _form_codes(lv, form_names)
    _report(problems, file, subject == "", "SubjectData without SubjectKey" + hint_path, "SubjectKey", subject, rec_paths,
            "every SubjectData needs its SubjectKey")
    _report(problems, file, ~_per_unique(E["StudyEventOID"], lambda u: u in meta.events, False, bool)[g_e],
            "undeclared StudyEventOID" + hint_path, "StudyEventOID", event, rec_paths,
            "declare the StudyEventDef in the MetaDataVersion or fix the OID")
    _report(problems, file, fcode < 0, "undeclared FormOID" + hint_path, "FormOID", form, rec_paths,
            "declare the FormDef in the MetaDataVersion or fix the OID")
    gu = G["ItemGroupOID"]
    in_form = np.array([[u in meta.forms[f]["groups"] for u in gu.uniques] + [False] for f in form_names]
                       + [[False] * (len(gu.uniques) + 1)], dtype=bool)  # [form, group OID]
    pair_ok = in_form[fcode, gu.codes] & (fcode >= 0)
    _report(problems, file, (fcode >= 0) & ~pair_ok, "ItemGroupOID not declared for this form" + hint_path, "ItemGroupOID",
            group, rec_paths, "declare the ItemGroupDef and reference it from the FormDef, or fix the OID")
    _report_items(problems, file, built, "undeclared", "undeclared ItemOID" + hint_path,
                  "declare the ItemDef (and reference it from the ItemGroupDef) or fix the OID")
    _report_items(problems, file, built, "stray", "ItemOID not referenced by its ItemGroupDef" + hint_path,
                  "add an ItemRef to the ItemGroupDef or move the item to its own group")
    if problems:
        raise InputError(problems, stage="raw")

    # --- structural columns per record (from the distinct keys), then one frame per form
    removed = np.zeros(n, bool)
    for col, rows in ((S["TransactionType"], g_s), (E["TransactionType"], g_e), (F["TransactionType"], g_f),
                      (G["TransactionType"], rec)):
        removed |= _per_unique(col, lambda u: u == "Remove", False, bool)[rows]
    study_oid = clinical.get("StudyOID") or clinical.get("study_oid")
    struct = {
        "SITEID": _per_unique(S["site"], lambda u: u or None, None)[g_s],
        "SUBJID": subject,
        "FOLDER": event,
        "FOLDERNAME": _per_unique(E["StudyEventOID"], meta.events.get, None)[g_e],
        "FORMINST": _per_unique(F["FormRepeatKey"], lambda u: u or "1", "1")[g_f],
        "RECPOS": _per_unique(G["ItemGroupRepeatKey"], lambda u: u or "0", "0")[rec],
    }
    struct = {c: pd.array(v, dtype="str") for c, v in struct.items()}
    # text columns are taken from "str" arrays of the distinct values (checked once, not once per cell)
    vall = pd.array(np.concatenate([b.vtext for b in built]) if built else np.array([None], dtype=object), dtype="str")
    voff = np.cumsum([0] + [len(b.vtext) for b in built])  # each part's value texts start here in vall
    r_order = np.argsort(fcode.astype(np.int16) if len(form_names) < 32767 else fcode, kind="stable")
    r_bounds = np.searchsorted(fcode[r_order], np.arange(len(form_names) + 1))
    forms: dict[str, pd.DataFrame] = {}
    dd_rows = []
    excluded = []
    for k, name in enumerate(form_names):
        fdef = meta.forms[name]
        cols = meta.columns(name)
        names = [c for _, c, _ in cols]
        for c in [c for c, *_ in STRUCTURAL if c in names]:
            problems.append(Problem(file, "an item has the name of a column the ODM structure provides", entry=f"FormDef {name}",
                                    column=c, hint="rename the ItemDef (its Name becomes the raw column)"))
        for c, label, typ, _src in STRUCTURAL:
            dd_rows.append((name, fdef["title"], c, label, typ, "", "", "Y", "", "EDC metadata"))
        for oid, c, req in cols:
            d = meta.items[oid]
            dd_rows.append((name, fdef["title"], c, d["label"], d["type"], d["codelist"], d["codes"], req, d["unit"], d["note"]))
        rsel = r_order[r_bounds[k]:r_bounds[k + 1]]
        rows = np.arange(len(rsel), dtype=np.int64) + 2  # CSV-like row numbers: removed records keep theirs
        keep = ~removed[rsel]
        if not keep.all():
            gone = rsel[~keep]
            excluded.append(pd.DataFrame({"form": name, "source_row": rows[~keep], "usubjid": subject[gone],
                                          "reason": "removed in the EDC (ODM TransactionType=Remove)"}))
            findings.extend(Finding("RAW.ODM.REMOVED", "Notice", f"record removed in the EDC (TransactionType=Remove) at "
                                    f"{s}/{e}/{name}/{g}: excluded", source_file=name, source_row=int(w))
                            for s, e, g, w in zip(subject[gone], event[gone], group[gone], rows[~keep]))
        everything = keep.all()
        kept = rsel if everything else rsel[keep]
        data = {"STUDYID": pd.array([study_oid], dtype="str").take(np.zeros(len(kept), np.int64))}
        data.update({c: struct[c].take(kept) for c, *_ in STRUCTURAL if c != "STUDYID"})
        grid = np.concatenate([b.grids[k] + o for b, o in zip(built, voff)]) if built \
            else np.zeros((0, len(names)), np.int64)  # codes into vall
        if not everything:
            grid = grid[keep]
        for j, c in enumerate(names):
            data[c] = vall.take(grid[:, j])
        data[ROW] = rows if everything else rows[keep]
        df = pd.DataFrame(data, copy=False)
        forms[name] = df
    if problems:
        raise InputError(problems, stage="raw")
    ignored = sum(b.ignored for b in built)
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
