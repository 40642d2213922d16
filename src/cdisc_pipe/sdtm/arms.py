"""Actual arm (DM ACTARMCD/ACTARM/ARMNRS): generic algorithms chosen by the DM mapping's ``actual_arm``.

The study's choices are data: which records are treatment records, which variable carries the
dose or the treatment, the tolerance, and each arm's planned ``dose`` or ``sequence`` in the trial
design (``mappings/trial_design.yaml``).  Every step is vectorised over records and subjects;
loops run over arms only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.sdtm.algorithms import evaluate
from cdisc_pipe.sdtm.dates import complete_date
from cdisc_pipe.sdtm.design import TrialDesign
from cdisc_pipe.sdtm.mapping import ActualArm


def check_actual_arm(aa: ActualArm, td: TrialDesign, dm_file: str, td_file: str) -> list[Problem]:
    """The trial design gives what the chosen method needs: a ``dose`` (method dose) or a
    ``sequence`` (method sequence) for every arm; for method record every ``codes`` value is an
    arm of the design."""
    problems: list[Problem] = []
    # The actual arm is derived with DM, before SE: variables derived from SE or after it (EPOCH,
    # study days, sequence numbers) do not exist yet, and reading them would find no treatment.
    late = [(k, v) for k, v in (("period", aa.period), ("order_by", aa.order_by), ("treatment", aa.treatment))
            if v and (v == "EPOCH" or (v.startswith(aa.dataset[:2]) and v.endswith(("DY", "SEQ"))))]
    for key, var in late:
        problems.append(Problem(dm_file, f"{var} is derived after the actual arm (EPOCH comes from SE, which needs "
                                "the arm), so it cannot identify the treatment periods", entry=f"actual_arm.{key}",
                                value=var, hint="use a collected variable: a period field mapped to --GRPID, "
                                "--TPT/VISITNUM, or the dose date (--STDTC)"))
    if aa.method == "record":
        armcds = {a.armcd for a in td.arms}
        for raw, code in aa.codes.items():
            if code not in armcds:
                problems.append(Problem(dm_file, "not an arm of the trial design", entry=f"actual_arm.codes.{raw}",
                                        value=code, hint=f"Arms in {td_file}: {', '.join(a.armcd for a in td.arms)}"))
        return problems
    need = "dose" if aa.method == "dose" else "sequence"
    for i, a in enumerate(td.arms):
        if (a.dose is None) if need == "dose" else (not a.sequence):
            problems.append(Problem(td_file, f"arm {a.armcd} has no {need}", entry=f"arms[{i}].{need}",
                                    hint=f"{dm_file} actual_arm.method {aa.method} matches arms by their {need}"))
        if need == "dose" and a.dose is not None and a.dose <= 0:
            problems.append(Problem(td_file, "a planned dose must be above 0", entry=f"arms[{i}].dose",
                                    value=str(a.dose)))
    return problems


def _treatment_records(aa: ActualArm, datasets: dict[str, pd.DataFrame], cols: list[str]) -> pd.DataFrame:
    src = datasets.get(aa.dataset)
    if src is None or src.empty:  # no treatment records yet (a pre-lock export): nobody treated
        return pd.DataFrame(columns=["USUBJID"] + cols)
    lacking = [c for c in cols if c not in src]
    if lacking:  # never read as "not treated": the mapping does not give what the method reads
        raise InputError(Problem(f"mappings/{aa.dataset.lower()}.yaml", f"{aa.dataset} has no {', '.join(lacking)}, "
                                 "which the DM mapping's actual_arm reads", entry="actual_arm", value=", ".join(lacking),
                                 hint=f"map {', '.join(lacking)} in {aa.dataset}, or name another variable in "
                                      "actual_arm"), stage="sdtm")
    sel = src.loc[evaluate(src, aa.where)] if aa.where else src
    return sel[["USUBJID"] + [c for c in cols if c != "USUBJID"]]


def by_dose(usubjid: pd.Series, aa: ActualArm, td: TrialDesign, datasets: dict[str, pd.DataFrame]
            ) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """Method ``dose``: (treated, index of the matched arm or -1, given value text for messages).

    The subject's total dose over the treatment records is matched to the arm whose planned dose
    is nearest, when the relative difference is at most ``tolerance``."""
    sel = _treatment_records(aa, datasets, [aa.dose])
    dose = pd.to_numeric(sel[aa.dose], errors="coerce").groupby(sel["USUBJID"]).sum(min_count=1) \
        if not sel.empty else pd.Series(dtype="float64")
    treated = usubjid.isin(sel["USUBJID"]).to_numpy(dtype=bool)
    given = usubjid.map(dose).astype("float64")
    planned = np.array([a.dose for a in td.arms], dtype="float64")
    n = len(usubjid)
    if not len(planned) or not n:
        return treated, np.full(n, -1), given.astype("str")
    rel = np.abs(given.to_numpy()[:, None] - planned[None, :]) / planned[None, :]
    best = np.nanargmin(np.where(np.isnan(rel), np.inf, rel), axis=1)
    best_rel = rel[np.arange(n), best]
    match = treated & (best_rel <= aa.tolerance)
    return treated, np.where(match, best, -1), given.astype("str")


def received_sequence(aa: ActualArm, datasets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per subject and period received, in time order: USUBJID, POS (0-based), TRT (code).

    Records are ordered by ``order_by`` (complete dates first by date, then by text); with
    ``period`` the first record of each period counts, otherwise consecutive records of the same
    treatment are one period."""
    cols = [aa.treatment, aa.order_by] + ([aa.period] if aa.period else [])
    sel = _treatment_records(aa, datasets, cols)
    sel = sel[sel[aa.treatment].notna()]
    if sel.empty:
        return pd.DataFrame({"USUBJID": pd.Series(dtype="str"), "POS": pd.Series(dtype="int64"),
                             "TRT": pd.Series(dtype="str")})
    trt = sel[aa.treatment].astype("str").str.strip()
    if aa.codes:
        trt = trt.map(aa.codes).where(trt.isin(list(aa.codes)), trt)
    d = pd.DataFrame({"USUBJID": sel["USUBJID"].astype("str").to_numpy(), "TRT": trt.to_numpy(),
                      "__d": complete_date(sel[aa.order_by]).fillna(pd.Timestamp.max).to_numpy(),
                      "__t": sel[aa.order_by].astype("str").fillna("").to_numpy(),
                      "__p": (sel[aa.period].to_numpy() if aa.period else np.zeros(len(sel))),
                      "__i": np.arange(len(sel))})
    d = d.sort_values(["USUBJID", "__d", "__t", "__i"], kind="mergesort")
    if aa.period:
        d = d[d["__p"].notna()].drop_duplicates(["USUBJID", "__p"], keep="first")
    else:
        same = (d["USUBJID"] == d["USUBJID"].shift()) & (d["TRT"] == d["TRT"].shift())
        d = d[~same.to_numpy()]
    d = d.assign(POS=d.groupby("USUBJID", sort=False).cumcount().astype("int64"))
    return d[["USUBJID", "POS", "TRT"]].reset_index(drop=True)


