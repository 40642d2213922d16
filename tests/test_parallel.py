"""The second-process helper (cdisc_pipe.parallel) and the rule engine's use of it: same results
whether a second process is used or not, errors raised in the caller, a dead child recomputed."""

from __future__ import annotations

import os
from types import MappingProxyType

import pandas as pd

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
    from cdisc_pipe.validate.engine import _Queue, run_rules

    data = StudyData()
    data.datasets["DM"] = pd.DataFrame({"STUDYID": ["S"] * 3, "DOMAIN": ["DM"] * 3, "USUBJID": ["S-1", "S-2", "S-2"],
                                        "AGE": [30.0, np.nan, 200.0], "SEX": ["M", "X", None],
                                        "RFSTDTC": ["2024-01-01", "2024-13-01", None]}).astype(
        {"STUDYID": "str", "DOMAIN": "str", "USUBJID": "str", "SEX": "str", "RFSTDTC": "str"})
    data.purpose["DM"] = "Tabulation"
    rules = load_rules()
    one = run_rules(rules, data, None, ValidationSettings(), {}, "no CT", processes=1)
    two = run_rules(rules, data, None, ValidationSettings(), {}, "no CT", processes=2)
    asked: list[int] = []
    late = run_rules(rules, data, None, ValidationSettings(), {}, "no CT",  # the second one joins late
                     second=lambda: asked.append(1) or len(asked) > 20)
    for other in (two, late):
        assert [(r.rule.id, r.status, r.reason, r.findings) for r in one[0]] == \
            [(r.rule.id, r.status, r.reason, r.findings) for r in other[0]]
        pd.testing.assert_frame_equal(one[1], other[1])
    assert len(one[1]) > 0 and len(asked) == 21  # asked between rules until it said yes
    # the queue: every rule once, the longest first (unknown ones count as the median)
    q = _Queue(rules[:4], {rules[0].id: 1.0, rules[1].id: 3.0, rules[3].id: 5.0}, {}, shared=True)
    taken = [q.take() for _ in range(5)]
    assert taken == [3, 1, 2, 0, None]  # 5, 3, median 3 (position order on ties), 1


