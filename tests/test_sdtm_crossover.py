"""A two-period crossover (AB / BA) built with build_sdtm from literal raw forms and mapping files
written here: keyed join of raw forms, lookups between SDTM datasets (PCRFTDTC from the same
period's dose), baseline per period (``source: record`` by EPOCH), actual arm from an allocation
record.  Every expected value is worked out by hand in the comments.

The study (all dates 2024, site 101, treatments A and B, one dose per period):

- 1001, allocated AB: consent 02 JAN; period 1 dose A 10 JAN 08:00; period 2 dose B 10 FEB 08:00.
- 1002, allocated BA: consent 03 JAN; period 1 dose B 11 JAN 09:00; period 2 dose A 11 FEB 09:00.
- 1003, planned AB, two allocation records (AB, then BA): consent 04 JAN; period 1 dose A 12 JAN 08:00.

Trial design: elements SCRN (consent), TRT1 (first dose at visit PERIOD 1 DAY 1) and TRT2 (first
dose at PERIOD 2 DAY 1), epochs SCREENING / TREATMENT 1 / TREATMENT 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.paths import default_specs
from cdisc_pipe.raw import RawExport
from cdisc_pipe.sdtm import build_sdtm
from cdisc_pipe.spec import load_specs

FORMS = {
    "enrol": """
SUBJID|RFICDAT    |SEX
1001  |02 JAN 2024|M
1002  |03 JAN 2024|F
1003  |04 JAN 2024|F
""",
    "rand": """
SUBJID|RANDSEQ
1001  |AB
1002  |BA
1003  |AB
""",
    "alloc": """
SUBJID|ALLOCDAT   |ALLOCSEQ
1001  |09 JAN 2024|AB
1002  |10 JAN 2024|BA
1003  |11 JAN 2024|AB
1003  |12 JAN 2024|BA
""",
    "ex": """
SUBJID|FOLDER|PERIOD|EXTRT|EXSTDAT    |EXSTTIM|EXDOSE
1001  |P1D1  |1     |A    |10 JAN 2024|08:00  |10
1001  |P2D1  |2     |B    |10 FEB 2024|08:00  |10
1002  |P1D1  |1     |B    |11 JAN 2024|09:00  |10
1002  |P2D1  |2     |A    |11 FEB 2024|09:00  |10
1003  |P1D1  |1     |A    |12 JAN 2024|08:00  |10
""",
    "pc": """
SUBJID|FOLDER|PCTPT|PCDAT      |PCTIM|PCORRES
1001  |P1D1  |PRE  |10 JAN 2024|07:30|<1
1001  |P1D1  |2H   |10 JAN 2024|10:00|50
1001  |P1D2  |24H  |11 JAN 2024|08:00|10
1001  |P2D1  |PRE  |10 FEB 2024|07:30|<1
1001  |P2D1  |2H   |10 FEB 2024|10:00|45
1002  |P1D1  |2H   |11 JAN 2024|11:00|40
""",
    # the lab form has no date: it comes from the visit form, joined by subject and folder
    # (named VISFOLD on the visit form)
    "lb": """
SUBJID|FOLDER|LBTESTCD|LBORRES
1001  |SCR   |ALT     |20
1001  |P1D1  |ALT     |22
1001  |P1D2  |ALT     |30
1001  |P2D1  |ALT     |25
1001  |P2D2  |ALT     |35
1002  |SCR   |ALT     |18
1002  |P1D1  |ALT     |19
1002  |P1D2  |ALT     |21
1002  |P2D1  |ALT     |
""",
    "visit": """
SUBJID|VISFOLD|VISDAT
1001  |SCR    |05 JAN 2024
1001  |P1D1   |10 JAN 2024
1001  |P1D2   |11 JAN 2024
1001  |P2D1   |10 FEB 2024
1001  |P2D2   |11 FEB 2024
1002  |SCR    |06 JAN 2024
1002  |P1D1   |11 JAN 2024
1002  |P1D2   |12 JAN 2024
1002  |P2D1   |11 FEB 2024
1003  |SCR    |07 JAN 2024
""",
}

MAPPINGS = {
    "trial_design.yaml": """
arms:
  - {armcd: AB, arm: A then B, sequence: [A, B]}
  - {armcd: BA, arm: B then A, sequence: [B, A]}
