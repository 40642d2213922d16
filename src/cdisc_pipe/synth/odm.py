"""Writing a CSV export folder as CDISC ODM-XML 1.3.2 (``export.xml``) and as SAS datasets (one .xpt per form).

Both are built from the CSV files the generator wrote, so every format carries the same data.  The
ODM layout is the one ``cdisc_pipe.raw.odm`` reads (docs/RAW.md, "ODM-XML"): StudyEventOID = FOLDER,
FormOID = form, FormRepeatKey = FORMINST, ItemGroupOID = ``IG.<form>``, ItemGroupRepeatKey = RECPOS
(written when not 0), ItemOID = ``IT.<form>.<field>`` (``IT.ENTRYDTM``/``IT.MODDTM`` shared), dates
as ISO 8601 (partial dates as ``YYYY-MM`` / ``YYYY``), audit timestamps as ``YYYY-MM-DDTHH:MM:SS``.
The XML text is assembled with vectorised string operations (no Python loop per record).
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from cdisc_pipe.synth import design
from cdisc_pipe.synth.export import dictionary_frame

ODM_NAME = "export.xml"
_STRUCT = ("STUDYID", "SITEID", "SUBJID", "FOLDER", "FOLDERNAME", "FORMINST", "RECPOS")
_ODM_TYPE = {"text": "text", "integer": "integer", "float": "float", "date": "partialDate", "time": "partialTime",
             "datetime": "datetime"}
_MON = {m: f"{i + 1:02d}" for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                                                  "NOV", "DEC"])}


def _esc(s: pd.Series) -> pd.Series:
    """XML attribute escaping (tab/newline/CR as character references, so attribute normalisation keeps them)."""
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("\t", "&#9;"), ("\n", "&#10;"),
                 ("\r", "&#13;")):
        if s.str.contains(a, regex=False).any():
            s = s.str.replace(a, b, regex=False)
    return s


def _date_iso(v: pd.Series) -> pd.Series:
    m = v.str.extract(r"^(\d\d|UN) ([A-Z]{3}|UNK) (\d{4})$")
    mon = m[1].map(_MON)
    ok = m[0].notna() & (mon.notna() | (m[1] == "UNK")) & ~((m[0] != "UN") & (m[1] == "UNK"))
    iso = m[2].where(m[1] == "UNK", m[2] + "-" + mon.fillna("") + np.where(m[0] == "UN", "", "-" + m[0].fillna("")))
    return v.where(~ok, iso)


def _read_forms(csv_dir: Path) -> dict[str, pd.DataFrame]:
    return {f.name: pd.read_csv(csv_dir / f"{f.name}.csv", dtype=str, keep_default_na=False, encoding="utf-8")
            for f in design.FORMS}


def _event_rank(keys: pd.DataFrame) -> np.ndarray:
    """Rank of each (subject, folder) so that every form's folder sequence per subject is kept.

    The longest path in the precedence graph of consecutive folders of every form (iterated with
    vectorised maxima; at most as many rounds as a subject has folders)."""
    node = pd.MultiIndex.from_frame(keys[["SUBJID", "FOLDER"]])
    codes, uniq = pd.factorize(node)
    same = (keys["form"].to_numpy()[1:] == keys["form"].to_numpy()[:-1]) & \
           (keys["SUBJID"].to_numpy()[1:] == keys["SUBJID"].to_numpy()[:-1]) & (codes[1:] != codes[:-1])
    src, dst = codes[:-1][same], codes[1:][same]
    rank = np.zeros(len(uniq), dtype=np.int64)
    for _ in range(len(uniq) + 1):
        new = rank.copy()
        np.maximum.at(new, dst, rank[src] + 1)
        if np.array_equal(new, rank):
            break
        rank = new
    return rank[codes]


def _metadata(forms: dict[str, pd.DataFrame], dd: pd.DataFrame) -> str:
    ev = pd.concat([f[["FOLDER", "FOLDERNAME"]].assign(form=name) for name, f in forms.items()], ignore_index=True)
    folders = ev.drop_duplicates("FOLDER")
    out = [f'<Study OID="{design.STUDYID}">',
           (f'<GlobalVariables><StudyName>{design.STUDYID}</StudyName><StudyDescription>Synthetic export (cdisc-pipe '
            f'synth)</StudyDescription><ProtocolName>{design.STUDYID}</ProtocolName></GlobalVariables>')]
    units = sorted({u for u in dd["unit"] if u})
    uid = {u: f"MU.{i + 1}" for i, u in enumerate(units)}
    if units:
        out.append("<BasicDefinitions>" + "".join(
            f'<MeasurementUnit OID="{uid[u]}" Name={quoteattr(u)}><Symbol><TranslatedText>{_x(u)}</TranslatedText>'
            f'</Symbol></MeasurementUnit>' for u in units) + "</BasicDefinitions>")
    out.append('<MetaDataVersion OID="MDV.1" Name="Bundled study eCRF">')
    out.append("<Protocol>" + "".join(f'<StudyEventRef StudyEventOID={quoteattr(e)} Mandatory="No"/>'
                                      for e in folders["FOLDER"]) + "</Protocol>")
    for e, name in zip(folders["FOLDER"], folders["FOLDERNAME"]):
        used = ev.loc[ev["FOLDER"] == e, "form"].drop_duplicates()
        out.append(f'<StudyEventDef OID={quoteattr(e)} Name={quoteattr(name)} Repeating="No" Type="Scheduled">'
                   + "".join(f'<FormRef FormOID={quoteattr(f)} Mandatory="No"/>' for f in used) + "</StudyEventDef>")
    items, seen = [], set()
    for form in design.FORMS:
        spec = dd[(dd["form"] == form.name) & ~dd["field"].isin(_STRUCT)]
        repeating = "Yes" if (forms[form.name]["RECPOS"] != "0").any() else "No"
        out.append(f'<FormDef OID="{form.name}" Name={quoteattr(form.title)} Repeating="Yes">'
                   f'<ItemGroupRef ItemGroupOID="IG.{form.name}" Mandatory="Yes"/></FormDef>')
        refs = []
        for k, r in enumerate(spec.itertuples(index=False), start=1):
            oid = f"IT.{r.field}" if r.field in ("ENTRYDTM", "MODDTM") else f"IT.{form.name}.{r.field}"
            refs.append(f'<ItemRef ItemOID="{oid}" OrderNumber="{k}" Mandatory="{"Yes" if r.required == "Y" else "No"}"/>')
            if oid in seen:
                continue
            seen.add(oid)
            body = f"<Description><TranslatedText>{_x(r.label)}</TranslatedText></Description>"
            if r.unit:
                body += f'<MeasurementUnitRef MeasurementUnitOID="{uid[r.unit]}"/>'
            if r.codelist:
                body += f'<CodeListRef CodeListOID="CL.{r.codelist}"/>'
            if r.note:
                body += f'<Alias Context="note" Name={quoteattr(r.note)}/>'
            items.append(f'<ItemDef OID="{oid}" Name="{r.field}" DataType="{_ODM_TYPE[r.type]}">{body}</ItemDef>')
        out.append(f'<ItemGroupDef OID="IG.{form.name}" Name={quoteattr(form.title)} Repeating="{repeating}">'
                   + "".join(refs) + "</ItemGroupDef>")
    out.extend(items)
    for cl, terms in design.CODELISTS.items():
        out.append(f'<CodeList OID="CL.{cl}" Name="{cl}" DataType="text">' + "".join(
            f'<CodeListItem CodedValue={quoteattr(c)}><Decode><TranslatedText>{_x(d)}</TranslatedText></Decode></CodeListItem>'
            for c, d in terms) + "</CodeList>")
    out.append("</MetaDataVersion></Study>")
    return "\n".join(out) + "\n"


def _x(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _records(form: design.Form, df: pd.DataFrame, dd: pd.DataFrame) -> pd.Series:
    """One ``<ItemGroupData>...</ItemGroupData>`` string per record."""
    spec = dd[(dd["form"] == form.name) & ~dd["field"].isin(_STRUCT)]
    rk = df["RECPOS"]
    body = pd.Series(f'<ItemGroupData ItemGroupOID="IG.{form.name}"', index=df.index) + \
        np.where(rk != "0", ' ItemGroupRepeatKey="' + rk + '"', "") + ">"
    for fld, typ in zip(spec["field"], spec["type"]):
        v = df[fld]
        if typ == "date":
            v = _date_iso(v)
        elif typ == "datetime":
            v = v.str.replace(" ", "T", n=1, regex=False)
        oid = f"IT.{fld}" if fld in ("ENTRYDTM", "MODDTM") else f"IT.{form.name}.{fld}"
        body = body + np.where(df[fld] != "", f'<ItemData ItemOID="{oid}" Value="' + _esc(v) + '"/>', "")
    return body + "</ItemGroupData>\n"


def csv_to_odm(csv_dir: Path, target: Path) -> None:
    """Write the CSV export in ``csv_dir`` as one ODM-XML 1.3.2 file ``target``."""
    dd = dictionary_frame()
    forms = _read_forms(csv_dir)
    recs = []
    for form_no, form in enumerate(design.FORMS):
        df = forms[form.name]
        recs.append(pd.DataFrame({"form": form.name, "form_no": form_no, "pos": np.arange(len(df)),
                                  "SUBJID": df["SUBJID"], "SITEID": df["SITEID"], "FOLDER": df["FOLDER"],
                                  "FORMINST": df["FORMINST"], "xml": _records(form, df, dd)}))
    r = pd.concat(recs, ignore_index=True)
    subj_order = {s: i for i, s in enumerate(pd.unique(forms[design.FORMS[0].name]["SUBJID"]))}
    extra = [s for s in pd.unique(r["SUBJID"]) if s not in subj_order]
    subj_order.update({s: len(subj_order) + i for i, s in enumerate(extra)})
    r["s_rank"] = r["SUBJID"].map(subj_order)
    r["e_rank"] = _event_rank(r)
    r["e_first"] = r.groupby(["SUBJID", "FOLDER"], sort=False).ngroup()
    r["f_first"] = r.groupby(["form_no", "SUBJID", "FOLDER", "FORMINST"], sort=False)["pos"].transform("min")
    r = r.sort_values(["s_rank", "e_rank", "e_first", "form_no", "f_first", "pos"], kind="stable").reset_index(drop=True)
    subj, ev = r["SUBJID"], r["FOLDER"]
    new_s = (subj != subj.shift()).to_numpy()
    new_e = new_s | (ev != ev.shift()).to_numpy()
    new_f = new_e | (r["form"] != r["form"].shift()).to_numpy() | (r["FORMINST"] != r["FORMINST"].shift()).to_numpy()
    first = np.arange(len(r)) == 0
    close = np.where(first, "", np.where(new_s, "</FormData></StudyEventData></SubjectData>\n",
                                         np.where(new_e, "</FormData></StudyEventData>\n", np.where(new_f, "</FormData>\n", ""))))
    open_s = np.where(new_s, '<SubjectData SubjectKey="' + _esc(subj) + '"><SiteRef LocationOID="' + _esc(r["SITEID"]) + '"/>\n', "")
    open_e = np.where(new_e, '<StudyEventData StudyEventOID="' + _esc(ev) + '">\n', "")
    open_f = np.where(new_f, '<FormData FormOID="' + r["form"] + '" FormRepeatKey="' + r["FORMINST"] + '">\n', "")
    body = "".join(pd.Series(close) + open_s + open_e + open_f + r["xml"])
    tail = "</FormData></StudyEventData></SubjectData>\n" if len(r) else ""
    # the export's date is its latest audit date-time (record entry / change): deterministic, and the
    # data cut-off a reader takes from it (cdisc_pipe.cutoff) refuses no collected date
    stamps = [str(v) for f in forms.values() for c in ("ENTRYDTM", "MODDTM") if c in f for v in f[c] if v]
    as_of = max(stamps).replace(" ", "T", 1)[:19] if stamps else "2000-01-01T00:00:00"
    head = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="1.3.2" FileType="Snapshot" '
            f'FileOID="{design.STUDYID}.SYNTH" CreationDateTime="{as_of}" AsOfDateTime="{as_of}" '
            'Originator="cdisc-pipe synth">\n')
    with open(target, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(head)
        fh.write(_metadata(forms, dd))
        fh.write(f'<ClinicalData StudyOID="{design.STUDYID}" MetaDataVersionOID="MDV.1">\n')
        fh.write(body)
        fh.write(tail + "</ClinicalData>\n</ODM>\n")


_XPT_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")


def _fix_xpt_timestamps(path: Path) -> None:
    """pyreadstat stamps the wall clock into the XPORT headers: fix it so the same export gives the same bytes."""
    data = path.read_bytes()
    head_len = 80 * 8  # library header, member header and descriptor records; NAMESTR records follow
    head = _XPT_STAMP.sub(b"01JAN00:00:00:00", data[:head_len])
    path.write_bytes(head + data[head_len:])


def csv_to_sas(csv_dir: Path, out_dir: Path) -> list[Path]:
    """Write the CSV export as SAS XPORT v8 datasets (one ``<form>.xpt`` per form) + ``data_dictionary.csv``.

    Complete dates become numeric SAS dates (``DATE9.``), audit timestamps SAS datetimes
    (``DATETIME19.``), ``HH:MM`` times SAS times (``TIME5.``), integer fields whose text is a plain
    integer become numeric (``F12.``); every other field (partial dates, floats, text) stays character,
    so its text is kept exactly.  Variable labels and the dataset label (form title) are written."""
    import shutil

    import pyreadstat

    dd = dictionary_frame()
    forms = _read_forms(csv_dir)
    written = []
    for form in design.FORMS:
        df = forms[form.name]
        spec = dd[dd["form"] == form.name]
        out = {}
        fmts = {}
        for fld, typ in zip(spec["field"], spec["type"]):
            v = df[fld]
            filled = v != ""
            if typ == "date" and filled.any() and v[filled].str.match(r"^\d\d [A-Z]{3} \d{4}$").all():
                out[fld] = pd.to_datetime(v.where(filled), format="%d %b %Y").dt.date.astype(object).where(filled, None)
                fmts[fld] = "DATE9."
            elif typ == "datetime" and filled.any() and v[filled].str.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$").all():
                out[fld] = pd.to_datetime(v.where(filled), format="%Y-%m-%d %H:%M:%S")
                fmts[fld] = "DATETIME19."
            elif typ == "time" and filled.any() and v[filled].str.match(r"^\d\d:\d\d$").all():
                out[fld] = (pd.to_timedelta(v.where(filled) + ":00").dt.total_seconds()).where(filled)
                fmts[fld] = "TIME5."
            elif typ == "integer" and filled.any() and v[filled].str.match(r"^(0|-?[1-9]\d{0,14})$").all():
                out[fld] = pd.to_numeric(v.where(filled)).astype(float)
                fmts[fld] = "F12."
            else:
                out[fld] = v.astype(object)
        frame = pd.DataFrame(out)
        if frame.empty:  # pyreadstat 1.2.8 looks at row 0 of character columns: an empty form is all numeric
            frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in frame.columns})
        path = out_dir / f"{form.name}.xpt"
        pyreadstat.write_xport(frame, str(path), file_label=form.title[:40], table_name=form.name[:8].upper(),
                               column_labels=list(spec["label"].str.slice(0, 40)), file_format_version=8,
                               variable_format=fmts)
        _fix_xpt_timestamps(path)
        written.append(path)
    shutil.copyfile(csv_dir / "data_dictionary.csv", out_dir / "data_dictionary.csv")
    written.append(out_dir / "data_dictionary.csv")
    return written
