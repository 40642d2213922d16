"""Which kind of raw export a path holds: CSV folder, xlsx workbook, ODM-XML file, or SAS datasets.

``detect_format(path) -> (kind, target)`` with kind ``"csv"`` (CSV folder or xlsx: the CSV/xlsx
reader handles both), ``"odm"`` (target = the .xml file) or ``"sas"`` (target = the folder).
A folder mixing kinds the reader cannot interpret together is an InputError saying what to remove.
"""

from __future__ import annotations

from pathlib import Path

from cdisc_pipe.errors import InputError, Problem

SAS_SUFFIXES = (".sas7bdat", ".xpt")
DICTIONARY_FILE = "data_dictionary.csv"


def detect_format(path: Path) -> tuple[str, Path]:
    """Classify a raw export path; see the module docstring."""
    from cdisc_pipe.raw.odm import looks_like_odm

    path = Path(path)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".xml":
            if not looks_like_odm(path):
                raise InputError(Problem(str(path), "an .xml file that is not a CDISC ODM export (no <ODM> root element)",
                                         entry="root", hint="give an ODM-XML 1.3.2 file, a folder of CSV files, an .xlsx "
                                         "workbook or a folder of SAS datasets"), stage="raw")
            return "odm", path
        if suffix in SAS_SUFFIXES:
            raise InputError(Problem(str(path), "a single SAS dataset is not an export",
                                     hint="give the folder holding one SAS dataset per form"), stage="raw")
        return "csv", path
    if not path.is_dir():
        return "csv", path  # the CSV reader reports "not found"/"not a folder"
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    csvs = sorted(p for p in files if p.suffix.lower() == ".csv" and p.name != DICTIONARY_FILE)
    books = sorted(p for p in files if p.suffix.lower() in (".xlsx", ".xlsm"))
    xmls = sorted(p for p in files if p.suffix.lower() == ".xml" and looks_like_odm(p))  # other XML (define.xml) ignored
    sas = sorted(p for p in files if p.suffix.lower() in SAS_SUFFIXES)
    kinds = {"CSV form files": csvs, "xlsx workbooks": books, "ODM .xml files": xmls, "SAS datasets": sas}
    present = [k for k, v in kinds.items() if v]
    if len(present) > 1:
        listed = "; ".join(f"{k}: {', '.join(p.name for p in v[:3])}{' ...' if len(v) > 3 else ''}" for k, v in kinds.items() if v)
        raise InputError(Problem(str(path), f"the folder mixes export formats ({listed}); the reader cannot tell which "
                                 "is the export", entry=None,
                                 hint="keep one export per folder: CSV files + data_dictionary.csv, one .xlsx, one ODM "
                                      ".xml, or SAS datasets (+ optional data_dictionary.csv)"), stage="raw")
    if xmls:
        if len(xmls) != 1:
            raise InputError(Problem(str(path), f"the folder holds {len(xmls)} ODM .xml files; expected exactly one ODM "
                                     "export", value=", ".join(p.name for p in xmls[:5]),
                                     hint="keep the one ODM-XML export in the folder (or give the file itself)"), stage="raw")
        return "odm", xmls[0]
    if sas:
        stems = [p.stem for p in sas]
        dup = sorted({s for s in stems if stems.count(s) > 1})
        if dup:
            raise InputError(Problem(str(path), "a form is there both as .sas7bdat and as .xpt", value=", ".join(dup),
                                     hint="keep one dataset per form"), stage="raw")
        return "sas", path
    return "csv", path
