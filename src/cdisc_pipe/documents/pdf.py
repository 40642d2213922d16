"""PDF rendering with reportlab (platypus): the annotated CRF and the reviewer's guides.

Deterministic: reportlab's ``invariant`` mode (document id from the content, no wall clock) and the
spec's metadata date as CreationDate/ModDate, so the same model gives the same bytes.  Text is drawn
as text in the standard Helvetica fonts (searchable, nothing embedded); every text is XML-escaped
for reportlab's Paragraph markup and reduced to the characters those fonts carry (WinAnsi; others
become ``?``).  Page numbers a document prints (tables of contents, "page N of M") come from a
first rendering; the second must lay out identically, which is checked.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import letter
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch
from reportlab.lib.utils import simpleSplit
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
)
from reportlab.platypus import Table as RlTable
from reportlab.platypus import TableStyle

from cdisc_pipe.documents.acrf import AnnotatedCrf, CrfField, CrfForm, anchor, domain_box
from cdisc_pipe.documents.model import TO_WRITE, Bullets, Document, Para, Table, ToWrite, numbered

PAGE = letter  # FDA submissions: US Letter
MARGIN = 0.6 * inch
WIDTH = PAGE[0] - 2 * MARGIN
FONT, BOLD, ITALIC = "Helvetica", "Helvetica-Bold", "Helvetica-Oblique"

# aCRF colours (CDISC MSG practice: a light background per domain, the same for its annotations)
DOMAIN_COLOURS = ["#BFFFFF", "#FFFF96", "#96FF96", "#FFBE9B", "#E1C8FF", "#FFC8E6", "#C8DCFF", "#DCDCB4"]
NOT_SUBMITTED_COLOUR = "#E6E6E6"
TO_WRITE_COLOUR = "#FFF2A8"

STYLES = {
    "title": ParagraphStyle("title", fontName=BOLD, fontSize=20, leading=26, alignment=TA_CENTER, spaceAfter=12),
    "subtitle": ParagraphStyle("subtitle", fontName=FONT, fontSize=13, leading=18, alignment=TA_CENTER, spaceAfter=6),
    "h0": ParagraphStyle("h0", fontName=BOLD, fontSize=15, leading=19, spaceBefore=10, spaceAfter=6),
    "h1": ParagraphStyle("h1", fontName=BOLD, fontSize=12.5, leading=16, spaceBefore=8, spaceAfter=4),
    "h2": ParagraphStyle("h2", fontName=BOLD, fontSize=11, leading=14, spaceBefore=6, spaceAfter=3),
    "body": ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=12.5, spaceAfter=5),
    "small": ParagraphStyle("small", fontName=FONT, fontSize=8, leading=10),
    "cell": ParagraphStyle("cell", fontName=FONT, fontSize=7.8, leading=9.6),
    "cellright": ParagraphStyle("cellright", fontName=FONT, fontSize=7.8, leading=9.6, alignment=TA_RIGHT),
    "cellhead": ParagraphStyle("cellhead", fontName=BOLD, fontSize=7.8, leading=9.6),
    "ann": ParagraphStyle("ann", fontName=BOLD, fontSize=8, leading=9.8),
    "prompt": ParagraphStyle("prompt", fontName=FONT, fontSize=9, leading=11.2),
    "fieldname": ParagraphStyle("fieldname", fontName=FONT, fontSize=6.8, leading=8.4, textColor=colors.HexColor("#666666")),
    "todo": ParagraphStyle("todo", fontName=FONT, fontSize=9.5, leading=12.5, backColor=colors.HexColor(TO_WRITE_COLOUR),
                           borderColor=colors.HexColor("#C9A800"), borderWidth=0.6, borderPadding=4, spaceBefore=4,
                           spaceAfter=9),
    "bullet": ParagraphStyle("bullet", fontName=FONT, fontSize=9.5, leading=12.5, leftIndent=12, bulletIndent=2),
}


def plain(text: object) -> str:
    """Text reduced to what the standard fonts carry (WinAnsi), then XML-escaped for Paragraph."""
    s = "" if text is None else str(text)
    s = s.encode("cp1252", errors="replace").decode("cp1252")
    return escape(s)


def para(text: object, style: str = "body", bold_prefix: str | None = None) -> Paragraph:
    body = plain(text)
    if bold_prefix:
        body = f"<b>{plain(bold_prefix)}</b> {body}"
    return Paragraph(body, STYLES[style])


def pdf_date(metadata_datetime: str) -> str:
    """``2025-06-30T00:00:00`` -> ``D:20250630000000+00'00'`` (PDF date string)."""
    digits = "".join(ch for ch in metadata_datetime if ch.isdigit())[:14].ljust(14, "0")
    return f"D:{digits}+00'00'"


class _Mark(Flowable):
    """A zero-size flowable that records the page it lands on (and optionally a bookmark)."""

    def __init__(self, key: str, title: str | None = None, level: int = 0, bookmark: bool = False,
                 extra: tuple[str, ...] = ()):
        super().__init__()
        self.key, self.title, self.level = key, title, level
        self.bookmark = bookmark or title is not None
        self.extra = extra  # more destination names on the same spot (outline entries elsewhere)

    def wrap(self, availWidth, availHeight):  # noqa: N803 - reportlab's signature
        return 0, 0

    def draw(self) -> None:
        pass


def _lines(text: str, font: str, size: float, width: float) -> list[str]:
    """Word-wrapped lines (reportlab's simpleSplit; a word longer than the width is cut)."""
    out: list[str] = []
    for para_ in (plain_outline(text).split("\n") or [""]):
        out += simpleSplit(para_, font, size, max(width, 10)) or [""]
    return out


class TextTable(Flowable):
    """A table of plain-text cells drawn straight on the canvas: word-wrapped, split between rows
    across pages with the header repeated.  Much faster than a Table of Paragraphs, which matters
    for the hundreds of rows of the guides and the CRF (one pipeline run renders them all)."""

    def __init__(self, header: tuple[str, ...] | None, rows: list[tuple[str, ...]], widths: list[float],
                 size: float = 7.8, align: tuple[str, ...] = (), grid: bool = True,
                 header_fill: str = "#DDE4EE"):
        super().__init__()
        self.header, self.rows, self.widths = header, rows, widths
        self.size, self.leading = size, size * 1.25
        self.align = align
        self.grid = grid
        self.header_fill = header_fill
        self._heights: list[float] | None = None
        self._cells: list[list[list[str]]] | None = None
        self._head: list[list[str]] = []
        self._head_h = 0.0

    def _layout(self) -> None:
        if self._cells is not None:
            return
        pad = 3
        self._cells = [[_lines(c, FONT, self.size, w - 2 * pad) for c, w in zip(r, self.widths)] for r in self.rows]
        self._heights = [max(len(c) for c in row) * self.leading + 2 * pad - 1 for row in self._cells]
        if self.header:
            self._head = [_lines(c, BOLD, self.size, w - 2 * pad) for c, w in zip(self.header, self.widths)]
            self._head_h = max(len(c) for c in self._head) * self.leading + 2 * pad - 1

    def wrap(self, availWidth, availHeight):  # noqa: N803 - reportlab's signature
        self._layout()
        return sum(self.widths), self._head_h + sum(self._heights)

    def split(self, availWidth, availHeight):  # noqa: N803
        self._layout()
        used, n = self._head_h, 0
        for h in self._heights:
            if used + h > availHeight:
                break
            used += h
            n += 1
        if n == 0 or n == len(self.rows):
            return []
        first = TextTable(self.header, self.rows[:n], self.widths, self.size, self.align, self.grid, self.header_fill)
        rest = TextTable(self.header, self.rows[n:], self.widths, self.size, self.align, self.grid, self.header_fill)
        return [first, rest]

    def _row(self, canv, y: float, cells: list[list[str]], height: float, font: str, fill: str | None) -> None:
        x = 0.0
        for i, (lines, w) in enumerate(zip(cells, self.widths)):
            if fill:
                canv.setFillColor(colors.HexColor(fill))
                canv.rect(x, y - height, w, height, stroke=0, fill=1)
            canv.setFillColor(colors.black)
            canv.setFont(font, self.size)
            ty = y - 3 - self.size
            right = i < len(self.align) and self.align[i] == "right"
            for line in lines:
                if right:
                    canv.drawRightString(x + w - 3, ty, line)
                else:
                    canv.drawString(x + 3, ty, line)
                ty -= self.leading
            x += w
        canv.setStrokeColor(colors.HexColor("#999999" if self.grid else "#CCCCCC"))
        canv.setLineWidth(0.4 if self.grid else 0.3)
        canv.line(0, y - height, sum(self.widths), y - height)
        if self.grid:
            x = 0.0
            for w in [0.0] + list(self.widths):
                x += w
                canv.line(x, y, x, y - height)

    def draw(self) -> None:
        canv = self.canv
        if getattr(canv, "_cdisc_dry", False):
            return
        canv.saveState()
        y = self._head_h + sum(self._heights)
        if self.header:
            if self.grid:
                canv.setStrokeColor(colors.HexColor("#999999"))
                canv.setLineWidth(0.4)
                canv.line(0, y, sum(self.widths), y)
            self._row(canv, y, self._head, self._head_h, BOLD, self.header_fill)
            y -= self._head_h
        for cells, h in zip(self._cells, self._heights):
            self._row(canv, y, cells, h, FONT, None)
            y -= h
        canv.restoreState()


class _End(_Mark):
    """The last flowable: the outline entries that point back into the document, the page count."""

    def __init__(self):
        super().__init__("end")


@dataclass
class _Layout:
    """What one rendering found: the page of every mark, the number of pages, and bookmarks."""

    pages: dict[str, int] = field(default_factory=dict)
    page_count: int = 0


class _Doc(BaseDocTemplate):
    def __init__(self, buffer, *, title: str, author: str | None, subject: str, date: str,
                 header: Callable[[object, "_Doc"], None], outline: list[tuple[str, str, int]]):
        super().__init__(buffer, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN + 14,
                         bottomMargin=MARGIN + 10, title=title, author=author or "", subject=subject,
                         creator="cdisc-pipe", producer="cdisc-pipe (ReportLab)", invariant=1)
        frame = Frame(self.leftMargin, self.bottomMargin, self.width, self.height, id="body",
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
        self.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=self._on_page)])
        self.layout = _Layout()
        self._date = date
        self._header = header
        self._outline = outline  # (title, key, level) of entries added once the document ends
        self.state: dict[str, object] = {}
        self.dry = False

    def beforeDocument(self) -> None:  # noqa: N802 - reportlab's hook
        self.canv._cdisc_dry = self.dry  # the layout pass: custom flowables skip drawing

    def _on_page(self, canvas, doc) -> None:
        if doc.page == 1:
            canvas.setDateFormatter(lambda *a: self._date)
        if not self.dry:
            self._header(canvas, doc)

    def afterFlowable(self, flowable) -> None:  # noqa: N802 - reportlab's hook
        if isinstance(flowable, _End):
            for title, key, level in self._outline:
                self.canv.addOutlineEntry(plain_outline(title), key, level=level, closed=True)
            self.layout.page_count = self.page
        elif isinstance(flowable, FieldRow):  # the row itself: a mark before it may stay on the page before
            self.layout.pages[flowable.key] = self.page
        elif isinstance(flowable, _Mark):
            self.layout.pages.setdefault(flowable.key, self.page)
            if flowable.bookmark:
                self.canv.bookmarkPage(flowable.key)
            for k in flowable.extra:
                self.canv.bookmarkPage(k)
            if flowable.title is not None:
                self.canv.addOutlineEntry(plain_outline(flowable.title), flowable.key, level=flowable.level,
                                          closed=flowable.level >= 1)


