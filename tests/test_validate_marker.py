"""The generic rule function ``response_vs_marker``: a categorical response against a quantitative marker.

Every disease decision is a rule parameter.  The rule below states the IMWG serum M-protein rule the
bundled study uses (its copy lives in specs/settings/study_rules.yaml, DQ.RS.MPROTEIN); the literal
RS/LB tables are small and each expected result is worked out by hand in the comments:
pct change = (value - baseline) / baseline x 100.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cdisc_pipe.errors import InputError
from cdisc_pipe.validate import ValidationSettings, load_rules, load_settings, study_rule_files, validate_data
from cdisc_pipe.validate.data import StudyData

S1, S2 = "STUDY-1001", "STUDY-1002"

RULE = {
    "id": "DQ.T.MARKER", "standard": "Test", "severity": "Warning", "category": "Data quality",
    "scope": {"datasets": ["RS"]},
    "message": "Response inconsistent with the serum M-protein",
    "check": {
        "operator": "python", "function": "response_vs_marker",
        "response": {"where": {"RSTESTCD": "OVRLRESP"}, "result": "RSSTRESC"},
        "marker": {"dataset": "LB", "where": {"LBTESTCD": "MCPROT", "LBSPEC": ["SERUM", None]},
                   "result": "LBSTRESN", "below_limit": {"variable": "LBSTRESC", "value": 0},
                   "label": "serum M-protein"},
        "baseline": {"flag": ["LBLOBXFL", "LBBLFL"], "min_value": 1.0},
        "match": {"visit": "VISITNUM"},
        "require": {"PR": {"max_pct_change": -50}, "VGPR": {"max_pct_change": -90},
                    "CR": {"max_value": 0}, "sCR": {"max_value": 0},
                    "PD": {"any_of": [{"min_pct_change": 0}, {"min_pct_over_nadir": 25}]}},
    },
}


def _frame(cols: str, rows: list[tuple]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=cols.split())
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].astype("str")
    return out


def lb(usubjid: str, visitnum: float, dtc: str, result: str, flag: str | None = None, spec: str | None = "SERUM",
       method: str = "ELECTROPHORESIS") -> tuple:
    try:
        num = float(result)
    except ValueError:
        num = np.nan
    return (usubjid, "MCPROT", spec, method, result, num, flag, visitnum, dtc)


def rs(usubjid: str, visitnum: float, dtc: str, response: str, testcd: str = "OVRLRESP") -> tuple:
    return (usubjid, testcd, response, visitnum, dtc)


# S1's serum M-protein: screening 2.5 (day -7), baseline 2.0 (flagged, the day before treatment)
BASE_LB = [lb(S1, 1.0, "2023-01-03", "2.5"), lb(S1, 2.0, "2023-01-09T08:00", "2.0", flag="Y")]


def study(lb_rows: list[tuple], rs_rows: list[tuple], rfstdtc: str = "2023-01-10") -> StudyData:
    frames = {
        "LB": _frame("USUBJID LBTESTCD LBSPEC LBMETHOD LBSTRESC LBSTRESN LBLOBXFL VISITNUM LBDTC", lb_rows),
        "RS": _frame("USUBJID RSTESTCD RSSTRESC VISITNUM RSDTC", rs_rows),
        "DM": _frame("USUBJID RFSTDTC", [(S1, rfstdtc), (S2, rfstdtc)]),
    }
    for name, df in frames.items():
        df.insert(0, "DOMAIN", name)
    return StudyData(datasets=frames, purpose={n: "Tabulation" for n in frames})


@pytest.fixture()
def write_rule(tmp_path):
    """Load a rule through the rule-file loader (so parameter validation runs as for a study file)."""
    def load(rule: dict) -> object:
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump([rule], sort_keys=False), encoding="utf-8")
        return load_rules([path])[0]
    return load


def with_check(**changes) -> dict:
    rule = copy.deepcopy(RULE)
    rule["check"].update(changes)
    return rule


def findings(rule, data: StudyData) -> pd.DataFrame:
    results, f = validate_data(data, None, None, None, ValidationSettings(), rules=[rule])
    assert results[0].status in ("SUCCESS", "ISSUE"), (results[0].status, results[0].reason)
    return f


def details(f: pd.DataFrame) -> list[str]:
    prefix = RULE["message"] + " ("
    return [m[len(prefix):-1] for m in f["message"]]


# ------------------------------------------------------------------ each category fires / stays quiet
@pytest.mark.parametrize("value, response, expected", [
    # PR: 2.0 -> 1.2 = -40 %: not the 50 % reduction PR needs -> finding
    ("1.2", "PR", ["serum M-protein 1.2 vs baseline 2.0 (-40.0 %)"]),
    # PR: 2.0 -> 1.0 = -50 % exactly: PR holds -> quiet
    ("1.0", "PR", []),
    # VGPR: 2.0 -> 0.3 = -85 % (needs -90 %) -> finding
    ("0.3", "VGPR", ["serum M-protein 0.3 vs baseline 2.0 (-85.0 %)"]),
    # VGPR: 2.0 -> 0.2 = -90 % exactly (floating point noise tolerated) -> quiet
    ("0.2", "VGPR", []),
    # CR: 0.1 still detectable (max_value 0) -> finding, although -95 %
    ("0.1", "CR", ["serum M-protein 0.1 vs baseline 2.0 (-95.0 %)"]),
    # CR: "<0.10" below quantification counts as 0 (below_limit) -> quiet
    ("<0.10", "CR", []),
    # sCR: categories compare case-insensitively ("SCR" reported, rule key sCR) -> finding at 0.1
    ("0.1", "SCR", ["serum M-protein 0.1 vs baseline 2.0 (-95.0 %)"]),
    # SD and NE are not in `require`: never a finding, whatever the value
    ("0.1", "SD", []),
    ("2.4", "NE", []),
])
def test_category_conditions_at_one_visit(write_rule, value, response, expected):
    rule = write_rule(RULE)
    data = study(BASE_LB + [lb(S1, 3.0, "2023-02-07", value)], [rs(S1, 3.0, "2023-02-07", response)])
    f = findings(rule, data)
    assert details(f) == expected
    if expected:
        assert f["variable"].tolist() == ["RSSTRESC"] and f["value"].tolist() == [response]
        assert f["usubjid"].tolist() == [S1]


@pytest.mark.parametrize("value, expected", [
    # nadir before visit 4 = min(2.5, 2.0, 0.4) = 0.4; 0.45 = +12.5 % over the nadir (< 25 %) and below
    # the 2.0 baseline (-77.5 %): neither PD alternative holds -> finding, with the nadir in the message
    ("0.45", ["serum M-protein 0.45 vs baseline 2.0 (-77.5 %), lowest earlier value 0.4"]),
    # 0.5 = 0.4 x 1.25: exactly 25 % over the nadir -> quiet
    ("0.5", []),
    # 2.2 >= baseline 2.0 (+10 %): the first alternative holds -> quiet
    ("2.2", []),
])
def test_progression_against_baseline_or_nadir(write_rule, value, expected):
    rule = write_rule(RULE)
    data = study(BASE_LB + [lb(S1, 3.0, "2023-02-07", "0.4"), lb(S1, 4.0, "2023-03-07", value)],
                 [rs(S1, 3.0, "2023-02-07", "VGPR"), rs(S1, 4.0, "2023-03-07", "PD")])
    # VGPR at visit 3: 2.0 -> 0.4 = -80 % -> that one is always a finding; PD is the subject here
    f = findings(rule, data)
    assert details(f) == ["serum M-protein 0.4 vs baseline 2.0 (-80.0 %)"] + expected


def test_pd_after_undetectable_nadir_is_consistent(write_rule):
    """Nadir 0 ("<0.10" = 0): any later value is >= 0 x 1.25, so PD at 0.5 is quiet."""
    rule = write_rule(RULE)
    data = study(BASE_LB + [lb(S1, 3.0, "2023-02-07", "<0.10"), lb(S1, 4.0, "2023-03-07", "0.5")],
                 [rs(S1, 3.0, "2023-02-07", "CR"), rs(S1, 4.0, "2023-03-07", "PD")])
    assert findings(rule, data).empty


# ------------------------------------------------------------------ who and what is checked
def test_non_measurable_baseline_is_not_checked(write_rule):
    """S2's baseline 0.8 is below min_value 1.0: PR at 0.8 (0 %) is not checked; S1 (2.0) is."""
    rule = write_rule(RULE)
    data = study(BASE_LB + [lb(S1, 3.0, "2023-02-07", "1.2"),
                            lb(S2, 2.0, "2023-01-09", "0.8", flag="Y"), lb(S2, 3.0, "2023-02-07", "0.8")],
                 [rs(S1, 3.0, "2023-02-07", "PR"), rs(S2, 3.0, "2023-02-07", "PR")])
    f = findings(rule, data)
    assert f["usubjid"].tolist() == [S1]
    # without the threshold every subject with a baseline is checked: S2 0.8 -> 0.8 = 0 % -> finding
    no_min = copy.deepcopy(RULE)
    del no_min["check"]["baseline"]["min_value"]
    f = findings(write_rule(no_min), data)
    assert f["usubjid"].tolist() == [S1, S2]
    assert details(f)[1] == "serum M-protein 0.8 vs baseline 0.8 (0.0 %)"


