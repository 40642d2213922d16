"""Vectorised non-compartmental analysis on a tidy concentration-time frame.

The input is one row per sample: the profile keys (e.g. USUBJID, PCSPEC, PCTESTCD), ``TIME``
(actual time since infusion in days; <= 0 = pre-infusion), ``CONC`` (NaN when BLQ), ``BLQ``
(bool), ``LLOQ`` and ``RECID`` (the record's identity, e.g. PCSEQ, used to report what was
excluded).  Nothing here loops over subjects: every step is a sort, a mask, a segment-wise numpy
expression over the whole array, or a grouped reduction (``np.bincount``, ``ufunc.at``,
``np.unique``).

Reference behaviour is PKNCA's documented defaults:

- BLQ (``conc.blq``): leading BLQ -> 0, BLQ between quantifiable values dropped, trailing BLQ -> 0
  (each rule configurable); a numeric concentration <= 0 is treated as BLQ, as PKNCA does.
- Integration (``auc.method``): "lin up/log down" uses the log trapezoid on a segment where the
  concentration strictly falls and both ends are > 0, the linear trapezoid otherwise; "linear"
  uses the linear trapezoid everywhere.
- AUCLST integrates from time 0 to Tlast.  AUCINT follows ``aucint.last``: the curve is
  integrated up to the interval end, with zero after Tlast (AUClast-type extrapolation); an
  interval end falling between two samples is interpolated as ``interp.extrap.conc`` does
  (linear in a linear segment, log-linear in a log-down segment), so the partial segment's area
  is the exact area of the same interpolating curve.
- Cmax/Tmax: maximum post-infusion concentration and the first time it occurs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from cdisc_pipe.nca.settings import NcaSettings

KIND_OBSERVED = "OBSERVED"
KIND_PREDOSE = "PREDOSE"  # the pre-infusion sample used as time zero
KIND_IMPUTED = "IMPUTED"  # imputed concentration 0 at the infusion time

TIDY_COLUMNS = ("TIME", "CONC", "BLQ", "LLOQ", "RECID")


@dataclass(frozen=True)
class Profiles:
    """The concentration-time profiles ready for NCA.

    Attributes:
        keys: the profile key columns.
        profiles: one row per profile: the key columns and ``PID`` (0..n-1, position).
        points: the points used, sorted by ``PID``, ``TIME``: ``PID``, ``TIME`` (days; the
            pre-infusion sample is placed at 0), ``CONC`` (>= 0 after the BLQ rules),
            ``RECID`` (NA for an imputed point), ``KIND`` (OBSERVED / PREDOSE / IMPUTED),
            ``QUANT`` (observed quantifiable concentration), ``BLQPOS`` (LEADING / MIDDLE /
            TRAILING for BLQ samples, else None), ``ACTUAL_TIME`` (the sample's own time).
        dropped: samples not used: ``PID``, ``RECID``, ``REASON``.
    """

    keys: tuple[str, ...]
    profiles: pd.DataFrame
    points: pd.DataFrame
    dropped: pd.DataFrame

    @property
    def n(self) -> int:
        return len(self.profiles)


def _fmt(x: float) -> str:
    """A settings number in method text and reasons: 28.0 -> '28', 0.5 -> '0.5'."""
    return f"{x:g}"


def prepare_profiles(conc: pd.DataFrame, keys: Sequence[str], settings: NcaSettings) -> Profiles:
    """Apply the time-zero and BLQ rules to a tidy concentration-time frame.

    Args:
        conc: tidy samples (columns ``keys`` + TIME, CONC, BLQ, LLOQ, RECID; see module doc).
        keys: the columns identifying a profile (one profile per distinct combination).
        settings: the study's NCA settings (``time_zero``, ``blq``).

    Returns:
        :class:`Profiles`: every profile present in ``conc`` (also one whose samples were all
        dropped), the points used and the samples dropped with their reason.
    """
    keys = tuple(keys)
    missing = [c for c in (*keys, *TIDY_COLUMNS) if c not in conc.columns]
    if missing:
        raise ValueError(f"tidy concentration frame lacks columns: {', '.join(missing)}")
    extra = ["XREASON"] if "XREASON" in conc.columns else []
    df = conc.loc[:, [*keys, *TIDY_COLUMNS, *extra]].copy()
    df["TIME"] = pd.to_numeric(df["TIME"], errors="coerce").astype("float64")
    df["CONC"] = pd.to_numeric(df["CONC"], errors="coerce").astype("float64")
    df["LLOQ"] = pd.to_numeric(df["LLOQ"], errors="coerce").astype("float64")
    df["BLQ"] = df["BLQ"].fillna(False).astype(bool)
    df["PID"] = df.groupby(list(keys), sort=True, dropna=False).ngroup().astype("int64")
    profiles = (
        df.loc[:, [*keys, "PID"]].drop_duplicates("PID").sort_values("PID").reset_index(drop=True)
    )
    n = len(profiles)
    df = df.sort_values(["PID", "TIME", "RECID"], kind="stable", na_position="last").reset_index(drop=True)
    dropped: list[pd.DataFrame] = []

    def drop(mask: np.ndarray | pd.Series, reason: str | pd.Series) -> None:
        nonlocal df
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            part = df.loc[mask, ["PID", "RECID"]].copy()
            part["REASON"] = reason[mask].to_numpy() if isinstance(reason, pd.Series) else reason
            dropped.append(part)
            df = df.loc[~mask].reset_index(drop=True)

    if extra:
        # records the caller already excluded (e.g. not done, wrong unit) keep their own reason
        drop(df["XREASON"].notna(), df["XREASON"].astype(object))
        df = df.drop(columns="XREASON")
    drop(df["TIME"].isna(), "actual time since infusion unknown")
    drop(~df["BLQ"] & df["CONC"].isna(), "no numeric result and not BLQ")
    # PKNCA encodes BLQ as 0: a reported concentration <= 0 is handled like a BLQ sample.
    df["BLQ"] = df["BLQ"] | (df["CONC"] <= 0)
    df.loc[df["BLQ"], "CONC"] = np.nan
    df["ACTUAL_TIME"] = df["TIME"]
    df["KIND"] = KIND_OBSERVED

    # --- time zero: the last pre-infusion sample -------------------------------------------
    tz = settings.time_zero
    pre = (df["TIME"] <= 0).to_numpy()
    if not tz.use_predose:
        drop(pre, "pre-infusion sample not used (time_zero.use_predose is false)")
    else:
        # rows are sorted by PID, TIME, RECID: the last pre-infusion row of a profile is time zero
        not_last = np.zeros(len(df), dtype=bool)
        not_last[np.flatnonzero(pre)] = df.loc[pre, "PID"].duplicated(keep="last").to_numpy()
        last_pre = pre & ~not_last
        drop(pre & ~last_pre, "not the last pre-infusion sample (the last one is time zero)")
        pre = (df["TIME"] <= 0).to_numpy()
        too_early = pre & (df["TIME"] < -tz.predose_max_days).to_numpy()
        drop(too_early, f"pre-infusion sample more than {_fmt(tz.predose_max_days)} days before infusion")
        pre = (df["TIME"] <= 0).to_numpy()
        df.loc[pre, "KIND"] = KIND_PREDOSE
        df.loc[pre, "TIME"] = 0.0

    # --- duplicate actual times after infusion ------------------------------------------------
    dup = df.duplicated(["PID", "TIME"], keep="first").to_numpy()
    drop(dup, "same actual time as another sample of the profile (the first record is used)")

    # --- impute time zero ----------------------------------------------------------------------
    has_t0 = np.zeros(n, dtype=bool)
    has_t0[df.loc[df["KIND"] == KIND_PREDOSE, "PID"].to_numpy()] = True
    if tz.impute_zero and (~has_t0).any():
        pids = np.flatnonzero(~has_t0)
        imp = pd.DataFrame({
            "PID": pids, "TIME": 0.0, "CONC": 0.0, "BLQ": False, "LLOQ": np.nan,
            "RECID": pd.NA, "ACTUAL_TIME": np.nan, "KIND": KIND_IMPUTED,
        })
        for k in keys:
            imp[k] = profiles[k].to_numpy()[pids]
        df = pd.concat([df, imp], ignore_index=True)
        df = df.sort_values(["PID", "TIME"], kind="stable").reset_index(drop=True)

    # --- BLQ position ---------------------------------------------------------------------------
    pid = df["PID"].to_numpy()
    t = df["TIME"].to_numpy()
    blq = df["BLQ"].to_numpy()
    quant = ~blq & (df["KIND"] != KIND_IMPUTED).to_numpy()
    first_q = np.full(n, np.inf)
    last_q = np.full(n, -np.inf)
    np.minimum.at(first_q, pid[quant], t[quant])
    np.maximum.at(last_q, pid[quant], t[quant])
    leading = blq & (t < first_q[pid])
    trailing = blq & ~leading & (t > last_q[pid])
    middle = blq & ~leading & ~trailing
    df["BLQPOS"] = np.where(leading, "LEADING", np.where(middle, "MIDDLE", np.where(trailing, "TRAILING", None)))
    df["QUANT"] = quant
    # The time-zero sample is 0 when BLQ whatever the leading rule: it anchors the AUC at 0.
    is_t0 = (df["KIND"] == KIND_PREDOSE).to_numpy()
    df.loc[blq & is_t0, "CONC"] = 0.0
    rules = settings.blq
    for mask, rule in (
        (leading & ~is_t0, rules.leading),
        (middle & ~is_t0, rules.middle),
        (trailing & ~is_t0, rules.trailing),
    ):
        if rule == "zero":
            df.loc[mask, "CONC"] = 0.0
        elif rule == "half_lloq":
            df.loc[mask, "CONC"] = df.loc[mask, "LLOQ"] / 2.0
    # masks are recomputed on the current frame (rows may have been removed by an earlier drop)
    no_lloq = (df["BLQPOS"] == "MIDDLE").to_numpy() & df["CONC"].isna().to_numpy() & (rules.middle == "half_lloq")
    drop(no_lloq, "BLQ between quantifiable values without PCLLOQ (half-LLOQ imputation impossible)")
    texts = {
        "LEADING": "BLQ before the first quantifiable concentration: dropped (blq.leading: drop)",
        "MIDDLE": "BLQ between quantifiable concentrations: dropped (blq.middle: drop)",
        "TRAILING": "BLQ after the last quantifiable concentration: dropped (blq.trailing: drop)",
    }
    for position, rule in (("LEADING", rules.leading), ("MIDDLE", rules.middle), ("TRAILING", rules.trailing)):
        if rule == "drop":
            mask = (df["BLQPOS"] == position).to_numpy() & (df["KIND"] != KIND_PREDOSE).to_numpy()
            drop(mask, texts[position])

    points = df.loc[:, ["PID", "TIME", "CONC", "RECID", "KIND", "QUANT", "BLQPOS", "ACTUAL_TIME"]]
    points = points.sort_values(["PID", "TIME"], kind="stable").reset_index(drop=True)
    drop_frame = (
        pd.concat(dropped, ignore_index=True) if dropped
        else pd.DataFrame({"PID": pd.Series(dtype="int64"), "RECID": pd.Series(dtype=df["RECID"].dtype),
                           "REASON": pd.Series(dtype="object")})
    )
    return Profiles(keys=keys, profiles=profiles, points=points, dropped=drop_frame)


def interpolate_conc(
    t1: np.ndarray, t2: np.ndarray, c1: np.ndarray, c2: np.ndarray, t: np.ndarray, log: np.ndarray
) -> np.ndarray:
    """Concentration at ``t`` inside segments [t1, t2]: linear, or log-linear where ``log``.

    Matches PKNCA ``interpolate.conc``: log interpolation is only used on segments where the
    concentration falls and both ends are > 0 (the caller's ``log`` mask guarantees that).
    """
    t1, t2, c1, c2, t = (np.asarray(a, dtype="float64") for a in (t1, t2, c1, c2, t))
    log = np.asarray(log, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        # clipped: a time outside its segment (a segment the caller masks out) stays finite
        frac = np.clip(np.where(t2 > t1, (t - t1) / (t2 - t1), 0.0), 0.0, 1.0)
        lin = c1 + frac * (c2 - c1)
        logv = np.exp(np.log(np.where(log, c1, 1.0)) + frac * (np.log(np.where(log, c2, 1.0)) - np.log(np.where(log, c1, 1.0))))
    return np.where(log, logv, lin)


def auc_between(
    pid: np.ndarray, t: np.ndarray, c: np.ndarray, start: np.ndarray, end: np.ndarray, n: int,
    method: str = "lin up/log down",
) -> np.ndarray:
    """Area under the piecewise curve of each profile between ``start[p]`` and ``end[p]``.

    Args:
        pid: profile index of each point (0..n-1), points sorted by pid then time.
        t, c: time and concentration of each point (no NaN).
        start, end: per-profile integration bounds (NaN end -> area 0; the caller decides NC).
        n: number of profiles.
        method: "lin up/log down" or "linear".

    Every segment between consecutive points of a profile is clipped to [start, end]; clipped
    ends are interpolated with the segment's own rule, then the linear or log trapezoid is
    applied; segment areas are summed per profile with ``np.bincount``.
    """
    pid = np.asarray(pid)
    t = np.asarray(t, dtype="float64")
    c = np.asarray(c, dtype="float64")
    if len(pid) < 2:
        return np.zeros(n, dtype="float64")
    same = pid[:-1] == pid[1:]
    p = pid[:-1][same]
    t1, t2 = t[:-1][same], t[1:][same]
    c1, c2 = c[:-1][same], c[1:][same]
    is_log = (c2 < c1) & (c2 > 0) if method == "lin up/log down" else np.zeros(len(p), dtype=bool)
    lo = np.maximum(t1, start[p])
    hi = np.minimum(t2, end[p])
    ok = hi > lo  # False when end is NaN
    c_lo = interpolate_conc(t1, t2, c1, c2, lo, is_log)
    c_hi = interpolate_conc(t1, t2, c1, c2, hi, is_log)
    width = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        # ln(c_lo / c_hi) as log1p(drop / c_hi): the ratio of two nearly equal concentrations
        # rounds to 1 + a few ulps, and its log keeps only half the digits (1e-4 relative error
        # at c_lo / c_hi = 1 + 1e-12); the difference is exact there (Sterbenz), log1p accurate.
        drop = c_lo - c_hi
        log_area = width * drop / np.log1p(drop / c_hi)
    area = np.where(is_log & (c_lo != c_hi), log_area, width * (c_lo + c_hi) / 2.0)
    # astype: bincount of an empty selection returns integers
    return np.bincount(p[ok], weights=area[ok], minlength=n).astype("float64")


def calc_parameters(prof: Profiles, settings: NcaSettings) -> pd.DataFrame:
    """Compute every NCA quantity of every profile (no rounding, no minimum-data rules).

    Returns one row per profile (index = PID) with CMAX, TMAX, CLAST, TLAST, AUCLAST, AUCINT,
    N_POINTS (observed samples used), N_QUANT_POST (observed quantifiable post-infusion samples), HAS_T0, T0_IMPUTED,
    END_WINDOW_OK (a sample within the interval end +/- window), LAST_TIME (last sample time).
    """
    n = prof.n
    pts = prof.points
    pid = pts["PID"].to_numpy()
    t = pts["TIME"].to_numpy(dtype="float64")
    c = pts["CONC"].to_numpy(dtype="float64")
    quant = pts["QUANT"].to_numpy(dtype=bool)
    kind = pts["KIND"].to_numpy()
    post = t > 0

    cmax = np.full(n, np.nan)
    np.fmax.at(cmax, pid[post], c[post])
    cmax[cmax <= 0] = np.nan
    tmax = np.full(n, np.nan)
    at_max = post & (c == cmax[pid])
    u, first = np.unique(pid[at_max], return_index=True)  # points sorted by time: first = earliest
    tmax[u] = t[at_max][first]

    pos = c > 0
    tlast = np.full(n, np.nan)
    clast = np.full(n, np.nan)
    pr, tr, cr = pid[pos][::-1], t[pos][::-1], c[pos][::-1]
    u, last = np.unique(pr, return_index=True)
    tlast[u] = tr[last]
    clast[u] = cr[last]

    n_points = np.bincount(pid[kind != KIND_IMPUTED], minlength=n)  # observed samples used
    n_quant_post = np.bincount(pid[post & quant], minlength=n)
    has_t0 = np.bincount(pid[(t == 0) & ((kind == KIND_PREDOSE) | (kind == KIND_IMPUTED))], minlength=n) > 0
    t0_imputed = np.bincount(pid[kind == KIND_IMPUTED], minlength=n) > 0
    iv = settings.interval
    w = settings.min_data.end_window_days
    near_end = post & (np.abs(t - iv.end_days) <= w + 1e-9)
    end_window_ok = np.bincount(pid[near_end], minlength=n) > 0
    last_time = np.full(n, np.nan)
    np.fmax.at(last_time, pid, t)

    zeros = np.zeros(n)
    auclast = auc_between(pid, t, c, zeros, tlast, n, settings.auc_method)
    aucint = auc_between(pid, t, c, np.full(n, iv.start_days), np.fmin(np.full(n, iv.end_days), tlast), n,
                         settings.auc_method)
    auclast[np.isnan(tlast)] = np.nan
    aucint[np.isnan(tlast)] = np.nan

    return pd.DataFrame({
        "CMAX": cmax, "TMAX": tmax, "CLAST": clast, "TLAST": tlast, "AUCLAST": auclast, "AUCINT": aucint,
        "N_POINTS": n_points, "N_QUANT_POST": n_quant_post, "HAS_T0": has_t0, "T0_IMPUTED": t0_imputed,
        "END_WINDOW_OK": end_window_ok, "LAST_TIME": last_time,
    }, index=pd.RangeIndex(n, name="PID"))


def not_calculated_reasons(params: pd.DataFrame, settings: NcaSettings) -> pd.DataFrame:
    """Why each quantity of each profile is not calculated (None = calculated).

    Rules (first failing one is reported): no usable sample; no quantifiable post-infusion
    concentration; for AUCs no time-zero concentration, fewer than ``auc_quantifiable_points``
    quantifiable post-infusion concentrations; for AUCINT no sample within the interval end
    +/- ``end_window_days``.
    """
    n = len(params)
    md = settings.min_data
    iv = settings.interval
    n_q = params["N_QUANT_POST"].to_numpy()
    none = np.full(n, None, dtype=object)

    def first_of(*conds: tuple[np.ndarray, np.ndarray | str]) -> np.ndarray:
        out = none.copy()
        for mask, text in reversed(conds):
            out = np.where(mask, text, out)
        return out

    no_points = params["N_POINTS"].to_numpy() == 0
    base = (
        (no_points, "No usable concentration record"),
        (n_q == 0, "No quantifiable post-infusion concentration"),
    )
    few_text = np.char.add(
        np.char.add(f"Fewer than {md.auc_quantifiable_points} quantifiable post-infusion concentrations (",
                    np.char.mod("%d", n_q)), ")")
    auc_rules = (
        *base,
        (~params["HAS_T0"].to_numpy(), "No time-zero concentration (no pre-infusion sample; imputation off)"),
        (n_q < md.auc_quantifiable_points, few_text.astype(object)),
    )
    window = (f"No sample within day {_fmt(iv.end_days)} +/- {_fmt(md.end_window_days)} days "
              f"(end of the AUC interval)")
    out = pd.DataFrame(index=params.index)
    out["cmax"] = first_of(*base)
    out["tmax"] = out["cmax"]
    out["clast"] = out["cmax"]
    out["tlast"] = out["cmax"]
    out["auclast"] = first_of(*auc_rules)
    out["aucint"] = first_of(*auc_rules, (~params["END_WINDOW_OK"].to_numpy(), window))
    return out


def run_nca(conc: pd.DataFrame, keys: Sequence[str], settings: NcaSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole engine on a tidy frame: one row per profile, and the samples not used.

    Args:
        conc: tidy samples (``keys`` + TIME, CONC, BLQ, LLOQ, RECID[, XREASON]).
        keys: the profile key columns (e.g. ``["USUBJID", "PCSPEC", "PCTESTCD"]``).
        settings: NCA settings.

    Returns:
        ``(profiles, dropped)``: ``profiles`` has the key columns, the unrounded CMAX, TMAX, CLAST,
        TLAST, AUCLAST, AUCINT, the counts and flags of :func:`calc_parameters`, and one
        ``NC_<QUANTITY>`` column per quantity with the not-calculated reason (None when
        calculated; the value is then valid); ``dropped`` has the key columns, RECID and REASON.
    """
    prof = prepare_profiles(conc, keys, settings)
    params = calc_parameters(prof, settings)
    reasons = not_calculated_reasons(params, settings).astype(object)
    reasons = reasons.where(reasons.notna(), None).add_prefix("NC_")
    reasons.columns = [c.upper() for c in reasons.columns]
    table = pd.concat([prof.profiles.set_index("PID"), params, reasons], axis=1).reset_index()
    dropped = prof.dropped.merge(prof.profiles, on="PID", how="left")
    return table, dropped.loc[:, [*prof.keys, "RECID", "REASON"]]