def plain_outline(text: str) -> str:
    return str(text).encode("cp1252", errors="replace").decode("cp1252")


def _render(story_fn: Callable[[dict[str, int], int], list], *, title: str, author: str | None, subject: str,
            date: str, header: Callable, outline_fn: Callable[[dict[str, int]], list[tuple[str, str, int]]]
            ) -> tuple[bytes, _Layout]:
    """Render twice: the first pass finds the pages, the second prints them; both must agree."""
    pages: dict[str, int] = {}
    count = 0
    for attempt in range(4):
        buf = io.BytesIO()
        doc = _Doc(buf, title=title, author=author, subject=subject, date=pdf_date(date), header=header,
                   outline=outline_fn(pages))
        doc.state["page_count"] = count
        # The first pass only lays out (nothing drawn, nothing saved): it finds the pages to print.
        doc.dry = attempt == 0
        doc._doSave = 0 if doc.dry else 1
        doc.build(story_fn(pages, count) + [_End()])
        if not doc.dry and doc.layout.pages == pages and doc.layout.page_count == count:
            return buf.getvalue(), doc.layout
        pages, count = dict(doc.layout.pages), doc.layout.page_count
    raise RuntimeError(f"{title}: the layout did not settle after 4 renderings")


# ------------------------------------------------------------------------------------------------
# annotated CRF


