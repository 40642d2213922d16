"""Trial design datasets (TS, TA, TE, TV, TI) from ``mappings/trial_design.yaml``, and SE from data.

The trial design is protocol data, not raw data: it lives in the mappings folder as a small,
validated YAML table.  SE (subject elements) is built from each subject's dates: every element
declares where its start date comes from (a DM reference date, the first record of another dataset
matching conditions, optionally offset by whole days); an element ends where the next one starts;
the last one ends at RFPENDTC.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.sdtm.algorithms import evaluate
from cdisc_pipe.sdtm.dates import complete_date
from cdisc_pipe.sdtm.mapping import Condition
from cdisc_pipe.spec.load import validate_model


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Arm(_M):
    """A planned arm (TA/DM ARMCD, ARM) and what identifies it in the treatment actually received
    (DM mapping ``actual_arm``): its planned ``dose`` (method ``dose``) or its ``sequence`` of
    treatments, one per period (method ``sequence``, e.g. ``[A, B]``)."""

    armcd: str
    arm: str
    dose: float | None = None  # planned dose of the arm, in the unit of the dose variable
    sequence: list[str] = Field(default_factory=list)  # treatment code per period, in period order
    # The arm's elements in its own order (TA TAETORD; SE of the arm's subjects): ETCDs, or
    # :class:`ArmElement` entries giving this arm's epoch / start rule / branch / transition for the
    # element; default: every element in the order of ``elements``.  A crossover:
    # AB: [SCRN, {etcd: A, epoch: TREATMENT 1}, WASH, {etcd: B, epoch: TREATMENT 2}]
    # BA: [SCRN, {etcd: B, epoch: TREATMENT 1}, WASH, {etcd: A, epoch: TREATMENT 2}]
    elements: list["str | ArmElement"] | None = None


class ArmElement(_M):
    """An element at its place in one arm: what differs from the element's own definition there."""

    etcd: str
    epoch: str | None = None  # TA/SE EPOCH at this place (default: the element's epoch)
    start: "ElementStart | None" = None  # this arm's start rule (default: the element's)
    tabranch: str | None = None  # TA TABRANCH (e.g. "Randomized to A")
    tatrans: str | None = None  # TA TATRANS


class ElementStart(_M):
    """Where an element's start date comes from, per subject."""

    dataset: str = "DM"
    variable: str
    where: list[Condition] = Field(default_factory=list)
    pick: Literal["first", "last"] = "first"
    offset_days: int = 0  # whole days added to the date (the time, if any, is dropped)


class Element(_M):
    """A trial element (TE) with its epoch (TA) and the rule giving its start per subject (SE)."""

    etcd: str
    element: str
    epoch: str | None = None  # required unless every arm's entry for this element gives its epoch
    testrl: str
    teenrl: str | None = None
    tedur: str | None = None
    start: ElementStart


class VisitDef(_M):
    """A planned visit (TV): VISITDY on the SDTM convention; aliases = collected folder names."""

    visitnum: float
    visit: str
    visitdy: int | None = None
    tvstrl: str | None = None
    tvenrl: str | None = None
    aliases: list[str] = Field(default_factory=list)  # collected names that mean this visit


class Criterion(_M):
    """An inclusion or exclusion criterion (TI)."""

    ietestcd: str
    ietest: str
    iecat: Literal["INCLUSION", "EXCLUSION"]
    tivers: str | None = None


class TsParam(_M):
    """A TS parameter: a literal value, or ``derive`` (FIRST_RFICDTC, ACTSUB) computed from DM, or
    DATA_CUTOFF: the run's data cut-off (DCUTDTC; missing when the run has none)."""

    tsparmcd: str
    tsparm: str
    tsval: str | None = None
    derive: Literal["FIRST_RFICDTC", "ACTSUB", "DATA_CUTOFF"] | None = None
    tsvalnf: str | None = None
    tsvalcd: str | None = None
    tsvcdref: str | None = None
    tsvcdver: str | None = None
    tsgrpid: str | None = None


Arm.model_rebuild()


