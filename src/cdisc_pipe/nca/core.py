"""Vectorised non-compartmental analysis on a tidy concentration-time frame.

The input is one row per sample: the profile keys (e.g. USUBJID, PCTESTCD, PCSPEC and the
reference dose), ``TIME`` (actual time since the reference dose in the study's time unit
``units.time``; <= 0 = pre-dose), ``CONC`` (NaN when BLQ), ``BLQ`` (bool), ``LLOQ`` and ``RECID``
(the record's identity, e.g. the PC row, used to report what was excluded).  Optional columns:
``XREASON`` (the caller excluded the record, with this reason), per profile ``TAU`` (dosing
interval of a multiple-dose profile), ``DOSE`` (amount in ``units.dose``), ``DOSEDUR`` (infusion
duration), per sample ``LZ_INCLUDE`` / ``LZ_EXCLUDE`` / ``LZ_MANUAL``
(manual lambda-z points).  Nothing here loops
over subjects: every step is a sort, a mask, a segment-wise numpy expression over the whole array,
or a grouped reduction (``np.bincount``, ``ufunc.at``, ``np.unique``); the lambda-z candidate fits
are expanded into one long array and reduced the same way.

Reference behaviour is PKNCA's documented defaults:

- BLQ (``conc.blq``): leading BLQ -> 0, BLQ between quantifiable values dropped, trailing BLQ -> 0
  (each rule configurable); a numeric concentration <= 0 is treated as BLQ, as PKNCA does.
- Integration (``auc.method``): "lin up/log down" uses the log trapezoid on a segment where the
  concentration strictly falls and both ends are > 0, the linear trapezoid otherwise; "linear"
  uses the linear trapezoid everywhere.  AUMC segments use PKNCA's ``aumcintegrate_*``.
- AUCLST integrates from time 0 to Tlast.  AUCINT follows ``aucint.last``: the curve is
  integrated up to the interval end, with zero after Tlast (AUClast-type extrapolation); an
  interval end falling between two samples is interpolated as ``interp.extrap.conc`` does
  (linear in a linear segment, log-linear in a log-down segment), so the partial segment's area
  is the exact area of the same interpolating curve.  AUCTAU is the same on [0, tau].
- Cmax/Tmax: maximum post-dose concentration and the first time it occurs.
- Lambda z (``pk.calc.half.life``): unweighted least squares of ln(C) on t over the last n >=
  ``min.hl.points`` quantifiable points after Tmax; best adjusted R^2, a fit within
  ``adj.r.squared.factor`` of the best with more points wins; lambda z > 0.
- AUCinf = AUClast + Clast / lambda z (observed or predicted Clast); %extrapolated
  = 100 (1 - AUClast / AUCinf); AUMCinf = AUMClast + Clast Tlast / lz + Clast / lz^2; MRT =
  AUMCinf / AUCinf (minus half the infusion duration for an infusion); CL = dose / AUCinf;
  Vz = dose / (lz AUCinf); C0 by ``pk.calc.c0`` (IV bolus, used as the time-zero concentration).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cdisc_pipe.nca import units as U
from cdisc_pipe.nca.settings import NcaSettings

KIND_OBSERVED = "OBSERVED"
KIND_PREDOSE = "PREDOSE"  # the pre-dose sample used as time zero
KIND_IMPUTED = "IMPUTED"  # imputed concentration 0 at the dose time

TIDY_COLUMNS = ("TIME", "CONC", "BLQ", "LLOQ", "RECID")
PROFILE_COLUMNS = ("TAU", "DOSE", "DOSEDUR")  # optional, one value per profile
POINT_FLAGS = ("LZ_INCLUDE", "LZ_EXCLUDE", "LZ_MANUAL")  # optional, per sample (LZ_MANUAL: the
# profile's lambda-z points are set manually: exactly its LZ_INCLUDE points are fitted)
BOLUS = "intravascular_bolus"
INFUSION = "intravascular_infusion"


@dataclass(frozen=True)
class Profiles:
    """The concentration-time profiles ready for NCA.

    Attributes:
        keys: the profile key columns.
        profiles: one row per profile: the key columns, ``PID`` (0..n-1, position) and the
            optional per-profile columns (``TAU``, ``DOSE``, ``DOSEDUR``; NaN when absent).
        points: the points used, sorted by ``PID``, ``TIME``: ``PID``, ``TIME`` (the pre-dose
            sample is placed at 0), ``CONC`` (>= 0 after the BLQ rules), ``RECID`` (NA for an
            imputed point), ``KIND`` (OBSERVED / PREDOSE / IMPUTED), ``QUANT`` (observed
            quantifiable concentration), ``BLQPOS`` (LEADING / MIDDLE / TRAILING for BLQ samples,
            else None), ``ACTUAL_TIME`` (the sample's own time), ``LZ_INCLUDE``, ``LZ_EXCLUDE``.
        dropped: samples not used: ``PID``, ``RECID``, ``REASON``.
    """

    keys: tuple[str, ...]
    profiles: pd.DataFrame
    points: pd.DataFrame
    dropped: pd.DataFrame

    @property
    def n(self) -> int:
        return len(self.profiles)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The points' ``PID``, ``TIME`` and ``CONC`` (float64) and ``QUANT`` (bool) as arrays."""
        pts = self.points
        return (pts["PID"].to_numpy(), pts["TIME"].to_numpy(dtype="float64"), pts["CONC"].to_numpy(dtype="float64"),
                pts["QUANT"].to_numpy(dtype=bool))


def _fmt(x: float) -> str:
    """A settings number in method text and reasons: 28.0 -> '28', 0.5 -> '0.5'."""
    return f"{x:g}"


def at_time(x: float, unit: str) -> str:
    """'day 28' (day, week) or '24 h' (h, min) for reasons and method text."""
    return f"{unit} {_fmt(x)}" if unit in ("day", "week") else f"{_fmt(x)} {unit}"


def span_text(x: float, unit: str) -> str:
    """'3 days' (day, week) or '2 h' (h, min)."""
    return f"{_fmt(x)} {unit}s" if unit in ("day", "week") else f"{_fmt(x)} {unit}"


def _profile_tau_impute(profiles: pd.DataFrame, settings: NcaSettings) -> np.ndarray:
    """Per profile: impute 0 at the dose time when there is no pre-dose sample."""
    n = len(profiles)
    base = settings.time_zero.impute_zero
    out = np.full(n, base, dtype=bool)
    if "TAU" in profiles and settings.multiple_dose is not None:
        tau = profiles["TAU"].to_numpy(dtype="float64")
        out[np.isfinite(tau)] = settings.multiple_dose.impute_zero
    if settings.effective_route == BOLUS:
        out[:] = True  # the time-zero point of an IV bolus carries C0
    return out


def prepare_profiles(conc: pd.DataFrame, keys: Sequence[str], settings: NcaSettings) -> Profiles:
    """Apply the time-zero and BLQ rules to a tidy concentration-time frame.

    Args:
        conc: tidy samples (columns ``keys`` + TIME, CONC, BLQ, LLOQ, RECID; see module doc).
        keys: the columns identifying a profile (one profile per distinct combination).
        settings: the study's NCA settings (``time_zero``, ``blq``, ``units.time``).

    Returns:
        :class:`Profiles`: every profile present in ``conc`` (also one whose samples were all
        dropped), the points used and the samples dropped with their reason.
    """
    keys = tuple(keys)
    missing = [c for c in (*keys, *TIDY_COLUMNS) if c not in conc.columns]
    if missing:
        raise ValueError(f"tidy concentration frame lacks columns: {', '.join(missing)}")
    w = settings.words
    extra = ["XREASON"] if "XREASON" in conc.columns else []
    prof_cols = [c for c in PROFILE_COLUMNS if c in conc.columns]
    flag_cols = [c for c in POINT_FLAGS if c in conc.columns]
    df = conc.loc[:, [*keys, *TIDY_COLUMNS, *extra, *prof_cols, *flag_cols]].copy()
    df["TIME"] = pd.to_numeric(df["TIME"], errors="coerce").astype("float64")
    df["CONC"] = pd.to_numeric(df["CONC"], errors="coerce").astype("float64")
    df["LLOQ"] = pd.to_numeric(df["LLOQ"], errors="coerce").astype("float64")
    df["BLQ"] = df["BLQ"].fillna(False).astype(bool)
    for c in POINT_FLAGS:
        df[c] = df[c].fillna(False).astype(bool) if c in df else False
    df["PID"] = df.groupby(list(keys), sort=True, dropna=False).ngroup().astype("int64")
    profiles = (
        df.loc[:, [*keys, "PID"]].drop_duplicates("PID").sort_values("PID").reset_index(drop=True)
    )
    n = len(profiles)
    for c in PROFILE_COLUMNS:  # first non-null value of each profile (NaN when absent)
        vals = np.full(n, np.nan)
        if c in df:
            v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype="float64")
            ok = np.isfinite(v)
            u, first = np.unique(df["PID"].to_numpy()[ok], return_index=True)
            vals[u] = v[ok][first]
        profiles[c] = vals
    df = df.drop(columns=prof_cols)
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
    drop(df["TIME"].isna(), f"actual time since {w['dose']} unknown")
    drop(~df["BLQ"] & df["CONC"].isna(), "no numeric result and not BLQ")
    # PKNCA encodes BLQ as 0: a reported concentration <= 0 is handled like a BLQ sample.
    df["BLQ"] = df["BLQ"] | (df["CONC"] <= 0)
    df.loc[df["BLQ"], "CONC"] = np.nan
    df["ACTUAL_TIME"] = df["TIME"]
    df["KIND"] = KIND_OBSERVED

    # --- time zero: the last pre-dose sample ----------------------------------------------------
    tz = settings.time_zero
    pre = (df["TIME"] <= 0).to_numpy()
    if not tz.use_predose:
        drop(pre, f"{w['pre']} sample not used (time_zero.use_predose is false)")
    else:
        # rows are sorted by PID, TIME, RECID: the last pre-dose row of a profile is time zero
        not_last = np.zeros(len(df), dtype=bool)
        not_last[np.flatnonzero(pre)] = df.loc[pre, "PID"].duplicated(keep="last").to_numpy()
        last_pre = pre & ~not_last
        drop(pre & ~last_pre, f"not the last {w['pre']} sample (the last one is time zero)")
        pre = (df["TIME"] <= 0).to_numpy()
        max_pre = float(U.scale(tz.predose_max_days, settings.days_to_unit))
        too_early = pre & (df["TIME"] < -max_pre).to_numpy()
        drop(too_early, f"{w['pre']} sample more than {_fmt(tz.predose_max_days)} days before {w['dose']}")
        pre = (df["TIME"] <= 0).to_numpy()
        df.loc[pre, "KIND"] = KIND_PREDOSE
        df.loc[pre, "TIME"] = 0.0

    # --- duplicate actual times after the dose ------------------------------------------------
    dup = df.duplicated(["PID", "TIME"], keep="first").to_numpy()
    drop(dup, "same actual time as another sample of the profile (the first record is used)")

    # --- impute time zero ----------------------------------------------------------------------
    has_t0 = np.zeros(n, dtype=bool)
    has_t0[df.loc[df["KIND"] == KIND_PREDOSE, "PID"].to_numpy()] = True
    impute = _profile_tau_impute(profiles, settings)
    if (~has_t0 & impute).any():
        pids = np.flatnonzero(~has_t0 & impute)
        imp = pd.DataFrame({
            "PID": pids, "TIME": 0.0, "CONC": 0.0, "BLQ": False, "LLOQ": np.nan,
            "RECID": pd.NA, "ACTUAL_TIME": np.nan, "KIND": KIND_IMPUTED, **{c: False for c in POINT_FLAGS},
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

    points = df.loc[:, ["PID", "TIME", "CONC", "RECID", "KIND", "QUANT", "BLQPOS", "ACTUAL_TIME", *POINT_FLAGS]]
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


def _segments(pid: np.ndarray, t: np.ndarray, c: np.ndarray, method: str
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The segments between consecutive points of the same profile: (profile, t1, t2, c1, c2,
    is_log), ``is_log`` where the lin-up/log-down rule uses the log trapezoid (a positive fall)."""
    pid = np.asarray(pid)
    t = np.asarray(t, dtype="float64")
    c = np.asarray(c, dtype="float64")
    same = pid[:-1] == pid[1:]
    p = pid[:-1][same]
    t1, t2 = t[:-1][same], t[1:][same]
    c1, c2 = c[:-1][same], c[1:][same]
    is_log = (c2 < c1) & (c2 > 0) if method == "lin up/log down" else np.zeros(len(p), dtype=bool)
    return p, t1, t2, c1, c2, is_log


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
    if len(pid) < 2:
        return np.zeros(n, dtype="float64")
    p, t1, t2, c1, c2, is_log = _segments(pid, t, c, method)
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


def aumc_between(pid: np.ndarray, t: np.ndarray, c: np.ndarray, end: np.ndarray, n: int,
                 method: str = "lin up/log down") -> np.ndarray:
    """Area under the first-moment curve t*C(t) of each profile from its first point to ``end[p]``
    (a sample time, e.g. Tlast; segments ending after it are not counted).

    Segments use PKNCA's ``aumcintegrate_linear`` (dt (c1 t1 + c2 t2) / 2) and, where the AUC uses
    the log trapezoid, ``aumcintegrate_log`` (dt (c2 t2 - c1 t1) / L - dt^2 (c2 - c1) / L^2,
    L = ln(c2 / c1)).
    """
    if len(pid) < 2:
        return np.zeros(n, dtype="float64")
    p, t1, t2, c1, c2, is_log = _segments(pid, t, c, method)
    ok = t2 <= end[p]  # False when end is NaN
    dt = t2 - t1
    with np.errstate(divide="ignore", invalid="ignore"):
        big_l = -np.log1p((c1 - c2) / c2)  # ln(c2 / c1), accurate when c1 and c2 are close
        log_area = dt * (c2 * t2 - c1 * t1) / big_l - dt * dt * (c2 - c1) / (big_l * big_l)
    area = np.where(is_log, log_area, dt * (c1 * t1 + c2 * t2) / 2.0)
    return np.bincount(p[ok], weights=area[ok], minlength=n).astype("float64")


def _rank_in_group(g: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal values (``g`` sorted)."""
    if len(g) == 0:
        return np.zeros(0, dtype="int64")
    starts = np.r_[True, g[1:] != g[:-1]]
    start_idx = np.maximum.accumulate(np.where(starts, np.arange(len(g)), 0))
    return np.arange(len(g)) - start_idx


def initial_conc(prof: Profiles, settings: NcaSettings) -> np.ndarray:
    """C0 of each profile by PKNCA ``pk.calc.c0`` (methods in ``settings.c0_methods`` order; the
    first giving a value wins): ``c0`` a quantifiable sample exactly at the dose time; ``logslope``
    back-extrapolation of the log-linear line through the first two post-dose points when the
    second is lower and not 0; ``c1`` the first post-dose concentration; ``cmin`` the minimum
    observed concentration; ``set0`` 0."""
    n = prof.n
    pts = prof.points
    pid, t, c, _ = prof.arrays()
    kind = pts["KIND"].to_numpy()
    actual = pts["ACTUAL_TIME"].to_numpy(dtype="float64")
    post = (t > 0) & np.isfinite(c)
    pp_, tp, cp = pid[post], t[post], c[post]
    r = _rank_in_group(pp_)
    c1 = np.full(n, np.nan)
    t1 = np.full(n, np.nan)
    c2 = np.full(n, np.nan)
    t2 = np.full(n, np.nan)
    c1[pp_[r == 0]], t1[pp_[r == 0]] = cp[r == 0], tp[r == 0]
    c2[pp_[r == 1]], t2[pp_[r == 1]] = cp[r == 1], tp[r == 1]
    out = np.full(n, np.nan)
    for method in settings.c0_methods:  # a handful of methods, not profiles
        todo = np.isnan(out)
        if method == "c0":
            at0 = (kind == KIND_PREDOSE) & (actual == 0) & (c > 0)
            val = np.full(n, np.nan)
            val[pid[at0]] = c[at0]
        elif method == "logslope":
            with np.errstate(divide="ignore", invalid="ignore"):
                ok = (c2 < c1) & (c2 != 0)
                val = np.where(ok, np.exp(np.log(c1) - (np.log(c2) - np.log(c1)) / (t2 - t1) * t1), np.nan)
        elif method == "c1":
            val = c1
        elif method == "cmin":
            obs = kind != KIND_IMPUTED
            val = np.full(n, np.inf)
            np.fmin.at(val, pid[obs], c[obs])
            val[np.isinf(val)] = np.nan
        else:  # set0
            val = np.zeros(n)
        out = np.where(todo, val, out)
    return out


LZ_COLUMNS = ("LAMZ", "R2", "R2ADJ", "LAMZNPT", "LAMZLL", "LAMZUL", "CLSTP", "LAMZHL", "LAMZSPN", "LZ_N_AFTER",
              "LZ_MANUAL", "LZ_REASON")


def fit_lambda_z(prof: Profiles, settings: NcaSettings, tmax: np.ndarray, tlast: np.ndarray
                 ) -> tuple[pd.DataFrame, np.ndarray]:
    """Terminal phase of every profile (PKNCA ``pk.calc.half.life``), all profiles at once.

    Eligible points: quantifiable, > 0, after Tmax (at or after with ``include_tmax``), after the
    end of an infusion (``DOSEDUR``, route intravascular_infusion), not ``LZ_EXCLUDE``.  A profile with ``LZ_INCLUDE`` points is
    fitted on exactly those (manual selection).  Otherwise every run of the last k >=
    ``min_points`` eligible points is a candidate; all candidates of all profiles are expanded
    into one array, fitted by two-pass least squares (means, then centred sums, then residuals)
    with ``np.bincount``, and the best is chosen per profile: lambda z > 0 and adjusted R^2 >
    (best adjusted R^2 of the profile) - ``adj_r2_factor``, most points among those.

    Returns:
        (one row per profile with :data:`LZ_COLUMNS`, a mask of the points used in the chosen fit).
    """
    lz = settings.lambda_z
    n = prof.n
    pts = prof.points
    pid, t, c, quant = prof.arrays()
    inc = pts["LZ_INCLUDE"].to_numpy(dtype=bool) if "LZ_INCLUDE" in pts else np.zeros(len(pts), dtype=bool)
    exc = pts["LZ_EXCLUDE"].to_numpy(dtype=bool) if "LZ_EXCLUDE" in pts else np.zeros(len(pts), dtype=bool)
    dur = (prof.profiles["DOSEDUR"].to_numpy(dtype="float64")
           if "DOSEDUR" in prof.profiles and settings.effective_route == INFUSION else np.full(n, np.nan))

    man_flag = pts["LZ_MANUAL"].to_numpy(dtype=bool) if "LZ_MANUAL" in pts else np.zeros(len(pts), dtype=bool)
    manual = np.bincount(pid[inc | man_flag], minlength=n) > 0
    base = quant & (c > 0) & ~exc & (t > 0)
    tm = tmax[pid]
    after = (t >= tm) if lz.include_tmax else (t > tm)
    after &= ~(t <= dur[pid])  # an unknown duration excludes nothing
    auto_elig = base & after & ~manual[pid]
    man_elig = base & inc & manual[pid]
    elig = auto_elig | man_elig
    n_elig = np.bincount(pid[elig], minlength=n)

    e_idx = np.flatnonzero(elig)
    ep, et, ey = pid[e_idx], t[e_idx], np.log(c[e_idx])
    r = _rank_in_group(ep)
    k = n_elig[ep] - r  # points from this one to the profile's last eligible point
    is_man = manual[ep]
    cand = np.where(is_man, (r == 0) & (k >= 2), k >= lz.min_points)
    cs = np.flatnonzero(cand)
    ck = k[cs]
    cp = ep[cs]
    total = int(ck.sum())
    cid = np.repeat(np.arange(len(cs)), ck)
    member = np.repeat(cs, ck) + (np.arange(total) - np.repeat(np.cumsum(ck) - ck, ck))
    x, y = et[member], ey[member]
    m = len(cs)
    nk = ck.astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = np.bincount(cid, weights=x, minlength=m) / nk
        my = np.bincount(cid, weights=y, minlength=m) / nk
        dx, dy = x - mx[cid], y - my[cid]
        sxx = np.bincount(cid, weights=dx * dx, minlength=m)
        sxy = np.bincount(cid, weights=dx * dy, minlength=m)
        syy = np.bincount(cid, weights=dy * dy, minlength=m)
        slope = sxy / sxx
        intercept = my - slope * mx
        res = y - (intercept[cid] + slope[cid] * x)
        ssres = np.bincount(cid, weights=res * res, minlength=m)
        ymax = np.full(m, -np.inf)
        ymin = np.full(m, np.inf)
        np.maximum.at(ymax, cid, y)
        np.minimum.at(ymin, cid, y)
        r2 = np.where(ymax > ymin, 1.0 - ssres / syy, np.nan)  # all equal: 0/0 in PKNCA
        adj = 1.0 - (1.0 - r2) * (nk - 1.0) / (nk - 2.0)
    lam = -slope
    best = np.full(n, -np.inf)
    np.fmax.at(best, cp, adj)
    ok = (lam > 0) & (adj > best[cp] - lz.adj_r2_factor)
    if lz.min_points == 2:  # PKNCA: exactly two points with min.hl.points = 2 are accepted as they are
        ok |= (lam > 0) & (n_elig[cp] == 2)
    ok |= is_man[cs]  # manual selection: the one fit, whatever its sign (reported as not estimable)
    bestk = np.zeros(n, dtype="int64")
    np.maximum.at(bestk, cp[ok], ck[ok])
    chosen = ok & (ck == bestk[cp])

    out = {col: np.full(n, np.nan) for col in LZ_COLUMNS[:9]}
    q = cp[chosen]
    out["LAMZ"][q] = lam[chosen]
    out["R2"][q] = r2[chosen]
    out["R2ADJ"][q] = adj[chosen]
    out["LAMZNPT"][q] = ck[chosen]
    out["LAMZLL"][q] = et[cs[chosen]]
    last_e = np.full(n, np.nan)
    np.fmax.at(last_e, ep, et)
    out["LAMZUL"][q] = last_e[q]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        out["CLSTP"][q] = np.exp(intercept[chosen] + slope[chosen] * tlast[q])
        out["LAMZHL"] = np.log(2) / out["LAMZ"]
        out["LAMZSPN"] = (out["LAMZUL"] - out["LAMZLL"]) / out["LAMZHL"]
    used = np.zeros(len(pts), dtype=bool)
    used[e_idx[member[chosen[cid]]]] = True

    has_fit = np.zeros(n, dtype=bool)
    has_fit[q] = True
    reason = np.full(n, None, dtype=object)
    few = np.char.add(np.char.add(f"Fewer than {lz.min_points} points after Tmax (", np.char.mod("%d", n_elig)), ")")
    few_man = np.char.add(np.char.add("Fewer than 2 manually selected lambda z points above 0 (",
                                      np.char.mod("%d", n_elig)), ")")
    reason = np.where(~manual & (n_elig < lz.min_points), few.astype(object), reason)
    reason = np.where(~manual & (n_elig >= lz.min_points) & ~has_fit, "No terminal phase with lambda z > 0", reason)
    reason = np.where(manual & (n_elig < 2), few_man.astype(object), reason)
    reason = np.where(manual & has_fit & ~(out["LAMZ"] > 0), "Lambda z not > 0 with the manually selected points",
                      reason)
    frame = pd.DataFrame(out)
    frame["LZ_N_AFTER"] = n_elig
    frame["LZ_MANUAL"] = manual
    frame["LZ_REASON"] = reason
    return frame, used


def calc_parameters(prof: Profiles, settings: NcaSettings) -> pd.DataFrame:
    """Compute every NCA quantity of every profile (no rounding, no minimum-data rules).

    Returns one row per profile (index = PID) with CMAX, TMAX, CLAST, TLAST, AUCLAST, AUCINT
    (AUCINT_1, ... for further intervals), the lambda-z columns (:data:`LZ_COLUMNS`), AUCIFO,
    AUCIFP, AUCPEO, AUCPEP, AUMCLST, AUMCIFO, AUMCIFP, MRTO, MRTP, CLO, CLP (dose / AUCinf, in
    dose unit per time x concentration), VZO, VZP (dose / concentration), C0, AUCTAU, CAVG,
    CTROUGH, CMIN, N_POINTS (observed samples used), N_QUANT_POST (observed quantifiable post-dose
    samples), HAS_T0, T0_IMPUTED, END_WINDOW_OK (END_WINDOW_OK_1, ...: a sample within the
    interval end +/- window), TAU_WINDOW_OK, LAST_TIME (last sample time), TAU, DOSE, DOSEDUR.
    """
    n = prof.n
    pts = prof.points
    pid, t, c, quant = prof.arrays()
    kind = pts["KIND"].to_numpy()
    post = t > 0
    route = settings.effective_route
    pinfo = {col: (prof.profiles[col].to_numpy(dtype="float64") if col in prof.profiles else np.full(n, np.nan))
             for col in PROFILE_COLUMNS}

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
    t0 = (t == 0) & ((kind == KIND_PREDOSE) | (kind == KIND_IMPUTED))
    has_t0 = np.bincount(pid[t0], minlength=n) > 0
    t0_imputed = np.bincount(pid[kind == KIND_IMPUTED], minlength=n) > 0
    last_time = np.full(n, np.nan)
    np.fmax.at(last_time, pid, t)

    # IV bolus: the time-zero concentration is C0 (PKNCA impute start_logslope / pk.calc.auciv)
    c0 = initial_conc(prof, settings) if route == BOLUS else np.full(n, np.nan)
    ca, keep = c, np.ones(len(c), dtype=bool)
    if route == BOLUS:
        ca = np.where(t0, c0[pid], c)
        keep = ~(t0 & np.isnan(ca))
        has_t0 = has_t0 & np.isfinite(c0)
    ap, at_, ac = pid[keep], t[keep], ca[keep]

    zeros = np.zeros(n)
    w = settings.min_data.window(settings.days_to_unit)
    out: dict[str, np.ndarray] = {"CMAX": cmax, "TMAX": tmax, "CLAST": clast, "TLAST": tlast}
    auclast = auc_between(ap, at_, ac, zeros, tlast, n, settings.auc_method)
    auclast[np.isnan(tlast)] = np.nan
    out["AUCLAST"] = auclast
    windows: dict[str, np.ndarray] = {}
    for i, iv in enumerate(settings.intervals):
        start, end = iv.bounds(settings.days_to_unit)
        aucint = auc_between(ap, at_, ac, np.full(n, start), np.fmin(np.full(n, end), tlast), n, settings.auc_method)
        aucint[np.isnan(tlast)] = np.nan
        near_end = post & (np.abs(t - end) <= w + 1e-9)
        sfx = "" if i == 0 else f"_{i}"
        out[f"AUCINT{sfx}"] = aucint
        windows[f"END_WINDOW_OK{sfx}"] = np.bincount(pid[near_end], minlength=n) > 0

    lzf, _ = fit_lambda_z(prof, settings, tmax, tlast)
    lam = lzf["LAMZ"].to_numpy()
    clstp = lzf["CLSTP"].to_numpy()
    aumclast = aumc_between(ap, at_, ac, tlast, n, settings.auc_method)
    aumclast[np.isnan(tlast)] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        aucifo = auclast + clast / lam
        aucifp = auclast + clstp / lam
        aumcifo = aumclast + clast * tlast / lam + clast / (lam * lam)
        aumcifp = aumclast + clstp * tlast / lam + clstp / (lam * lam)
        mrto = aumcifo / aucifo
        mrtp = aumcifp / aucifp
        if route == INFUSION:  # PKNCA mrt.iv.*: minus half the infusion duration
            mrto = mrto - pinfo["DOSEDUR"] / 2.0
            mrtp = mrtp - pinfo["DOSEDUR"] / 2.0
        dose = pinfo["DOSE"]
        extra = {
            "AUCIFO": aucifo, "AUCIFP": aucifp,
            "AUCPEO": 100.0 * (1.0 - auclast / aucifo), "AUCPEP": 100.0 * (1.0 - auclast / aucifp),
            "AUMCLST": aumclast, "AUMCIFO": aumcifo, "AUMCIFP": aumcifp, "MRTO": mrto, "MRTP": mrtp,
            "CLO": dose / aucifo, "CLP": dose / aucifp, "VZO": dose / (lam * aucifo), "VZP": dose / (lam * aucifp),
            "C0": c0,
        }
    out.update(extra)

    # --- dosing interval [0, tau] -----------------------------------------------------------------
    tau = pinfo["TAU"]
    md = settings.multiple_dose
    tw = md.window if md is not None else 0.0
    auctau = auc_between(ap, at_, ac, zeros, np.fmin(tau, tlast), n, settings.auc_method)
    auctau[np.isnan(tlast) | np.isnan(tau)] = np.nan
    with np.errstate(invalid="ignore"):
        reach = post & (t >= tau[pid] - tw - 1e-9)
    tau_ok = np.bincount(pid[reach], minlength=n) > 0
    obs = kind != KIND_IMPUTED
    dist = np.abs(t - tau[pid])
    at_tau = obs & post & (dist <= tw + 1e-9)
    best = np.full(n, np.inf)
    np.minimum.at(best, pid[at_tau], dist[at_tau])
    nearest = at_tau & (dist == best[pid])
    u, first = np.unique(pid[nearest], return_index=True)
    c_tau = np.full(n, np.nan)
    c_tau[u] = c[nearest][first]
    c_pre = np.full(n, np.nan)
    pre = kind == KIND_PREDOSE
    c_pre[pid[pre]] = c[pre]
    rule = md.ctrough if md is not None else "tau_or_predose"
    ctrough = {"tau": c_tau, "predose": c_pre, "tau_or_predose": np.where(np.isnan(c_tau), c_pre, c_tau)}[rule]
    in_tau = obs & (t <= tau[pid] + 1e-9)
    cmin = np.full(n, np.inf)
    np.fmin.at(cmin, pid[in_tau], c[in_tau])
    cmin[np.isinf(cmin)] = np.nan
    no_tau = np.isnan(tau)
    with np.errstate(invalid="ignore", divide="ignore"):
        out.update({"AUCTAU": auctau, "CAVG": auctau / tau, "CTROUGH": np.where(no_tau, np.nan, ctrough),
                    "CMIN": np.where(no_tau, np.nan, cmin)})

    frame = pd.DataFrame(out, index=pd.RangeIndex(n, name="PID"))
    for col in LZ_COLUMNS:
        frame[col] = lzf[col].to_numpy()
    frame["N_POINTS"] = n_points
    frame["N_QUANT_POST"] = n_quant_post
    frame["HAS_T0"] = has_t0
    frame["T0_IMPUTED"] = t0_imputed
    for k, v in windows.items():
        frame[k] = v
    frame["TAU_WINDOW_OK"] = tau_ok
    frame["LAST_TIME"] = last_time
    for col in PROFILE_COLUMNS:
        frame[col] = pinfo[col]
    return frame


# quantity -> column of calc_parameters
QUANTITY_COLUMN = {
    "cmax": "CMAX", "tmax": "TMAX", "clast": "CLAST", "tlast": "TLAST", "auclast": "AUCLAST", "aucint": "AUCINT",
    "lambda_z": "LAMZ", "half_life": "LAMZHL", "lambda_z_n": "LAMZNPT", "r2": "R2", "r2adj": "R2ADJ",
    "lambda_z_lower": "LAMZLL", "lambda_z_upper": "LAMZUL", "span_ratio": "LAMZSPN", "clast_pred": "CLSTP",
    "aucinf_obs": "AUCIFO", "aucinf_pred": "AUCIFP", "aucpext_obs": "AUCPEO", "aucpext_pred": "AUCPEP",
    "aumclast": "AUMCLST", "aumcinf_obs": "AUMCIFO", "aumcinf_pred": "AUMCIFP", "mrt_obs": "MRTO", "mrt_pred": "MRTP",
    "cl_obs": "CLO", "cl_pred": "CLP", "vz_obs": "VZO", "vz_pred": "VZP", "c0": "C0", "auctau": "AUCTAU",
    "cavg": "CAVG", "ctrough": "CTROUGH", "cmin": "CMIN",
}


def not_calculated_reasons(params: pd.DataFrame, settings: NcaSettings) -> pd.DataFrame:
    """Why each quantity of each profile is not calculated (None = calculated).

    Rules (first failing one is reported): no usable sample; no quantifiable post-dose
    concentration; for AUCs no time-zero concentration, fewer than ``auc_quantifiable_points``
    quantifiable post-dose concentrations; for AUCINT no sample within the interval end +/-
    ``end_window``; for lambda-z quantities the point selection (too few points after Tmax, no
    lambda z > 0), then ``min_r2adj`` / ``min_span_ratio`` for the estimates, ``max_aucpext`` for
    what depends on AUCinf; no dose; for AUCTAU/CAVG no sample at or after tau - window.
    Columns: the quantities (``aucint_1``, ... for further intervals).
    """
    n = len(params)
    md = settings.min_data
    lz = settings.lambda_z
    w = settings.words
    unit = settings.units.time
    n_q = params["N_QUANT_POST"].to_numpy()
    none = np.full(n, None, dtype=object)

    def first_of(*conds: tuple[np.ndarray, np.ndarray | str]) -> np.ndarray:
        out = none.copy()
        for mask, text in reversed(conds):
            out = np.where(mask, text, out)
        return out

    def col(name: str) -> np.ndarray:
        return params[name].to_numpy(dtype="float64")

    no_points = params["N_POINTS"].to_numpy() == 0
    base = (
        (no_points, "No usable concentration record"),
        (n_q == 0, f"No quantifiable {w['post']} concentration"),
    )
    few_text = np.char.add(
        np.char.add(f"Fewer than {md.auc_quantifiable_points} quantifiable {w['post']} concentrations (",
                    np.char.mod("%d", n_q)), ")")
    no_t0 = ("No time-zero concentration (C0 not estimable)" if settings.effective_route == BOLUS
             else f"No time-zero concentration (no {w['pre']} sample; imputation off)")
    auc_rules = (
        *base,
        (~params["HAS_T0"].to_numpy(), no_t0),
        (n_q < md.auc_quantifiable_points, few_text.astype(object)),
    )
    out = pd.DataFrame(index=params.index)
    out["cmax"] = first_of(*base)
    out["tmax"] = out["cmax"]
    out["clast"] = out["cmax"]
    out["tlast"] = out["cmax"]
    out["auclast"] = first_of(*auc_rules)
    wnd = md.window(settings.days_to_unit)
    for i, iv in enumerate(settings.intervals):
        _, end = iv.bounds(settings.days_to_unit)
        sfx = "" if i == 0 else f"_{i}"
        window = f"No sample within {at_time(end, unit)} +/- {span_text(wnd, unit)} (end of the AUC interval)"
        out[f"aucint{sfx}"] = first_of(*auc_rules, (~params[f"END_WINDOW_OK{sfx}"].to_numpy(), window))

    # lambda z
    lzr = params["LZ_REASON"].to_numpy(dtype=object)
    fit_rules = (*base, (pd.notna(lzr), lzr))
    with np.errstate(invalid="ignore"):
        thr = [*fit_rules]
        if lz.min_r2adj is not None:
            thr.append((col("R2ADJ") < lz.min_r2adj, f"R2ADJ < {_fmt(lz.min_r2adj)}"))
        if lz.min_span_ratio is not None:
            thr.append((col("LAMZSPN") < lz.min_span_ratio, f"LAMZSPN < {_fmt(lz.min_span_ratio)}"))
        est_rules = tuple(thr)
        for q in ("lambda_z_n", "r2", "r2adj", "lambda_z_lower", "lambda_z_upper", "span_ratio"):
            out[q] = first_of(*fit_rules)
        for q in ("lambda_z", "half_life", "clast_pred"):
            out[q] = first_of(*est_rules)
        inf_rules = (*auc_rules, *est_rules[len(base):])
        out["aucpext_obs"] = first_of(*inf_rules)
        out["aucpext_pred"] = out["aucpext_obs"]
        ext: dict[str, tuple] = {"obs": (), "pred": ()}
        if lz.max_aucpext is not None:
            text = f"AUC extrapolated > {_fmt(lz.max_aucpext)}%"
            ext = {"obs": ((col("AUCPEO") > lz.max_aucpext, text),), "pred": ((col("AUCPEP") > lz.max_aucpext, text),)}
    no_dose = (np.isnan(col("DOSE")), "No dose record at the reference time")
    no_dur = (np.isnan(col("DOSEDUR")), "Infusion duration unknown (no dose end time)")
    for kind in ("obs", "pred"):
        rules = (*inf_rules, *ext[kind])
        out[f"aucinf_{kind}"] = first_of(*rules)
        out[f"aumcinf_{kind}"] = out[f"aucinf_{kind}"]
        out[f"mrt_{kind}"] = (first_of(*rules, no_dur) if settings.effective_route == INFUSION
                              else out[f"aucinf_{kind}"])
        out[f"cl_{kind}"] = first_of(*rules, no_dose)
        out[f"vz_{kind}"] = out[f"cl_{kind}"]
    out["aumclast"] = out["auclast"]
    out["c0"] = first_of((no_points, "No usable concentration record"),
                         (np.full(n, settings.effective_route != BOLUS), "Not an IV bolus profile"),
                         (np.isnan(col("C0")), "C0 not estimable (c0_methods: "
                          + ", ".join(settings.c0_methods) + ")"))
    # dosing interval
    no_tau = (np.isnan(col("TAU")), "Not a dosing-interval profile (no tau)")
    tw = settings.multiple_dose.window if settings.multiple_dose is not None else 0.0
    tau_text = np.char.add(np.char.add("No sample at or after tau - window (",
                                       np.char.mod("%g", np.nan_to_num(col("TAU") - tw))), f" {unit})")
    out["auctau"] = first_of(no_tau, *auc_rules, (~params["TAU_WINDOW_OK"].to_numpy(), tau_text.astype(object)))
    out["cavg"] = out["auctau"]
    out["ctrough"] = first_of(no_tau, (no_points, "No usable concentration record"),
                              (np.isnan(col("CTROUGH")), f"No sample at tau and no {w['pre']} sample"))
    out["cmin"] = first_of(no_tau, (no_points, "No usable concentration record"),
                           (np.isnan(col("CMIN")), "No sample in the dosing interval"))
    return out


def run_nca(conc: pd.DataFrame, keys: Sequence[str], settings: NcaSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole engine on a tidy frame: one row per profile, and the samples not used.

    Args:
        conc: tidy samples (``keys`` + TIME, CONC, BLQ, LLOQ, RECID[, XREASON, TAU, DOSE, DOSEDUR,
            LZ_INCLUDE, LZ_EXCLUDE]).
        keys: the profile key columns (e.g. ``["USUBJID", "PCSPEC", "PCTESTCD", "REF"]``).
        settings: NCA settings.

    Returns:
        ``(profiles, dropped)``: ``profiles`` has the key columns, the unrounded quantities of
        :func:`calc_parameters` (computed units: no result-unit factor applied), and one
        ``NC_<QUANTITY>`` column per quantity with the not-calculated reason (None when
        calculated; the value is then valid); ``dropped`` has the key columns, RECID and REASON.
    """
    prof = prepare_profiles(conc, keys, settings)
    params = calc_parameters(prof, settings)
    reasons = not_calculated_reasons(params, settings).astype(object)
    reasons = reasons.where(reasons.notna(), None).add_prefix("NC_")
    reasons.columns = [c.upper() for c in reasons.columns]
    table = pd.concat([prof.profiles.drop(columns=list(PROFILE_COLUMNS)).set_index("PID"), params, reasons],
                      axis=1).reset_index()
    dropped = prof.dropped.merge(prof.profiles[[*prof.keys, "PID"]], on="PID", how="left")
    return table, dropped.loc[:, [*prof.keys, "RECID", "REASON"]]
