"""PC -> PP: build the SDTM PP domain, RELREC PC<->PP, PCGRPID, SUPPPC exclusion flags.

Conventions (``docs/NCA.md``, ``docs/ARCHITECTURE.md``):

- One profile per USUBJID x PCTESTCD x PCSPEC; PCGRPID = PPGRPID = PCSPEC (or
  ``<PCTESTCD>-<PCSPEC>`` with ``group_id: testcd_spec``).  PCGRPID is set only on the PC records
  the NCA used; excluded records keep PCGRPID null, so the group-level RELREC (IDVAR PCGRPID /
  PPGRPID) links each PP group to exactly the PC records used.
- Excluded PC records are flagged in SUPPPC: QNAM ``NCAXFL`` = "Y" and ``NCAXRS`` = the reason.
- PPSEQ is left to the SDTM engine (``build_sdtm`` numbers PP like every other domain).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cdisc_pipe.errors import Finding, InputError, Problem
from cdisc_pipe.nca.core import (
    KIND_IMPUTED,
    _fmt,
    calc_parameters,
    not_calculated_reasons,
    prepare_profiles,
)
from cdisc_pipe.nca.settings import AUC_QUANTITIES, QUANTITY_UNIT, NcaSettings

PC_REQUIRED = ("USUBJID", "PCSEQ", "PCTESTCD", "PCSPEC", "PCSTRESN", "PCSTRESC", "PCDTC", "PCRFTDTC")
PC_OPTIONAL = ("STUDYID", "PCSTRESU", "PCLLOQ", "PCSTAT", "PCELTM")
PP_COLUMNS = [
    "STUDYID", "DOMAIN", "USUBJID", "PPGRPID", "PPTESTCD", "PPTEST", "PPCAT", "PPORRES", "PPORRESU",
    "PPSTRESC", "PPSTRESN", "PPSTRESU", "PPSTAT", "PPREASND", "PPSPEC", "PPRFTDTC", "PPSTINT", "PPENINT",
]
RELREC_COLUMNS = ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "RELTYPE", "RELID"]
SUPP_COLUMNS = ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QLABEL", "QVAL", "QORIG", "QEVAL"]
EXCLUSION_COLUMNS = ["USUBJID", "PCSEQ", "PCTESTCD", "PCSPEC", "PCDTC", "REASON"]
KEYS = ("USUBJID", "PCTESTCD", "PCSPEC")

_DATETIME_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$"
_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"


@dataclass
class NcaResult:
    """What :func:`build_pp` returns.

    Attributes:
        pp: the PP domain without PPSEQ (columns :data:`PP_COLUMNS`), one record per profile x
            parameter, not-calculated parameters with PPSTAT "NOT DONE" and PPREASND.
        relrec: RELREC rows, group level: per PP group one PC row (IDVAR PCGRPID) and one PP row
            (IDVAR PPGRPID) sharing a RELID.
        pc: the input PC with PCGRPID set on the records used by the NCA (null on excluded ones).
        supppc: SUPPPC rows (QNAM NCAXFL / NCAXRS) for every excluded PC record.
        exclusions: PC records not used: USUBJID, PCSEQ, PCTESTCD, PCSPEC, PCDTC, REASON.
        method_description: plain text of the method and rules applied (for MethodDef, report).
        parameter_methods: PPTESTCD -> plain text of how that parameter is derived.
        profiles: one row per profile: keys, PPGRPID, unrounded parameters, counts, flags.
        findings: data findings (records kept).
        auc_specimens: the specimens for which AUCs are computed.
    """

    pp: pd.DataFrame
    relrec: pd.DataFrame
    pc: pd.DataFrame
    supppc: pd.DataFrame
    exclusions: pd.DataFrame
    method_description: str
    parameter_methods: dict[str, str]
    profiles: pd.DataFrame
    findings: list[Finding] = field(default_factory=list)
    auc_specimens: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary for ``outputs/sdtm/_stage/nca.json`` (deterministic)."""
        nc = self.pp["PPSTAT"].eq("NOT DONE")
        return {
            "method_description": self.method_description,
            "parameter_methods": self.parameter_methods,
            "profiles": int(len(self.profiles)),
            "pp_records": int(len(self.pp)),
            "pp_not_calculated": int(nc.sum()),
            "not_calculated_reasons": {str(k): int(v) for k, v in
                                       self.pp.loc[nc, "PPREASND"].value_counts().sort_index().items()},
            "pc_excluded": int(len(self.exclusions)),
            "exclusion_reasons": {str(k): int(v) for k, v in
                                  self.exclusions["REASON"].value_counts().sort_index().items()},
            # profiles of specimens with AUCs only (marrow has no pre-infusion sample by design)
            "time_zero_imputed": int(self.profiles.loc[self.profiles["PCSPEC"].isin(self.auc_specimens),
                                                       "T0_IMPUTED"].sum()) if len(self.profiles) else 0,
        }