def _colours(form: CrfForm) -> dict[str, str]:
    out: dict[str, str] = {}
    for ds, _ in form.domains:
        out[ds] = DOMAIN_COLOURS[len(out) % len(DOMAIN_COLOURS)]
    for f in form.fields:
        for a in f.annotations:
            if a.domain and a.domain not in out:
                out[a.domain] = DOMAIN_COLOURS[len(out) % len(DOMAIN_COLOURS)]
    for a in form.constants:
        if a.domain and a.domain not in out:
            out[a.domain] = DOMAIN_COLOURS[len(out) % len(DOMAIN_COLOURS)]
    return out


def _boxes(items: list[tuple[str, str]], width: float, style: str = "ann") -> RlTable:
    """Annotation boxes stacked in one column: (text, background colour)."""
    t = RlTable([[para(text, style)] for text, _ in items], colWidths=[width])
    cmds = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 3),
            ("RIGHTPADDING", (0, 0), (-1, -1), 3), ("TOPPADDING", (0, 0), (-1, -1), 1.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5)]
    for i, (_, colour) in enumerate(items):
        cmds += [("BACKGROUND", (0, i), (0, i), colors.HexColor(colour)),
                 ("BOX", (0, i), (0, i), 0.6, colors.HexColor("#555555"))]
    t.setStyle(TableStyle(cmds))
    return t