def by_sequence(usubjid: pd.Series, planned_armcd: pd.Series, aa: ActualArm, td: TrialDesign,
                datasets: dict[str, pd.DataFrame]) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """Method ``sequence``: (treated, index of the matched arm or -1, received sequence text).

    Full match of the received sequence with an arm's ``sequence`` wins; otherwise, with
    ``partial: planned_prefix``, a received sequence that is a prefix of the planned arm's sequence
    gives the planned arm, and a prefix of exactly one arm's sequence gives that arm."""
    rec = received_sequence(aa, datasets)
    n = len(usubjid)
    subj_codes, subj_uniq = pd.factorize(usubjid.astype("str"))
    pos_of = pd.Series(np.arange(len(subj_uniq)), index=subj_uniq)
    width = max([len(a.sequence) for a in td.arms] + [int(rec["POS"].max()) + 1 if len(rec) else 0, 1])
    trt_codes, trt_uniq = pd.factorize(pd.concat([rec["TRT"], pd.Series([t for a in td.arms for t in a.sequence],
                                                                         dtype="object")], ignore_index=True))
    rec_codes = trt_codes[:len(rec)]
    row = rec["USUBJID"].map(pos_of).to_numpy()
    ok = ~pd.isna(row)
    wide = np.full((len(subj_uniq), width), -1, dtype=np.int64)
    wide[row[ok].astype(np.int64), rec["POS"].to_numpy()[ok]] = rec_codes[ok]
    wide = wide[subj_codes] if n else np.zeros((0, width), dtype=np.int64)
    length = (wide >= 0).sum(axis=1)
    treated = length > 0
    lut = {t: i for i, t in enumerate(trt_uniq)}
    full = np.zeros((n, len(td.arms)), dtype=bool)
    prefix = np.zeros((n, len(td.arms)), dtype=bool)
    for j, a in enumerate(td.arms):  # loop over arms
        seq = np.full(width, -1, dtype=np.int64)
        seq[:len(a.sequence)] = [lut[t] for t in a.sequence]
        # equal on the received positions (a received treatment beyond the arm's length never equals -1)
        eq_recv = ((wide == seq[None, :]) | (wide < 0)).all(axis=1)
        full[:, j] = treated & eq_recv & (length == len(a.sequence))
        prefix[:, j] = treated & eq_recv & (length < len(a.sequence))
    best = np.where(full.any(axis=1), full.argmax(axis=1), -1)
    if aa.partial == "planned_prefix" and len(td.arms):
        armcds = np.array([a.armcd for a in td.arms], dtype=object)
        planned_j = (planned_armcd.to_numpy(dtype=object)[:, None] == armcds[None, :])
        planned_prefix = (prefix & planned_j).any(axis=1)
        only_one = prefix.sum(axis=1) == 1
        best = np.where(best >= 0, best, np.where(planned_prefix, (prefix & planned_j).argmax(axis=1),
                                                  np.where(only_one, prefix.argmax(axis=1), -1)))
    text = rec.groupby("USUBJID", sort=False)["TRT"].agg("-".join) if len(rec) else pd.Series(dtype="str")
    return treated, best, usubjid.astype("str").map(text).astype("str")


