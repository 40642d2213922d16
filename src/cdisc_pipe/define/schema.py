"""Validate a define.xml against the official Define-XML 2.1 XML Schema, plus its references.

The schemas are the ones CDISC publishes, as shipped inside the ``odmlib`` package
(``odmlib/schemas/define/2.1/define2-1-0.xsd``, which imports ODM 1.3.2; and
``odmlib/schemas/arm/1.0-define2.1/arm1-0-0.xsd`` when the file uses Analysis Results Metadata).
lxml validates; every schema error becomes a :class:`~cdisc_pipe.errors.Problem` naming the line.

ODM declares OIDs and OID references as plain text, so the schema cannot see a dangling
``MethodOID`` or ``CodeListOID``; :func:`check_references` does (the schema does check
``def:leaf`` IDs).  :func:`validate_define` runs both.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lxml import etree

from cdisc_pipe.errors import Problem

ODM = "http://www.cdisc.org/ns/odm/v1.3"
DEF = "http://www.cdisc.org/ns/def/v2.1"
ARM = "http://www.cdisc.org/ns/arm/v1.0"
XLINK = "http://www.w3.org/1999/xlink"
NS = {"odm": ODM, "def": DEF, "arm": ARM, "xlink": XLINK}


def schema_dir() -> Path:
    """The folder of the schemas shipped in odmlib (``.../odmlib/schemas``)."""
    import odmlib

    return Path(odmlib.__file__).resolve().parent / "schemas"


@lru_cache(maxsize=2)
def _schema(arm: bool) -> etree.XMLSchema:
    base = schema_dir()
    path = base / ("arm/1.0-define2.1/arm1-0-0.xsd" if arm else "define/2.1/define2-1-0.xsd")
    return etree.XMLSchema(etree.parse(str(path)))


def _parser() -> etree.XMLParser:
    # define.xml is untrusted input: no DTDs, no entity expansion, no network.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse_define(xml: bytes | str, file: str = "define.xml") -> tuple[etree._Element | None, list[Problem]]:
    """Parse define.xml bytes (or text) safely; a well-formedness error becomes a Problem (root None)."""
    if isinstance(xml, str):
        xml = xml.encode("utf-8")  # lxml refuses text carrying an encoding declaration
    try:
        return etree.fromstring(xml, _parser()), []
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno is not None else "?"
        return None, [Problem(file, f"not well-formed XML: {exc.msg}", entry=f"line {line}",
                              hint="The file is damaged or was not written by a Define-XML tool")]


def validate_define(xml: bytes | str, file: str = "define.xml", references: bool = True) -> list[Problem]:
    """Problems of ``xml`` against the Define-XML 2.1 schema (ARM 1.0 schema if the file uses ARM).

    Args:
        xml: the define.xml bytes (text is accepted and encoded as UTF-8).
        file: the name problems are reported against.
        references: also check that every OID reference resolves (:func:`check_references`).

    Returns:
        One Problem per schema error (entry ``line N``), then reference problems; empty if valid.
    """
    root, problems = parse_define(xml, file)
    if root is None:
        return problems
    uses_arm = root.find(f".//{{{ARM}}}*") is not None
    schema = _schema(uses_arm)
    if not schema.validate(root.getroottree()):
        name = "Define-XML 2.1 + ARM 1.0" if uses_arm else "Define-XML 2.1"
        for err in schema.error_log:
            problems.append(Problem(file, f"{name} schema: {err.message}", entry=f"line {err.line}"))
    if references:
        problems.extend(check_references(root, file))
    return problems


# Reference attribute -> kind of the thing it must point to.
_REFS = [
    (f"{{{ODM}}}ItemRef", "ItemOID", "item"),
    (f"{{{ODM}}}ItemRef", "MethodOID", "method"),
    (f"{{{ODM}}}CodeListRef", "CodeListOID", "codelist"),
    (f"{{{DEF}}}ValueListRef", "ValueListOID", "valuelist"),
    (f"{{{DEF}}}WhereClauseRef", "WhereClauseOID", "whereclause"),
    (f"{{{ODM}}}RangeCheck", f"{{{DEF}}}ItemOID", "item"),
    (f"{{{ODM}}}ItemGroupDef", f"{{{DEF}}}StandardOID", "standard"),
    (f"{{{ODM}}}CodeList", f"{{{DEF}}}StandardOID", "standard"),
    (f"{{{ODM}}}ItemGroupDef", f"{{{DEF}}}ArchiveLocationID", "leaf"),
]
_DEFS = {
    "item": f"{{{ODM}}}ItemDef",
    "method": f"{{{ODM}}}MethodDef",
    "codelist": f"{{{ODM}}}CodeList",
    "valuelist": f"{{{DEF}}}ValueListDef",
    "whereclause": f"{{{DEF}}}WhereClauseDef",
    "standard": f"{{{DEF}}}Standard",
    "comment": f"{{{DEF}}}CommentDef",
}


def check_references(root: etree._Element, file: str = "define.xml") -> list[Problem]:
    """Every OID reference resolves; every OID is defined once; ItemGroupDef archive leaves exist."""
    problems: list[Problem] = []
    defined: dict[str, set[str]] = {}
    for kind, tag in _DEFS.items():
        seen: set[str] = set()
        for el in root.iter(tag):
            oid = el.get("OID")
            if oid in seen:
                problems.append(Problem(file, f"{etree.QName(tag).localname} OID defined twice",
                                        entry=f"line {el.sourceline}", value=oid))
            seen.add(oid)
        defined[kind] = seen
    defined["leaf"] = {el.get("ID") for el in root.iter(f"{{{DEF}}}leaf")}
    checks = list(_REFS) + [(None, f"{{{DEF}}}CommentOID", "comment")]
    for tag, attr, kind in checks:
        elements = root.iter() if tag is None else root.iter(tag)
        for el in elements:
            if not isinstance(el.tag, str):
                continue
            ref = el.get(attr)
            if ref is not None and ref not in defined[kind]:
                problems.append(Problem(file, f"{etree.QName(el).localname}/@{etree.QName(attr).localname} "
                                        f"points to an undefined {kind}", entry=f"line {el.sourceline}", value=ref))
    return problems