def test_datasets_written_by_two_processes_are_the_bytes_one_process_writes(bundled_run, tmp_path, monkeypatch):
    from cdisc_pipe import paths as P
    from cdisc_pipe.spec import load_specs
    from cdisc_pipe.xpt import datasets as D
    from cdisc_pipe.xpt import read_folder, write_datasets

    spec = load_specs(P.default_specs())
    frames = read_folder(bundled_run / "sdtm")
    one = write_datasets(frames, spec, tmp_path / "one", purpose="Tabulation")
    assert D.share([(n, len(f)) for n, f in frames.items()])[1] == []  # small: all in one process
    # force a split: every other dataset to the second process
    monkeypatch.setattr(D, "share", lambda sizes, minimum=0: ([n for i, (n, _) in enumerate(sizes) if i % 2 == 0],
                                                                [n for i, (n, _) in enumerate(sizes) if i % 2]))
    prepared = D.prepare_write(frames, spec, tmp_path / "two", purpose="Tabulation")
    two = prepared.write()
    assert two == one
    assert sorted(prepared.frames()) == sorted(w.name for w in one if not w.has_no_data)
    files = sorted(p.name for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(p.name for p in (tmp_path / "two").rglob("*") if p.is_file())
    for p in (tmp_path / "one").rglob("*"):
        if p.is_file():
            assert (tmp_path / "two" / p.relative_to(tmp_path / "one")).read_bytes() == p.read_bytes(), p.name


def test_prepare_write_consuming_the_frames_gives_the_same_datasets(bundled_run, tmp_path):
    from cdisc_pipe import paths as P
    from cdisc_pipe.spec import load_specs
    from cdisc_pipe.xpt import datasets as D
    from cdisc_pipe.xpt import read_folder

    spec = load_specs(P.default_specs())
    frames = read_folder(bundled_run / "sdtm")
    names = list(frames)
    kept = D.prepare_write(frames, spec, tmp_path / "kept", purpose="Tabulation")
    taken = dict(frames)
    consumed = D.prepare_write(taken, spec, tmp_path / "taken", purpose="Tabulation", consume=True)
    assert taken == {}  # each frame was taken out as it was conformed
    assert list(frames) == names  # the caller's other dict is untouched
    assert list(consumed.frames()) == list(kept.frames())
    for name, df in kept.frames().items():
        pd.testing.assert_frame_equal(consumed.frames()[name], df)
    with pytest.raises(TypeError, match="dict"):
        D.prepare_write(MappingProxyType(dict(frames)), spec, tmp_path / "x", purpose="Tabulation", consume=True)


def test_return_free_memory_calls_malloc_trim_on_glibc_only(monkeypatch):
    from cdisc_pipe import parallel

    calls = []

    class FakeLibc:
        def malloc_trim(self, pad):
            calls.append(pad)
    monkeypatch.setattr(parallel, "_LIBC", FakeLibc())
    parallel.return_free_memory()  # a glibc before 2.33 (no mallinfo2): always trimmed
    assert calls == [0]  # pad 0: every free page at the top and inside the heap goes back

    class FakeInfo:
        fordblks = 100 * 2**20  # 100 MB free in the heap

    class FakeGlibc(FakeLibc):
        def mallinfo2(self):
            return FakeInfo()
    monkeypatch.setattr(parallel, "_LIBC", FakeGlibc())
    parallel.return_free_memory(at_least=256 * 2**20)  # less free than asked: kept for reuse
    assert calls == [0]
    parallel.return_free_memory()  # the default: 256 MB
    assert calls == [0]
    parallel.return_free_memory(at_least=64 * 2**20)
    assert calls == [0, 0]
    calls.pop()
    monkeypatch.setattr(parallel, "_LIBC", None)
    monkeypatch.setattr(parallel.sys, "platform", "darwin")
    parallel.return_free_memory()  # no C library looked up off Linux: nothing happens, no error
    assert parallel._LIBC is False and calls == [0]
    monkeypatch.setattr(parallel, "_LIBC", None)
    monkeypatch.setattr(parallel.sys, "platform", "linux")
    monkeypatch.setattr("ctypes.CDLL", lambda name: (_ for _ in ()).throw(OSError("no libc.so.6 (musl)")))
    parallel.return_free_memory()
    assert parallel._LIBC is False


def test_share_balances_records_largest_first():
    from cdisc_pipe.parallel import share as _share

    # largest first, each to the lighter side: LB 500k | PC 300k; VS -> 300k+150k = 450k; A -> 450k+100k
    assert _share([("A", 100_000), ("LB", 500_000), ("PC", 300_000), ("VS", 150_000)]) == (["LB"], ["PC", "VS", "A"])
    assert _share([("DM", 18), ("LB", 5_000)]) == (["DM", "LB"], [])


def test_map_shared_gives_every_result_in_order_from_either_process():
    from cdisc_pipe import parallel

    sizes = [("A", 100_000), ("LB", 500_000), ("PC", 300_000), ("VS", 150_000)]
    both = parallel.map_shared(lambda n: (n, os.getpid()), sizes)
    assert list(both) == ["A", "LB", "PC", "VS"] and [v[0] for v in both.values()] == list(both)
    if parallel.fork_context() is not None and parallel.cores() >= 2:  # LB here; PC, VS, A in the child
        assert both["LB"][1] == os.getpid() and {both[n][1] for n in ("PC", "VS", "A")} == {both["PC"][1]} != {os.getpid()}
    one = parallel.map_shared(lambda n: (n, os.getpid()), sizes, enabled=False)
    assert {v[1] for v in one.values()} == {os.getpid()}
    small = parallel.map_shared(lambda n: (n, os.getpid()), [("DM", 18), ("LB", 5_000)])
    assert {v[1] for v in small.values()} == {os.getpid()}  # too small to be worth a process

    def fails(name: str) -> str:
        if name == "PC":
            raise ValueError("bad PC")
        return name
    with pytest.raises(ValueError, match="bad PC"):  # raised here, as in one process
        parallel.map_shared(fails, sizes)


def test_map_shared_tells_each_process_the_names_it_computes():
    from cdisc_pipe import parallel

    sizes = [("A", 100_000), ("LB", 500_000), ("PC", 300_000), ("VS", 150_000)]
    told: list[list[str]] = []  # this process's calls (the child's are seen through its results)
    seen: dict[str, list[str]] = {}

    def before(names: list[str]) -> None:
        told.append(list(names))
        seen["names"] = list(names)
    out = parallel.map_shared(lambda n: (n, os.getpid(), seen["names"]), sizes, before=before)
    if parallel.fork_context() is not None and parallel.cores() >= 2:
        assert told == [["LB"]]  # here: LB only; the child was told its own names
        assert out["LB"][2] == ["LB"] and out["PC"][2] == ["PC", "VS", "A"] and out["A"][1] != os.getpid()
    told.clear()
    parallel.map_shared(lambda n: n, sizes, enabled=False, before=before)
    assert told == [["A", "LB", "PC", "VS"]]  # one process: every name

    def fails(name: str) -> str:
        if name == "PC":
            raise ValueError("bad PC")
        return name
    with pytest.raises(ValueError, match="bad PC"):  # the child's error, raised here as there
        parallel.map_shared(fails, sizes, before=lambda names: None)


def test_the_environment_can_keep_a_run_in_one_process(monkeypatch):
    from cdisc_pipe import parallel

    monkeypatch.setenv(parallel.PROCESSES_ENV, "1")
    job = parallel.Forked(_pid)
    assert job.process is None and job.result() == os.getpid() and not job.used


def test_no_second_process_without_the_memory_for_one(monkeypatch):
    from cdisc_pipe import parallel

    monkeypatch.setattr(parallel, "memory_allows_a_copy", lambda: False)
    job = parallel.Forked(_pid)
    assert job.process is None and job.result() == os.getpid()
