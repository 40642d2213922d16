"""NCA engine on hand-computed profiles (arithmetic in the comments).

Profiles are literal tables: time in days since infusion (a negative time is the pre-infusion
sample), concentration in copies/ug, ``None`` = BLQ.  ln 2 = 0.693147, ln 4 = 1.386294,
ln 2.5 = 0.916291.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.nca import (
    NcaSettings,
    calc_parameters,
    not_calculated_reasons,
    prepare_profiles,
    run_nca,
)
from cdisc_pipe.nca.core import interpolate_conc


def S(**kw) -> NcaSettings:
    return NcaSettings(route="intravascular_infusion", **kw)


LULD = S()
LINEAR = S(auc_method="linear")


def tidy(points: list[tuple[float, float | None]], lloq: float = 10.0, subject: str = "S1") -> pd.DataFrame:
    return pd.DataFrame({
        "ID": subject,
        "TIME": [t for t, _ in points],
        "CONC": [np.nan if c is None else c for _, c in points],
        "BLQ": [c is None for _, c in points],
        "LLOQ": lloq,
        "RECID": range(1, len(points) + 1),
    })


def nca(points, settings: NcaSettings = LULD) -> dict:
    """Parameters and not-calculated reasons of a single profile, plus the dropped records."""
    prof = prepare_profiles(tidy(points), ["ID"], settings)
    par = calc_parameters(prof, settings)
    why = not_calculated_reasons(par, settings)
    out = par.iloc[0].to_dict()
    out["why"] = {k: (None if pd.isna(v) else v) for k, v in why.iloc[0].to_dict().items()}
    out["dropped"] = dict(zip(prof.dropped["RECID"], prof.dropped["REASON"]))
    out["points"] = prof.points
    return out


def test_rising_only():
    # 0-1: 1*(0+10)/2 = 5; 1-2: 1*(10+20)/2 = 15; 2-4: 2*(20+40)/2 = 60 -> AUClast 80
    r = nca([(-0.04, None), (1, 10), (2, 20), (4, 40)])
    assert r["CMAX"] == 40 and r["TMAX"] == 4
    assert r["CLAST"] == 40 and r["TLAST"] == 4
    assert r["AUCLAST"] == pytest.approx(80.0)
    # no sample within day 28 +/- 3: AUCINT not calculated, with the reason
    assert "day 28 +/- 3" in r["why"]["aucint"]
    assert r["why"]["auclast"] is None and r["why"]["cmax"] is None


def test_rising_only_with_trailing_blq_at_day_28():
    # trailing BLQ at 28 kept as 0 -> window satisfied; AUClast-type: 0 after Tlast = 4 -> AUCINT = 80
    r = nca([(-0.04, None), (1, 10), (2, 20), (4, 40), (28, None)])
    assert r["why"]["aucint"] is None
    assert r["AUCINT"] == pytest.approx(80.0)
    assert r["AUCLAST"] == pytest.approx(80.0)


def test_rise_then_fall_lin_up_log_down():
    # 0-1: 1*100/2 = 50; 1-7 up: 6*(100+1000)/2 = 3300
    # 7-14 down: 7*(1000-500)/ln 2 = 3500/0.693147 = 5049.44
    # 14-28 down: 14*(500-125)/ln 4 = 5250/1.386294 = 3787.07  -> 12186.51
    r = nca([(-0.01, None), (1, 100), (7, 1000), (14, 500), (28, 125)])
    expected = 50 + 3300 + 3500 / math.log(2) + 5250 / math.log(4)
    assert expected == pytest.approx(12186.51, abs=0.01)
    assert r["AUCLAST"] == pytest.approx(expected, rel=1e-12)
    assert r["AUCINT"] == pytest.approx(expected, rel=1e-12)  # day 28 sampled: no interpolation
    assert (r["CMAX"], r["TMAX"], r["CLAST"], r["TLAST"]) == (1000, 7, 125, 28)


def test_rise_then_fall_linear():
    # 50 + 3300 + 7*(1000+500)/2 = 5250 + 14*(500+125)/2 = 4375  -> 12975
    r = nca([(-0.01, None), (1, 100), (7, 1000), (14, 500), (28, 125)], LINEAR)
    assert r["AUCLAST"] == pytest.approx(12975.0)


def test_blq_in_the_middle_dropped():
    # day-7 BLQ dropped: points 0, 1, 14, 28
    # 0-1: 50; 1-14 up: 13*(100+400)/2 = 3250; 14-28 down: 14*(400-100)/ln 4 = 4200/1.386294 = 3029.66
    r = nca([(-0.01, None), (1, 100), (7, None), (14, 400), (28, 100)])
    assert r["AUCLAST"] == pytest.approx(50 + 3250 + 4200 / math.log(4))
    assert r["AUCLAST"] == pytest.approx(6329.66, abs=0.01)
    assert list(r["dropped"]) == [3]
    assert "between quantifiable" in r["dropped"][3]


def test_blq_in_the_middle_as_zero_when_configured():
    # middle: zero -> 0-1: 50; 1-7 (100 -> 0, linear as one end is 0): 6*100/2 = 300;
    # 7-14 (0 -> 400): 7*400/2 = 1400; 14-28: 3029.66  -> 4779.66
    s = S(blq={"middle": "zero"})
    r = nca([(-0.01, None), (1, 100), (7, None), (14, 400), (28, 100)], s)
    assert r["AUCLAST"] == pytest.approx(50 + 300 + 1400 + 4200 / math.log(4))
    assert r["dropped"] == {}


def test_blq_in_the_middle_half_lloq():
    # middle: half_lloq (LLOQ 10 -> 5): 1-7 down 100 -> 5: 6*95/ln 20 = 570/2.995732 = 190.27;
    # 7-14 up: 7*(5+400)/2 = 1417.5; 0-1: 50; 14-28: 3029.66
    s = S(blq={"middle": "half_lloq"})
    r = nca([(-0.01, None), (1, 100), (7, None), (14, 400), (28, 100)], s)
    assert r["AUCLAST"] == pytest.approx(50 + 570 / math.log(20) + 1417.5 + 4200 / math.log(4))


def test_leading_and_trailing_blq():
    # leading BLQ day 1 -> 0; trailing BLQ days 21, 28 -> 0
    # 0-1: 0; 1-3: 2*50/2 = 50; 3-7: 4*(50+200)/2 = 500; 7-14 down: 7*100/ln 2 = 1009.89 -> 1559.89
    pts = [(-0.01, None), (1, None), (3, 50), (7, 200), (14, 100), (21, None), (28, None)]
    r = nca(pts)
    expected = 50 + 500 + 700 / math.log(2)
    assert r["AUCLAST"] == pytest.approx(expected)
    assert r["AUCINT"] == pytest.approx(expected)  # 0 after Tlast (aucint.last)
    assert (r["CMAX"], r["TMAX"], r["CLAST"], r["TLAST"]) == (200, 7, 100, 14)
    assert r["N_QUANT_POST"] == 3
    assert r["dropped"] == {}
    pos = r["points"].set_index("RECID")["BLQPOS"]
    assert pos[2] == "LEADING" and pos[6] == "TRAILING" and pos[7] == "TRAILING"


def test_trailing_blq_dropped_loses_the_day_28_window():
    pts = [(-0.01, None), (1, None), (3, 50), (7, 200), (14, 100), (21, None), (28, None)]
    r = nca(pts, S(blq={"trailing": "drop"}))
    assert sorted(r["dropped"]) == [6, 7]
    assert r["why"]["aucint"] is not None and "day 28" in r["why"]["aucint"]
    assert r["AUCLAST"] == pytest.approx(50 + 500 + 700 / math.log(2))


def test_leading_blq_dropped():
    # leading post-infusion BLQ (day 1) dropped: 0-3: 3*50/2 = 75 instead of 0 + 50
    pts = [(-0.01, None), (1, None), (3, 50), (7, 200), (14, 100)]
    r = nca(pts, S(blq={"leading": "drop"}))
    assert r["AUCLAST"] == pytest.approx(75 + 500 + 700 / math.log(2))
    assert list(r["dropped"]) == [2]


def test_ties_at_cmax_first_occurrence():
    r = nca([(-0.01, None), (1, 100), (2, 300), (5, 300), (9, 100)])
    assert r["CMAX"] == 300 and r["TMAX"] == 2


def test_day28_interpolation_linear_segment():
    # 26 -> 30 rises 200 -> 400: C(28) = 200 + (2/4)*200 = 300; 26-28: 2*(200+300)/2 = 500
    # 0-7: 7*100/2 = 350; 7-26: 19*(100+200)/2 = 2850  -> AUCINT 3700
    # AUClast adds 28-30 ... as whole 26-30: 4*(200+400)/2 = 1200 -> 350 + 2850 + 1200 = 4400
    r = nca([(-0.01, None), (7, 100), (26, 200), (30, 400)])
    assert r["AUCINT"] == pytest.approx(3700.0)
    assert r["AUCLAST"] == pytest.approx(4400.0)


def test_day28_interpolation_log_segment():
    # 26 -> 30 falls 400 -> 100: log interpolation C(28) = 400*exp(0.5*ln(100/400)) = 200
    # 26-28: 2*(400-200)/ln 2 = 577.08; 0-7: 7*1000/2 = 3500; 7-26: 19*(1000-400)/ln 2.5 = 12441.46
    r = nca([(-0.01, None), (7, 1000), (26, 400), (30, 100)])
    expected = 3500 + 11400 / math.log(2.5) + 400 / math.log(2)
    assert expected == pytest.approx(16518.54, abs=0.01)
    assert r["AUCINT"] == pytest.approx(expected, rel=1e-12)


def test_day28_interpolation_log_segment_with_linear_method():
    # linear: C(28) = 400 - 0.5*300 = 250; 26-28: 2*(400+250)/2 = 650; 7-26: 19*1400/2 = 13300
    r = nca([(-0.01, None), (7, 1000), (26, 400), (30, 100)], LINEAR)
    assert r["AUCINT"] == pytest.approx(3500 + 13300 + 650)


def test_interpolate_conc_matches_pknca_rules():
    # linear: 10 + (1/4)*(50-10) = 20; log: 100*exp(0.25*ln(0.01)) = 100*0.316228 = 31.6228
    out = interpolate_conc([0, 0], [4, 4], [10, 100], [50, 1], [1, 1], [False, True])
    assert out == pytest.approx([20.0, 100 * 0.01 ** 0.25])


def test_too_few_points():
    # two quantifiable post-infusion concentrations: AUCs not calculated, Cmax/Tmax/Clast/Tlast are
    r = nca([(-0.01, None), (1, 100), (7, 50), (14, None), (28, None)])
    assert r["CMAX"] == 100 and r["TLAST"] == 7
    assert r["why"]["cmax"] is None and r["why"]["tlast"] is None
    assert r["why"]["auclast"] == "Fewer than 3 quantifiable post-infusion concentrations (2)"
    assert r["why"]["aucint"] == r["why"]["auclast"]


def test_all_blq_nothing_calculated():
    r = nca([(-0.01, None), (1, None), (7, None), (28, None)])
    assert np.isnan(r["CMAX"]) and np.isnan(r["AUCLAST"])
    six = ("cmax", "tmax", "clast", "tlast", "auclast", "aucint")
    assert {r["why"][q] for q in six} == {"No quantifiable post-infusion concentration"}


def test_time_zero_imputed_without_predose():
    # imputed 0 at t=0: 0-1: 50; 1-7 down: 6*(100-50)/ln 2 = 432.81; 7-28 ... 3 points needed
    r = nca([(1, 100), (7, 50), (28, 25)])
    assert r["T0_IMPUTED"]
    assert r["AUCLAST"] == pytest.approx(50 + 300 / math.log(2) + 21 * 25 / math.log(2))


def test_time_zero_not_imputed_gives_not_calculated():
    r = nca([(1, 100), (7, 50), (28, 25)], S(time_zero={"impute_zero": False}))
    assert r["why"]["auclast"].startswith("No time-zero concentration")
    assert r["why"]["cmax"] is None


def test_predose_rules():
    # two pre-infusion samples: the last one (day -0.5) is time zero, the earlier one is dropped;
    # a quantifiable pre-infusion value (20) is the time-zero concentration: 0-1: (20+100)/2 = 60
    r = nca([(-3, None), (-0.5, 20), (1, 100), (2, 100), (3, 100)])
    assert list(r["dropped"]) == [1]
    assert r["AUCLAST"] == pytest.approx(60 + 100 + 100)
    assert r["CMAX"] == 100 and r["TMAX"] == 1  # pre-infusion value is not a post-infusion Cmax
    # a pre-infusion sample too early is not time zero: 0 imputed instead
    r = nca([(-10, None), (1, 100), (2, 100), (3, 100)])
    assert list(r["dropped"]) == [1] and r["T0_IMPUTED"]


def test_duplicate_time_keeps_first_record():
    r = nca([(-0.01, None), (1, 100), (1, 999), (2, 50), (3, 25)])
    assert list(r["dropped"]) == [3] and r["CMAX"] == 100


def test_many_profiles_at_once_match_single_runs():
    # the grouped computation gives each profile exactly its own single-profile result
    profiles = {
        "A": [(-0.01, None), (1, 100), (7, 1000), (14, 500), (28, 125)],
        "B": [(-0.01, None), (7, 1000), (26, 400), (30, 100)],
        "C": [(-0.01, None), (1, 100), (7, None), (14, 400), (28, 100)],
        "D": [(-0.01, None), (1, None), (7, None)],
    }
    frames = [tidy(p, subject=k) for k, p in profiles.items()]
    both = pd.concat(frames[::-1], ignore_index=True)  # order of the input must not matter
    both["RECID"] = range(len(both))
    prof = prepare_profiles(both, ["ID"], LULD)
    par = calc_parameters(prof, LULD).set_index(prof.profiles["ID"])
    for k, p in profiles.items():
        single = nca(p)
        for col in ("CMAX", "TMAX", "AUCLAST", "AUCINT", "TLAST"):
            assert par.loc[k, col] == pytest.approx(single[col], nan_ok=True)


def test_run_nca_tidy_frame_with_subject_specimen_analyte_keys():
    # subject x specimen x analyte keys; AUC of A/BLOOD as in test_rise_then_fall_lin_up_log_down
    a = tidy([(-0.01, None), (1, 100), (7, 1000), (14, 500), (28, 125)], subject="A")
    b = tidy([(-0.01, None), (1, 100), (7, None), (28, 50)], subject="A")
    a["SPEC"], b["SPEC"] = "BLOOD", "BONE MARROW"
    frame = pd.concat([a, b], ignore_index=True).rename(columns={"ID": "USUBJID"})
    frame["ANALYTE"] = "BCMACAR"
    frame["RECID"] = range(len(frame))
    table, dropped = run_nca(frame, ["USUBJID", "SPEC", "ANALYTE"], LULD)
    blood = table.set_index("SPEC").loc["BLOOD"]
    assert blood["AUCLAST"] == pytest.approx(50 + 3300 + 3500 / math.log(2) + 5250 / math.log(4))
    assert blood["NC_AUCINT"] is None
    marrow = table.set_index("SPEC").loc["BONE MARROW"]
    assert marrow["NC_AUCLAST"].startswith("Fewer than 3")
    assert dropped[["USUBJID", "SPEC", "RECID"]].values.tolist() == [["A", "BONE MARROW", 7]]


def test_cases_from_pknca_aucint_documentation():
    # PKNCA's own aucint checks on conc 8, 4, 2, 1 at times 0..3 (lin up/log down, all segments
    # falling): AUC0-3 = (8-4)/ln 2 + (4-2)/ln 2 + (2-1)/ln 2 = 7/ln 2 = 10.0989
    s3 = S(interval={"end_days": 3}, min_data={"end_window_days": 1})
    r = nca([(0, 8), (1, 4), (2, 2), (3, 1)], s3)
    assert r["AUCINT"] == pytest.approx(7 / math.log(2)) and r["AUCLAST"] == pytest.approx(7 / math.log(2))
    # with a trailing BLQ at 4 and the interval ending at 3.5 (aucint.last): 0 after Tlast = 3
    s35 = S(interval={"end_days": 3.5}, min_data={"end_window_days": 1})
    r = nca([(0, 8), (1, 4), (2, 2), (3, 1), (4, None)], s35)
    assert r["AUCINT"] == pytest.approx(7 / math.log(2))
    # interval ending at 2.5 (between samples, log segment): C(2.5) = 2*exp(0.5*ln(1/2)) = 1.41421;
    # 2-2.5: 0.5*(2-1.41421)/ln(2/1.41421) = 0.29289/0.34657 = 0.84510 -> 6/ln 2 + 0.84510
    s25 = S(interval={"end_days": 2.5}, min_data={"end_window_days": 1})
    r = nca([(0, 8), (1, 4), (2, 2), (3, 1)], s25)
    assert r["AUCINT"] == pytest.approx(6 / math.log(2) + 0.5 * (2 - 2 ** 0.5) / math.log(2 / 2 ** 0.5))
