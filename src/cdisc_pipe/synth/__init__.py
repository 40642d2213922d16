"""Synthetic raw EDC export of the bundled anti-BCMA CAR-T study, at any size.

``generate(subjects, seed, out_dir, fmt)`` writes one CSV per eCRF form plus ``data_dictionary.csv``
(or one xlsx workbook).  Same ``subjects`` and ``seed`` -> byte-identical files.  Subjects are
simulated together (the 3+3 escalation and outcome quotas are study-level), then their records are
built and appended to the files in chunks of :data:`CHUNK` subjects, so memory stays bounded.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import numpy as np

from cdisc_pipe.synth import design, forms
from cdisc_pipe.synth.export import csv_to_xlsx, finish_form, write_csv, write_dictionary_csv
from cdisc_pipe.synth.simulate import simulate_subjects

__all__ = ["generate", "CHUNK", "BUNDLED_SUBJECTS", "BUNDLED_SEED", "XLSX_NAME", "ODM_NAME", "FORMATS"]

#: Subjects per chunk: part of the generator's definition (changing it changes the output).
CHUNK = 500
BUNDLED_SUBJECTS = 18
BUNDLED_SEED = 20240301
XLSX_NAME = "export.xlsx"
ODM_NAME = "export.xml"
#: what ``generate(fmt=...)`` writes: CSV files, one xlsx, one ODM-XML 1.3.2 file, SAS XPORT datasets
FORMATS = ("csv", "xlsx", "odm", "sas")

_SIMPLE = {
    "enrol": forms.form_enrol, "dm": forms.form_dm, "mmhist": forms.form_mmhist, "priortx": forms.form_priortx,
    "mh": forms.form_mh, "visit": forms.form_visit, "ecog": forms.form_ecog, "vs": forms.form_vs, "pe": forms.form_pe,
    "aph": forms.form_aph, "bridge": forms.form_bridge, "ld": forms.form_ld, "cart": forms.form_cart,
    "cbc": forms.form_cbc, "chem": forms.form_chem, "lbcent": forms.form_lbcent, "bm": forms.form_bm,
    "mrd": forms.form_mrd, "pc": forms.form_pc, "rs": forms.form_rs, "prog": forms.form_prog,
    "subtx": forms.form_subtx, "death": forms.form_death, "eos": forms.form_eos, "surv": forms.form_surv,
}
_AE_BASED = {"ae": forms.form_ae, "crs": forms.form_crs, "icans": forms.form_icans, "cm": forms.form_cm}


def _rng(seed: int, *path: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *path]))


def _write_csv_export(subjects: int, seed: int, out_dir: Path) -> list[Path]:
    s_all = simulate_subjects(subjects, _rng(seed, 1))
    written: list[Path] = []
    for chunk_no, start in enumerate(range(0, subjects, CHUNK)):
        s = s_all.iloc[start:start + CHUNK].reset_index(drop=True)
        sched = forms.build_schedule(s, _rng(seed, 2, chunk_no))
        ae = forms.build_ae_table(forms.Context(s, sched, _rng(seed, 3, chunk_no)))
        for form_no, form in enumerate(design.FORMS):
            ctx = forms.Context(s, sched, _rng(seed, 4, chunk_no, form_no))
            if form.name in _AE_BASED:
                df = _AE_BASED[form.name](ctx, ae)
            else:
                df = _SIMPLE[form.name](ctx)
            df = finish_form(df, form, s, _rng(seed, 5, chunk_no, form_no))
            path = out_dir / f"{form.name}.csv"
            write_csv(df, path, append=chunk_no > 0)
            if chunk_no == 0:
                written.append(path)
    write_dictionary_csv(out_dir)
    written.append(out_dir / "data_dictionary.csv")
    return written


def generate(subjects: int, seed: int, out_dir: Path, fmt: Literal["csv", "xlsx", "odm", "sas"] = "csv") -> list[Path]:
    """Write a synthetic raw EDC export of ``subjects`` subjects into ``out_dir``.

    Args:
        subjects: number of subjects (>= 1).  18 with :data:`BUNDLED_SEED` is the bundled study.
        seed: random seed; the same (subjects, seed) gives byte-identical files (CSV and xlsx).
        out_dir: folder to write into (created if needed).  Existing form files are overwritten.
        fmt: ``"csv"`` (one CSV per form + ``data_dictionary.csv``) or ``"xlsx"`` (one workbook
            ``export.xlsx``: one sheet per form + a ``data_dictionary`` sheet; limited to sheets of
            at most 1,048,575 rows, i.e. roughly 1,500 subjects); ``"odm"`` (one CDISC ODM-XML 1.3.2
            file ``export.xml``); ``"sas"`` (one SAS XPORT v8 dataset ``<form>.xpt`` per form +
            ``data_dictionary.csv``).  Every format carries the same data (built from the CSV files).

    Returns:
        The files written.
    """
    if not isinstance(subjects, (int, np.integer)) or subjects < 1:
        raise ValueError(f"subjects must be a positive integer, got {subjects!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        return _write_csv_export(int(subjects), int(seed), out_dir)
    with tempfile.TemporaryDirectory(prefix="cdisc-pipe-synth-") as tmp:
        _write_csv_export(int(subjects), int(seed), Path(tmp))
        if fmt == "sas":
            from cdisc_pipe.synth.odm import csv_to_sas

            return csv_to_sas(Path(tmp), out_dir)
        if fmt == "odm":
            from cdisc_pipe.synth.odm import csv_to_odm

            target = out_dir / ODM_NAME
            csv_to_odm(Path(tmp), target)
            return [target]
        target = out_dir / XLSX_NAME
        csv_to_xlsx(Path(tmp), target)
    return [target]