def _response_lines(f: CrfField) -> list[str]:
    if f.choices:
        return [f"[ ]  {decode}  [{code}]" for code, decode in f.choices]
    blank = {"date": "__ __ / ___ / ____   (DD MMM YYYY)", "datetime": "____-__-__ __:__:__",
             "time": "__ : __   (HH:MM)", "integer": "__________", "float": "________ . ____"}
    body = blank.get(f.response_type, "________________________________")
    return [body + (f"  {f.unit}" if f.unit else "")]


COLS = (0.36, 0.33, 0.31)


class FieldRow(Flowable):
    """One question of the CRF: prompt and field name | response (choices, type) | annotation boxes,
    drawn straight on the canvas (text stays text: searchable)."""

    PAD = 3

    def __init__(self, key: str, f: CrfField, items: list[tuple[str, str]]):
        super().__init__()
        self.key, self.field, self.items = key, f, items
        w = [WIDTH * c for c in COLS]
        self.w = w
        p = self.PAD
        self.prompt = _lines(f.prompt, FONT, 9, w[0] - 2 * p)
        resp = []
        for line in _response_lines(f):
            resp += _lines(line, FONT, 8, w[1] - 2 * p)
        self.response = resp
        kind = f"{f.response_type}{', required' if f.required else ''}" + (f"; {f.note}" if f.note else "")
        self.kind = _lines(kind, FONT, 6.5, w[1] - 2 * p)
        self.boxes = [(_lines(text, BOLD, 8, w[2] - 4 * p), colour) for text, colour in items]
        left = len(self.prompt) * 11.2 + 9
        mid = len(self.response) * 10 + len(self.kind) * 8
        right = sum(len(lines) * 9.8 + 5 for lines, _ in self.boxes) + 2 * (len(self.boxes) - 1)
        self.height = max(left, mid, right) + 2 * p + 2

    def wrap(self, availWidth, availHeight):  # noqa: N803 - reportlab's signature
        return WIDTH, self.height

    def draw(self) -> None:
        c, p, w, h = self.canv, self.PAD, self.w, self.height
        if getattr(c, "_cdisc_dry", False):
            return
        c.saveState()
        y = h - p - 9
        c.setFont(FONT, 9)
        for line in self.prompt:
            c.drawString(p, y, line)
            y -= 11.2
        c.setFont(FONT, 6.8)
        c.setFillColor(colors.HexColor("#666666"))
        c.drawString(p, y + 2, plain_outline(self.field.name))
        c.setFillColor(colors.black)
        x, y = w[0] + p, h - p - 8
        c.setFont(FONT, 8)
        for line in self.response:
            c.drawString(x, y, line)
            y -= 10
        c.setFont(FONT, 6.5)
        c.setFillColor(colors.HexColor("#666666"))
        for line in self.kind:
            c.drawString(x, y, line)
            y -= 8
        x, top = w[0] + w[1] + p, h - p
        c.setStrokeColor(colors.HexColor("#555555"))
        c.setLineWidth(0.6)
        for lines, colour in self.boxes:
            bh = len(lines) * 9.8 + 5
            c.setFillColor(colors.HexColor(colour))
            c.rect(x, top - bh, w[2] - 2 * p, bh, stroke=1, fill=1)
            c.setFillColor(colors.black)
            c.setFont(BOLD, 8)
            ty = top - 2.5 - 8
            for line in lines:
                c.drawString(x + p, ty, line)
                ty -= 9.8
            top -= bh + 2
        c.setStrokeColor(colors.HexColor("#BBBBBB"))
        c.setLineWidth(0.4)
        c.line(0, 0, WIDTH, 0)
        c.restoreState()