def test_subject_without_baseline_is_not_checked(write_rule):
    rule = write_rule(RULE)
    data = study([lb(S1, 1.0, "2023-01-03", "2.5"), lb(S1, 3.0, "2023-02-07", "1.2")],
                 [rs(S1, 3.0, "2023-02-07", "PR")])
    assert findings(rule, data).empty


def test_missing_marker_at_the_visit(write_rule):
    """PR at visit 4 with no M-protein at visit 4: quiet by default, a finding with missing_marker: report."""
    data = study(BASE_LB + [lb(S1, 3.0, "2023-02-07", "0.9")],
                 [rs(S1, 3.0, "2023-02-07", "PR"), rs(S1, 4.0, "2023-03-07", "PR")])
    # visit 3: 2.0 -> 0.9 = -55 %: PR holds -> quiet
    assert findings(write_rule(RULE), data).empty
    f = findings(write_rule(with_check(missing_marker="report")), data)
    assert details(f) == ["no serum M-protein at VISITNUM 4"]
    # a category outside `require` is not reported either way
    data.datasets["RS"].loc[1, "RSSTRESC"] = "SD"
    assert findings(write_rule(with_check(missing_marker="report")), data).empty


def test_marker_filters_and_non_numeric_records(write_rule):
    """Only serum electrophoresis numbers count: the urine 0.0 and the immunofixation NEGATIVE of the
    same test code are left out, so CR at visit 3 is judged on the serum 0.9 -> finding."""
    rule = write_rule(RULE)
    data = study(BASE_LB + [lb(S1, 3.0, "2023-02-07", "0.9"),
                            lb(S1, 3.0, "2023-02-07", "0.0", spec="URINE"),
                            lb(S1, 3.0, "2023-02-07", "NEGATIVE", method="IMMUNOFIXATION ELECTROPHORESIS")],
                 [rs(S1, 3.0, "2023-02-07", "CR")])
    assert details(findings(rule, data)) == ["serum M-protein 0.9 vs baseline 2.0 (-55.0 %)"]
    # a missing specimen counts as serum here (LBSPEC: [SERUM, null]): 0.0 without LBSPEC -> CR holds
    data = study(BASE_LB + [lb(S1, 3.0, "2023-02-07", "0.0", spec=None)], [rs(S1, 3.0, "2023-02-07", "CR")])
    assert findings(rule, data).empty
    # other response tests (RSTESTCD MRDIND) are not selected
    data = study(BASE_LB + [lb(S1, 3.0, "2023-02-07", "1.9")], [rs(S1, 3.0, "2023-02-07", "CR", testcd="MRDIND")])
    assert findings(rule, data).empty


