"""Quick timing of the NCA on synthetic cellular-kinetics data (not a test; nothing is asserted).

Run ``python -m cdisc_pipe.nca.bench [n_subjects]`` (default 5000): once with the six
cellular-kinetics parameters, once adding the terminal-phase parameters (lambda z, AUCinf, AUMC, MRT).  Each subject has a blood
profile (pre-infusion + 13 post-infusion samples to month 12, bi-exponential expansion and
contraction, values below LLOQ 50 reported BLQ, +/- 1 day scheduling jitter) and 2 bone-marrow
samples.  The PC frame is built with numpy (no per-subject loop); the benchmark suite
(``benchmarks/``) may import :func:`synthetic_pc` and :func:`time_build_pp`.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from cdisc_pipe.nca.pp import build_pp
from cdisc_pipe.nca.settings import NcaSettings

BLOOD_DAYS = np.array([-0.04, 1, 4, 7, 10, 14, 21, 28, 42, 60, 90, 180, 270, 365], dtype="float64")
MARROW_DAYS = np.array([28, 90], dtype="float64")


def synthetic_pc(n_subjects: int, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A PC and a DM frame for ``n_subjects`` synthetic subjects (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    subj = np.array([f"STUDY01-101-{1000 + i:05d}" for i in range(n_subjects)], dtype=object)
    infusion = pd.Timestamp("2023-01-01T10:00") + pd.to_timedelta(rng.integers(0, 700, n_subjects), unit="D")
    a = 10 ** rng.uniform(3.5, 6.0, n_subjects)
    ka = rng.uniform(0.2, 0.8, n_subjects)
    ke = rng.uniform(0.02, 0.2, n_subjects)

    def block(days: np.ndarray, spec: str, jitter: float) -> pd.DataFrame:
        k = len(days)
        s = np.repeat(np.arange(n_subjects), k)
        d = np.tile(days, n_subjects)
        d = np.where(d > 0, d + rng.uniform(-jitter, jitter, len(d)), d)
        d = np.where(d > 0, np.maximum(d, 0.5), d)
        conc = np.where(d > 0, a[s] * (np.exp(-ke[s] * d) - np.exp(-ka[s] * d)), 0.0)
        blq = conc < 50
        dt = infusion[s] + pd.to_timedelta(np.round(d * 1440), unit="min")
        return pd.DataFrame({
            "STUDYID": "STUDY01", "DOMAIN": "PC", "USUBJID": subj[s], "PCTESTCD": "ANALYTE1",
            "PCSPEC": spec, "PCSTRESN": np.where(blq, np.nan, np.round(conc, 1)),
            "PCSTRESC": np.where(blq, "BLQ", np.char.mod("%.1f", np.round(conc, 1))).astype(object),
            "PCSTRESU": "copies/ug", "PCLLOQ": 50.0,
            "PCDTC": dt.strftime("%Y-%m-%dT%H:%M"), "PCRFTDTC": infusion[s].strftime("%Y-%m-%dT%H:%M"),
            "PCELTM": None,
        })

    pc = pd.concat([block(BLOOD_DAYS, "BLOOD", 1.0), block(MARROW_DAYS, "BONE MARROW", 2.0)], ignore_index=True)
    pc = pc.sort_values(["USUBJID", "PCSPEC", "PCDTC"], kind="stable").reset_index(drop=True)
    pc["PCSEQ"] = (pc.groupby("USUBJID").cumcount() + 1).astype("float64")
    dm = pd.DataFrame({"USUBJID": subj, "RFSTDTC": infusion.strftime("%Y-%m-%dT%H:%M")})
    return pc, dm


TERMINAL = ["LAMZ", "LAMZHL", "LAMZNPT", "R2ADJ", "LAMZLL", "LAMZUL", "AUCIFO", "AUCIFP", "AUCPEO", "AUMCLST",
            "AUMCIFO", "MRTICIFO"]


def time_build_pp(n_subjects: int = 5000, repeat: int = 3, terminal: bool = False) -> dict[str, float]:
    """Best-of-``repeat`` wall time of :func:`build_pp` on synthetic data, with sizes.

    ``terminal``: also the lambda-z parameters and those depending on it (blood)."""
    pc, dm = synthetic_pc(n_subjects)
    # marrow with Cmax/Tmax only, as a study with sparse tissue sampling would set it
    blood = ["CMAX", "TMAX", "AUCINT", "AUCLST", "CLST", "TLST", *(TERMINAL if terminal else [])]
    settings = NcaSettings(route="intravascular_infusion",
                           parameters=blood, specimens={"BLOOD": blood, "BONE MARROW": ["CMAX", "TMAX"]},
                           units={"extensions": ["day*copies/ug", "day2*copies/ug"]})
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = build_pp(pc, dm, settings)
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return {"subjects": n_subjects, "pc_records": len(pc), "profiles": len(result.profiles),
            "pp_records": len(result.pp), "seconds": round(best, 3)}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    print(time_build_pp(n))
    print({"terminal": True, **time_build_pp(n, terminal=True)})
