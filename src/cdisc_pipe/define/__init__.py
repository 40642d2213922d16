"""define.xml (Define-XML 2.1) and define.html for SDTM and ADaM, schema validation, consistency
with the XPT files, and the eCTD module 5 submission package.  See ``docs/DEFINE.md``."""

from cdisc_pipe.define.builder import DefineResult, build_define, build_view, render_html, render_xml, write_define
from cdisc_pipe.define.schema import check_references, validate_define

__all__ = [
    "DefineResult", "build_define", "build_view", "render_html", "render_xml", "write_define",
    "check_references", "validate_define",
]