def test_match_by_date_window(write_rule):
    """The response (unscheduled VISITNUM 3.1, 2023-02-09) and the M-protein (visit 3, 2023-02-07)
    are 2 days apart: matched with window_days 3 (PR at 1.2 = -40 % -> finding), not with 1."""
    data = study(BASE_LB + [lb(S1, 3.0, "2023-02-07", "1.2")], [rs(S1, 3.1, "2023-02-09", "PR")])
    assert findings(write_rule(RULE), data).empty  # by visit: no M-protein at VISITNUM 3.1
    f = findings(write_rule(with_check(match={"window_days": 3})), data)
    assert details(f) == ["serum M-protein 1.2 vs baseline 2.0 (-40.0 %)"]
    assert findings(write_rule(with_check(match={"window_days": 1})), data).empty
    f = findings(write_rule(with_check(match={"window_days": 1}, missing_marker="report")), data)
    assert details(f) == ["no serum M-protein within 1 days of RSDTC"]
    # two candidates: 2023-02-07 (2 days before, 1.2) and 2023-02-10 (1 day after, 0.9): the nearest,
    # 0.9 = -55 %, is used -> PR holds -> quiet
    data = study(BASE_LB + [lb(S1, 3.0, "2023-02-07", "1.2"), lb(S1, 4.0, "2023-02-10", "0.9")],
                 [rs(S1, 3.1, "2023-02-09", "PR")])
    assert findings(write_rule(with_check(match={"window_days": 3})), data).empty


