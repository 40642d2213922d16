"""Render the form catalogue of ``docs/RAW.md`` from :mod:`cdisc_pipe.synth.design` (kept in sync by a test)."""

from __future__ import annotations

from cdisc_pipe.synth import design

BEGIN = "<!-- BEGIN GENERATED FORM CATALOGUE (python -m cdisc_pipe.synth.docs) -->"
END = "<!-- END GENERATED FORM CATALOGUE -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_catalogue() -> str:
    """Markdown: one section per form (fields table) and the codelists table."""
    out = [BEGIN, ""]
    visits = {k: ", ".join(v) for k, v in design.FORM_VISITS.items()}
    where = {
        "cbc": visits["cbc"] + " + unscheduled", "chem": visits["chem"] + " + unscheduled",
        "vs": visits["vs"] + " + unscheduled", "ecog": visits["ecog"], "pe": visits["pe"],
        "lbcent": f"cytokines: {visits['cyto']}; disease markers: {visits['disease']} + progression visit",
        "bm": visits["bm"], "mrd": visits["mrd"],
        "pc": f"blood: {visits['pcpb']} (D0 = pre-infusion); bone marrow: {visits['pcbm']}",
        "rs": visits["rs"] + " + unscheduled progression visit",
        "enrol": "SCR", "dm": "SCR", "mmhist": "SCR", "priortx": "PTXLOG", "mh": "MHLOG", "aph": "APH",
        "bridge": "BRLOG", "ld": "LD", "cart": "D0 (APH for subjects never infused)", "ae": "AELOG", "crs": "AELOG",
        "icans": "AELOG", "cm": "CMLOG", "prog": "the visit where progression was assessed", "subtx": "SUBLOG",
        "death": "EVENTS", "eos": "EVENTS", "surv": "SFU01..SFU08", "visit": "every scheduled and unscheduled folder",
    }
    for form in design.FORMS:
        out += [f"### `{form.name}` - {form.title}", "",
                f"File `{form.name}.csv`; {form.structure}; folders: {where.get(form.name, '-')}.", "",
                "| field | label | type | codelist | req | unit / note |", "|---|---|---|---|---|---|"]
        for f in form.fields:
            note = "; ".join(x for x in (f.unit, f.note) if x)
            out.append(f"| `{f.name}` | {_cell(f.label)} | {f.type} | {f.codelist or ''} | {'Y' if f.required else ''} "
                       f"| {_cell(note)} |")
        out.append("")
    out += ["### Codelists (code = decode)", "", "| codelist | codes |", "|---|---|"]
    for name, items in design.CODELISTS.items():
        out.append(f"| {name} | {_cell('; '.join(f'`{c}` = {d}' for c, d in items))} |")
    out += ["", "### Scheduled folders", "", "| folder | name | protocol day | window (days) |", "|---|---|---|---|"]
    for v in design.VISITS:
        day = {"scr": "screening", "aph": "apheresis"}.get(v.anchor, str(v.day))
        out.append(f"| {v.folder} | {v.name} | {day} | +/-{v.window} |")
    from cdisc_pipe.synth.faults import FAULTS

    out += ["", "### Faulty-export catalogue (`cdisc_pipe.synth.faults.FAULTS`)", "",
            "| id | what it simulates | stage | expected outcome |", "|---|---|---|---|"]
    for f in FAULTS:
        out.append(f"| `{f.id}` | {_cell(f.description)} | {f.stage} | {f.outcome} |")
    out += ["", END]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(render_catalogue())