elements:
  - {etcd: SCRN, element: Screening, epoch: SCREENING, testrl: Informed consent, start: {dataset: DM, variable: RFICDTC}}
  - {etcd: TRT1, element: Period 1 treatment, epoch: TREATMENT 1, testrl: First dose of period 1,
     start: {dataset: EX, variable: EXSTDTC, where: [{field: VISIT, op: eq, value: PERIOD 1 DAY 1}]}}
  - {etcd: TRT2, element: Period 2 treatment, epoch: TREATMENT 2, testrl: First dose of period 2,
     start: {dataset: EX, variable: EXSTDTC, where: [{field: VISIT, op: eq, value: PERIOD 2 DAY 1}]}}
visits:
  - {visitnum: 1, visit: SCREENING, aliases: [SCR]}
  - {visitnum: 2, visit: PERIOD 1 DAY 1, aliases: [P1D1]}
  - {visitnum: 3, visit: PERIOD 1 DAY 2, aliases: [P1D2]}
  - {visitnum: 4, visit: PERIOD 2 DAY 1, aliases: [P2D1]}
  - {visitnum: 5, visit: PERIOD 2 DAY 2, aliases: [P2D2]}
""",
    "dm.yaml": """
dataset: DM
sources:
  - form: enrol
    join: [{form: rand}]
variables:
  SUBJID: {copy: SUBJID}
  SITEID: {copy: SITEID}
  RFICDTC: {dtc: {date: RFICDAT}}
  SEX: {copy: SEX}
  ARMCD: {assign: {field: rand.RANDSEQ, map: {AB: AB, BA: BA}}}
subject_dates:
  RFSTDTC: {pick: first, sources: [{dataset: EX, variable: EXSTDTC}]}
  RFXSTDTC: {pick: first, sources: [{dataset: EX, variable: EXSTDTC}]}
  RFPENDTC: {pick: last, sources: [{dataset: EX, variable: EXSTDTC}, {dataset: LB, variable: LBDTC}, {dataset: PC, variable: PCDTC}]}
actual_arm:
  method: record
  dataset: DS
  where: [{field: DSDECOD, op: eq, value: RANDOMIZED}]
  variable: DSTERM
  codes: {ALLOCATED TO SEQUENCE AB: AB, ALLOCATED TO SEQUENCE BA: BA}
""",
    "ds.yaml": """
dataset: DS
sources: [{form: alloc}]
variables:
  DSTERM: {assign: {field: ALLOCSEQ, map: {AB: ALLOCATED TO SEQUENCE AB, BA: ALLOCATED TO SEQUENCE BA}}}
  DSDECOD: {value: RANDOMIZED}
  DSCAT: {value: PROTOCOL MILESTONE}
  DSSTDTC: {dtc: {date: ALLOCDAT}}
""",
    "ex.yaml": """
dataset: EX
sources: [{form: ex}]
variables:
  EXTRT: {assign: {field: EXTRT, map: {A: DRUG A, B: DRUG B}}}
  EXDOSE: {number: EXDOSE}
  EXDOSU: {value: mg}
  EXSTDTC: {dtc: {date: EXSTDAT, time: EXSTTIM}}
  VISIT: {copy: FOLDER}
visit: {variable: VISIT, date: EXSTDTC}
""",
    "pc.yaml": """
dataset: PC
sources: [{form: pc}]
variables:
  PCTESTCD: {value: DRUGA}
  PCTEST: {value: Drug A}
  PCTPT: {copy: PCTPT}
  PCORRES: {copy: PCORRES}
  PCDTC: {dtc: {date: PCDAT, time: PCTIM}}
  VISIT: {copy: FOLDER}
visit: {variable: VISIT, date: PCDTC}
lookup:
  # every sample: the latest dose on or before it ...
  - dataset: EX
    nearest: {date: PCDTC, other: EXSTDTC}
    copy: {PCRFTDTC: EXSTDTC}
    text: {PCTPTREF: "DOSE OF {EXTRT}"}
  # ... then, where the sample's visit has a dose (pre-dose samples included), that dose
  - dataset: EX
    by: [VISITNUM]
    copy: {PCRFTDTC: EXSTDTC}
    text: {PCTPTREF: "DOSE OF {EXTRT}"}
""",
    "lb.yaml": """
