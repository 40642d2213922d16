"""Validation from memory (``cdisc-pipe run``) gives what validation from the files gives (#18 item 1).

The run validates the datasets it wrote as it holds them (``validate.data.held_dataset``: the
conformed frames through the writer's own conversions, no file read).  Proved here on the bundled
study: every held dataset (frame, dtypes, missing values, bit-exact numerics, file metadata)
equals its read-back, and the findings table (every column) and the summary equal those of a
validation that reads the files.  ``python -m benchmarks.validate_memory --subjects 1000`` makes the
same comparison at 1,000 subjects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.validate.data import _normalise, held_dataset, read_xpt_with_meta
from cdisc_pipe.written import WrittenColumn, WrittenDataset


def test_bundled_study_findings_from_memory_equal_findings_from_files(tmp_path):
    from benchmarks.validate_memory import compare

    res = compare(None, tmp_path / "outputs")
    assert res["held"] == res["datasets"] >= 30, res  # every written dataset was validated from memory
    assert res["early_units"] > 500, res  # most SDTM checks ran ahead (validate_early), same findings
    assert res["differences"] == [], res["differences"]
    assert res["findings"] > 0


@pytest.mark.parametrize("background", [False, True])
def test_stage_files_held_give_what_the_files_give(bundled_run, tmp_path, background):
    """Frames written through ``pipeline.start_files`` (here, or in a second process while this one
    goes on) are, as held, equal to their files read back: frame (exact), dtypes, metadata; the
    files are the bytes write_datasets writes, and the child's log lines join this log."""
    from cdisc_pipe import paths as P
    from cdisc_pipe.pipeline import start_files
    from cdisc_pipe.runlog import RunLog
    from cdisc_pipe.spec import load_specs
    from cdisc_pipe.xpt import read_folder, write_datasets

    spec = load_specs(P.default_specs())
    frames = read_folder(bundled_run / "sdtm")
    frames = {k: frames[k] for k in ("DM", "LB", "PC", "TS", "SUPPDM", "EX") if k in frames}
    a, b = tmp_path / "a", tmp_path / "b"
    ref = write_datasets(frames, spec, a, purpose="Tabulation")
    log = RunLog("test", quiet=True)
    out = start_files(frames, spec, b, "Tabulation", "SDTM", log, [], {}, final=b, background=background,
                      define=None)
    assert out.written is None and out.held_frames is not None  # nothing known of the files until waited for
    # in a second process where forking is possible and safe here (not with threads on Python >= 3.12)
    out_used = getattr(getattr(out.files, "task", None), "process", None) is not None
    out.wait()
    assert out.written == ref and out.held_frames is None
    done = [line for line in log.lines if "writing 6 SDTM datasets" in line and "done in" in line]
    assert len(done) == 1 and ("[second process]" in done[0]) == out_used, log.lines
    for p in a.glob("*.*"):
        assert (b / p.name).read_bytes() == p.read_bytes(), p.name
    assert sorted(out.held) == sorted(frames)
    for name, (df, meta) in out.held.items():
        back, back_meta = read_xpt_with_meta(b / f"{name.lower()}.xpt")
        pd.testing.assert_frame_equal(df, back, check_exact=True)
        assert meta == back_meta, name
    none = start_files(frames, spec, tmp_path / "c", "Tabulation", "SDTM", log, [], {}, final=None,
                       background=background, define=None).wait()
    assert none.held is None and none.written == [w for w in ref]


def test_held_text_and_numbers_survive_the_round_trip_exactly(tmp_path):
    """Blanks, trailing blanks and NULs, missing values, a SAS date, and numbers IBM floats cannot
    hold exactly (the held values went through the same conversion as the file's)."""
    from cdisc_pipe.xpt.v5 import write_xpt_v5

    df = pd.DataFrame({
        "T": np.array(["a", "", None, "  lead", "x\0y", "tail  ", "b\0"], dtype=object),
        "N": [0.1, 1 / 3, np.nan, -2.5e-300, 1e300, 123456789.123456789, 2.0 ** -60],
        "D": [0.0, 1.0, np.nan, 21915.0, -1.0, 0.5, 3.0],
    })
    path = tmp_path / "x.xpt"
    variables = write_xpt_v5(path, df, table_name="X", file_label="X data", timestamp="01JAN24:00:00:00",
                             column_labels={"T": "Text", "N": "Number", "D": "Date"},
                             variable_format={"D": "DATE9."}, types={"T": "text", "N": "numeric", "D": "numeric"})
    written = WrittenDataset(
        name="X", label="X data", purpose="Tabulation", records=len(df), xpt_path="sdtm/x.xpt",
        columns=tuple(WrittenColumn(name=v.name, label=v.label, type=v.type, length=v.length,
                                    display_format=v.format, order=i) for i, v in enumerate(variables, 1)))
    held, meta = held_dataset(df, written, tmp_path)
    back, back_meta = read_xpt_with_meta(path)
    pd.testing.assert_frame_equal(held, back, check_exact=True)
    assert meta == back_meta
    # "x\0y" ends at the NUL, "tail  " loses its trailing blanks, leading blanks stay, "" is missing
    assert held["T"].iloc[0] == "a" and pd.isna(held["T"].iloc[1]) and pd.isna(held["T"].iloc[2])
    assert held["T"].iloc[3:].tolist() == ["  lead", "x", "tail", "b"]
    # IBM doubles hold 56-bit fractions but a smaller exponent range: 1e300 does not survive the file
    # and -2.5e-300 underflows to 0; 0.1 survives (its IBM fraction has room for IEEE's 53 bits)
    assert held["N"].iloc[4] != 1e300 and held["N"].iloc[3] == 0 and held["N"].iloc[0] == 0.1
    assert held["D"].iloc[3] == pd.Timestamp("2020-01-01")  # 21915 days after 1960-01-01


def test_normalise_keeps_text_columns_already_in_the_str_dtype():
    s = pd.Series(["a", None, "b"], dtype="str")
    out = _normalise(pd.DataFrame({"A": s}), {}, trimmed=True)
    pd.testing.assert_series_equal(out["A"], s, check_names=False)


def test_held_adam_as_read_is_what_the_adam_reader_gives(bundled_run):
    """The results report of a run is computed from the ADaM datasets as held
    (``adam.io.as_read`` of validation's read-back form): the frames equal what ``read_sdtm`` gives
    from the files, which the report computed from before (so the same report)."""
    from cdisc_pipe.adam import read_sdtm
    from cdisc_pipe.adam.io import as_read

    folder = bundled_run / "adam"
    frames = read_sdtm(folder)
    assert len(frames) >= 8
    for name, df in frames.items():
        held, _ = read_xpt_with_meta(folder / f"{name.lower()}.xpt")
        pd.testing.assert_frame_equal(as_read(held), df, check_exact=True)