# --------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------

def describe_method(settings: NcaSettings) -> str:
    """Plain-text description of the NCA method and rules the settings apply (for define.xml)."""
    b, tz, iv, md = settings.blq, settings.time_zero, settings.interval, settings.min_data
    blq_text = {"zero": "set to 0", "drop": "dropped", "half_lloq": "set to LLOQ/2"}
    method = ("linear-up/log-down trapezoidal method (linear trapezoid while concentrations rise or stay "
              "equal or when either end is 0, log trapezoid while they fall)"
              if settings.auc_method == "lin up/log down" else "linear trapezoidal method")
    interp = ("linear interpolation in a linear segment, log-linear interpolation in a log-down segment"
              if settings.auc_method == "lin up/log down" else "linear interpolation")
    spec_text = "; ".join(f"{spec}: {', '.join(codes)}" for spec, codes in settings.specimens.items())
    t0 = (f"Time zero is the last pre-infusion sample taken at most {_fmt(tz.predose_max_days)} days before "
          "the infusion (a BLQ pre-infusion sample counts as 0); earlier pre-infusion samples are not used"
          if tz.use_predose else "Pre-infusion samples are not used")
    t0 += ("; without one a concentration of 0 is imputed at the infusion time."
           if tz.impute_zero else "; without one AUCs are not calculated.")
    return (
        f"Non-compartmental analysis (PKNCA conventions) of {', '.join(settings.analytes)} per subject, specimen "
        f"and analyte, on actual time since {settings.reference_event} in days (PCDTC - PCRFTDTC; whole days when either "
        f"has no time). {t0} BLQ results (PCSTRESC '{b.stresc}') before the first quantifiable concentration "
        f"are {blq_text[b.leading]}, between quantifiable concentrations {blq_text[b.middle]}, after the last "
        f"quantifiable concentration {blq_text[b.trailing]}. Cmax and Tmax: maximum observed post-infusion "
        f"concentration and its actual time (first occurrence on ties). Clast and Tlast: last concentration "
        f"above 0 and its time. AUCs by the {method}: AUCLST from 0 to Tlast; AUCINT from day "
        f"{_fmt(iv.start_days)} to day {_fmt(iv.end_days)} (PPSTINT {iv.stint}, PPENINT {iv.enint}) with the "
        f"concentration at an interval end between samples obtained by {interp}, and 0 after Tlast "
        f"(AUClast-type, PKNCA aucint.last). Not calculated (PPSTAT NOT DONE, reason in PPREASND): Cmax, "
        f"Tmax, Clast, Tlast without a quantifiable post-infusion concentration; AUCs with fewer than "
        f"{md.auc_quantifiable_points} quantifiable post-infusion concentrations or no time-zero concentration; "
        f"AUCINT without a sample within day {_fmt(iv.end_days)} +/- {_fmt(md.end_window_days)} days. "
        f"Parameters by specimen: {spec_text}. PC records not used are flagged in SUPPPC "
        f"({settings.supppc.flag} = Y, reason in {settings.supppc.reason}); RELREC links each PP group "
        f"(PPGRPID) to the PC records used (PCGRPID)."
    )


def describe_parameters(settings: NcaSettings) -> dict[str, str]:
    """PPTESTCD -> plain text of its derivation (for value-level MethodDefs)."""
    iv = settings.interval
    method = "linear-up/log-down" if settings.auc_method == "lin up/log down" else "linear"
    text = {
        "cmax": "Maximum observed post-infusion concentration.",
        "tmax": "Actual time since infusion (days) of the maximum observed post-infusion concentration; "
                "first occurrence on ties.",
        "clast": "Last observed concentration above 0 (above the LLOQ).",
        "tlast": "Actual time since infusion (days) of the last concentration above 0.",
        "auclast": f"AUC from time 0 to Tlast by the {method} trapezoidal method.",
        "aucint": f"AUC from day {_fmt(iv.start_days)} to day {_fmt(iv.end_days)} by the {method} trapezoidal "
                  f"method, interval end interpolated between samples, 0 after Tlast (PKNCA aucint.last).",
    }
    return {p.testcd: text[p.quantity] for p in settings.parameters}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _as_text(s: pd.Series) -> pd.Series:
    """Strings with surrounding blanks removed and blanks as missing (object dtype, None for missing)."""
    t = s.astype("string").str.strip()
    t = t.mask(t.eq(""))
    return t.astype(object).where(t.notna(), None)


