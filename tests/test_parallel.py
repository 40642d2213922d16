"""The second-process helper (cdisc_pipe.parallel) and the rule engine's use of it: same results
whether a second process is used or not, errors raised in the caller, a dead child recomputed."""

from __future__ import annotations

import os

import pytest

from cdisc_pipe.parallel import Forked, fork_context


def _square_sum(values: list[int]) -> int:
    return sum(v * v for v in values)


def _boom(_: int) -> int:
    raise ValueError("bad input 7")


def _pid() -> int:
    return os.getpid()


def _die() -> int:
    if os.getpid() != PARENT:
        os._exit(9)  # the child dies without an answer
    return 42


PARENT = os.getpid()


def test_result_is_the_function_value_with_or_without_a_second_process():
    assert Forked(_square_sum, [1, 2, 3]).result() == 14  # 1 + 4 + 9
    assert Forked(_square_sum, [1, 2, 3], enabled=False).result() == 14


@pytest.mark.skipif(fork_context() is None, reason="no fork here")
def test_work_runs_in_another_process_when_fork_is_available():
    job = Forked(_pid)
    other = job.result()
    if os.cpu_count() and os.cpu_count() >= 2 and job.used:
        assert other != os.getpid()


def test_an_error_in_the_child_is_raised_in_the_caller():
    with pytest.raises(ValueError, match="bad input 7"):
        Forked(_boom, 1).result()


def test_a_child_that_dies_is_recomputed_here():
    job = Forked(_die)
    assert job.result() == 42 and not job.used


def test_rules_give_the_same_results_in_one_or_two_processes():
    """The bundled rules on a small study: statuses, reasons, findings identical (rule order kept)."""
    import numpy as np
    import pandas as pd

    from cdisc_pipe.validate import ValidationSettings, load_rules
    from cdisc_pipe.validate.data import StudyData
    from cdisc_pipe.validate.engine import _split, run_rules

    data = StudyData()
    data.datasets["DM"] = pd.DataFrame({"STUDYID": ["S"] * 3, "DOMAIN": ["DM"] * 3, "USUBJID": ["S-1", "S-2", "S-2"],
                                        "AGE": [30.0, np.nan, 200.0], "SEX": ["M", "X", None],
                                        "RFSTDTC": ["2024-01-01", "2024-13-01", None]}).astype(
        {"STUDYID": "str", "DOMAIN": "str", "USUBJID": "str", "SEX": "str", "RFSTDTC": "str"})
    data.purpose["DM"] = "Tabulation"
    rules = load_rules()
    one = run_rules(rules, data, None, ValidationSettings(), {}, "no CT", processes=1)
    two = run_rules(rules, data, None, ValidationSettings(), {}, "no CT", processes=2)
    assert [(r.rule.id, r.status, r.reason, r.findings) for r in one[0]] == \
        [(r.rule.id, r.status, r.reason, r.findings) for r in two[0]]
    assert len(one[1]) > 0
    pd.testing.assert_frame_equal(one[1], two[1])
    # the split: every rule once; the longest first, each to the less loaded side
    mine, theirs = _split(rules[:4], {rules[0].id: 5.0, rules[1].id: 3.0, rules[2].id: 2.0, rules[3].id: 1.0})
    assert sorted(mine + theirs) == [0, 1, 2, 3]
    assert (mine, theirs) == ([0, 3], [1, 2])  # 5 | 3 -> 5 | 3+2 -> 5+1 | 5
