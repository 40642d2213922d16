"""PC -> PP: build the SDTM PP domain, RELREC PC<->PP, PCGRPID, SUPPPC exclusion flags.

Conventions (``docs/NCA.md``, ``docs/ARCHITECTURE.md``):

- One profile per USUBJID x PCTESTCD x PCSPEC x reference dose (PCRFTDTC of each record, and
  PCTPTREF when PC has it); PCGRPID = PPGRPID = the ``group_id`` of the profile (PCSPEC by
  default, ``<PCTESTCD>-<PCSPEC>`` with ``group_id: testcd_spec``, or a template such as
  ``{PCSPEC}-{PROFILE}`` when a subject has several profiles per specimen).  PCGRPID is set only on
  the PC records the NCA used; excluded records keep PCGRPID null, so the group-level RELREC (IDVAR
  PCGRPID / PPGRPID) links each PP group to exactly the PC records used.
- PPRFTDTC (and PPTPTREF) identify the profile's dose.
- Excluded PC records are flagged in SUPPPC: QNAM ``NCAXFL`` = "Y" and ``NCAXRS`` = the reason.
- PPSEQ is left to the SDTM engine (``build_sdtm`` numbers PP like every other domain).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from cdisc_pipe.errors import Finding, InputError, Problem
from cdisc_pipe.nca import units as U
from cdisc_pipe.nca.catalog import (
    AUC_QUANTITIES,
    DOSE_QUANTITIES,
    LAMBDA_Z_QUANTITIES,
    QUANTITY_UNIT,
    TAU_QUANTITIES,
)
from cdisc_pipe.nca.core import (
    BOLUS,
    INFUSION,
    KIND_IMPUTED,
    QUANTITY_COLUMN,
    _fmt,
    at_time,
    calc_parameters,
    fit_lambda_z,
    not_calculated_reasons,
    prepare_profiles,
    span_text,
)
from cdisc_pipe.nca.settings import NcaSettings

PC_REQUIRED = ("USUBJID", "PCSEQ", "PCTESTCD", "PCSPEC", "PCSTRESN", "PCSTRESC", "PCDTC", "PCRFTDTC")
PC_OPTIONAL = ("STUDYID", "PCSTRESU", "PCLLOQ", "PCSTAT", "PCELTM", "PCTPTREF")
PP_COLUMNS = [
    "STUDYID", "DOMAIN", "USUBJID", "PPGRPID", "PPTESTCD", "PPTEST", "PPCAT", "PPORRES", "PPORRESU",
    "PPSTRESC", "PPSTRESN", "PPSTRESU", "PPSTAT", "PPREASND", "PPSPEC", "PPRFTDTC", "PPSTINT", "PPENINT",
]
# added to NcaResult.pp (before PPRFTDTC) when PC has PCTPTREF; the study's PP spec keeps it or not
PP_OPTIONAL_COLUMNS = ["PPTPTREF"]
RELREC_COLUMNS = ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "RELTYPE", "RELID"]
SUPP_COLUMNS = ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QLABEL", "QVAL", "QORIG", "QEVAL"]
EXCLUSION_COLUMNS = ["USUBJID", "PCSEQ", "PCTESTCD", "PCSPEC", "PCDTC", "REASON"]
# the profile: subject, analyte, specimen, reference dose time (ns since epoch), PCTPTREF ("" when none)
KEYS = ("USUBJID", "PCTESTCD", "PCSPEC", "REFKEY", "TPTREF")
NO_REF = np.iinfo("int64").max  # REFKEY of records of a subject/analyte/specimen with no usable reference
DOSE_COLUMNS = ("USUBJID", "DTC", "DOSE", "DOSU")  # + optional ENDTC

_DATETIME_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$"
_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"


@dataclass
class NcaResult:
    """What :func:`build_pp` returns.

    Attributes:
        pp: the PP domain without PPSEQ (columns :data:`PP_COLUMNS`, plus PPTPTREF when PC has
            PCTPTREF), one record per profile x parameter, not-calculated parameters with PPSTAT
            "NOT DONE" and PPREASND.
        relrec: RELREC rows, group level: per PP group one PC row (IDVAR PCGRPID) and one PP row
            (IDVAR PPGRPID) sharing a RELID.
        pc: the input PC with PCGRPID set on the records used by the NCA (null on excluded ones).
        supppc: SUPPPC rows (QNAM NCAXFL / NCAXRS) for every excluded PC record.
        exclusions: PC records not used: USUBJID, PCSEQ, PCTESTCD, PCSPEC, PCDTC, REASON.
        method_description: plain text of the method and rules applied (for MethodDef, report).
        parameter_methods: PPTESTCD -> plain text of how that parameter is derived.
        profiles: one row per profile: keys, PPGRPID, PPRFTDTC, unrounded parameters (computed
            units), counts, flags.
        findings: data findings (records kept).
        auc_specimens: the specimens for which AUCs are computed.
        lambda_z_points: the PC records of each profile's lambda-z fit: USUBJID, PCSEQ, PPGRPID.
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
    lambda_z_points: pd.DataFrame | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary for ``outputs/sdtm/_stage/nca.json`` (deterministic)."""
        nc = self.pp["PPSTAT"].eq("NOT DONE")
        return {
            "method_description": self.method_description,
            "parameter_methods": self.parameter_methods,
            "profiles": len(self.profiles),
            "pp_records": len(self.pp),
            "pp_not_calculated": int(nc.sum()),
            "not_calculated_reasons": {str(k): int(v) for k, v in
                                       self.pp.loc[nc, "PPREASND"].value_counts().sort_index().items()},
            "pc_excluded": len(self.exclusions),
            "exclusion_reasons": {str(k): int(v) for k, v in
                                  self.exclusions["REASON"].value_counts().sort_index().items()},
            # profiles of specimens with AUCs only (e.g. a tissue without pre-dose sample by design)
            "time_zero_imputed": int(self.profiles.loc[self.profiles["PCSPEC"].isin(self.auc_specimens),
                                                       "T0_IMPUTED"].sum()) if len(self.profiles) else 0,
        }


# --------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------

def _time_text(settings: NcaSettings) -> str:
    unit = settings.units.time
    words = U.TIME_WORDS[unit]
    if unit in ("day", "week"):
        return f"in {words} (PCDTC - PCRFTDTC; whole days when either has no time)"
    return f"in {words} (PCDTC - PCRFTDTC; records without a time are not used)"


def _per_profile_text(settings: NcaSettings) -> str:
    if settings.group_template in ("{PCSPEC}", "{PCTESTCD}-{PCSPEC}"):
        return "per subject, specimen and analyte"
    return "per subject, specimen, analyte and reference dose (PCRFTDTC, PCTPTREF)"


def _interval_text(settings: NcaSettings) -> str:
    unit, d2u = settings.units.time, settings.days_to_unit
    parts = []
    for iv in settings.intervals:
        s, e = iv.bounds(d2u)
        st, en = iv.labels(unit, d2u)
        parts.append(f"from {at_time(s, unit)} to {at_time(e, unit)} (PPSTINT {st}, PPENINT {en})")
    return " and ".join(parts)


def _window_text(settings: NcaSettings) -> str:
    unit, d2u = settings.units.time, settings.days_to_unit
    w = span_text(settings.min_data.window(d2u), unit)
    return " or ".join(f"{at_time(iv.bounds(d2u)[1], unit)} +/- {w}" for iv in settings.intervals)


def _extra_method_text(settings: NcaSettings) -> str:
    """Sentences for the quantities beyond Cmax, Tmax, Clast, Tlast, AUCLST, AUCINT (empty when none)."""
    q = settings.reported_quantities()
    lz = settings.lambda_z
    w = settings.words
    out = []
    if settings.effective_route == BOLUS:
        out.append("IV bolus: the time-zero concentration is C0 (PKNCA pk.calc.c0, methods "
                   f"{', '.join(settings.c0_methods)}; logslope = log-linear back-extrapolation of the first two "
                   f"{w['post']} concentrations).")
    if q & set(LAMBDA_Z_QUANTITIES):
        incl = "at or after" if lz.include_tmax else "after"
        thr = []
        if lz.min_r2adj is not None:
            thr.append(f"adjusted R2 < {_fmt(lz.min_r2adj)}")
        if lz.min_span_ratio is not None:
            thr.append(f"span ratio < {_fmt(lz.min_span_ratio)}")
        out.append(
            "Lambda z (PKNCA pk.calc.half.life): unweighted least squares of ln(concentration) on time over the "
            f"last n >= {lz.min_points} quantifiable concentrations {incl} Tmax (BLQ excluded); the fit with the best "
            f"adjusted R2 is chosen, a fit within {_fmt(lz.adj_r2_factor)} of the best with more points wins; lambda z "
            "must be > 0; manually selected points per profile where the settings give them (reason in the report)."
            + (f" Lambda z estimates are not calculated when {' or '.join(thr)}." if thr else ""))
        inf = ("AUCIFO/AUCIFP = AUCLST + Clast(observed/predicted)/lambda z; AUCPEO/AUCPEP = 100 (1 - AUCLST/AUCinf); "
               "AUMC by the same trapezoidal rule on t x C, AUMCinf = AUMCLST + Clast Tlast/lambda z + "
               "Clast/lambda z^2; MRT = AUMCinf/AUCinf")
        if settings.effective_route == INFUSION:
            inf += " - infusion duration/2"
        inf += "; CL = dose/AUCinf; Vz = dose/(lambda z AUCinf)"
        if lz.max_aucpext is not None:
            inf += f"; AUCinf-based parameters are not calculated when the AUC extrapolated is > {_fmt(lz.max_aucpext)}%"
        out.append(inf + ".")
    if q & set(TAU_QUANTITIES) and settings.multiple_dose is not None:
        md = settings.multiple_dose
        unit = settings.units.time
        out.append(f"Dosing-interval profiles (tau {span_text(md.tau, unit)}): AUCTAU from 0 to tau as AUCINT, "
                   f"CAVG = AUCTAU/tau, CTROUGH the concentration at tau +/- {span_text(md.window, unit)} "
                   f"({md.ctrough.replace('_', ' ')}), CMIN the minimum concentration from 0 to tau.")
    if q & set(DOSE_QUANTITIES):
        out.append("Doses: the sum of the subject's doses starting at the profile's reference time, in "
                   f"{settings.units.dose}.")
    return (" ".join(out) + " ") if out else ""


def describe_method(settings: NcaSettings) -> str:
    """Plain-text description of the NCA method and rules the settings apply (for define.xml)."""
    b, tz, md = settings.blq, settings.time_zero, settings.min_data
    w = settings.words
    blq_text = {"zero": "set to 0", "drop": "dropped", "half_lloq": "set to LLOQ/2"}
    method = ("linear-up/log-down trapezoidal method (linear trapezoid while concentrations rise or stay "
              "equal or when either end is 0, log trapezoid while they fall)"
              if settings.auc_method == "lin up/log down" else "linear trapezoidal method")
    interp = ("linear interpolation in a linear segment, log-linear interpolation in a log-down segment"
              if settings.auc_method == "lin up/log down" else "linear interpolation")
    spec_text = "; ".join(f"{spec}: {', '.join(codes)}" for spec, codes in settings.specimens.items())
    aucint = "aucint" in settings.reported_quantities()  # the interval sentences only when AUCINT is reported
    days = _fmt(tz.predose_max_days)
    t0 = (f"Time zero is the last {w['pre']} sample taken at most {days} day{'' if days == '1' else 's'} before "
          f"the {w['dose']} (a BLQ {w['pre']} sample counts as 0); earlier {w['pre']} samples are not used"
          if tz.use_predose else f"{w['pre'][0].upper()}{w['pre'][1:]} samples are not used")
    t0 += (f"; without one a concentration of 0 is imputed at the {w['dose']} time."
           if tz.impute_zero else "; without one AUCs are not calculated.")
    return (
        f"Non-compartmental analysis (PKNCA conventions) of {', '.join(settings.analytes)} "
        f"{_per_profile_text(settings)}, on actual time since {settings.reference_event} {_time_text(settings)}. "
        f"{t0} BLQ results (PCSTRESC '{b.stresc}') before the first quantifiable concentration "
        f"are {blq_text[b.leading]}, between quantifiable concentrations {blq_text[b.middle]}, after the last "
        f"quantifiable concentration {blq_text[b.trailing]}. Cmax and Tmax: maximum observed {w['post']} "
        f"concentration and its actual time (first occurrence on ties). Clast and Tlast: last concentration "
        f"above 0 and its time. AUCs by the {method}: AUCLST from 0 to Tlast"
        + (f"; AUCINT {_interval_text(settings)} with the concentration at an interval end between samples "
           f"obtained by {interp}, and 0 after Tlast (AUClast-type, PKNCA aucint.last)" if aucint else "")
        + f". {_extra_method_text(settings)}"
        f"Not calculated (PPSTAT NOT DONE, reason in PPREASND): Cmax, "
        f"Tmax, Clast, Tlast without a quantifiable {w['post']} concentration; AUCs with fewer than "
        f"{md.auc_quantifiable_points} quantifiable {w['post']} concentrations or no time-zero concentration"
        + (f"; AUCINT without a sample within {_window_text(settings)}" if aucint else "") + ". "
        + (f"Parameters by specimen: {spec_text}." if spec_text else
           f"Parameters (every specimen): {', '.join(p.testcd for p in settings.parameters)}.")
        + " When the NCA excludes a PC record, the record is flagged "
        f"in SUPPPC ({settings.supppc.flag} = Y, reason in {settings.supppc.reason}); RELREC links each PP group "
        f"(PPGRPID) to the PC records used (PCGRPID)."
    )


def describe_parameters(settings: NcaSettings) -> dict[str, str]:
    """PPTESTCD -> plain text of its derivation (for value-level MethodDefs)."""
    method = "linear-up/log-down" if settings.auc_method == "lin up/log down" else "linear"
    w = settings.words
    unit = U.TIME_WORDS[settings.units.time]
    since = f"Actual time since {w['dose']} ({unit})"
    lz = settings.lambda_z
    route_cl = "intravascular" if settings.effective_route in (BOLUS, INFUSION) else "extravascular"
    md = settings.multiple_dose
    text = {
        "cmax": f"Maximum observed {w['post']} concentration.",
        "tmax": f"{since} of the maximum observed {w['post']} concentration; first occurrence on ties.",
        "clast": "Last observed concentration above 0 (above the LLOQ).",
        "tlast": f"{since} of the last concentration above 0.",
        "auclast": f"AUC from time 0 to Tlast by the {method} trapezoidal method.",
        "aucint": f"AUC {_interval_text(settings).replace(' (PPSTINT', ' [PPSTINT').replace(')', ']')} by the "
                  f"{method} trapezoidal method, interval end interpolated between samples, 0 after Tlast "
                  "(PKNCA aucint.last)."
        if len(settings.intervals) > 1 else
        f"AUC from {at_time(settings.intervals[0].bounds(settings.days_to_unit)[0], settings.units.time)} to "
        f"{at_time(settings.intervals[0].bounds(settings.days_to_unit)[1], settings.units.time)} by the {method} "
        "trapezoidal method, interval end interpolated between samples, 0 after Tlast (PKNCA aucint.last).",
        "lambda_z": f"Terminal rate constant: minus the slope of the unweighted least-squares line of ln(C) on t over "
                    f"the last >= {lz.min_points} quantifiable points after Tmax with the best adjusted R2 (within "
                    f"{_fmt(lz.adj_r2_factor)}: more points) (PKNCA half.life).",
        "half_life": "ln(2) / lambda z.",
        "lambda_z_n": "Number of points in the lambda z regression.",
        "r2": "R2 of the lambda z regression.",
        "r2adj": "Adjusted R2 of the lambda z regression: 1 - (1 - R2)(n - 1)/(n - 2).",
        "lambda_z_lower": f"{since} of the first point of the lambda z regression.",
        "lambda_z_upper": f"{since} of the last point of the lambda z regression.",
        "span_ratio": "(LAMZUL - LAMZLL) / half-life.",
        "clast_pred": "Concentration at Tlast predicted by the lambda z regression line.",
        "aucinf_obs": "AUCLST + Clast (observed) / lambda z.",
        "aucinf_pred": "AUCLST + Clast (predicted) / lambda z.",
        "aucpext_obs": "100 x (1 - AUCLST / AUCIFO).",
        "aucpext_pred": "100 x (1 - AUCLST / AUCIFP).",
        "aumclast": f"AUMC (area under t x C) from time 0 to Tlast by the {method} trapezoidal method (PKNCA "
                    "aumcintegrate_linear / aumcintegrate_log).",
        "aumcinf_obs": "AUMCLST + Clast Tlast / lambda z + Clast / lambda z^2 (observed Clast).",
        "aumcinf_pred": "AUMCLST + Clast Tlast / lambda z + Clast / lambda z^2 (predicted Clast).",
        "mrt_obs": "AUMCIFO / AUCIFO" + (" - infusion duration / 2." if settings.effective_route == INFUSION else "."),
        "mrt_pred": "AUMCIFP / AUCIFP" + (" - infusion duration / 2." if settings.effective_route == INFUSION else "."),
        "cl_obs": f"Dose / AUCIFO ({route_cl}).",
        "cl_pred": f"Dose / AUCIFP ({route_cl}).",
        "vz_obs": f"Dose / (lambda z x AUCIFO) ({route_cl}).",
        "vz_pred": f"Dose / (lambda z x AUCIFP) ({route_cl}).",
        "c0": f"Concentration at the dose time of an IV bolus (PKNCA pk.calc.c0: {', '.join(settings.c0_methods)}).",
        "auctau": f"AUC from 0 to tau ({span_text(md.tau, settings.units.time)}) by the {method} trapezoidal method, "
                  "tau interpolated between samples, 0 after Tlast." if md else "AUC over the dosing interval.",
        "cavg": "AUCTAU / tau.",
        "ctrough": "Concentration at the end of the dosing interval (sample at tau, else the pre-dose sample)."
        if md is None or md.ctrough == "tau_or_predose" else
        ("Concentration of the sample at tau." if md.ctrough == "tau" else "Concentration of the pre-dose sample."),
        "cmin": "Minimum observed concentration from 0 to tau.",
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


def _convertible(stresu: pd.Series, target: str) -> np.ndarray:
    """Per record: whether its PCSTRESU converts to the NCA unit (units table)."""
    ok = np.zeros(len(stresu), dtype=bool)
    codes, uniq = pd.factorize(stresu, use_na_sentinel=True)
    for i, u in enumerate(uniq):  # a handful of distinct units, not records
        try:
            ok[codes == i] = u == target or bool(U.conc_factor(u, target))
        except U.UnitError:
            pass
    return ok


def _apply_conc(values: np.ndarray, stresu: pd.Series, target: str) -> np.ndarray:
    """Values converted from their PCSTRESU to ``target`` (one rounding; unconvertible -> unchanged)."""
    out = np.asarray(values, dtype="float64").copy()
    codes, uniq = pd.factorize(stresu, use_na_sentinel=True)
    for i, u in enumerate(uniq):
        if u == target:
            continue
        try:
            f = U.conc_factor(u, target)
        except U.UnitError:
            continue
        m = codes == i
        out[m] = U.scale(out[m], f)
    return out


def _refkey(usubjid: pd.Series, testcd: pd.Series, spec: pd.Series, r_dt: pd.Series, r_date: np.ndarray
            ) -> np.ndarray:
    """The reference-dose key of each record: its PCRFTDTC (ns); a record without a usable reference
    joins the earliest reference of its subject, analyte and specimen (else :data:`NO_REF`)."""
    ns = np.where(r_date, r_dt.to_numpy(dtype="datetime64[ns]").astype("int64"), NO_REF)
    grp = pd.DataFrame({"U": usubjid.to_numpy(), "T": testcd.to_numpy(), "S": spec.to_numpy(), "K": ns})
    earliest = grp.groupby(["U", "T", "S"], dropna=False)["K"].transform("min").to_numpy()
    return np.where(r_date, ns, earliest).astype("int64")


def _tptref(usubjid, testcd, spec, refkey, tpt: pd.Series) -> np.ndarray:
    """PCTPTREF of each record ("" when none); a missing one takes the only PCTPTREF of its
    subject, analyte, specimen and reference dose."""
    frame = pd.DataFrame({"U": usubjid.to_numpy(), "T": testcd.to_numpy(), "S": spec.to_numpy(), "K": refkey,
                          "P": tpt.to_numpy()})
    g = frame.groupby(["U", "T", "S", "K"], dropna=False, sort=False)["P"]
    only = g.transform("first").where(g.transform("nunique").eq(1))
    out = frame["P"].where(frame["P"].notna(), only)
    return out.where(out.notna(), "").to_numpy(dtype=object)


def dose_records(datasets: dict[str, pd.DataFrame], settings: NcaSettings) -> pd.DataFrame | None:
    """The doses the settings point to (``doses``), as USUBJID, DTC, DOSE, DOSU[, ENDTC] for
    :func:`build_pp`; None when the settings name no dose source or the dataset is absent."""
    src = settings.doses
    if src is None:
        return None
    df = datasets.get(src.dataset)
    if df is None:  # no dose records yet (a pre-lock export): dose-based parameters are NOT DONE
        return None
    lacking = [c for c in (src.dtc, src.amount, src.unit, "USUBJID") if c not in df]
    if lacking:  # a settings mistake, not missing data: say so instead of NOT DONE everywhere
        raise InputError(Problem("specs/settings/nca.yaml", f"{src.dataset} has no {', '.join(lacking)}",
                                 entry="doses", value=", ".join(lacking),
                                 hint=f"name variables of {src.dataset} in doses (dtc, amount, unit)"), stage="sdtm")
    if src.variable and src.variable in df and src.values:
        df = df[df[src.variable].isin(src.values)]
    out = pd.DataFrame({"USUBJID": df["USUBJID"].to_numpy(), "DTC": df[src.dtc].to_numpy(),
                        "DOSE": df[src.amount].to_numpy(), "DOSU": df[src.unit].to_numpy()})
    if src.endtc and src.endtc in df:
        out["ENDTC"] = df[src.endtc].to_numpy()
    return out


def _dose_of_rows(doses: pd.DataFrame | None, usubjid: pd.Series, refkey: np.ndarray, settings: NcaSettings,
                  findings: list[Finding]) -> tuple[np.ndarray, np.ndarray]:
    """Per record: the dose amount (units.dose) and the infusion duration (units.time) of its
    reference dose (the sum of the subject's doses starting at the reference time)."""
    n = len(usubjid)
    amount, duration = np.full(n, np.nan), np.full(n, np.nan)
    if doses is None or not len(doses):
        return amount, duration
    missing = [c for c in DOSE_COLUMNS if c not in doses.columns]
    if missing:
        raise InputError(Problem("doses", f"doses lack {', '.join(missing)}", entry="columns",
                                 hint="Pass USUBJID, DTC, DOSE, DOSU and optionally ENDTC"), stage="nca")
    d = pd.DataFrame({"USUBJID": _as_text(doses["USUBJID"]).to_numpy()})
    dt, has_date, has_time = parse_dtc(_as_text(doses["DTC"]))
    d["K"] = np.where(has_date, dt.to_numpy(dtype="datetime64[ns]").astype("int64"), NO_REF)
    dose = pd.to_numeric(doses["DOSE"], errors="coerce").to_numpy(dtype="float64")
    unit = _as_text(doses["DOSU"])
    target = settings.units.dose
    conv = np.full(len(d), np.nan)
    for u in unit.dropna().unique():  # a handful of units
        m = (unit == u).to_numpy()
        if target is None:
            continue
        try:
            conv[m] = U.scale(dose[m], U.amount_factor(u, target))
        except U.UnitError:
            findings.append(Finding(rule="NCA.DOSE.UNIT", severity="Warning", dataset="PP", variable="DOSU", value=u,
                                    message=f"dose unit {u} does not convert to units.dose {target}: dose not used"))
    d["DOSE"] = conv
    if "ENDTC" in doses.columns:
        et, _, e_time = parse_dtc(_as_text(doses["ENDTC"]))
        dur = ((et - dt) / pd.Timedelta(**U.TIME_TIMEDELTA[settings.units.time])).to_numpy(
            dtype="float64", na_value=np.nan)
        d["DUR"] = np.where(has_time & e_time, dur, np.nan)
    else:
        d["DUR"] = np.nan
    d = d.loc[d["K"] != NO_REF]
    agg = d.groupby(["USUBJID", "K"]).agg(DOSE=("DOSE", lambda s: s.sum(min_count=len(s))), DUR=("DUR", "max"))
    key = pd.MultiIndex.from_arrays([usubjid.to_numpy(), refkey])
    hit = agg.reindex(key)
    return hit["DOSE"].to_numpy(dtype="float64"), hit["DUR"].to_numpy(dtype="float64")


def _lambda_z_flags(settings: NcaSettings, nca_rows: np.ndarray, usubjid, testcd, spec, tpt, refkey, seq, time,
                    findings: list[Finding]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per record: LZ_INCLUDE, LZ_EXCLUDE, LZ_MANUAL from ``lambda_z.manual`` (findings for each rule)."""
    n = len(usubjid)
    inc, exc, man = (np.zeros(n, dtype=bool) for _ in range(3))
    u = usubjid.to_numpy(dtype=object)
    for rule in settings.lambda_z.manual:  # a few rules, not records
        m = nca_rows & (u == rule.usubjid)
        for value, col in ((rule.pctestcd, testcd), (rule.pcspec, spec), (rule.pctptref, tpt)):
            if value is not None:
                m &= (col.to_numpy(dtype=object) == value)
        if rule.pcrftdtc is not None:
            r_dt, r_date, _ = parse_dtc(pd.Series([rule.pcrftdtc], dtype="object"))
            k = r_dt.to_numpy(dtype="datetime64[ns]").astype("int64")[0] if r_date[0] else None
            m &= refkey == k
        what = []
        if rule.points:
            sel = m & np.isin(seq, rule.points)
            inc |= sel
            what.append(f"points PCSEQ {', '.join(str(p) for p in rule.points)}")
            missing = sorted(set(rule.points) - set(seq[sel].astype(int)))
            if missing and m.any():
                findings.append(Finding(rule="NCA.LAMZ.NOMATCH", severity="Warning", dataset="PC",
                                        usubjid=rule.usubjid, variable="PCSEQ",
                                        message="lambda z rule names PCSEQ not in the profile: "
                                                + ", ".join(str(x) for x in missing)))
        if rule.start is not None or rule.end is not None:
            lo = -np.inf if rule.start is None else rule.start
            hi = np.inf if rule.end is None else rule.end
            with np.errstate(invalid="ignore"):
                inc |= m & (time >= lo) & (time <= hi)
            what.append(f"time window {_fmt(lo)} to {_fmt(hi)} {settings.units.time}")
        if rule.manual:
            man |= m
        if rule.exclude:
            exc |= m & np.isin(seq, rule.exclude)
            what.append(f"excluded PCSEQ {', '.join(str(p) for p in rule.exclude)}")
        if not m.any():
            findings.append(Finding(rule="NCA.LAMZ.NOMATCH", severity="Warning", dataset="PC", usubjid=rule.usubjid,
                                    message=f"lambda z rule matches no analysed PC record: {rule.reason}"))
        else:
            findings.append(Finding(rule="NCA.LAMZ.MANUAL", severity="Notice", dataset="PP", usubjid=rule.usubjid,
                                    message=f"lambda z points set in the settings ({'; '.join(what)}): {rule.reason}"))
    return inc, exc, man


def _group_ids(profiles: pd.DataFrame, template: str) -> np.ndarray:
    """PCGRPID / PPGRPID of each profile from the ``group_id`` template."""
    prof = profiles
    rank = (prof.groupby(["USUBJID", "PCTESTCD", "PCSPEC"], sort=False)["REFKEY"].rank(method="dense")
            .astype("int64").astype(str))
    values = {"PCSPEC": prof["PCSPEC"].astype(str), "PCTESTCD": prof["PCTESTCD"].astype(str),
              "PCTPTREF": prof["TPTREF"].astype(str), "PROFILE": rank,
              "RFTDTC": prof["PPRFTDTC"].fillna("").astype(str)}
    if template == "{PCSPEC}":  # the common case, as before
        return prof["PCSPEC"].to_numpy()
    out = pd.Series("", index=prof.index, dtype=object)
    pos = 0
    import re
    for m in re.finditer(r"\{([A-Za-z_]+)\}", template):
        out = out + template[pos:m.start()] + values[m.group(1)]
        pos = m.end()
    out = out + template[pos:]
    return out.to_numpy(dtype=object)


def build_pp(pc: pd.DataFrame, dm: pd.DataFrame, settings: NcaSettings, *,
             exclude_after: pd.DataFrame | None = None, doses: pd.DataFrame | None = None) -> NcaResult:
    """Run the NCA on PC and build PP, RELREC, PCGRPID, SUPPPC and the exclusion list.

    Args:
        pc: the SDTM PC domain (PCSEQ assigned), conventions of ``docs/ARCHITECTURE.md``.
        dm: the SDTM DM domain (USUBJID; RFSTDTC is the fallback reference when PCRFTDTC is null).
        settings: :class:`NcaSettings` (``load_nca_settings("specs/settings/nca.yaml")``).
        exclude_after: optional per-subject cut-off events (columns USUBJID, DTC and optionally
            REASON), for example the start of a subsequent therapy: PC records dated on or after the
            subject's earliest complete DTC date are excluded with REASON (default
            :data:`DEFAULT_CUTOFF_REASON`).
        doses: optional dose records (USUBJID, DTC, DOSE, DOSU[, ENDTC]; :func:`dose_records`
            builds them from the settings' ``doses`` source): a profile's dose is the sum of the
            subject's doses starting at its reference time; needed for CL and Vz, ENDTC for the
            infusion duration.

    Returns:
        :class:`NcaResult`.  Records are never dropped silently: every PC record of an analysed
        analyte is either used (PCGRPID set) or listed in ``exclusions`` and flagged in SUPPPC.

    Raises:
        InputError: PC or DM lacks a needed variable, PCSEQ is missing / not unique, a unit is not
            readable / not a PKUNIT term nor a declared extension, or ``group_id`` does not give
            each profile of a subject its own group.
    """
    _check_inputs(pc, dm)
    findings: list[Finding] = []
    n_pc = len(pc)
    usubjid = _as_text(pc["USUBJID"])
    testcd = _as_text(pc["PCTESTCD"])
    spec = _as_text(pc["PCSPEC"])
    seq = pd.to_numeric(pc["PCSEQ"], errors="coerce").to_numpy(dtype="float64")
    col = lambda name: pc[name] if name in pc.columns else pd.Series([None] * n_pc, index=pc.index)
    studyid = _as_text(col("STUDYID"))
    if "STUDYID" in dm.columns:  # fill a missing PC.STUDYID from DM
        dm_study = _as_text(dm["STUDYID"]).set_axis(_as_text(dm["USUBJID"])).loc[lambda x: ~x.index.duplicated()]
        studyid = studyid.where(studyid.notna(), usubjid.map(dm_study))

    settings = settings.resolve(testcd, spec, col("PCSTRESU"), pd.to_numeric(pc["PCSTRESN"], errors="coerce").notna())
    ru = settings.result_units() if settings.units.conc else None
    w = settings.words
    unit = settings.units.time
    nca_rows = testcd.isin(settings.analytes).to_numpy() & usubjid.notna().to_numpy()
    reason = pd.Series([None] * n_pc, index=pc.index, dtype="object")

    def exclude(mask: np.ndarray, text: str | pd.Series) -> None:
        mask = mask & nca_rows & reason.isna().to_numpy()
        if mask.any():
            reason[mask] = text[mask] if isinstance(text, pd.Series) else text

    # --- specimen, status, result, unit ---------------------------------------------------------
    exclude(~spec.isin(list(settings.specimens)).to_numpy(),
            "specimen not analysed (not listed in the NCA settings' specimens)")
    stat = _as_text(col("PCSTAT")).str.upper()
    exclude(stat.eq("NOT DONE").fillna(False).to_numpy(dtype=bool), "not done (PCSTAT NOT DONE)")
    stresn = pd.to_numeric(pc["PCSTRESN"], errors="coerce")
    stresc = _as_text(pc["PCSTRESC"])
    blq = (stresn.isna() & stresc.str.upper().eq(settings.blq.stresc.upper()).fillna(False)).to_numpy(dtype=bool)
    exclude((stresn < 0).fillna(False).to_numpy(dtype=bool), "negative concentration")
    stresu = _as_text(col("PCSTRESU"))
    target = settings.units.conc
    wrong_unit = stresn.notna().to_numpy() & ~_convertible(stresu, target)
    exclude(wrong_unit, f"PCSTRESU is not the NCA unit {target}")
    conc = _apply_conc(stresn.to_numpy(dtype="float64"), stresu, target)
    lloq = pd.Series(_apply_conc(pd.to_numeric(col("PCLLOQ"), errors="coerce").to_numpy(dtype="float64"),
                                 stresu, target), index=pc.index)

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
    exclude(rft.isna().to_numpy(), f"no {w['dose']} date/time (PCRFTDTC and DM.RFSTDTC missing)")
    exclude(~r_date, "PCRFTDTC is not a complete date")
    exclude(~s_date, "PCDTC is missing or not a complete date")
    both_time = s_time & r_time
    exact = ((s_dt - r_dt) / pd.Timedelta(**U.TIME_TIMEDELTA[unit])).to_numpy(dtype="float64", na_value=np.nan)
    whole = ((s_dt.dt.normalize() - r_dt.dt.normalize()) / pd.Timedelta(days=1)).to_numpy(
        dtype="float64", na_value=np.nan)
    time = np.where(both_time, exact, U.scale(whole, settings.days_to_unit))
    if unit in ("h", "min"):
        exclude(~both_time & s_date & r_date,
                f"PCDTC or PCRFTDTC has no time: actual time in {U.TIME_WORDS[unit]} unknown")
    eltm = _as_text(col("PCELTM"))
    predose_eltm = eltm.str.startswith("-").fillna(False).to_numpy(dtype=bool)
    same_day_unknown = ~both_time & (whole == 0) & ~predose_eltm
    exclude(same_day_unknown & s_date & r_date,
            f"sampled on the {w['dose']} day without a time: order relative to the {w['dose']} unknown")
    if exclude_after is not None and len(exclude_after):
        after, text = _after_cutoff(exclude_after, usubjid, s_dt, s_date, findings)
        exclude(after, text)

    # --- profiles: subject x analyte x specimen x reference dose ---------------------------------
    spec_key = spec.where(spec.notna(), "")
    refkey = _refkey(usubjid, testcd, spec_key, r_dt, r_date)
    tpt = _as_text(col("PCTPTREF"))
    tptref = _tptref(usubjid, testcd, spec_key, refkey, tpt)
    tau = np.full(n_pc, np.nan)
    md = settings.multiple_dose
    if md is not None:
        sel = np.ones(n_pc, dtype=bool) if not md.pctptref else np.isin(tptref, md.pctptref)
        tau[sel] = md.tau
    dose, dosedur = _dose_of_rows(doses, usubjid, refkey, settings, findings)
    lz_inc, lz_exc, lz_man = _lambda_z_flags(settings, nca_rows, usubjid, testcd, spec, pd.Series(tptref), refkey,
                                             seq, time, findings)

    rows = np.flatnonzero(nca_rows)
    tidy = pd.DataFrame({
        "USUBJID": usubjid.to_numpy()[rows], "PCTESTCD": testcd.to_numpy()[rows],
        "PCSPEC": spec.to_numpy()[rows].astype(object), "REFKEY": refkey[rows], "TPTREF": tptref[rows],
        "TIME": time[rows], "CONC": conc[rows], "BLQ": blq[rows],
        "LLOQ": lloq.to_numpy(dtype="float64")[rows], "RECID": rows, "XREASON": reason.to_numpy()[rows],
        "TAU": tau[rows], "DOSE": dose[rows], "DOSEDUR": dosedur[rows],
        "LZ_INCLUDE": lz_inc[rows], "LZ_EXCLUDE": lz_exc[rows], "LZ_MANUAL": lz_man[rows],
    })
    tidy["PCSPEC"] = tidy["PCSPEC"].where(pd.notna(tidy["PCSPEC"]), "")
    prof = prepare_profiles(tidy, KEYS, settings)
    params = calc_parameters(prof, settings)
    reasons = not_calculated_reasons(params, settings)
    profiles = pd.concat([prof.profiles.drop(columns=["TAU", "DOSE", "DOSEDUR"]).set_index("PID"), params], axis=1)

    # records used / excluded
    used_rec = prof.points["RECID"].dropna().to_numpy(dtype="int64")
    dropped = prof.dropped
    pid_of_row = np.full(n_pc, -1)
    pid_of_row[prof.points.loc[prof.points["RECID"].notna(), "RECID"].to_numpy(dtype="int64")] = \
        prof.points.loc[prof.points["RECID"].notna(), "PID"].to_numpy()
    any_pid = pid_of_row.copy()
    any_pid[dropped["RECID"].to_numpy(dtype="int64")] = dropped["PID"].to_numpy()

    # PPRFTDTC: the reference of the records used (of any record when all were excluded)
    rft_df = pd.DataFrame({"PID": any_pid[rows], "UNUSED": pid_of_row[rows] < 0, "PPRFTDTC": rft.to_numpy()[rows]})
    rft_df = rft_df.sort_values("UNUSED", kind="stable").groupby("PID", sort=False)["PPRFTDTC"].first()
    profiles["PPRFTDTC"] = rft_df.reindex(profiles.index).to_numpy(dtype=object)
    profiles["PPTPTREF"] = profiles["TPTREF"].where(profiles["TPTREF"].ne(""), None)
    profiles["PPGRPID"] = _group_ids(profiles, settings.group_template)
    dup = pd.DataFrame({"U": profiles["USUBJID"], "G": profiles["PPGRPID"]}).duplicated(keep=False)
    if dup.any():
        first = profiles.loc[dup.to_numpy()].iloc[0]
        raise InputError(Problem("NCA settings", f"group_id gives several profiles of {first['USUBJID']} the same "
                                 f"PCGRPID {first['PPGRPID']!r} ({int(dup.sum())} profiles in all)",
                                 entry="group_id", value=settings.group_id,
                                 hint="A subject has several reference doses per specimen: use a template such "
                                      "as '{PCSPEC}-{PROFILE}' or '{PCSPEC}-{PCTPTREF}'"), stage="nca")

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

    # lambda-z points (for the report / ADPC)
    _, lz_used = fit_lambda_z(prof, settings, params["TMAX"].to_numpy(), params["TLAST"].to_numpy())
    lz_rec = prof.points.loc[lz_used, ["PID", "RECID"]]
    lz_points = pd.DataFrame({"USUBJID": usubjid.to_numpy()[lz_rec["RECID"].to_numpy(dtype="int64")],
                              "PCSEQ": seq[lz_rec["RECID"].to_numpy(dtype="int64")],
                              "PPGRPID": profiles["PPGRPID"].to_numpy()[lz_rec["PID"].to_numpy()]})

    # --- PP -------------------------------------------------------------------------------------
    plan = pd.DataFrame(
        [(sp, code, i) for sp, codes in settings.specimens.items() for i, code in enumerate(codes)],
        columns=["PCSPEC", "PPTESTCD", "ORDER"],
    )
    par = pd.DataFrame([(p.testcd, p.test, p.quantity) for p in settings.parameters],
                       columns=["PPTESTCD", "PPTEST", "QUANTITY"])
    plan = plan.merge(par, on="PPTESTCD", how="left")
    n_iv = len(settings.intervals)
    if n_iv > 1:  # one AUCINT record per interval
        plan["IV"] = [list(range(n_iv)) if q == "aucint" else [0] for q in plan["QUANTITY"]]
        plan = plan.explode("IV", ignore_index=True)
    else:
        plan["IV"] = 0
    plan["IV"] = plan["IV"].astype("int64")
    base = profiles.reset_index()[["PID", "USUBJID", "PCTESTCD", "PCSPEC", "PPGRPID", "TAU"]]
    long = base.merge(plan, on="PCSPEC", how="inner").sort_values(["PID", "ORDER", "IV"], kind="stable")
    # dosing-interval parameters only on dosing-interval profiles
    long = long.loc[~(long["QUANTITY"].isin(TAU_QUANTITIES) & long["TAU"].isna())]
    quantity = long["QUANTITY"].to_numpy()
    ivx = long["IV"].to_numpy()
    pidx = long["PID"].to_numpy()
    value = np.full(len(long), np.nan)
    why = np.full(len(long), None, dtype=object)
    unit_of = np.full(len(long), None, dtype=object)
    for q in np.unique(quantity):  # loop over the parameter kinds, not over records
        for i in np.unique(ivx[quantity == q]):
            m = (quantity == q) & (ivx == i)
            sfx = "" if i == 0 else f"_{i}"
            kind = QUANTITY_UNIT[q]
            f = ru.factor.get(kind, Fraction(1)) if ru is not None else Fraction(1)
            value[m] = U.scale(params[QUANTITY_COLUMN[q] + sfx].to_numpy()[pidx[m]], f)
            why[m] = reasons[q + sfx].astype(object).to_numpy()[pidx[m]]
            unit_of[m] = ru.unit.get(kind) if ru is not None else (settings.units.of(kind) or None)
    has_why = ~pd.isna(why)
    nc = has_why | ~np.isfinite(value)
    # defensive: a non-finite value always carries a reason (not expected with the rules above)
    why = np.where(nc & ~has_why, "Not calculable", why)
    text, numeric = format_sig(np.where(nc, np.nan, value), settings.significant_digits)
    units = unit_of
    if not settings.units_when_not_done:
        units = np.where(nc, None, units)
    first_study = pd.Series(studyid.to_numpy()[rows]).groupby(tidy["USUBJID"].to_numpy()).first()
    labels = [iv.labels(unit, settings.days_to_unit) for iv in settings.intervals]
    stint = np.full(len(long), None, dtype=object)
    enint = np.full(len(long), None, dtype=object)
    is_aucint = quantity == "aucint"
    for i, (st, en) in enumerate(labels):
        stint[is_aucint & (ivx == i)] = st
        enint[is_aucint & (ivx == i)] = en
    if md is not None:
        pre, suf = U.TIME_ISO[unit]
        is_tau = quantity == "auctau"
        stint[is_tau] = md.stint or f"{pre}0{suf}"
        enint[is_tau] = md.enint or f"{pre}{_fmt(md.tau)}{suf}"
    # PPCAT: the analyte's name (PCTEST), its code (PCTESTCD) when PC has no PCTEST
    analyte = long["PCTESTCD"]
    if "PCTEST" in pc.columns:
        names = pc.dropna(subset=["PCTEST"]).drop_duplicates("PCTESTCD").set_index("PCTESTCD")["PCTEST"]
        analyte = analyte.map(names).where(lambda x: x.notna(), analyte)
    pp = pd.DataFrame({
        "STUDYID": long["USUBJID"].map(first_study).to_numpy(),
        "DOMAIN": "PP",
        "USUBJID": long["USUBJID"].to_numpy(),
        "PPGRPID": long["PPGRPID"].to_numpy(),
        "PPTESTCD": long["PPTESTCD"].to_numpy(),
        "PPTEST": long["PPTEST"].to_numpy(),
        "PPCAT": analyte.to_numpy(),
        "PPORRES": text, "PPORRESU": units, "PPSTRESC": text, "PPSTRESN": numeric, "PPSTRESU": units,
        "PPSTAT": np.where(nc, "NOT DONE", None),
        "PPREASND": np.where(nc, why, None),
        "PPSPEC": long["PCSPEC"].to_numpy(),
        "PPTPTREF": profiles["PPTPTREF"].to_numpy()[pidx],
        "PPRFTDTC": profiles["PPRFTDTC"].to_numpy()[pidx],
        "PPSTINT": stint,
        "PPENINT": enint,
    })
    columns = list(PP_COLUMNS)
    if "PCTPTREF" in pc.columns:
        columns.insert(columns.index("PPRFTDTC"), "PPTPTREF")
    for c in columns:
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
                              s_date, r_date, stresn, pd.to_numeric(col("PCLLOQ"), errors="coerce"), exclusions, pp,
                              profiles, settings))

    return NcaResult(
        pp=pp[columns], relrec=relrec[RELREC_COLUMNS], pc=out_pc, supppc=supppc[SUPP_COLUMNS],
        exclusions=exclusions[EXCLUSION_COLUMNS], method_description=describe_method(settings),
        parameter_methods=describe_parameters(settings),
        profiles=profiles.reset_index(), findings=findings, auc_specimens=_auc_specimens(settings),
        lambda_z_points=lz_points,
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
    w = settings.words
    unit = settings.units.time

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
            f"PCRFTDTC missing: DM.RFSTDTC used as the {w['dose']} reference", "PCRFTDTC")
    if unit in ("day", "week"):  # in h / min such records are excluded (with their reason)
        per_row(nca_rows & ~both_time & s_date & r_date, "NCA.TIME.WHOLEDAY", "Notice",
                f"PCDTC or PCRFTDTC has no time: actual time since {w['dose']} in whole days", "PCDTC",
                pc["PCDTC"].to_numpy())
    below = nca_rows & (stresn < lloq).fillna(False).to_numpy(dtype=bool)
    per_row(below, "NCA.PC.BELOWLLOQ", "Warning", "quantifiable PCSTRESN below PCLLOQ", "PCSTRESN",
            stresn.to_numpy())
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
    if settings.effective_route != BOLUS:
        for rec in imputed.itertuples(index=False):
            out.append(Finding(rule="NCA.T0.IMPUTED", severity="Notice", dataset="PP", usubjid=rec.USUBJID,
                               variable="PPGRPID", value=str(rec.PPGRPID),
                               message=f"no {w['pre']} sample: concentration 0 imputed at the {w['dose']} time"))
    for iv in settings.intervals:
        end = iv.bounds(settings.days_to_unit)[1]
        enint = iv.labels(unit, settings.days_to_unit)[1]
        aucint_done = pp.loc[pp["PPENINT"].eq(enint) & pp["PPTESTCD"].isin(
            [p.testcd for p in settings.parameters if p.quantity == "aucint"]) & pp["PPSTAT"].isna(),
            ["USUBJID", "PPGRPID"]]
        short = profiles.loc[profiles["LAST_TIME"] < end, ["USUBJID", "PPGRPID", "LAST_TIME"]].merge(
            aucint_done, on=["USUBJID", "PPGRPID"])
        for rec in short.itertuples(index=False):
            out.append(Finding(rule="NCA.AUCINT.SHORT", severity="Notice", dataset="PP", usubjid=rec.USUBJID,
                               variable="PPGRPID", value=str(rec.PPGRPID),
                               message=f"last sample at {at_time(rec.LAST_TIME, unit)} < {at_time(end, unit)}: AUCINT "
                                       f"covers the data up to the last sample (0 after Tlast)"))
    return out


__all__ = [
    "AUC_QUANTITIES",
    "KIND_IMPUTED",
    "NcaResult",
    "build_pp",
    "describe_method",
    "describe_parameters",
    "dose_records",
    "format_sig",
    "parse_dtc",
]