class TrialDesign(_M):
    """``mappings/trial_design.yaml``."""

    arms: list[Arm]
    elements: list[Element]
    visits: list[VisitDef]
    criteria: list[Criterion] = Field(default_factory=list)
    ts: list[TsParam] = Field(default_factory=list)


def load_design(data: dict, file: str) -> TrialDesign:
    """Validate ``trial_design.yaml`` (already read); InputError naming every problem."""
    problems: list[Problem] = []
    td = validate_model(TrialDesign, data, file, problems)
    if td is not None:
        seen: set[float] = set()
        for i, v in enumerate(td.visits):
            if v.visitnum in seen:
                problems.append(Problem(file, "duplicate VISITNUM", entry=f"visits[{i}]", value=str(v.visitnum)))
            seen.add(v.visitnum)
            if v.visitdy == 0:
                problems.append(Problem(file, "VISITDY 0 does not exist in SDTM (day 1 follows day -1)",
                                        entry=f"visits[{i}]", hint="Protocol day 0 is VISITDY 1; day 7 is VISITDY 8"))
        etcds = {e.etcd: e for e in td.elements}
        for i, a in enumerate(td.arms):
            for j, item in enumerate(a.elements or []):
                etcd = item if isinstance(item, str) else item.etcd
                if etcd not in etcds:
                    problems.append(Problem(file, "element not among the trial design's elements",
                                            entry=f"arms[{i}].elements[{j}]", value=etcd))
                elif etcds[etcd].epoch is None and (isinstance(item, str) or item.epoch is None):
                    problems.append(Problem(file, f"element {etcd} has no epoch here: give it in the element or in "
                                            "this arm's entry", entry=f"arms[{i}].elements[{j}]", value=etcd,
                                            hint=f"{{etcd: {etcd}, epoch: ...}}"))
        listed = {(x if isinstance(x, str) else x.etcd) for a in td.arms for x in (a.elements or [])}
        for i, e in enumerate(td.elements):
            if e.epoch is None and (any(a.elements is None for a in td.arms) or e.etcd not in listed):
                problems.append(Problem(file, "element without epoch used where no arm gives one",
                                        entry=f"elements[{i}].epoch", value=e.etcd,
                                        hint="give the element an epoch, or list it with an epoch in every arm"))
    if problems or td is None:
        raise InputError(problems or [Problem(file, "invalid trial design")], stage="mappings")
    return td


def build_te(td: TrialDesign, studyid: str) -> pd.DataFrame:
    """TE: one record per element."""
    return pd.DataFrame({
        "STUDYID": studyid, "DOMAIN": "TE", "ETCD": [e.etcd for e in td.elements],
        "ELEMENT": [e.element for e in td.elements], "TESTRL": [e.testrl for e in td.elements],
        "TEENRL": [e.teenrl for e in td.elements], "TEDUR": [e.tedur for e in td.elements]})


def arm_elements(td: TrialDesign, arm: Arm) -> list[tuple[Element, ArmElement]]:
    """The elements of an arm in its order (``arm.elements`` when given, else every element), each
    with the arm's own epoch and start rule resolved (an element's definition where the arm gives none)."""
    by_cd = {e.etcd: e for e in td.elements}
    items = arm.elements if arm.elements is not None else [e.etcd for e in td.elements]
    out = []
    for item in items:
        place = ArmElement(etcd=item) if isinstance(item, str) else item
        e = by_cd[place.etcd]
        resolved = e.model_copy(update={"epoch": place.epoch or e.epoch, "start": place.start or e.start})
        out.append((resolved, place))
    return out


def build_ta(td: TrialDesign, studyid: str) -> pd.DataFrame:
    """TA: one record per arm x element, in each arm's own element order (``arms[].elements``), with
    the arm's epoch, branch and transition at each place."""
    rows = [{"STUDYID": studyid, "DOMAIN": "TA", "ARMCD": a.armcd, "ARM": a.arm, "TAETORD": float(i),
             "ETCD": e.etcd, "ELEMENT": e.element, "TABRANCH": place.tabranch, "TATRANS": place.tatrans,
             "EPOCH": e.epoch}
            for a in td.arms for i, (e, place) in enumerate(arm_elements(td, a), start=1)]
    return pd.DataFrame(rows)