def _field_row(form: CrfForm, f: CrfField, colours: dict[str, str], cache: dict) -> list:
    key = (form.name, f.name)
    if key not in cache:  # laid out once, drawn by every pass (a FieldRow keeps no drawing state)
        items = [(a.text, NOT_SUBMITTED_COLOUR if a.not_submitted else colours.get(a.domain, DOMAIN_COLOURS[0]))
                 for a in f.annotations]
        cache[key] = FieldRow(anchor("field", form.name, f.name), f, items)
    row = cache[key]
    row.__dict__.pop("_postponed", None)  # the layout state platypus leaves on a flowable it moved on
    return [row]


def _form_story(form: CrfForm, index: int, extra: tuple[str, ...] = (), cache: dict | None = None) -> list:
    colours = _colours(form)
    key = anchor("form", form.name)
    story: list = [PageBreak(), _Mark(key, f"{index}. {form.title}", level=1, extra=extra)]
    story.append(Paragraph(f"{plain(form.title)} <font size='9' color='#666666'>(form {plain(form.name)})</font>",
                           STYLES["h0"]))
    if form.domains:
        boxes = RlTable([[para(domain_box(ds, label), "ann") for ds, label in form.domains]],
                        hAlign="LEFT")
        cmds = [("LEFTPADDING", (0, 0), (-1, -1), 5), ("RIGHTPADDING", (0, 0), (-1, -1), 5)]
        for i, (ds, _) in enumerate(form.domains):
            cmds += [("BACKGROUND", (i, 0), (i, 0), colors.HexColor(colours[ds])),
                     ("BOX", (i, 0), (i, 0), 0.8, colors.HexColor("#333333"))]
        boxes.setStyle(TableStyle(cmds))
        story += [boxes, Spacer(1, 4)]
    else:
        story += [_boxes([("[NOT SUBMITTED] form not mapped to SDTM", NOT_SUBMITTED_COLOUR)], WIDTH * 0.5), Spacer(1, 4)]
    if form.constants:
        consts = [(a.text, colours.get(a.domain, DOMAIN_COLOURS[0])) for a in form.constants]
        story += [para("Every record from this form:", "small"), _boxes(consts, WIDTH * 0.62), Spacer(1, 3)]
    for s in form.selections:
        story.append(para(s, "small"))
    if form.visits:
        story.append(para(", ".join(form.visits), "small", bold_prefix="Collected at:"))
    story.append(Spacer(1, 5))
    head = RlTable([[para("Question", "cellhead"), para("Response", "cellhead"), para("SDTM annotation", "cellhead")]],
                   colWidths=[WIDTH * c for c in COLS])
    head.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#DDDDDD")),
                              ("LEFTPADDING", (0, 0), (-1, -1), 3)]))
    story.append(head)
    for f in form.fields:
        story += _field_row(form, f, colours, {} if cache is None else cache)
    return story


def _toc_table(rows: list[tuple[str, str, int | str]], widths: tuple[float, ...]) -> TextTable:
    return TextTable(None, [(a, b, str(c)) for a, b, c in rows], [WIDTH * w for w in widths],
                     align=("left", "left", "right"), grid=False)