def by_record(usubjid: pd.Series, aa: ActualArm, td: TrialDesign, datasets: dict[str, pd.DataFrame]
              ) -> tuple[np.ndarray, np.ndarray, pd.Series, np.ndarray]:
    """Method ``record``: (treated, index of the matched arm or -1, values recorded, value is no arm).

    The subject's allocation records are the ``dataset`` records matching ``where`` with a value
    in ``variable``; each value is translated by ``codes`` (exact after trimming; a value not in
    ``codes`` is taken as an ARMCD).  One distinct value that is an arm gives that arm; several
    distinct values, or a value that is no arm, give no arm."""
    sel = _treatment_records(aa, datasets, [aa.variable])  # type: ignore[list-item]
    val = sel[aa.variable].astype("str").str.strip() if len(sel) else pd.Series(dtype="str")
    keep = val.notna() & (val != "")
    d = pd.DataFrame({"USUBJID": sel["USUBJID"].astype("str").to_numpy(), "V": val.to_numpy()})[keep.to_numpy()]
    if aa.codes:
        d["V"] = d["V"].map(aa.codes).where(d["V"].isin(list(aa.codes)), d["V"])
    d = d.drop_duplicates(["USUBJID", "V"])
    n_values = d.groupby("USUBJID", sort=False)["V"].size()
    text = d.groupby("USUBJID", sort=False)["V"].agg("-".join) if len(d) else pd.Series(dtype="str")
    subj = usubjid.astype("str")
    n = subj.map(n_values).fillna(0).to_numpy(dtype=np.int64)
    given = subj.map(text).astype("str")
    armcds = [a.armcd for a in td.arms]
    pos = pd.Series(np.arange(len(armcds)), index=armcds)
    arm_j = given.map(pos).to_numpy(dtype="float64")
    single = n == 1
    best = np.where(single & ~np.isnan(arm_j), np.nan_to_num(arm_j, nan=-1), -1).astype(np.int64)
    unknown = single & np.isnan(arm_j)
    return n > 0, best, given, unknown