def test_baseline_as_last_value_on_or_before_a_reference_date(write_rule):
    """baseline: last_on_or_before DM.RFSTDTC.  RFSTDTC 2023-01-10: last value 2.0 (01-09) -> PR at 1.2
    = -40 % -> finding.  RFSTDTC 2023-01-05: last value 2.5 (01-03) -> 1.2 = -52 % -> quiet."""
    by_date = copy.deepcopy(RULE)
    by_date["check"]["baseline"] = {"last_on_or_before": "RFSTDTC", "min_value": 1.0}
    rule = write_rule(by_date)
    rows = [lb(S1, 1.0, "2023-01-03", "2.5"), lb(S1, 2.0, "2023-01-09", "2.0"), lb(S1, 3.0, "2023-02-07", "1.2")]
    resp = [rs(S1, 3.0, "2023-02-07", "PR")]
    assert details(findings(rule, study(rows, resp))) == ["serum M-protein 1.2 vs baseline 2.0 (-40.0 %)"]
    assert findings(rule, study(rows, resp, rfstdtc="2023-01-05")).empty


def test_bundled_study_rule_carries_the_imwg_parameters():
    """specs/settings/study_rules.yaml DQ.RS.MPROTEIN: the package's rule function, the study's values."""
    from cdisc_pipe.paths import default_specs

    path = default_specs() / "settings" / "validation.yaml"
    if not path.is_file():
        pytest.skip("no bundled validation settings")
    settings, sp = load_settings(path)
    rule = {r.id: r for r in load_rules(extra=study_rule_files(settings, sp))}["DQ.RS.MPROTEIN"]
    assert rule.check["function"] == "response_vs_marker"
    assert rule.check["baseline"]["min_value"] == 1.0
    data = study(BASE_LB + [lb(S1, 3.0, "2023-02-07", "1.2")], [rs(S1, 3.0, "2023-02-07", "PR")])
    f = findings(rule, data)
    assert f["message"].tolist() == [rule.message + " (serum M-protein 1.2 vs baseline 2.0 (-40.0 %))"]


def test_skipped_with_a_reason(write_rule):
    data = study(BASE_LB, [rs(S1, 3.0, "2023-02-07", "PR")])
    data.datasets["LB"] = data.datasets["LB"].assign(LBTESTCD="ALB")
    results, _ = validate_data(data, None, None, None, ValidationSettings(), rules=[write_rule(RULE)])
    assert (results[0].status, results[0].reason) == ("SKIPPED", "no serum M-protein records in LB")
    del data.datasets["LB"]
    results, _ = validate_data(data, None, None, None, ValidationSettings(), rules=[write_rule(RULE)])
    assert (results[0].status, results[0].reason) == ("SKIPPED", "dataset LB absent")