def _legend(form_colour: str) -> RlTable:
    rows = [("AE (Adverse Events)", form_colour, "Domain box: the SDTM dataset(s) the form's records go to"),
            ("AETERM", form_colour, "The variable a field is submitted in"),
            ("AEREL when ... / when EXYN = 'Y' then EX", form_colour, "Condition on the record or on the form's records"),
            ("SUPPAE.QVAL when QNAM = 'AEDLT'", form_colour, "A supplemental qualifier"),
            ("LBORRES when LBTESTCD = 'WBC'", form_colour, "A result of a findings form, per test"),
            ("[NOT SUBMITTED] reason", NOT_SUBMITTED_COLOUR, "Collected but not in the SDTM datasets")]
    data = [[para(a, "ann"), para(c, "cell")] for a, _, c in rows]
    t = RlTable(data, colWidths=[WIDTH * 0.42, WIDTH * 0.58], hAlign="LEFT")
    cmds = [("VALIGN", (0, 0), (-1, -1), "MIDDLE")]
    for i, (_, colour, _) in enumerate(rows):
        cmds += [("BACKGROUND", (0, i), (0, i), colors.HexColor(colour)), ("BOX", (0, i), (0, i), 0.6, colors.grey)]
    t.setStyle(TableStyle(cmds))
    return t


