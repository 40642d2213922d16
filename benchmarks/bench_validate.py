"""Benchmark: validate one million LB records (plus DM) in memory with every bundled rule.

    .venv/bin/python -m benchmarks.bench_validate [--records 1000000] [--subjects 5000]

Prints the time to run all rules and the slowest rules.  The LB frame follows the bundled study's
spec (``specs/sdtm/lb.yaml``, ``dm.yaml``) when it is present, so spec-based and CT rules run too;
values are generated with numpy (no per-row Python).  Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.paths import default_ct, default_specs
from cdisc_pipe.validate import ValidationSettings, load_ct_packages, load_rules, validate_data
from cdisc_pipe.validate.data import StudyData


def make_study(n_records: int, n_subjects: int, seed: int = 1) -> dict[str, pd.DataFrame]:
    """DM with ``n_subjects`` and an LB of ``n_records`` rows (20 tests x visits per subject)."""
    rng = np.random.default_rng(seed)
    subj = np.array([f"BCMACART01-101-{i:05d}" for i in range(n_subjects)], dtype=object)
    start = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, n_subjects), unit="D")
    dm = pd.DataFrame({
        "STUDYID": "BCMACART01", "DOMAIN": "DM", "USUBJID": subj,
        "SUBJID": pd.Series(subj).str.slice(-5).to_numpy(),
        "RFSTDTC": start.strftime("%Y-%m-%dT10:00"), "RFXSTDTC": (start - pd.Timedelta(days=5)).strftime("%Y-%m-%d"),
        "RFPENDTC": (start + pd.Timedelta(days=800)).strftime("%Y-%m-%d"),
        "SITEID": "101", "AGE": rng.integers(30, 80, n_subjects).astype(float), "AGEU": "YEARS",
        "SEX": rng.choice(["F", "M"], n_subjects), "ARMCD": "DL1", "ARM": "DL1: 1.0x10^6 CAR-T cells/kg",
        "ACTARMCD": "DL1", "ACTARM": "DL1: 1.0x10^6 CAR-T cells/kg", "COUNTRY": "CHN",
    })
    tests = [("ALT", "Alanine Aminotransferase", "U/L"), ("AST", "Aspartate Aminotransferase", "U/L"),
             ("BILI", "Bilirubin", "umol/L"), ("CREAT", "Creatinine", "umol/L"), ("ALB", "Albumin", "g/L"),
             ("LDH", "Lactate Dehydrogenase", "U/L"), ("CRP", "C Reactive Protein", "mg/L"),
             ("FERRITIN", "Ferritin", "ug/L"), ("INTLK6", "Interleukin 6", "pg/mL"), ("WBC", "Leukocytes", "10^9/L"),
             ("NEUT", "Neutrophils", "10^9/L"), ("LYM", "Lymphocytes", "10^9/L"), ("HGB", "Hemoglobin", "g/L"),
             ("PLAT", "Platelets", "10^9/L"), ("MCPROT", "Monoclonal Protein", "g/dL"),
             ("KLCFR", "Kappa Lt Chain,Free", "mg/L"), ("LLCFR", "Lambda Lt Chain,Free", "mg/L"),
             ("B2MICG", "Beta-2 Microglobulin", "mg/L"), ("CA", "Calcium", "mmol/L"), ("IGG", "Immunoglobulin G", "g/L")]
    n = n_records
    t_idx = np.arange(n) % len(tests)
    per_subject = -(-n // n_subjects)
    s_idx = np.arange(n) // per_subject
    visit = (np.arange(n) % per_subject) // len(tests) + 1
    code = np.array([t[0] for t in tests], dtype=object)[t_idx]
    value = np.round(rng.gamma(2.0, 20.0, n), 1)
    day = visit * 7 - 14
    dates = start[s_idx] + pd.to_timedelta(day, unit="D")
    dy = ((dates.to_numpy() - start[s_idx].to_numpy()) / np.timedelta64(1, "D")).astype(int)
    dy = np.where(dy >= 0, dy + 1, dy).astype(float)
    lb = pd.DataFrame({
        "STUDYID": "BCMACART01", "DOMAIN": "LB", "USUBJID": subj[s_idx], "LBSEQ": (np.arange(n) % per_subject + 1.0),
        "LBTESTCD": code, "LBTEST": np.array([t[1] for t in tests], dtype=object)[t_idx],
        "LBCAT": np.where(t_idx < 9, "CHEMISTRY", "HEMATOLOGY"),
        "LBORRES": pd.Series(value).astype("str").to_numpy(), "LBORRESU": np.array([t[2] for t in tests])[t_idx],
        "LBSTRESC": pd.Series(value).astype("str").to_numpy(), "LBSTRESN": value,
        "LBSTRESU": np.array([t[2] for t in tests])[t_idx], "LBSTNRLO": 0.0, "LBSTNRHI": 100.0,
        "LBSPEC": np.where(t_idx < 9, "SERUM", "BLOOD"), "LBLOBXFL": np.where(visit == 1, "Y", None),
        "VISITNUM": visit.astype(float), "VISIT": pd.Series(visit).map(lambda v: f"VISIT {v}").to_numpy(),
        "LBDTC": dates.strftime("%Y-%m-%d"), "LBDY": dy,
    })
    for df in (dm, lb):
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].astype("str")
    return {"DM": dm, "LB": lb}


def bench_validate(records: int = 1_000_000, subjects: int = 5000) -> dict:
    """Validate a generated DM + LB in memory with every bundled rule; timings and counts as a dict
    (for ``benchmarks.run``)."""
    t0 = time.perf_counter()
    frames = make_study(records, subjects)
    t1 = time.perf_counter()
    spec = None
    specs = default_specs()
    if (specs / "study.yaml").is_file():
        from cdisc_pipe.spec import load_specs
        spec = load_specs(specs)
    data = StudyData(datasets=frames, purpose={n: "Tabulation" for n in frames})
    ct_dir = default_ct()
    ct, reason = load_ct_packages(spec, data, Path(ct_dir) if ct_dir else None)
    rules = load_rules()
    t2, c2 = time.perf_counter(), time.process_time()
    results, findings = validate_data(data, spec, ct, reason, ValidationSettings(), rules)
    t3, c3 = time.perf_counter(), time.process_time()
    return {
        "lb_records": len(frames["LB"]), "subjects": len(frames["DM"]), "generate_s": round(t1 - t0, 2),
        "spec": "bundled" if spec else None, "ct": sorted(ct) or reason, "rules": len(rules),
        "status": pd.Series([r.status for r in results]).value_counts().to_dict(), "findings": len(findings),
        "validate_wall_s": round(t3 - t2, 2), "validate_cpu_s": round(c3 - c2, 2),
        "slowest": [(r.rule.id, round(r.seconds, 3), r.status, r.findings)
                    for r in sorted(results, key=lambda r: -r.seconds)[:10]],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--subjects", type=int, default=5000)
    args = ap.parse_args(argv)
    r = bench_validate(args.records, args.subjects)
    print(f"data: {r['lb_records']:,} LB records, {r['subjects']:,} subjects (generated in {r['generate_s']} s)")
    print(f"spec: {r['spec'] or 'none'}; CT: {r['ct']}")
    print(f"rules: {r['rules']} {r['status']}; findings: {r['findings']:,}")
    print(f"validation of all rules: {r['validate_wall_s']} s wall, {r['validate_cpu_s']} s CPU "
          f"(load average {os.getloadavg()[0]:.1f})")
    for rid, sec, status, n in r["slowest"]:
        print(f"  {sec:7.3f} s  {rid:24s} {status} {n:,}")


if __name__ == "__main__":
    main()