def parse_dtc(dtc: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """ISO 8601 --DTC strings -> (datetime64 Series, has_date, has_time) masks.

    Only complete dates (YYYY-MM-DD) and date-times with at least minutes are parsed; partial or
    invalid values give NaT and has_date False.
    """
    text = dtc.astype("string")
    is_dt = text.str.fullmatch(_DATETIME_RE).fillna(False).to_numpy(dtype=bool)
    is_d = text.str.fullmatch(_DATE_RE).fillna(False).to_numpy(dtype=bool)
    parsed = pd.to_datetime(text.where(is_dt | is_d), format="ISO8601", errors="coerce")
    ok = parsed.notna().to_numpy()
    return parsed, ok & (is_dt | is_d), ok & is_dt


def format_sig(values: np.ndarray, sig: int) -> tuple[np.ndarray, np.ndarray]:
    """Round to ``sig`` significant digits: (character result without exponent, numeric result).

    The numeric result is the number the text shows, so --STRESN equals --STRESC.
    """
    x = np.asarray(values, dtype="float64")
    text = np.full(len(x), None, dtype=object)
    ok = np.isfinite(x)
    if not ok.any():
        return text, np.full(len(x), np.nan)
    with np.errstate(divide="ignore"):
        mag = np.floor(np.log10(np.abs(np.where(x == 0, 1.0, x))))
    decimals = np.clip(np.where(ok, sig - 1 - mag, 0), 0, 15).astype(int)
    for d in np.unique(decimals[ok]):  # a handful of distinct decimal counts, not rows
        m = ok & (decimals == d)
        s = np.char.mod(f"%.{d}f", np.round(x[m], d))
        if d > 0:
            s = np.char.rstrip(np.char.rstrip(s, "0"), ".")
        text[m] = s.astype(object)
    text[ok & (text == "-0")] = "0"
    numeric = pd.to_numeric(pd.Series(text, dtype="object"), errors="coerce").to_numpy(dtype="float64")
    return text, numeric


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


# --------------------------------------------------------------------------------------------
# build_pp
# --------------------------------------------------------------------------------------------

def _check_inputs(pc: pd.DataFrame, dm: pd.DataFrame) -> None:
    problems: list[Problem] = []
    for col in PC_REQUIRED:
        if col not in pc.columns:
            problems.append(Problem("PC", f"PC lacks {col}, needed for the NCA", entry="columns", column=col,
                                    hint="Build PC per the SDTM conventions in docs/ARCHITECTURE.md"))
    if "USUBJID" not in dm.columns:
        problems.append(Problem("DM", "DM lacks USUBJID", entry="columns", column="USUBJID"))
    if not problems:
        seq = pd.to_numeric(pc["PCSEQ"], errors="coerce")
        bad = seq.isna() & pc["USUBJID"].notna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            problems.append(Problem("PC", f"PCSEQ missing or not numeric on {int(bad.sum())} record(s)",
                                    entry=f"record {first + 1}", column="PCSEQ", value=str(pc["PCSEQ"].iloc[first]),
                                    hint="Assign PCSEQ before calling build_pp"))
        dup = pd.DataFrame({"U": pc["USUBJID"], "S": seq}).duplicated(keep=False) & seq.notna()
        if dup.any():
            first = int(np.flatnonzero(dup.to_numpy())[0])
            problems.append(Problem("PC", f"PCSEQ not unique within USUBJID on {int(dup.sum())} record(s)",
                                    entry=f"record {first + 1}", column="PCSEQ", value=str(pc["PCSEQ"].iloc[first]),
                                    hint="PCSEQ identifies the record in SUPPPC and RELREC; make it unique"))
    if problems:
        raise InputError(problems, stage="nca")


def build_pp(pc: pd.DataFrame, dm: pd.DataFrame, settings: NcaSettings, *,
             exclude_after: pd.DataFrame | None = None) -> NcaResult:
    """Run the NCA on PC and build PP, RELREC, PCGRPID, SUPPPC and the exclusion list.

    Args:
        pc: the SDTM PC domain (PCSEQ assigned), conventions of ``docs/ARCHITECTURE.md``.
        dm: the SDTM DM domain (USUBJID; RFSTDTC is the fallback reference when PCRFTDTC is null).
        settings: :class:`NcaSettings` (``load_nca_settings("specs/settings/nca.yaml")``).
        exclude_after: optional per-subject cut-off events (columns USUBJID, DTC and optionally
            REASON), for example the start of a subsequent therapy: PC records dated on or after the
            subject's earliest complete DTC date are excluded with REASON (default
            :data:`DEFAULT_CUTOFF_REASON`).

    Returns:
        :class:`NcaResult`.  Records are never dropped silently: every PC record of an analysed
        analyte is either used (PCGRPID set) or listed in ``exclusions`` and flagged in SUPPPC.

    Raises:
        InputError: PC or DM lacks a needed variable, or PCSEQ is missing / not unique.
    """
    _check_inputs(pc, dm)
    findings: list[Finding] = []
    n_pc = len(pc)
    usubjid = _as_text(pc["USUBJID"])
    testcd = _as_text(pc["PCTESTCD"])
    spec = _as_text(pc["PCSPEC"])
    seq = pd.to_numeric(pc["PCSEQ"], errors="coerce").to_numpy(dtype="float64")
    col = lambda name: pc[name] if name in pc.columns else pd.Series([None] * n_pc, index=pc.index)  # noqa: E731
    studyid = _as_text(col("STUDYID"))
    if "STUDYID" in dm.columns:  # fill a missing PC.STUDYID from DM
        dm_study = _as_text(dm["STUDYID"]).set_axis(_as_text(dm["USUBJID"])).loc[lambda x: ~x.index.duplicated()]
        studyid = studyid.where(studyid.notna(), usubjid.map(dm_study))

    settings = settings.resolve(testcd, spec, col("PCSTRESU"), pd.to_numeric(pc["PCSTRESN"], errors="coerce").notna())
    nca_rows = testcd.isin(settings.analytes).to_numpy() & usubjid.notna().to_numpy()
    reason = pd.Series([None] * n_pc, index=pc.index, dtype="object")

    def exclude(mask: np.ndarray, text: str | pd.Series) -> None:
        mask = mask & nca_rows & reason.isna().to_numpy()
        if mask.any():
            reason[mask] = text[mask] if isinstance(text, pd.Series) else text

    # --- specimen, status, result ---------------------------------------------------------------
    exclude(~spec.isin(list(settings.specimens)).to_numpy(),
            "specimen not analysed (not listed in the NCA settings' specimens)")
    stat = _as_text(col("PCSTAT")).str.upper()
    exclude(stat.eq("NOT DONE").fillna(False).to_numpy(dtype=bool), "not done (PCSTAT NOT DONE)")
    stresn = pd.to_numeric(pc["PCSTRESN"], errors="coerce")
    stresc = _as_text(pc["PCSTRESC"])
    blq = (stresn.isna() & stresc.str.upper().eq(settings.blq.stresc.upper()).fillna(False)).to_numpy(dtype=bool)
    exclude((stresn < 0).fillna(False).to_numpy(dtype=bool), "negative concentration")
    stresu = _as_text(col("PCSTRESU"))
    wrong_unit = (stresn.notna() & stresu.ne(settings.units.conc).fillna(True)).to_numpy(dtype=bool)
    exclude(wrong_unit, f"PCSTRESU is not the NCA unit {settings.units.conc}")

    # --- reference and actual time --------------------------------------------------------------
    rft = _as_text(pc["PCRFTDTC"])
    dm_rf = pd.Series(dtype="object")
    if "RFSTDTC" in dm.columns:
        dm_rf = _as_text(dm["RFSTDTC"]).set_axis(_as_text(dm["USUBJID"])).loc[lambda s: ~s.index.duplicated()]
    fallback = rft.isna() & usubjid.map(dm_rf).notna()
    rft = rft.where(~fallback, usubjid.map(dm_rf))
    dtc = _as_text(pc["PCDTC"])
    s_dt, s_date, s_time = parse_dtc(dtc)
    r_dt, r_date, r_time = parse_dtc(rft)
    exclude(rft.isna().to_numpy(), "no infusion date/time (PCRFTDTC and DM.RFSTDTC missing)")
    exclude(~r_date, "PCRFTDTC is not a complete date")
    exclude(~s_date, "PCDTC is missing or not a complete date")
    both_time = s_time & r_time
    exact = ((s_dt - r_dt) / pd.Timedelta(days=1)).to_numpy(dtype="float64", na_value=np.nan)
    whole = ((s_dt.dt.normalize() - r_dt.dt.normalize()) / pd.Timedelta(days=1)).to_numpy(
        dtype="float64", na_value=np.nan)
    days = np.where(both_time, exact, whole)
    eltm = _as_text(col("PCELTM"))
    predose_eltm = eltm.str.startswith("-").fillna(False).to_numpy(dtype=bool)
    same_day_unknown = ~both_time & (whole == 0) & ~predose_eltm
    exclude(same_day_unknown & s_date & r_date,
            "sampled on the infusion day without a time: order relative to the infusion unknown")
    if exclude_after is not None and len(exclude_after):
        after, text = _after_cutoff(exclude_after, usubjid, s_dt, s_date, findings)
        exclude(after, text)
    lloq = pd.to_numeric(col("PCLLOQ"), errors="coerce")

    # --- profiles ----------------------------------------------------------------------------
    rows = np.flatnonzero(nca_rows)
    tidy = pd.DataFrame({
        "USUBJID": usubjid.to_numpy()[rows], "PCTESTCD": testcd.to_numpy()[rows],
        "PCSPEC": spec.to_numpy()[rows].astype(object),
        "TIME": days[rows], "CONC": stresn.to_numpy(dtype="float64")[rows], "BLQ": blq[rows],
        "LLOQ": lloq.to_numpy(dtype="float64")[rows], "RECID": rows, "XREASON": reason.to_numpy()[rows],
    })
    tidy["PCSPEC"] = tidy["PCSPEC"].where(pd.notna(tidy["PCSPEC"]), "")
    prof = prepare_profiles(tidy, KEYS, settings)
    params = calc_parameters(prof, settings)
    reasons = not_calculated_reasons(params, settings)
    profiles = pd.concat([prof.profiles.set_index("PID"), params], axis=1)
    grp = (profiles["PCSPEC"] if settings.group_id == "spec"
           else profiles["PCTESTCD"].astype(str) + "-" + profiles["PCSPEC"].astype(str))
    profiles["PPGRPID"] = grp.to_numpy()

    # records used / excluded
    used_rec = prof.points["RECID"].dropna().to_numpy(dtype="int64")
    dropped = prof.dropped
    pid_of_row = np.full(n_pc, -1)
    pid_of_row[prof.points.loc[prof.points["RECID"].notna(), "RECID"].to_numpy(dtype="int64")] = \
        prof.points.loc[prof.points["RECID"].notna(), "PID"].to_numpy()
    pcgrpid = np.full(n_pc, None, dtype=object)
    pcgrpid[used_rec] = profiles["PPGRPID"].to_numpy()[pid_of_row[used_rec]]
    out_pc = pc.copy()
    if "PCGRPID" in out_pc.columns:
        keep_existing = ~nca_rows
        pcgrpid[keep_existing] = _as_text(out_pc["PCGRPID"]).to_numpy()[keep_existing]
    out_pc["PCGRPID"] = pd.Series(pcgrpid, index=pc.index, dtype="object")

    drec = dropped["RECID"].to_numpy(dtype="int64")
    exclusions = pd.DataFrame({
        "USUBJID": usubjid.to_numpy()[drec], "PCSEQ": seq[drec], "PCTESTCD": testcd.to_numpy()[drec],
        "PCSPEC": spec.to_numpy()[drec], "PCDTC": dtc.to_numpy()[drec],
        "REASON": dropped["REASON"].astype(object).to_numpy(),
    }).sort_values(["USUBJID", "PCSEQ"], kind="stable").reset_index(drop=True)

    # --- PP -------------------------------------------------------------------------------------
    plan = pd.DataFrame(
        [(sp, code, i) for sp, codes in settings.specimens.items() for i, code in enumerate(codes)],
        columns=["PCSPEC", "PPTESTCD", "ORDER"],
    )
    par = pd.DataFrame([(p.testcd, p.test, p.quantity) for p in settings.parameters],
                       columns=["PPTESTCD", "PPTEST", "QUANTITY"])
    plan = plan.merge(par, on="PPTESTCD", how="left")
    base = profiles.reset_index()[["PID", "USUBJID", "PCTESTCD", "PCSPEC", "PPGRPID"]]
    long = base.merge(plan, on="PCSPEC", how="inner").sort_values(["PID", "ORDER"], kind="stable")
    quantity = long["QUANTITY"].to_numpy()
    pidx = long["PID"].to_numpy()
    qcol = {"cmax": "CMAX", "tmax": "TMAX", "clast": "CLAST", "tlast": "TLAST", "auclast": "AUCLAST",
            "aucint": "AUCINT"}
    value = np.full(len(long), np.nan)
    why = np.full(len(long), None, dtype=object)
    for q, c in qcol.items():  # loop over the 6 parameter kinds, not over records
        m = quantity == q
        value[m] = params[c].to_numpy()[pidx[m]]
        why[m] = reasons[q].astype(object).to_numpy()[pidx[m]]
    has_why = ~pd.isna(why)
    nc = has_why | ~np.isfinite(value)
    # defensive: a non-finite value always carries a reason (not expected with the rules above)
    why = np.where(nc & ~has_why, "Not calculable", why)
    text, numeric = format_sig(np.where(nc, np.nan, value), settings.significant_digits)
    unit_of = {q: settings.units.of(kind) for q, kind in QUANTITY_UNIT.items()}
    units = pd.Series(quantity, dtype=object).map(unit_of).to_numpy(dtype=object)
    if not settings.units_when_not_done:
        units = np.where(nc, None, units)
    first_study = pd.Series(studyid.to_numpy()[rows]).groupby(tidy["USUBJID"].to_numpy()).first()
    # PPRFTDTC: the reference of the records used (of any record when all were excluded)
    rft_df = pd.DataFrame({"USUBJID": tidy["USUBJID"], "PCTESTCD": tidy["PCTESTCD"], "PCSPEC": tidy["PCSPEC"],
                           "UNUSED": pid_of_row[rows] < 0, "PPRFTDTC": rft.to_numpy()[rows]})
    rft_df = (rft_df.sort_values("UNUSED", kind="stable").groupby(list(KEYS), sort=False)["PPRFTDTC"].first()
              .reset_index())
    profiles = profiles.reset_index().merge(rft_df, on=list(KEYS), how="left").set_index("PID")
    is_aucint = quantity == "aucint"
    pp = pd.DataFrame({
        "STUDYID": long["USUBJID"].map(first_study).to_numpy(),
        "DOMAIN": "PP",
        "USUBJID": long["USUBJID"].to_numpy(),
        "PPGRPID": long["PPGRPID"].to_numpy(),
        "PPTESTCD": long["PPTESTCD"].to_numpy(),
        "PPTEST": long["PPTEST"].to_numpy(),
        "PPCAT": long["PCTESTCD"].to_numpy(),
        "PPORRES": text, "PPORRESU": units, "PPSTRESC": text, "PPSTRESN": numeric, "PPSTRESU": units,
        "PPSTAT": np.where(nc, "NOT DONE", None),
        "PPREASND": np.where(nc, why, None),
        "PPSPEC": long["PCSPEC"].to_numpy(),
        "PPRFTDTC": profiles["PPRFTDTC"].to_numpy()[pidx],
        "PPSTINT": np.where(is_aucint, settings.interval.stint, None),
        "PPENINT": np.where(is_aucint, settings.interval.enint, None),
    })
    for c in PP_COLUMNS:
        if c != "PPSTRESN":
            pp[c] = pp[c].astype(object).where(pp[c].notna(), None)
    pp = pp.sort_values(["USUBJID", "PPCAT", "PPSPEC"], kind="stable").reset_index(drop=True)

    # --- RELREC (group level) --------------------------------------------------------------------
    linked = pd.DataFrame({"USUBJID": usubjid.to_numpy()[used_rec], "GRP": pcgrpid[used_rec],
                           "STUDYID": studyid.to_numpy()[used_rec]}).drop_duplicates(["USUBJID", "GRP"])
    # only groups that have PP records (a specimen configured with no parameters has none)
    pp_groups = pp[["USUBJID", "PPGRPID"]].drop_duplicates().rename(columns={"PPGRPID": "GRP"})
    linked = linked.merge(pp_groups, on=["USUBJID", "GRP"], how="inner")
    linked = linked.sort_values(["USUBJID", "GRP"], kind="stable")
    if len(linked):
        relid = ("PCPP-" + linked["GRP"].astype(str)).to_numpy()
        n_l = len(linked)
        relrec = pd.DataFrame({
            "STUDYID": np.repeat(linked["STUDYID"].to_numpy(), 2),
            "RDOMAIN": np.tile(["PC", "PP"], n_l),
            "USUBJID": np.repeat(linked["USUBJID"].to_numpy(), 2),
            "IDVAR": np.tile(["PCGRPID", "PPGRPID"], n_l),
            "IDVARVAL": np.repeat(linked["GRP"].to_numpy(), 2),
            "RELTYPE": None,
            "RELID": np.repeat(relid, 2),
        })
    else:
        relrec = _empty(RELREC_COLUMNS)

    # --- SUPPPC -----------------------------------------------------------------------------------
    if len(exclusions):
        q = settings.supppc
        n_x = len(exclusions)
        ex_study = usubjid.to_numpy()[drec]
        study_of = pd.Series(studyid.to_numpy()[drec], index=ex_study)
        ex_sorted_study = exclusions["USUBJID"].map(study_of[~study_of.index.duplicated()]).to_numpy()
        idvarval = np.char.mod("%d", exclusions["PCSEQ"].to_numpy(dtype="float64")).astype(object)
        supppc = pd.DataFrame({
            "STUDYID": np.repeat(ex_sorted_study, 2),
            "RDOMAIN": "PC",
            "USUBJID": np.repeat(exclusions["USUBJID"].to_numpy(), 2),
            "IDVAR": "PCSEQ",
            "IDVARVAL": np.repeat(idvarval, 2),
            "QNAM": np.tile([q.flag, q.reason], n_x),
            "QLABEL": np.tile([q.flag_label, q.reason_label], n_x),
            "QVAL": np.ravel(np.column_stack([np.full(n_x, "Y", dtype=object),
                                              exclusions["REASON"].astype(object).to_numpy()])),
            "QORIG": "Derived",
            "QEVAL": None,
        })
    else:
        supppc = _empty(SUPP_COLUMNS)

    # --- findings -----------------------------------------------------------------------------------
    findings.extend(_findings(pc, usubjid, seq, dm, nca_rows, fallback.to_numpy(dtype=bool), both_time,
                              s_date, r_date, stresn, lloq, exclusions, pp, profiles, settings))

    return NcaResult(
        pp=pp[PP_COLUMNS], relrec=relrec[RELREC_COLUMNS], pc=out_pc, supppc=supppc[SUPP_COLUMNS],
        exclusions=exclusions[EXCLUSION_COLUMNS], method_description=describe_method(settings),
        parameter_methods=describe_parameters(settings),
        profiles=profiles.reset_index(), findings=findings, auc_specimens=_auc_specimens(settings),
    )


def _auc_specimens(settings: NcaSettings) -> list[str]:
    return [sp for sp, codes in settings.specimens.items()
            if any(settings.parameter(c).quantity in AUC_QUANTITIES for c in codes)]


DEFAULT_CUTOFF_REASON = "taken on or after a cut-off event of the NCA settings"


def _after_cutoff(events: pd.DataFrame, usubjid: pd.Series, s_dt: pd.Series, s_date: np.ndarray,
                  findings: list[Finding]) -> tuple[np.ndarray, pd.Series]:
    """Mask of PC records dated on/after the subject's earliest cut-off date, and the reasons."""
    missing = [c for c in ("USUBJID", "DTC") if c not in events.columns]
    if missing:
        raise InputError(Problem("exclude_after", f"cut-off events lack {', '.join(missing)}", entry="columns",
                                 hint="Pass USUBJID, DTC and optionally REASON"), stage="nca")
    ev = pd.DataFrame({"USUBJID": _as_text(events["USUBJID"]).to_numpy(),
                       "REASON": (_as_text(events["REASON"]) if "REASON" in events.columns
                                  else pd.Series([None] * len(events), dtype="object")).to_numpy()})
    # the date part decides: a sample on the day the therapy starts is excluded
    dt, has_date, _ = parse_dtc(_as_text(events["DTC"]).str.slice(0, 10))
    ev["DATE"] = dt.dt.normalize().to_numpy()
    for rec in ev.loc[~has_date & ev["USUBJID"].notna()].itertuples(index=False):  # only incomplete dates
        findings.append(Finding(rule="NCA.CUTOFF.PARTIAL", severity="Warning", dataset="PC", usubjid=rec.USUBJID,
                                message="cut-off event without a complete date: not applied to the NCA"))
    ev = ev.loc[has_date].sort_values(["USUBJID", "DATE"], kind="stable").drop_duplicates("USUBJID")
    ev["REASON"] = ev["REASON"].where(ev["REASON"].notna(), DEFAULT_CUTOFF_REASON)
    cut = usubjid.map(ev.set_index("USUBJID")["DATE"])
    why = usubjid.map(ev.set_index("USUBJID")["REASON"]).astype(object)
    after = (s_dt.dt.normalize() >= cut).fillna(False).to_numpy(dtype=bool) & s_date
    return after, why


def _findings(pc, usubjid, seq, dm, nca_rows, fallback, both_time, s_date, r_date, stresn, lloq,
              exclusions, pp, profiles, settings: NcaSettings) -> list[Finding]:
    """Findings for the validation report (one per affected record; the records are kept)."""
    out: list[Finding] = []
    u = usubjid.to_numpy()

    def per_row(mask: np.ndarray, rule: str, severity: str, message: str, variable: str | None = None,
                values: np.ndarray | None = None) -> None:
        for i in np.flatnonzero(mask):  # only the affected records
            out.append(Finding(rule=rule, severity=severity, message=message, dataset="PC", usubjid=u[i],
                               seq=float(seq[i]), variable=variable,
                               value=None if values is None or values[i] is None else str(values[i])))

    known = set(_as_text(dm["USUBJID"]).dropna())
    per_row(nca_rows & ~usubjid.isin(known).to_numpy(), "NCA.DM.NOSUBJ", "Warning",
            "PC subject not in DM", "USUBJID", u)
    per_row(nca_rows & fallback, "NCA.RFTDTC.FALLBACK", "Warning",
            "PCRFTDTC missing: DM.RFSTDTC used as the infusion reference", "PCRFTDTC")
    per_row(nca_rows & ~both_time & s_date & r_date, "NCA.TIME.WHOLEDAY", "Notice",
            "PCDTC or PCRFTDTC has no time: actual time since infusion in whole days", "PCDTC",
            pc["PCDTC"].to_numpy())
    below = nca_rows & (stresn < lloq).fillna(False).to_numpy(dtype=bool)
    per_row(below, "NCA.PC.BELOWLLOQ", "Warning", "quantifiable PCSTRESN below PCLLOQ", "PCSTRESN",
            stresn.to_numpy())
    # one infusion reference per profile is expected (PPRFTDTC takes the first)
    prof_rows = nca_rows & pc["PCRFTDTC"].notna().to_numpy()
    ref = pd.DataFrame({"USUBJID": u[prof_rows], "PCTESTCD": pc["PCTESTCD"].to_numpy()[prof_rows],
                        "PCSPEC": pc["PCSPEC"].to_numpy()[prof_rows], "REF": pc["PCRFTDTC"].to_numpy()[prof_rows]})
    varies = ref.groupby(["USUBJID", "PCTESTCD", "PCSPEC"], sort=True)["REF"].nunique()
    for (subj, _, spec_), n_ref in varies[varies > 1].items():
        out.append(Finding(rule="NCA.RFTDTC.VARIES", severity="Warning", dataset="PC", usubjid=subj,
                           variable="PCRFTDTC", value=str(spec_),
                           message=f"{n_ref} different PCRFTDTC values in one profile: each record's time uses "
                                   f"its own PCRFTDTC, PPRFTDTC shows the first"))
    for rec in exclusions.itertuples(index=False):  # one finding per excluded record
        out.append(Finding(rule="NCA.PC.EXCLUDED", severity="Notice", dataset="PC", usubjid=rec.USUBJID,
                           seq=float(rec.PCSEQ), variable="PCSEQ",
                           message=f"PC record not used in the NCA: {rec.REASON}"))
    nc = pp.loc[pp["PPSTAT"].eq("NOT DONE")]
    for rec in nc.itertuples(index=False):
        out.append(Finding(rule="NCA.PP.NOTDONE", severity="Notice", dataset="PP", usubjid=rec.USUBJID,
                           variable="PPTESTCD", value=rec.PPTESTCD,
                           message=f"{rec.PPTESTCD} ({rec.PPSPEC}) not calculated: {rec.PPREASND}"))
    imputed = profiles.loc[profiles["T0_IMPUTED"] & profiles["PCSPEC"].isin(_auc_specimens(settings))]
    for rec in imputed.itertuples(index=False):
        out.append(Finding(rule="NCA.T0.IMPUTED", severity="Notice", dataset="PP", usubjid=rec.USUBJID,
                           variable="PPGRPID", value=str(rec.PPGRPID),
                           message="no pre-infusion sample: concentration 0 imputed at the infusion time"))
    end = settings.interval.end_days
    aucint_done = pp.loc[pp["PPSTINT"].notna() & pp["PPSTAT"].isna(), ["USUBJID", "PPGRPID"]]
    short = profiles.loc[profiles["LAST_TIME"] < end, ["USUBJID", "PPGRPID", "LAST_TIME"]].merge(
        aucint_done, on=["USUBJID", "PPGRPID"])
    for rec in short.itertuples(index=False):
        out.append(Finding(rule="NCA.AUCINT.SHORT", severity="Notice", dataset="PP", usubjid=rec.USUBJID,
                           variable="PPGRPID", value=str(rec.PPGRPID),
                           message=f"last sample at day {rec.LAST_TIME:g} < day {end:g}: AUCINT covers the "
                                   f"data up to the last sample (0 after Tlast)"))
    return out


__all__ = ["NcaResult", "build_pp", "describe_method", "describe_parameters", "format_sig", "parse_dtc",
           "AUC_QUANTITIES", "KIND_IMPUTED"]