def build_tv(td: TrialDesign, studyid: str) -> pd.DataFrame:
    """TV: one record per planned visit (the plan is the same for every arm, so ARMCD is blank)."""
    return pd.DataFrame({
        "STUDYID": studyid, "DOMAIN": "TV", "VISITNUM": [v.visitnum for v in td.visits],
        "VISIT": [v.visit for v in td.visits],
        "VISITDY": pd.Series([v.visitdy for v in td.visits], dtype="float64"),
        "ARMCD": None, "ARM": None,
        "TVSTRL": [v.tvstrl for v in td.visits], "TVENRL": [v.tvenrl for v in td.visits]})


def build_ti(td: TrialDesign, studyid: str) -> pd.DataFrame:
    """TI: one record per inclusion/exclusion criterion."""
    return pd.DataFrame({
        "STUDYID": studyid, "DOMAIN": "TI", "IETESTCD": [c.ietestcd for c in td.criteria],
        "IETEST": [c.ietest for c in td.criteria], "IECAT": [c.iecat for c in td.criteria],
        "IESCAT": None, "TIRL": None, "TIVERS": [c.tivers for c in td.criteria]})


def build_ts(td: TrialDesign, studyid: str, dm: pd.DataFrame, cutoff: str | None = None) -> pd.DataFrame:
    """TS: one record per parameter value; ``derive`` parameters come from DM.

    FIRST_RFICDTC = the earliest complete informed-consent date (study start, TRC 1734);
    ACTSUB = the number of subjects in DM; DATA_CUTOFF = the run's data cut-off (DCUTDTC).
    """
    rows = []
    for p in td.ts:
        val = p.tsval
        if p.derive == "FIRST_RFICDTC":
            d = complete_date(dm["RFICDTC"]) if "RFICDTC" in dm else pd.Series(dtype="datetime64[ns]")
            val = d.min().strftime("%Y-%m-%d") if d.notna().any() else None
        elif p.derive == "DATA_CUTOFF":
            val = cutoff
        elif p.derive == "ACTSUB":
            val = str(int(dm["USUBJID"].nunique())) if not dm.empty else "0"
        rows.append({"STUDYID": studyid, "DOMAIN": "TS", "TSPARMCD": p.tsparmcd, "TSPARM": p.tsparm,
                     "TSGRPID": p.tsgrpid, "TSVAL": val, "TSVALNF": p.tsvalnf if val is None else None,
                     "TSVALCD": p.tsvalcd, "TSVCDREF": p.tsvcdref, "TSVCDVER": p.tsvcdver})
    ts = pd.DataFrame(rows)
    if ts.empty:
        return ts
    ts["TSSEQ"] = (ts.groupby("TSPARMCD", sort=False).cumcount() + 1).astype("float64")
    missing = ts["TSVAL"].isna() & ts["TSVALNF"].isna()
    ts.loc[missing, "TSVALNF"] = "UNK"
    return ts


def _shift(dtc: pd.Series, days: int) -> pd.Series:
    if days == 0:
        return dtc
    d = complete_date(dtc) + pd.Timedelta(days=days)
    return d.dt.strftime("%Y-%m-%d").where(d.notna()).astype("str")


