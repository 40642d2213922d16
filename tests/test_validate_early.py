"""Validation ahead of the rest (``validate.engine.run_early``): the checks that need only the SDTM
datasets run while ADaM is derived, and the validation with every dataset takes them as they are.

What must hold: the rule results and findings are those of one validation of everything, and a
check that looks at anything the early data lacks (another dataset, all of them) is left out.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from cdisc_pipe.validate import ValidationSettings
from cdisc_pipe.validate import functions as vfun
from cdisc_pipe.validate.context import RuleSkipped
from cdisc_pipe.validate.data import StudyData
from cdisc_pipe.validate.engine import run_early, run_rules
from cdisc_pipe.validate.model import Rule

from tests.test_validate_rules import clean_study, ct, rules  # noqa: F401  (fixtures)


def _rule(**kw) -> Rule:
    base = dict(id="T.TEST", standard="Test", severity="Error", category="Structure", message="test rule",
                check={"operator": "not_null", "variables": ["AETERM"]}, scope={"datasets": ["AE"]})
    base.update(kw)
    return Rule.model_validate(base)


def _tabulation_only(data: StudyData) -> StudyData:
    """What a run holds of the study while ADaM is still being derived."""
    keep = [n for n, p in data.purpose.items() if p == "Tabulation"]
    return StudyData(datasets={n: data.datasets[n] for n in keep}, meta={n: data.meta[n] for n in keep},
                     purpose={n: "Tabulation" for n in keep}, defines={"Tabulation": data.defines["Tabulation"]},
                     folders={"Tabulation": data.folders["Tabulation"]})


def _same(a, b) -> None:
    (ra, fa), (rb, fb) = a, b
    assert [(r.rule.id, r.status, r.reason, r.findings, r.datasets) for r in ra] == \
        [(r.rule.id, r.status, r.reason, r.findings, r.datasets) for r in rb]
    pd.testing.assert_frame_equal(fa, fb, check_exact=True)


def _dirty_study():
    """The clean literal study with findings for SDTM-only and cross-dataset checks."""
    data, spec = clean_study()
    ae = data.datasets["AE"].copy()
    ae.loc[0, "AETERM"] = None  # a required value missing (SDTM-only check)
    ae.loc[1, "USUBJID"] = "NOT-IN-DM"  # a subject DM does not have (cross-dataset, SDTM)
    data.datasets["AE"] = ae
    return data, spec


def test_early_units_give_the_findings_of_one_validation(rules, ct):  # noqa: F811
    rules = list(rules.values())
    data, spec = _dirty_study()
    settings = ValidationSettings()
    one = run_rules(rules, data, spec, settings, ct, None, processes=1)
    early = run_early(rules, _tabulation_only(data), spec, settings, ct, None)
    assert sum(map(len, early.values())) > 50  # most SDTM checks ran ahead
    assert not any(n.startswith("AD") for units in early.values() for n in units)
    _same(run_rules(rules, data, spec, settings, ct, None, processes=1, early=early), one)
    _same(run_rules(rules, data, spec, settings, ct, None, processes=2, early=early), one)
    assert len(one[1]) >= 2  # the planted findings are there (and equal)


def test_a_check_that_looks_beyond_the_early_data_is_left_for_later():
    data, spec = clean_study()
    seen: list[str] = []

    @vfun.rule_function("_test_other_adsl")
    def other_adsl(ctx, params):
        seen.append(ctx.dataset)
        adsl = ctx.other("ADSL")  # an ADaM dataset: not there early
        return ctx.hits(~ctx.df["USUBJID"].isin(adsl["USUBJID"]).to_numpy(), "USUBJID", ctx.df["USUBJID"])

    @vfun.rule_function("_test_all_names")
    def all_names(ctx, params):
        n = len(ctx.data.datasets)  # all datasets: not known early
        return ctx.hits(np.zeros(len(ctx.df), dtype=bool) | (n < 0), "AETERM")

    @vfun.rule_function("_test_has_adsl")
    def has_adsl(ctx, params):
        if "ADSL" not in ctx.data.datasets:  # a question about a dataset the early data lacks
            raise RuleSkipped("no ADSL")
        return ctx.hits(np.zeros(len(ctx.df), dtype=bool), "AETERM")

    @vfun.rule_function("_test_boom_on_ae")
    def boom(ctx, params):
        raise RuntimeError("kaput")

    try:
        rules = [
            _rule(id="T.OTHER", check={"operator": "python", "function": "_test_other_adsl"}),
            _rule(id="T.ALL", check={"operator": "python", "function": "_test_all_names"}),
            _rule(id="T.HAS", check={"operator": "python", "function": "_test_has_adsl"}),
            _rule(id="T.BOOM", check={"operator": "python", "function": "_test_boom_on_ae"},
                  scope={"datasets": ["AE", "ADAE"]}),
            _rule(id="T.OK"),
        ]
        settings = ValidationSettings()
        early = run_early(rules, _tabulation_only(data), spec, settings, {}, None)
        assert sorted(early) == ["T.BOOM", "T.OK"]  # the three that looked further were left out
        assert early["T.BOOM"]["AE"].error == "RuntimeError: kaput"
        one = run_rules(rules, data, spec, settings, {}, None, processes=1)
        merged = run_rules(rules, copy.copy(data), spec, settings, {}, None, processes=1, early=early)
    finally:
        for name in ("_test_other_adsl", "_test_all_names", "_test_has_adsl", "_test_boom_on_ae"):
            del vfun.FUNCTIONS[name]
    _same(merged, one)
    by = {r.rule.id: r for r in merged[0]}
    assert by["T.BOOM"].status == "EXECUTION ERROR" and by["T.BOOM"].reason == "RuntimeError: kaput"
    assert by["T.OTHER"].status in ("SUCCESS", "ISSUE") and seen.count("AE") == 3  # early try, then twice in full


def test_a_second_pass_with_adam_data_but_no_adam_metadata_skips_and_stops(rules, ct):  # noqa: F811
    """``cdisc-pipe run`` validates again while the ADaM files are written: the ADaM frames are there,
    their file metadata and define.xml not yet.  Units run already are skipped, the pass stops
    when asked, and the merged units still give the findings of one validation."""
    rules = list(rules.values())
    data, spec = _dirty_study()
    settings = ValidationSettings()
    one = run_rules(rules, data, spec, settings, ct, None, processes=1)
    first = run_early(rules, _tabulation_only(data), spec, settings, ct, None)
    partial = _tabulation_only(data)
    for name, p in data.purpose.items():
        if p == "Analysis":  # the data alone: no meta, no Analysis define.xml
            partial.datasets[name], partial.purpose[name] = data.datasets[name], p
    asked: list[int] = []
    second = run_early(rules, partial, spec, settings, ct, None, skip=first,
                       stop=lambda: asked.append(1) or len(asked) > 50)
    assert not any(n in first.get(r, {}) for r, units in second.items() for n in units)  # nothing twice
    assert any(n.startswith("AD") for units in second.values() for n in units)  # ADaM checks ran
    assert len(asked) == 51  # it stopped when told (135 units were left to run)
    merged = {r: {**first.get(r, {}), **second.get(r, {})} for r in {*first, *second}}
    _same(run_rules(rules, data, spec, settings, ct, None, processes=1, early=merged), one)
