"""define.xml (Define-XML 2.1) and define.html for SDTM and ADaM, schema validation, consistency
with the XPT files, and the eCTD module 5 submission package.  See ``docs/DEFINE.md``.

- :func:`build_define` (spec + written datasets -> :class:`DefineResult` with xml/html bytes and
  problems), :func:`write_define` (both files into a folder);
- :func:`validate_define` (Define-XML 2.1 / ARM 1.0 XML Schema from odmlib + OID references);
- :func:`check_define_against_data` (define.xml vs the XPT files: names, labels, types, lengths,
  order, codelist values) and :func:`written_from_folder` (WrittenDataset records from files);
- :func:`package` (eCTD m5 layout with SHA-256 checksums; refuses unvalidated studies).
"""

from cdisc_pipe.define.builder import DefineResult, build_define, build_view, render_html, render_xml, write_define
from cdisc_pipe.define.consistency import check_define_against_data, read_define, written_from_folder
from cdisc_pipe.define.package import PackageResult, package
from cdisc_pipe.define.schema import check_references, validate_define

__all__ = [
    "DefineResult", "build_define", "build_view", "render_html", "render_xml", "write_define",
    "check_define_against_data", "read_define", "written_from_folder",
    "PackageResult", "package",
    "check_references", "validate_define",
]
