"""NCA settings file: defaults, the bundled nca.yaml, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.nca import NcaSettings, load_nca_settings
from cdisc_pipe.paths import default_specs

BUNDLED = default_specs() / "settings" / "nca.yaml"


def test_bundled_settings_load_and_match_documented_defaults():
    s = load_nca_settings(BUNDLED)
    # The bundled study names its analyte, specimens, units, wording and new-therapy cut-off
    # events; everything else is the (neutral, PKNCA) default.
    # interval and min_data spell the default values (AUC0-28 days, window 3 days) explicitly.
    study = {"analytes", "reference_event", "route", "specimens", "units", "cutoff_events", "interval", "min_data"}
    assert s.model_copy(update={k: getattr(NcaSettings(), k) for k in study}) == NcaSettings()
    d = NcaSettings()
    assert [iv.bounds(s.days_to_unit) for iv in s.intervals] == [iv.bounds(d.days_to_unit) for iv in d.intervals]
    assert s.intervals[0].labels("day", s.days_to_unit) == d.intervals[0].labels("day", d.days_to_unit) == ("P0D", "P28D")
    assert s.min_data.window(s.days_to_unit) == d.min_data.window(d.days_to_unit) == 3.0
    assert s.route == "intravascular_infusion" and s.units.extensions == ["day*copies/ug"]
    assert s.analytes == ["BCMACAR"] and s.reference_event == "CAR-T infusion"
    assert (s.units.conc, s.units.auc) == ("copies/ug", "day*copies/ug")
    assert all("anti-cancer" in e.reason for e in s.cutoff_events)
    neutral = NcaSettings()
    assert neutral.analytes == [] and neutral.specimens == {} and neutral.units.conc is None
    assert [(e.dataset, e.variable) for e in s.cutoff_events] == [("CM", "CMCAT"), ("PR", "PRCAT")]
    assert s.auc_method == "lin up/log down"
    assert (s.blq.leading, s.blq.middle, s.blq.trailing) == ("zero", "drop", "zero")
    assert s.specimens["BONE MARROW"] == ["CMAX", "TMAX"]


def test_partial_file_takes_defaults(tmp_path: Path):
    f = tmp_path / "nca.yaml"
    f.write_text("auc_method: linear\nblq: {middle: zero}\n", encoding="utf-8")
    s = load_nca_settings(f)
    assert s.auc_method == "linear" and s.blq.middle == "zero" and s.blq.leading == "zero"
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert load_nca_settings(empty) == NcaSettings()


def test_every_problem_reported_with_file_and_entry(tmp_path: Path):
    f = tmp_path / "nca.yaml"
    f.write_text(
        "auc_method: log-log\n"
        "blq: {middle: keep, leadin: zero}\n"
        "min_data: {auc_quantifiable_points: 0}\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as err:
        load_nca_settings(f)
    probs = err.value.problems
    entries = {p.entry for p in probs}
    assert {"auc_method", "blq.middle", "blq.leadin", "min_data.auc_quantifiable_points"} <= entries
    assert all(p.file == str(f) for p in probs)
    assert any(p.message == "unknown key (misspelt?)" and p.entry == "blq.leadin" for p in probs)
    assert any(p.value == "log-log" for p in probs)


def test_cross_field_rules(tmp_path: Path):
    f = tmp_path / "nca.yaml"
    f.write_text("specimens: {BLOOD: [CMAX, AUCINF]}\n", encoding="utf-8")
    with pytest.raises(InputError, match="AUCINF"):
        load_nca_settings(f)
    f.write_text("interval: {start_days: 28, end_days: 7}\n", encoding="utf-8")
    with pytest.raises(InputError, match="end_days must be after start_days"):
        load_nca_settings(f)
    f.write_text("interval: {start: 24, end: 12}\n", encoding="utf-8")
    with pytest.raises(InputError, match="end must be after start"):
        load_nca_settings(f)
    f.write_text("analytes: [A, B]\n", encoding="utf-8")
    with pytest.raises(InputError, match="testcd_spec"):
        load_nca_settings(f)


def test_yaml_syntax_and_missing_file(tmp_path: Path):
    f = tmp_path / "nca.yaml"
    f.write_text("blq: [unclosed\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_nca_settings(f)
    assert "invalid YAML" in str(err.value)
    with pytest.raises(InputError, match="not found"):
        load_nca_settings(tmp_path / "absent.yaml")
    f.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(InputError, match="mapping"):
        load_nca_settings(f)
