"""Expected findings (``expected:`` in the validation settings) explain only what they name.

Issue #16 item 5: an explanation names the subjects, records or values it covers; a finding outside
that scope is unexplained; an explanation (or a subject, value, record it lists) that matches no
finding is reported as stale (VAL.EXPECTED.STALE, Warning); a rule-wide explanation needs an explicit
``scope: all``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.validate import ValidationSettings, load_rules, load_settings, run_validation, validate_data
from cdisc_pipe.validate.engine import STALE_RULE, match_expected

from tests.test_validate_engine import study_out  # noqa: F401  (fixture: the clean study written as XPT)
from tests.test_validate_rules import S1, S2, clean_study

UNIT_RULE = "FND.LB.UNIT.CHANGE"


def _settings(*entries: dict) -> ValidationSettings:
    return ValidationSettings.model_validate({"expected": list(entries)})


def _unit_change_findings(data) -> pd.DataFrame:
    rule = next(r for r in load_rules() if r.id == UNIT_RULE)
    results, findings = validate_data(data, None, {}, None, ValidationSettings(), rules=[rule])
    assert results[0].status == "ISSUE", results[0].reason
    return findings


def _lb_with_unit_changes():
    """S1's ALT changes unit (U/L at seq 1, IU/L at seq 2: the explained case); then a formula typed
    as a unit: on a third ALT record of S1 and on a new ALT record of S2 (another subject)."""
    data, _ = clean_study()
    lb = data.datasets["LB"].copy()
    lb.loc[(lb["USUBJID"] == S1) & (lb["LBSEQ"] == 2.0), "LBORRESU"] = "IU/L"
    alt1 = lb[(lb["USUBJID"] == S1) & (lb["LBTESTCD"] == "ALT")].iloc[[0]]
    alt2 = lb[(lb["USUBJID"] == S2) & (lb["LBTESTCD"] == "ALT")].iloc[[0]]
    new = pd.concat([alt1.assign(LBSEQ=9.0, LBORRESU="=A1*2", VISITNUM=4.0),
                     alt2.assign(LBSEQ=9.0, LBORRESU="=A1*2", VISITNUM=4.0)])
    data.datasets["LB"] = pd.concat([lb, new], ignore_index=True)
    return data


EXPLAINED_S1 = {"rule": UNIT_RULE, "dataset": "LB", "variable": "LBORRESU",
                "records": [{"usubjid": S1, "seq": 1}, {"usubjid": S1, "seq": 2}],
                "explanation": "ALT of one unscheduled sample reported by a lab in IU/L"}


def test_formula_typed_as_a_unit_stays_unexplained():
    findings = _unit_change_findings(_lb_with_unit_changes())
    res = match_expected(findings, _settings(EXPLAINED_S1))
    f = findings.assign(explanation=res.explanation)
    explained = f[f["explanation"].notna()]
    assert sorted(explained["seq"].tolist()) == [1.0, 2.0] and set(explained["usubjid"]) == {S1}
    formula = f[f["value"] == "=A1*2"]
    assert set(formula["usubjid"]) == {S1, S2}  # the same subject's and another subject's
    assert formula["explanation"].isna().all()
    assert res.stale.empty and res.unused == []


@pytest.mark.parametrize("scope", [
    {"subjects": [S1], "values": ["U/L", "IU/L"]},
    {"records": [{"usubjid": S1, "variable": "LBORRESU", "value": "U/L"},
                 {"usubjid": S1, "variable": "LBORRESU", "value": "IU/L"}]},
])
def test_new_finding_outside_the_scope_is_unexplained(scope):
    """Subjects + values, or subject + variable + value: the explained unit change stays explained,
    the formula (same subject, value outside the scope; another subject) does not."""
    findings = _unit_change_findings(_lb_with_unit_changes())
    entry = {"rule": UNIT_RULE, "explanation": "lab in IU/L", **scope}
    res = match_expected(findings, _settings(entry))
    explained = findings[res.explanation.notna()]
    unexplained = findings[res.explanation.isna()]
    assert sorted(zip(explained["usubjid"], explained["seq"])) == [(S1, 1.0), (S1, 2.0)]
    assert ((unexplained["usubjid"] == S1) & (unexplained["value"] == "=A1*2")).sum() == 1
    assert set(unexplained.loc[unexplained["usubjid"] == S2, "value"]) >= {"=A1*2"}


def test_scope_all_explains_every_finding_of_the_rule():
    findings = _unit_change_findings(_lb_with_unit_changes())
    res = match_expected(findings, _settings({"rule": UNIT_RULE, "scope": "all", "explanation": "deliberate"}))
    assert res.explanation.notna().all() and res.stale.empty


def test_stale_explanation_and_stale_scope_items_are_findings():
    findings = _unit_change_findings(_lb_with_unit_changes())
    settings = _settings(
        {**EXPLAINED_S1, "records": [*EXPLAINED_S1["records"], {"usubjid": S1, "seq": 77}]},  # seq 77: no finding
        {"rule": UNIT_RULE, "subjects": ["NOBODY"], "explanation": "matches nothing"},
        {"rule": "DQ.PC.LLOQ", "scope": "all", "explanation": "rule with no finding"},
        {"rule": UNIT_RULE, "records": [{"usubjid": S1, "seq": 1}], "explanation": "already explained above"},
    )
    res = match_expected(findings, settings, "study/validation.yaml")
    st = res.stale
    assert list(st["rule"].unique()) == [STALE_RULE] and set(st["severity"]) == {"Warning"}
    assert st["variable"].tolist() == ["expected[0]", "expected[1]", "expected[2]", "expected[3]"]
    rec = st.iloc[0]
    assert rec["usubjid"] == S1 and rec["seq"] == 77 and "seq=77" in rec["value"]
    assert "study/validation.yaml expected[0]" in rec["message"] and "matches no finding" in rec["message"]
    assert "expected[2] DQ.PC.LLOQ scope=all" in res.unused
    # the entry's other records still explain their findings
    assert res.explanation.notna().sum() == 2


def test_values_compare_as_text():
    """A numeric finding value matches the text in the settings (VISITNUM 10.0 is "10")."""
    f = pd.DataFrame({"rule": ["DQ.SV.MISSED"], "severity": "Warning", "category": "x", "dataset": ["SV"],
                      "usubjid": [S1], "seq": [np.nan], "variable": ["VISITNUM"], "value": [10.0],
                      "message": "m", "source": "validation"})
    res = match_expected(f, _settings({"rule": "DQ.SV.MISSED", "values": [10], "explanation": "missed"}))
    assert res.explanation.tolist() == ["missed"]
    res = match_expected(f, _settings({"rule": "DQ.SV.MISSED", "explanation": "missed",
                                       "records": [{"usubjid": S1, "variable": "VISITNUM", "value": "10"}]}))
    assert res.explanation.tolist() == ["missed"]


@pytest.mark.parametrize("entry,words", [
    ({"rule": "X.Y", "explanation": "no scope"}, ["names no scope", "scope: all"]),
    ({"rule": "X.Y", "usubjid": "S", "explanation": "old key"}, ["usubjid", "subjects: ["]),
    ({"rule": "X.Y", "scope": "all", "subjects": ["S"], "explanation": "both"}, ["cannot be combined", "subjects"]),
    ({"rule": "X.Y", "subjects": [], "explanation": "empty"}, ["empty list"]),
    ({"rule": "X.Y", "records": [{"usubjid": "S"}], "explanation": "half a record"}, ["usubjid + seq"]),
    ({"rule": "X.Y", "scope": "all", "explanation": "  "}, ["explanation is empty"]),
    ({"rule": "X.Y", "scope": "every", "explanation": "x"}, ["'all'"]),
    ({"rule": "X.Y", "subjects": ["S"], "explanaton": "typo", "explanation": "x"}, ["explanaton"]),
])
def test_settings_errors_name_the_file_and_entry(tmp_path, entry, words):
    import yaml

    p = tmp_path / "validation.yaml"
    p.write_text(yaml.safe_dump({"expected": [{"rule": "OK.RULE", "scope": "all", "explanation": "fine"}, entry]}))
    with pytest.raises(InputError) as exc:
        load_settings(p)
    text = str(exc.value)
    assert str(p) in text and "expected[1] (X.Y)" in text, text
    for w in words:
        assert w in text, (w, text)


def test_run_validation_reports_the_stale_explanation(study_out, tmp_path):  # noqa: F811
    out, spec, ct, _ = study_out
    sdtm_only = spec.model_copy(update={"datasets": {n: d for n, d in spec.datasets.items()
                                                     if d.purpose == "Tabulation"}})
    settings = tmp_path / "validation.yaml"
    settings.write_text("expected:\n  - rule: TRC.DEFINE.PRESENT\n    scope: all\n    explanation: no define here\n"
                        "  - rule: DQ.PC.LLOQ\n    subjects: [NOBODY]\n    explanation: stale entry\n")
    r = run_validation(out, sdtm_only, ct, settings_path=settings)
    s = r.summary
    stale = r.findings[r.findings["rule"] == STALE_RULE]
    assert len(stale) == 1 and stale.iloc[0]["variable"] == "expected[1]"
    # the file is named from the study folder, never by an absolute path (same report on every checkout)
    assert "/".join(settings.parts[-3:]) + " expected[1]" in stale.iloc[0]["message"]
    assert str(settings) not in stale.iloc[0]["message"]
    assert s["expected"] == 1 and s["unexplained_warnings"] == 1 and s["warnings"] == 1
    assert s["unused_expected"] == ["expected[1] DQ.PC.LLOQ subjects=NOBODY"]
    js = json.loads((out / "reports" / "validation.json").read_text())
    assert any(f["rule"] == STALE_RULE for f in js["findings"])


def test_bundled_explanations_are_scoped():
    """Every expected entry of the bundled study and the examples names what it covers (no entry
    explains a whole rule without saying so)."""
    from cdisc_pipe.paths import default_specs, project_root

    paths = [default_specs() / "settings" / "validation.yaml",
             *sorted((project_root() / "examples").glob("*/specs/settings/validation.yaml"))]
    for path in paths:
        if not path.is_file():
            continue
        settings, _ = load_settings(path)
        for e in settings.expected:
            assert e.scope is None and (e.subjects or e.records or e.values), (path, e.rule)