def render_acrf(crf: AnnotatedCrf) -> tuple[bytes, dict[tuple[str, str], int]]:
    """The aCRF PDF and the page each field's row (its annotations) lands on: ``(form, field) -> page``;
    ``(form, "")`` is the page the form starts on (its domain boxes and constants).

    Bookmarks: "Forms" (one per form, in dictionary order) and "Visits" (each TV visit, then
    unscheduled and not-in-plan groups, with the forms collected there)."""
    index = {f.name: i for i, f in enumerate(crf.forms, start=1)}

    def outline(pages: dict[str, int]) -> list[tuple[str, str, int]]:
        out = []
        if crf.visits:
            out.append(("Visits", anchor("visits"), 0))
            for i, v in enumerate(crf.visits):
                out.append((v.title, anchor("visit", str(i)), 1))
                out += [(f"{index[n]}. {_form_title(crf, n)}", anchor("visit", str(i), n), 2) for n in v.forms]
        return out

    extra: dict[str, list[str]] = {}  # form -> the visit bookmarks that point at its first page
    for i, v in enumerate(crf.visits):
        extra.setdefault(v.forms[0], []).append(anchor("visit", str(i)))
        for n in v.forms:
            extra.setdefault(n, []).append(anchor("visit", str(i), n))

    row_cache: dict = {}

    def story(pages: dict[str, int], count: int) -> list:
        s: list = [_Mark(anchor("cover"), "Annotated CRF", level=0),
                   Spacer(1, 1.4 * inch), para(crf.title, "title"),
                   para(f"Study {crf.study}", "subtitle")]
        if crf.sponsor:
            s.append(para(crf.sponsor, "subtitle"))
        s += [para(f"Metadata date {crf.date[:10]}", "subtitle"), Spacer(1, 0.3 * inch),
              para("The blank CRF of every form of the EDC export's data dictionary, each field annotated with the "
                   "SDTM variable(s) it is submitted in, as the mappings of this submission build them. "
                   "Annotations are text: search for a variable name (e.g. AETERM) to find its field.", "body"),
              _legend(DOMAIN_COLOURS[0]), PageBreak(),
              _Mark(anchor("toc"), "Table of contents", level=0), para("Forms", "h0")]
        rows = [(f"{index[f.name]}. {f.title}", ", ".join(ds for ds, _ in f.domains) or "[NOT SUBMITTED]",
                 pages.get(anchor("form", f.name), 0)) for f in crf.forms]
        s.append(_toc_table(rows, (0.62, 0.26, 0.12)))
        if crf.visits:
            s += [CondPageBreak(2 * inch), _Mark(anchor("visits"), bookmark=True), para("Forms by visit", "h0")]
            vrows = [(v.title, ", ".join(f"{n} (p. {pages.get(anchor('form', n), 0)})" for n in v.forms))
                     for v in crf.visits]
            s.append(TextTable(None, vrows, [WIDTH * 0.3, WIDTH * 0.7], grid=False))
        s.append(_Mark(anchor("forms"), "Forms", level=0))
        for f in crf.forms:
            s += _form_story(f, index[f.name], tuple(extra.get(f.name, ())), row_cache)
        return s

    def header(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        canvas.setFillColor(colors.HexColor("#444444"))
        canvas.drawString(MARGIN, PAGE[1] - MARGIN + 4, f"Study {plain_outline(crf.study)} - Annotated CRF")
        total = doc.state.get("page_count") or 0
        canvas.drawRightString(PAGE[0] - MARGIN, MARGIN - 2, f"Page {doc.page}" + (f" of {total}" if total else ""))
        canvas.restoreState()

    data, layout = _render(story, title=crf.title, author=crf.sponsor, subject=f"Annotated CRF, study {crf.study}",
                           date=crf.date, header=header, outline_fn=outline)
    field_pages: dict[tuple[str, str], int] = {}
    for form in crf.forms:
        field_pages[(form.name, "")] = layout.pages[anchor("form", form.name)]  # title, domain boxes, constants
        for f in form.fields:
            field_pages[(form.name, f.name)] = layout.pages[anchor("field", form.name, f.name)]
    return data, field_pages


def _form_title(crf: AnnotatedCrf, name: str) -> str:
    return next((f.title for f in crf.forms if f.name == name), name)


# ------------------------------------------------------------------------------------------------
# reviewer's guides


def _table(t: Table) -> list:
    widths = t.widths or tuple(1.0 for _ in t.header)
    total = sum(widths)
    out: list = []
    if t.caption:
        out.append(para(t.caption, "small", bold_prefix="Table:"))
    out += [TextTable(t.header, [tuple(r) for r in t.rows], [WIDTH * w / total for w in widths]), Spacer(1, 6)]
    return out


def _blocks(blocks: list) -> list:
    out: list = []
    for b in blocks:
        if isinstance(b, Para):
            out.append(para(b.text))
        elif isinstance(b, ToWrite):
            out.append(para(b.text, "todo", bold_prefix=f"{TO_WRITE}:"))
        elif isinstance(b, Bullets):
            out += [Paragraph(plain(i), STYLES["bullet"], bulletText="-") for i in b.items]
            out.append(Spacer(1, 4))
        elif isinstance(b, Table):
            out += _table(b)
        else:  # pragma: no cover - the model has no other block
            raise TypeError(f"unknown block {type(b).__name__}")
    return out


def render_document(doc: Document) -> bytes:
    """A reviewer's guide as PDF: title page, table of contents (with pages), numbered sections,
    one bookmark per section."""
    secs = numbered(doc.sections)

    def story(pages: dict[str, int], count: int) -> list:
        s: list = [_Mark(anchor("cover"), doc.title, level=0), Spacer(1, 1.6 * inch), para(doc.title, "title"),
                   para(doc.subtitle, "subtitle"), para(f"Study {doc.study}", "subtitle")]
        if doc.sponsor:
            s.append(para(doc.sponsor, "subtitle"))
        s += [para(f"Metadata date {doc.date[:10]}", "subtitle"), Spacer(1, 0.4 * inch)]
        s += _blocks(doc.front)
        s += [PageBreak(), _Mark(anchor("toc"), "Contents", level=0), para("Contents", "h0")]
        rows = [(num, ("" if "." not in num else "      ") + s_.title, str(pages.get(anchor("sec", num), 0)))
                for num, level, s_ in secs if level <= 1]
        s += [TextTable(None, rows, [WIDTH * 0.1, WIDTH * 0.78, WIDTH * 0.12], size=9,
                        align=("left", "left", "right"), grid=False), PageBreak()]
        for num, level, sec in secs:
            style = "h0" if level == 0 else "h1" if level == 1 else "h2"
            heading = para(f"{num} {sec.title}", style)
            mark = _Mark(anchor("sec", num), f"{num} {sec.title}", level=min(level, 2))
            if level == 0 and num != "1":
                s.append(CondPageBreak(3 * inch))
            s.append(KeepTogether([mark, heading] + _blocks(sec.blocks[:1])))
            s += _blocks(sec.blocks[1:])
        return s

    def header(canvas, d) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        canvas.setFillColor(colors.HexColor("#444444"))
        canvas.drawString(MARGIN, PAGE[1] - MARGIN + 4, plain_outline(f"Study {doc.study} - {doc.title}"))
        canvas.drawRightString(PAGE[0] - MARGIN, PAGE[1] - MARGIN + 4, "DRAFT")
        total = d.state.get("page_count") or 0
        canvas.drawRightString(PAGE[0] - MARGIN, MARGIN - 2, f"Page {d.page}" + (f" of {total}" if total else ""))
        canvas.restoreState()

    data, _ = _render(story, title=f"{doc.title} - Study {doc.study}", author=doc.sponsor, subject=doc.subtitle,
                      date=doc.date, header=header, outline_fn=lambda pages: [])
    return data
