"""Run-to-run comparison (validate/diff.py): the snapshot files and the record matching."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cdisc_pipe.validate.data import StudyData
from cdisc_pipe.validate.diff import compare_datasets, read_snapshot, snapshot_frame, write_snapshot


def _data(rows: dict) -> StudyData:
    data = StudyData()
    data.datasets["AE"] = pd.DataFrame(rows).astype({"USUBJID": "str", "AETERM": "str"})
    data.purpose["AE"] = "Tabulation"
    return data


def test_snapshot_round_trip_keeps_non_ascii_keys_and_every_hash(tmp_path):
    snap = pd.DataFrame({"key": ["S-1|1", "Ünïcode|2", "S-1|1#1"],
                         "hash": np.array([0, 2**64 - 1, 12345], dtype=np.uint64)})
    write_snapshot(tmp_path / "ae.npz", snap)
    keys, hashes = read_snapshot(tmp_path, "AE")
    assert [k.decode("utf-8") for k in keys.tolist()] == list(snap["key"])
    assert hashes.tolist() == [0, 2**64 - 1, 12345]
    assert read_snapshot(tmp_path, "DM") is None


def test_changes_against_a_snapshot_of_an_earlier_version_csv(tmp_path):
    """A previous run of an earlier version left ``<name>.csv`` (key, hash as text): still compared.
    Now: S-1|1 unchanged, S-1|2 changed, S-2|1 added; S-3|1 was removed."""
    before = _data({"USUBJID": ["S-1", "S-1", "S-3"], "AESEQ": [1.0, 2.0, 1.0], "AETERM": ["a", "b", "c"]})
    now = _data({"USUBJID": ["S-1", "S-1", "S-2"], "AESEQ": [1.0, 2.0, 1.0], "AETERM": ["a", "B", "d"]})
    prev = tmp_path / "_previous"
    (prev / "datasets").mkdir(parents=True)
    (prev / "findings.csv").write_text("rule\n")
    old = snapshot_frame("AE", before.datasets["AE"], before, None)
    old.assign(hash=old["hash"].astype(str)).to_csv(prev / "datasets" / "ae.csv", index=False)
    summary, records = compare_datasets(prev, now, None, tmp_path / "fresh")
    assert summary.to_dict("records") == [{"dataset": "AE", "records_previous": 3, "records_now": 3, "added": 1,
                                           "removed": 1, "changed": 1}]
    assert records.to_dict("records") == [{"dataset": "AE", "change": "added", "key": "S-2|1"},
                                          {"dataset": "AE", "change": "removed", "key": "S-3|1"},
                                          {"dataset": "AE", "change": "changed", "key": "S-1|2"}]
    assert (tmp_path / "fresh" / "ae.npz").is_file()