def _element_start(start: ElementStart, dm: pd.DataFrame, datasets: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """(USUBJID, SESTDTC) per subject from a start rule; None when its source is absent or empty."""
    src = dm if start.dataset == "DM" else datasets.get(start.dataset)
    if src is None or src.empty or start.variable not in src:
        return None
    sel = src.loc[evaluate(src, start.where)] if start.where else src
    s = sel[["USUBJID", start.variable]].dropna()
    s = s[s[start.variable].astype("str").str.strip() != ""]
    s = s.assign(__d=complete_date(s[start.variable]).fillna(pd.Timestamp.max))
    s = s.sort_values(["USUBJID", "__d", start.variable], kind="mergesort")
    s = (s.groupby("USUBJID").head(1) if start.pick == "first" else s.groupby("USUBJID").tail(1))
    return pd.DataFrame({"USUBJID": s["USUBJID"].to_numpy(),
                         "SESTDTC": _shift(s[start.variable].astype("str"), start.offset_days).to_numpy()})


def _subject_arms(td: TrialDesign, dm: pd.DataFrame) -> pd.Series:
    """Each subject's arm for SE (ACTARMCD, else ARMCD), missing when not an arm of the design."""
    d = dm.drop_duplicates("USUBJID")
    arm = d["ACTARMCD"] if "ACTARMCD" in d else pd.Series(np.nan, index=d.index, dtype="object")
    if "ARMCD" in d:
        arm = arm.where(arm.notna(), d["ARMCD"])
    arm = arm.where(arm.isin([a.armcd for a in td.arms]))
    return pd.Series(arm.to_numpy(), index=d["USUBJID"].to_numpy())


def build_se(td: TrialDesign, studyid: str, dm: pd.DataFrame, datasets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """SE: each subject's actual elements; start from the element's source, end = next start.

    Elements without a start date for a subject (for example a subject never treated has no
    treatment or follow-up element) or starting after the subject's RFPENDTC are absent for that
    subject.  When arms have their own element order (``arms[].elements``), a subject's elements
    are those of the subject's arm (ACTARMCD, else ARMCD), with TAETORD the position in that arm and
    the arm's epoch and start rule at each place; subjects without a known arm keep the design order.
    """
    starts: dict[str, pd.DataFrame | None] = {}  # one computation per distinct start rule

    def start_of(e: Element) -> pd.DataFrame | None:
        key = e.start.model_dump_json()
        if key not in starts:
            starts[key] = _element_start(e.start, dm, datasets)
        return starts[key]

    plans: list[tuple[str | None, list[Element]]]  # (arm or None = subjects without a known arm, elements)
    if any(a.elements is not None for a in td.arms):
        plans = [(a.armcd, [e for e, _ in arm_elements(td, a)]) for a in td.arms] + [(None, list(td.elements))]
        arms = _subject_arms(td, dm)
    else:
        plans, arms = [(None, list(td.elements))], None
    parts = []
    for armcd, elements in plans:
        for order, e in enumerate(elements, start=1):
            st = start_of(e)
            if st is None:
                continue
            if arms is not None:  # the subjects following this plan
                subj_arm = arms.reindex(st["USUBJID"].to_numpy())
                st = st[(subj_arm == armcd).to_numpy() if armcd is not None else subj_arm.isna().to_numpy()]
            parts.append(st.assign(ETCD=e.etcd, ELEMENT=e.element, TAETORD=float(order), EPOCH=e.epoch)
                         [["USUBJID", "ETCD", "ELEMENT", "TAETORD", "EPOCH", "SESTDTC"]])
    if not parts:
        return pd.DataFrame(columns=["STUDYID", "DOMAIN", "USUBJID", "ETCD", "ELEMENT", "TAETORD", "EPOCH", "SESTDTC", "SEENDTC"])
    se = pd.concat(parts, ignore_index=True)
    se = se.merge(dm[["USUBJID", "RFPENDTC"]], on="USUBJID", how="left")
    start_d = complete_date(se["SESTDTC"])
    end_d = complete_date(se["RFPENDTC"])
    se = se[~(start_d.notna() & end_d.notna() & (start_d > end_d))]
    se = se.sort_values(["USUBJID", "TAETORD"], kind="mergesort").reset_index(drop=True)
    nxt = se.groupby("USUBJID")["SESTDTC"].shift(-1)
    se["SEENDTC"] = nxt.where(nxt.notna(), se["RFPENDTC"]).astype("str")
    se["STUDYID"] = studyid
    se["DOMAIN"] = "SE"
    se["SEUPDES"] = np.nan
    return se.drop(columns=["RFPENDTC"])