def derive_actual_arm(out: pd.DataFrame, aa: ActualArm, td: TrialDesign, datasets: dict[str, pd.DataFrame],
                      findings) -> pd.DataFrame:
    """ACTARMCD/ACTARM, ARMNRS and ARM (from the design) on DM ``out``; findings for planned arm
    codes not in the design (SDTM.ARM.UNKNOWN) and treatment matching no arm (SDTM.ARM.UNPLANNED).

    Planned arm and no treatment record: ACTARMCD/ACTARM null, ARMNRS ``ASSIGNED, NOT TREATED``;
    no planned arm: ARMNRS kept or ``NOT ASSIGNED``; treatment matching no arm: ARMNRS
    ``UNPLANNED TREATMENT``."""
    out = out.copy(deep=False)
    unknown = np.zeros(len(out), dtype=bool)
    if aa.method == "dose":
        treated, best, given = by_dose(out["USUBJID"], aa, td, datasets)
        what = f"total {aa.dose} matches no arm's planned dose within {aa.tolerance:g} (relative)"
    elif aa.method == "record":
        treated, best, given, unknown = by_record(out["USUBJID"], aa, td, datasets)
        what = f"several different {aa.dataset}.{aa.variable} values recorded for the subject"
    else:
        treated, best, given = by_sequence(out["USUBJID"], out["ARMCD"], aa, td, datasets)
        what = f"sequence of {aa.treatment} received matches no arm's planned sequence"
    match = best >= 0
    armcd = np.array([a.armcd for a in td.arms] + [None], dtype=object)
    arm = np.array([a.arm for a in td.arms] + [None], dtype=object)
    out["ACTARMCD"] = pd.Series(armcd[best], index=out.index).astype("str")
    out["ACTARM"] = pd.Series(arm[best], index=out.index).astype("str")
    planned = out["ARMCD"].notna()
    nrs = np.where(~planned, out["ARMNRS"].astype("object").where(out["ARMNRS"].notna(), "NOT ASSIGNED").to_numpy(dtype=object)
                   if "ARMNRS" in out else "NOT ASSIGNED",
                   np.where(~treated, "ASSIGNED, NOT TREATED", np.where(~match, "UNPLANNED TREATMENT", None)))
    out["ARMNRS"] = pd.Series(nrs, index=out.index).astype("str")
    arm_of = {a.armcd: a.arm for a in td.arms}
    out["ARM"] = out["ARMCD"].map(arm_of).where(out["ARMCD"].notna()).astype("str")
    unknown_arm = planned & ~out["ARMCD"].isin(list(arm_of))
    findings.add("SDTM.ARM.UNKNOWN", "Error", "planned arm code not among the trial design arms",
                 "DM", "ARMCD", out, unknown_arm, out["ARMCD"])
    findings.add("SDTM.ARM.UNKNOWN", "Error", f"{aa.dataset}.{aa.variable} value (after codes) is not an arm of the "
                 "trial design; add it to actual_arm.codes", "DM", "ACTARMCD", out, pd.Series(unknown, index=out.index), given)
    findings.add("SDTM.ARM.UNPLANNED", "Warning", f"treatment received: {what}",
                 "DM", "ACTARMCD", out, pd.Series(treated & ~match & ~unknown, index=out.index), given)
    return out