dataset: LB
sources:
  - form: lb
    join: [{form: visit, by: [{field: FOLDER, joined: VISFOLD}], reason: visit without a lab record}]
variables:
  LBTESTCD: {copy: LBTESTCD}
  LBTEST: {value: Alanine Aminotransferase}
  LBORRES: {copy: LBORRES}
  LBDTC: {dtc: {date: visit.VISDAT}}
  VISIT: {copy: FOLDER}
visit: {variable: VISIT, date: LBDTC}
lookup:
  # the first dose of the record's epoch (period), as a working variable
  - {dataset: EX, by: [EPOCH], pick: first, order_by: EXSTDTC, copy: {PERREF: EXSTDTC}, working: true}
baseline: {reference: PERREF, source: record, by: [LBTESTCD, EPOCH]}
""",
}


def _table(text: str) -> pd.DataFrame:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    head = [h.strip() for h in lines[0].split("|")]
    return pd.DataFrame([[c.strip() for c in ln.split("|")] for ln in lines[1:]], columns=head)


def raw(forms: dict[str, str]) -> RawExport:
    out = {}
    for name, text in forms.items():
        df = _table(text)
        df["STUDYID"], df["SITEID"] = "BCMACART01", "101"
        df = df.replace("", np.nan).astype("str")
        df["__row"] = [str(i + 2) for i in range(len(df))]
        out[name] = df
    return RawExport(forms=out, dictionary=pd.DataFrame(), source={k: Path(f"{k}.csv") for k in out})


def write_mappings(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def spec():
    s = load_specs(default_specs())  # the bundled specs; PP (the NCA stage) is not part of this study
    return s.model_copy(update={"datasets": {k: v for k, v in s.datasets.items() if k not in ("PP",)}})


@pytest.fixture(scope="module")
def result(spec, tmp_path_factory):
    folder = write_mappings(tmp_path_factory.mktemp("xover") / "mappings", MAPPINGS)
    return build_sdtm(raw(FORMS), spec, folder)


def subj(n: str) -> str:
    return f"BCMACART01-101-{n}"


def rules(res, rule: str) -> list:
    return [f for f in res.findings if f.rule == rule]


def test_keyed_join_gives_lab_dates_from_the_visit_form(result):
    lb = result.datasets["LB"]
    # FOLDER = VISFOLD: the date of the subject's own visit of that folder
    got = lb.set_index(["USUBJID", "VISIT"])["LBDTC"]
    assert got[(subj("1001"), "PERIOD 2 DAY 1")] == "2024-02-10"
    assert got[(subj("1002"), "PERIOD 1 DAY 2")] == "2024-01-12"
    # 1001 P2D2 (11 FEB) exists; 1003 SCR and 1002's other visits without a lab are listed in traceability
    t = result.traceability
    unused = t[(t["form"] == "visit") & t["source_row"].notna()]
    assert unused["source_row"].tolist() == [11] and unused["reason"].tolist() == ["visit without a lab record"]
    summary = t[(t["form"] == "visit") & t["source_row"].isna()]
    assert summary["records_out"].tolist() == [9] and summary["reason"].iloc[0].startswith("joined by subject, FOLDER")
    assert not rules(result, "SDTM.JOIN.MULTIPLE") and not rules(result, "SDTM.JOIN.NOMATCH")


def test_pcrftdtc_is_the_dose_of_the_same_period(result):
    pc = result.datasets["PC"].sort_values(["USUBJID", "PCDTC"])
    got = list(zip(pc["PCDTC"], pc["PCRFTDTC"], pc["PCTPTREF"]))
    assert got == [
        # P1 pre-dose 07:30: no dose before it (lookup 0 finds none); lookup 1 (same visit) -> the 08:00 dose
        ("2024-01-10T07:30", "2024-01-10T08:00", "DOSE OF DRUG A"),
        # 2 h: both lookups give the 08:00 dose
        ("2024-01-10T10:00", "2024-01-10T08:00", "DOSE OF DRUG A"),
        # 24 h, visit P1D2 has no dose: the latest dose on or before 11 JAN 08:00 (lookup 0) is kept
        ("2024-01-11T08:00", "2024-01-10T08:00", "DOSE OF DRUG A"),
        # P2 pre-dose: lookup 0 gives period 1's dose, lookup 1 (visit P2D1) replaces it with period 2's
        ("2024-02-10T07:30", "2024-02-10T08:00", "DOSE OF DRUG B"),
        ("2024-02-10T10:00", "2024-02-10T08:00", "DOSE OF DRUG B"),
        # 1002 (BA): period 1 is drug B at 09:00
        ("2024-01-11T11:00", "2024-01-11T09:00", "DOSE OF DRUG B"),
    ]
    nomatch = [f for f in rules(result, "SDTM.LOOKUP.NOMATCH") if f.dataset == "PC"]
    # lookup[0]: the P1 pre-dose sample (row 2); lookup[1]: the 24 h sample (row 4), visit without dose
    assert sorted((f.message.split(":")[0].rsplit(" ", 1)[-1], f.extra["rows"][0]) for f in nomatch) == \
        [("lookup[0]", 2), ("lookup[1]", 4)]
    assert all(f.severity == "Notice" and f.dataset == "PC" for f in nomatch)


def test_baseline_per_period_by_epoch_with_a_record_reference(result):
    lb = result.datasets["LB"]
    assert "PERREF" not in lb.columns            # a working variable is not written
    flags = lb.sort_values(["USUBJID", "LBDTC"]).set_index(["USUBJID", "LBDTC"])[["EPOCH", "LBLOBXFL"]]
    got = {k: (v["EPOCH"], None if pd.isna(v["LBLOBXFL"]) else v["LBLOBXFL"]) for k, v in flags.iterrows()}
    assert got == {
        # screening lab: epoch SCREENING has no dose, no reference -> no flag
        (subj("1001"), "2024-01-05"): ("SCREENING", None),
        # no time on the element's start day -> TREATMENT 1; reference 10 JAN 08:00, same date -> before it
        (subj("1001"), "2024-01-10"): ("TREATMENT 1", "Y"),
        (subj("1001"), "2024-01-11"): ("TREATMENT 1", None),      # after the period's dose
        (subj("1001"), "2024-02-10"): ("TREATMENT 2", "Y"),        # period 2 baseline
        (subj("1001"), "2024-02-11"): ("TREATMENT 2", None),
        (subj("1002"), "2024-01-06"): ("SCREENING", None),
        (subj("1002"), "2024-01-11"): ("TREATMENT 1", "Y"),
        (subj("1002"), "2024-01-12"): ("TREATMENT 1", None),
        (subj("1002"), "2024-02-11"): ("TREATMENT 2", None),       # no result: no period 2 baseline
    }
    # the screening labs (raw rows 2 and 7) have no dose in their epoch: reported as a Notice
    [f] = [f for f in rules(result, "SDTM.LOOKUP.NOMATCH") if f.dataset == "LB"]
    assert f.extra["rows"] == [2, 7] and f.variable == "PERREF" and f.severity == "Notice"


def test_actual_arm_from_the_allocation_record(result):
    dm = result.datasets["DM"].set_index("USUBJID")
    assert dm.loc[subj("1001"), "ACTARMCD"] == "AB" and dm.loc[subj("1001"), "ACTARM"] == "A then B"
    assert dm.loc[subj("1002"), "ACTARMCD"] == "BA"
    # 1003: two allocation records with different values -> no actual arm, UNPLANNED TREATMENT
    assert pd.isna(dm.loc[subj("1003"), "ACTARMCD"]) and dm.loc[subj("1003"), "ARMNRS"] == "UNPLANNED TREATMENT"
    [f] = rules(result, "SDTM.ARM.UNPLANNED")
    assert f.usubjid == subj("1003") and f.value == "AB-BA" and "DS.DSTERM" in f.message
    # SE follows the periods: 1001 SCRN 02 JAN, TRT1 10 JAN 08:00, TRT2 10 FEB 08:00
    se = result.datasets["SE"]
    s1 = se[se["USUBJID"] == subj("1001")]
    assert s1["SESTDTC"].tolist() == ["2024-01-02", "2024-01-10T08:00", "2024-02-10T08:00"]


def test_no_unaccounted_raw_records(result):
    assert not result.traceability["reason"].fillna("").str.startswith("UNACCOUNTED").any()


# ------------------------------------------------------------------------------------------------
# mapping errors: one InputError naming file and entry, before any data is read


def _load_problems(spec, tmp_path, **changes) -> str:
    files = dict(MAPPINGS)
    files.update(changes)
    folder = write_mappings(tmp_path / "m", files)
    with pytest.raises(InputError) as exc:
        build_sdtm(raw(FORMS), spec, folder)
    return "\n".join(str(p) for p in exc.value.problems)


def test_unknown_dataset_and_variables_in_a_lookup(spec, tmp_path):
    pc = MAPPINGS["pc.yaml"].replace("dataset: EX\n    nearest", "dataset: XX\n    nearest") \
        .replace("by: [VISITNUM]", "by: [{variable: VISITNUM, other: VISNO}]").replace("DOSE OF {EXTRT}\"}\n", "DOSE OF {EXTRTX}\"}\n")
    text = _load_problems(spec, tmp_path, **{"pc.yaml": pc})
    assert "pc.yaml, lookup[0].dataset: no mapping builds this dataset" in text and "(value: 'XX')" in text
    assert "pc.yaml, lookup[1]: VISNO is not a variable of EX" in text
    assert "pc.yaml, lookup[1]: EXTRTX is not a variable of EX" in text


def test_lookup_targets_and_working_variables_checked(spec, tmp_path):
    lb = MAPPINGS["lb.yaml"].replace("working: true", "working: false")
    text = _load_problems(spec, tmp_path, **{"lb.yaml": lb})
    assert "lb.yaml, lookup[0]: PERREF is not a variable of LB in its spec" in text
    lb = MAPPINGS["lb.yaml"].replace("reference: PERREF", "reference: PERREFX")
    text = _load_problems(spec, tmp_path, **{"lb.yaml": lb})
    assert "lb.yaml, baseline.reference: PERREFX is not a variable of LB" in text


def test_lookup_cycle_is_an_input_error(spec, tmp_path):
    ex = MAPPINGS["ex.yaml"] + "lookup: [{dataset: PC, by: [VISITNUM], copy: {EXLOT: PCTPT}}]\n"
    text = _load_problems(spec, tmp_path, **{"ex.yaml": ex})
    assert "ex.yaml, lookup: the lookups form a cycle: EX looks up PC" in text
    assert "pc.yaml, lookup: the lookups form a cycle: PC looks up EX" in text
    pc = MAPPINGS["pc.yaml"] + "  - {dataset: PC, by: [VISITNUM], copy: {PCTPTREF: PCTPT}}\n"
    text = _load_problems(spec, tmp_path, **{"pc.yaml": pc})
    assert "pc.yaml, lookup[2].dataset: a dataset cannot look up its own records" in text


def test_model_errors_of_a_lookup(spec, tmp_path):
    lb = MAPPINGS["lb.yaml"].replace("pick: first, order_by: EXSTDTC, ", "pick: first, ")
    text = _load_problems(spec, tmp_path, **{"lb.yaml": lb})
    assert "lb.yaml, lookup[0]" in text and "pick and order_by go together" in text
    pc = MAPPINGS["pc.yaml"].replace('"DOSE OF {EXTRT}"}\n  # ...', '"DOSE OF {extrt}"}\n  # ...')
    text = _load_problems(spec, tmp_path, **{"pc.yaml": pc})
    assert "pc.yaml, lookup[0]" in text and "braces must enclose a variable name" in text


def test_record_arm_codes_must_be_arms(spec, tmp_path):
    dm = MAPPINGS["dm.yaml"].replace("ALLOCATED TO SEQUENCE BA: BA}", "ALLOCATED TO SEQUENCE BA: CC}")
    text = _load_problems(spec, tmp_path, **{"dm.yaml": dm})
    assert "dm.yaml, actual_arm.codes.ALLOCATED TO SEQUENCE BA: not an arm of the trial design (value: 'CC')" in text
    dm = MAPPINGS["dm.yaml"].replace("variable: DSTERM", "variable: DSNOPE")
    text = _load_problems(spec, tmp_path, **{"dm.yaml": dm})
    assert "dm.yaml, actual_arm: DSNOPE is not a variable of DS in its spec" in text


def test_join_fields_checked_against_the_forms(spec, tmp_path):
    lb = MAPPINGS["lb.yaml"].replace("joined: VISFOLD", "joined: VISFOLDER")
    text = _load_problems(spec, tmp_path, **{"lb.yaml": lb})
    assert "lb.yaml, sources[0].join[0].by, column VISFOLDER: form visit (joined) has no field VISFOLDER" in text
