"""Reading an .xlsx workbook as text, fast: libxslt flattens each sheet's cells, pandas parses the result.

openpyxl (and ``pandas.read_excel``) build a Python object per cell, which makes a 200-subject
export take a minute.  Here each worksheet's XML is turned into one line per cell
(``ref<TAB>type<TAB>value``) by an XSLT transform running in C, the lines are parsed by
``pandas.read_csv`` and placed into a grid with numpy indexing.  Values are text exactly as stored:
shared and inline strings as written, numbers as their shortest text (``61``, ``1.5``), booleans
``TRUE``/``FALSE``; a cell formatted as an Excel date is read as its serial number (raw exports
carry dates as text, ``12 MAR 2024``, and the SDTM stage reports anything else).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
from lxml import etree

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
# Tab, LF and CR inside values are mapped to private-use characters so that one cell = one line.
_ESC_FROM, _ESC_TO = "\t\n\r", "\ue000\ue001\ue002"
_XSLT = etree.XSLT(etree.XML(f"""<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:m="{MAIN}">
  <xsl:output method="text" encoding="UTF-8"/>
  <xsl:template match="/">
    <xsl:for-each select="/m:worksheet/m:sheetData/m:row/m:c">
      <xsl:value-of select="../@r"/><xsl:text>&#9;</xsl:text>
      <xsl:value-of select="translate(@r, '0123456789$', '')"/><xsl:text>&#9;</xsl:text>
      <xsl:value-of select="@t"/><xsl:text>&#9;</xsl:text>
      <xsl:choose>
        <xsl:when test="@t = 'inlineStr'">
          <xsl:for-each select="m:is//m:t"><xsl:value-of select="translate(., '&#9;&#10;&#13;', '&#xE000;&#xE001;&#xE002;')"/></xsl:for-each>
        </xsl:when>
        <xsl:otherwise><xsl:value-of select="translate(m:v, '&#9;&#10;&#13;', '&#xE000;&#xE001;&#xE002;')"/></xsl:otherwise>
      </xsl:choose>
      <xsl:text>&#10;</xsl:text>
    </xsl:for-each>
  </xsl:template>
</xsl:stylesheet>"""))
_SST = etree.XSLT(etree.XML(f"""<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:m="{MAIN}">
  <xsl:output method="text" encoding="UTF-8"/>
  <xsl:template match="/">
    <xsl:for-each select="/m:sst/m:si">
      <xsl:for-each select=".//m:t[not(ancestor::m:rPh)]"><xsl:value-of select="translate(., '&#9;&#10;&#13;', '&#xE000;&#xE001;&#xE002;')"/></xsl:for-each>
      <xsl:text>&#10;</xsl:text>
    </xsl:for-each>
  </xsl:template>
</xsl:stylesheet>"""))


def _unescape(s: pd.Series, text: str) -> pd.Series:
    for a, b in zip(_ESC_TO, _ESC_FROM):
        if a in text:  # one C-level scan of the whole text; most workbooks have no tab/newline in cells
            s = s.str.replace(a, b, regex=False)
    return s


def _lines(text: str, names: list[str]) -> pd.DataFrame:
    if not text:
        return pd.DataFrame({n: pd.Series(dtype=object) for n in names})
    return pd.read_csv(io.StringIO(text), sep="\t", header=None, names=names, dtype=str, keep_default_na=False,
                       quoting=3, engine="c", skip_blank_lines=False)


def _sheet_paths(z: zipfile.ZipFile) -> dict[str, str]:
    wb = etree.fromstring(z.read("xl/workbook.xml"))
    rels = etree.fromstring(z.read("xl/_rels/workbook.xml.rels"))
    target = {r.get("Id"): r.get("Target") for r in rels.iter(f"{{{PKG_REL}}}Relationship")}
    out = {}
    for sh in wb.iter(f"{{{MAIN}}}sheet"):
        t = target[sh.get(f"{{{REL}}}id")]
        out[sh.get("name")] = t.lstrip("/") if t.startswith("/") else str(PurePosixPath("xl") / t)
    return out


def _col_index(letters: pd.Series) -> np.ndarray:
    """Spreadsheet column letters -> 0-based index (A=0, Z=25, AA=26, ...)."""
    padded = letters.str.rjust(3, "@")  # '@' is 'A' - 1 -> contributes 0
    codes = np.frombuffer("".join(padded).encode("ascii"), dtype=np.uint8).reshape(-1, 3).astype(np.int64) - 64
    return codes[:, 0] * 676 + codes[:, 1] * 26 + codes[:, 2] - 1


def read_workbook_text(path) -> dict[str, pd.DataFrame]:
    """Every sheet of an .xlsx workbook as a grid of text (header row first, ``None`` = empty cell).

    Returns sheet name -> DataFrame with columns 0..n-1 and one row per spreadsheet row from row 1
    to the last non-empty one.  Raises ``zipfile.BadZipFile``/``KeyError``/``etree.XMLSyntaxError``
    for a damaged workbook (the caller reports them as problems).
    """
    out: dict[str, pd.DataFrame] = {}
    with zipfile.ZipFile(path) as z:
        shared = np.array([], dtype=object)
        if "xl/sharedStrings.xml" in z.namelist():
            sst = str(_SST(etree.fromstring(z.read("xl/sharedStrings.xml"))))
            shared = _unescape(pd.Series(sst.split("\n")[:-1], dtype=object), sst).to_numpy(dtype=object)
        for name, member in _sheet_paths(z).items():
            text = str(_XSLT(etree.fromstring(z.read(member))))
            cells = _lines(text, ["row", "col", "t", "v"])
            if cells.empty:
                out[name] = pd.DataFrame()
                continue
            col = _col_index(cells["col"])
            row = cells["row"].astype(np.int64).to_numpy() - 1
            val = _unescape(cells["v"], text).to_numpy(dtype=object)
            t = cells["t"].to_numpy(dtype=object)
            is_s = t == "s"
            if is_s.any():
                val[is_s] = shared[cells.loc[is_s, "v"].astype(np.int64).to_numpy()]
            is_b = t == "b"
            val[is_b] = np.where(cells.loc[is_b, "v"].to_numpy(dtype=object) == "1", "TRUE", "FALSE")
            is_n = (t == "n") | (t == "")
            if is_n.any():
                num = pd.to_numeric(pd.Series(val[is_n]), errors="coerce").to_numpy(dtype=float)
                integral = np.isfinite(num) & (num == np.round(num)) & (np.abs(num) < 1e15)
                txt = pd.Series(num).astype(str).to_numpy(dtype=object)
                txt[integral] = pd.Series(num[integral].astype(np.int64)).astype(str).to_numpy(dtype=object)
                keep = ~np.isfinite(num)
                txt[keep] = val[is_n][keep]
                val[is_n] = txt
            val[val == ""] = None
            grid = np.full((row.max() + 1, col.max() + 1), None, dtype=object)
            grid[row, col] = val
            out[name] = pd.DataFrame(grid)
    return out