# ------------------------------------------------------------------ bad parameters: clear load errors
@pytest.mark.parametrize("change, column, words", [
    # a misspelt bound
    ({"require": {"PR": {"max_pct_chnge": -50}}}, "check.require.PR.max_pct_chnge", "Extra inputs are not permitted"),
    # a bound that is not a number (no eval of expressions)
    ({"require": {"PR": {"max_pct_change": "-50 %"}}}, "check.require.PR.max_pct_change", "valid number"),
    ({"require": {"CR": {}}}, "check.require.CR", "a condition needs at least one of"),
    ({"require": {"PD": {"any_of": []}}}, "check.require.PD.any_of", "at least 1 item"),
    ({"require": {"PD": {"min_value": 0, "any_of": [{"min_pct_change": 0}]}}}, "check.require.PD",
     "either bounds or 'any_of'"),
    ({"require": {"CR": {"max_value": 0}, "cr": {"max_value": 0}}}, "check", "compared case-insensitively"),
    ({"require": {}}, "check.require", "at least 1 item"),
    ({"baseline": {"flag": "LBBLFL", "last_on_or_before": "RFSTDTC"}}, "check.baseline", "exactly one of 'flag'"),
    ({"baseline": {"min_value": 1.0}}, "check.baseline", "exactly one of 'flag'"),
    ({"match": {"visit": "VISITNUM", "window_days": 3}}, "check.match", "exactly one of 'visit'"),
    ({"match": {"window_days": -1}}, "check.match.window_days", "greater than or equal to 0"),
    ({"missing_marker": "maybe"}, "check.missing_marker", "'ignore' or 'report'"),
    ({"marker": {"dataset": "LB", "where": {"LBTESTCD": "MCPROT"}}}, "check.marker.result", "Field required"),
    ({"marker": {"dataset": "LB", "where": {}, "result": "LBSTRESN"}}, "check.marker.where", "at least 1 item"),
    ({"response": {"result": "RSSTRESC", "where": {"RSTESTCD": True}}}, "check.response.where",
     "RSTESTCD: True is not a value"),
    ({"threshold": 1.0}, "check.threshold", "Extra inputs are not permitted"),
])
def test_bad_parameters_are_load_errors_naming_file_rule_and_key(tmp_path, change, column, words):
    path = tmp_path / "study_rules.yaml"
    path.write_text(yaml.safe_dump([with_check(**change)], sort_keys=False), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_rules([path])
    problems = exc.value.problems
    hit = [p for p in problems if p.column == column and words in p.message]
    assert hit, "\n".join(str(p) for p in problems)
    assert hit[0].file == str(path) and hit[0].entry == "[0] DQ.T.MARKER"
    text = str(exc.value)
    assert str(path) in text and "DQ.T.MARKER" in text and column in text


def test_old_settings_key_is_a_clear_error(tmp_path):
    """The former myeloma settings now live in the study rule: an older settings file says where."""
    p = tmp_path / "validation.yaml"
    p.write_text("imwg_measurable_serum_mprotein: 1.0\n", encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_settings(p)
    assert "imwg_measurable_serum_mprotein" in str(exc.value) and "response_vs_marker" in str(exc.value)
    assert "baseline.min_value" in str(exc.value)


# ------------------------------------------------------------------ the package stays disease-agnostic
DISEASE_WORDS = ("myeloma", "imwg", "mprotein", "m-protein", "car-t", "bcma", "crs", "icans", "astct",
                 "lymphodeplet", "mcprot", "cytokine release", "neurotoxicity")


def test_package_rules_settings_and_code_names_hold_no_disease_words():
    """Disease knowledge lives in the study's rule file: the package's rule files, the settings model
    and the identifiers of the validate modules name none of it (docstring examples may)."""
    import io
    import re
    import tokenize

    import cdisc_pipe.validate as pkg
    from cdisc_pipe.validate.engine import RULES_DIR

    word = re.compile(r"(?<![a-z])(" + "|".join(re.escape(w) for w in DISEASE_WORDS) + r")(?![a-z])")
    for path in RULES_DIR.glob("*.yaml"):
        assert not word.search(path.read_text(encoding="utf-8").lower()), path.name
    assert not any(word.search(f.replace("_", " ")) for f in ValidationSettings.model_fields)
    for path in Path(pkg.__file__).parent.glob("*.py"):
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
        names = {t.string.lower() for t in tokens if t.type == tokenize.NAME}
        assert not [n for n in names if word.search(n.replace("_", " "))], path.name
