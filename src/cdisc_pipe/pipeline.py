"""Stage orchestration: raw -> SDTM (+PP) -> ADaM -> define.xml -> validation, with atomic folders.

Every stage function takes its inputs as arguments and returns what it produced; the only I/O is
reading the inputs and writing the stage's folder.  A run builds all its dataset folders in a
staging root (``<out>/.staging-<pid>/``) and moves them into place only when every stage before
validation succeeded, so a failed run never leaves a mix of old and new datasets.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cdisc_pipe.errors import Finding, InputError, Problem, raise_if
from cdisc_pipe.parallel import return_free_memory
from cdisc_pipe.manifest import build_manifest, file_table, is_snapshot, sha256_file, write_manifest
from cdisc_pipe.runlog import RunLog
from cdisc_pipe.spec import StudySpec, load_specs
from cdisc_pipe.summary import log_validation, tree_digest

STAGE_DIR = "_stage"


@dataclass
class Paths:
    """Where a run reads and writes.  ``None`` for inputs a command does not use."""

    out: Path
    raw: Path | None = None
    specs: Path | None = None
    mappings: Path | None = None
    ct: Path | None = None
    sdtm_in: Path | None = None  # an existing SDTM folder (adam / validate)
    adam_in: Path | None = None
    encoding: str | None = None  # --encoding: forces the encoding of every XPT file read
    cutoff: str | None = None  # --cutoff YYYY-MM-DD: the data cut-off (cdisc_pipe.cutoff), wins over the settings


@dataclass
class StageOutput:
    frames: dict[str, pd.DataFrame]
    written: list[Any] | None  # list[WrittenDataset]; None until the stage's files are written (``files``)
    findings: list[Finding] = field(default_factory=list)
    cutoff: Any = None  # the data cut-off used (cdisc_pipe.cutoff.Cutoff), SDTM stage
    #: the written datasets as validation reads them back from the final folder (frame and file
    #: metadata, ``cdisc_pipe.validate.data.held_dataset``) by file stem in upper case; None: not kept
    held: dict[str, tuple[pd.DataFrame, Any]] | None = None
    #: the stage's files being written (``cdisc_pipe.xpt.datasets.PreparedWrite.write`` and what
    #: goes with it), maybe in a second process: :meth:`wait` joins them
    files: Background | None = None
    #: the frames the files get (``PreparedWrite.frames``) already as validation reads them back
    #: (``cdisc_pipe.validate.data.held_frame``), for ``held``; None: not kept
    held_frames: dict[str, pd.DataFrame] | None = None
    final: Path | None = None  # the folder the files end up in (the held datasets' paths)
    #: validation units run with the files (``cdisc_pipe.validate.validate_early``); None: none
    early: Any = None

    def wait(self) -> StageOutput:
        """Wait for the stage's files; fill ``written``, ``held`` (the converted frames with the file
        metadata the writer returned) and ``early``.  Returns self."""
        if self.files is None:
            return self
        (self.written, self.early), self.files = self.files.result(), None
        if self.held_frames is not None:
            from cdisc_pipe.validate.data import held_datasets

            self.held, self.held_frames = held_datasets(self.held_frames, self.written, self.final), None
        return self

    def cancel(self) -> None:
        """Stop the files being written in a second process (the run failed)."""
        if self.files is not None:
            self.files.cancel()
            self.files = None


def _with_log(fn: Any, log: RunLog, parent: int, *args: Any) -> tuple[Any, RunLog | None]:
    """``fn(log, *args)``; in a second process with a child log, sent back with the result (or with
    the exception, as its ``child_log``)."""
    if os.getpid() == parent:
        return fn(log, *args), None
    own = log.child()
    try:
        return fn(own, *args), own
    except BaseException as exc:
        exc.child_log = own  # type: ignore[attr-defined]
        raise


class Background:
    """``fn(log, *args)`` in a second process while the run goes on (``cdisc_pipe.parallel.Forked``:
    the same work in this process when there is no second one, or with ``enabled=False``).  Its log
    lines and progress join the run's log when :meth:`result` is asked, so the log never
    interleaves.  ``fn`` writes only files no other work writes.  ``release``: this process drops
    the arguments once the child has them (``Forked(release=True)``: the child's exception is
    raised here)."""

    def __init__(self, log: RunLog, fn: Any, *args: Any, enabled: bool = True, release: bool = False) -> None:
        from cdisc_pipe.parallel import Forked

        self.log = log
        self.task = Forked(_with_log, fn, log, os.getpid(), *args, enabled=enabled, release=release)

    def result(self) -> Any:
        try:
            value, own = self.task.result()
        except BaseException as exc:
            own = getattr(exc, "child_log", None)
            if own is not None:
                self.log.adopt(own)
            raise
        if own is not None:
            self.log.adopt(own)
        return value

    def ready(self) -> bool:
        """Whether :meth:`result` would not wait (the work is done, or is done here)."""
        return self.task.ready()

    def cancel(self) -> None:
        self.task.cancel()


def _write_acrf(log: RunLog, raw: Any, spec: StudySpec, mappings: Path | None, raw_format: str, folder: Path) -> None:
    """The annotated CRF of the raw export into ``folder`` (``cdisc_pipe.documents.write_acrf``)."""
    from cdisc_pipe.documents import write_acrf

    with log.step("rendering the annotated CRF"):
        acrf = write_acrf(raw, spec, mappings, folder, raw_format=raw_format)
    log.note(f"aCRF: {acrf.path.name}, {acrf.forms} forms, {acrf.pages} pages")
    for p in acrf.problems:
        log.warning(f"aCRF: {p}")


def _stage_files(log: RunLog, prepared: Any, label: str, findings: list[Finding], extras: dict[str, Any],
                 define: tuple[StudySpec, Path | None, Any] | None, early: tuple[Any, ...] | None,
                 acrf: tuple[Any, ...] | None = None) -> tuple[list[Any], Any]:
    """A stage's files: its datasets (XPT + Dataset-JSON), ``_stage/`` records (``extras``: file
    name -> frame or JSON-able dict) and, with ``define`` (spec, CT folder, cut-off), its define.xml.
    With ``early`` (held frames, final folder, validation settings file) then also the validation
    rules that need no other datasets (``cdisc_pipe.validate.validate_early``); ``acrf`` (raw
    export, spec, mappings folder, raw format): the annotated CRF first.  Returns the writers'
    records and the early units (or None)."""
    folder, purpose = prepared.job.out_dir, prepared.job.purpose
    if acrf is not None:
        _write_acrf(log, *acrf, folder)
    with log.step(f"writing {len(prepared.ready)} {label} datasets"):
        written = prepared.write()
    save_stage_findings(folder, findings)
    for name, extra in extras.items():
        if isinstance(extra, pd.DataFrame):
            extra.to_csv(folder / STAGE_DIR / name, index=False, lineterminator="\n")
        else:
            (folder / STAGE_DIR / name).write_text(json.dumps(extra, indent=1, sort_keys=True, default=str) + "\n")
    units = None
    if define is not None:
        spec, ct, cutoff = define
        stage_define(spec, folder, written, purpose, ct, log, cutoff=cutoff)
        if early is not None:
            from cdisc_pipe.validate import validate_early
            from cdisc_pipe.validate.data import held_datasets

            frames, final, settings = early
            with log.step(f"validating the {label} datasets ahead of the others"):
                units = validate_early(held_datasets(frames, written, final), purpose, final, folder, spec, ct,
                                       settings)
            log.note(f"validation ahead: {sum(map(len, (units or {}).values()))} rule-dataset checks on the {label} "
                     f"datasets ({len(units or {})} rules); the others run with every dataset")
    return written, units


def start_files(frames: dict[str, pd.DataFrame], spec: StudySpec, folder: Path, purpose: str, label: str,
                log: RunLog, findings: list[Finding], extras: dict[str, Any], final: Path | None,
                background: bool, define: tuple[StudySpec, Path | None, Any] | None,
                early: Path | None = None, acrf: tuple[Any, ...] | None = None,
                share_cores: bool = False, release_frames: bool = False) -> StageOutput:
    """Conform and check the frames here (every problem raised at once, before any file), then write
    the files, in a second process with ``background``; ``final``: convert the conformed frames
    into the datasets validation holds (``StageOutput.wait`` adds the file metadata); ``early``
    (the validation settings file; needs ``final`` and ``define``): also run the validation rules
    that need no other datasets with the files (``StageOutput.early``); ``acrf``: the annotated
    CRF with them (see :func:`_stage_files`); ``share_cores``: conform the frames in two processes
    (for a stage that nothing else runs beside yet); ``release_frames``: the caller needs the
    frames no more: ``frames`` is emptied once they are conformed, before the held frames are made
    and the second process starts (freed then, their memory is not shared with that process: no
    page is copied to free them)."""
    from cdisc_pipe.xpt.datasets import prepare_write

    with log.step(f"conforming {len(frames)} {label} datasets to their specs"):
        prepared = prepare_write(frames, spec, folder, purpose=purpose, share_cores=share_cores,
                                 consume=release_frames and not share_cores)
    if release_frames:
        frames.clear()
        return_free_memory()
    from cdisc_pipe.validate.data import held_frame

    held = None
    later: dict[str, pd.DataFrame] | None = None
    if final is not None and early is not None and define:  # the files' process checks them ahead
        held = {name: held_frame(df, spec.dataset(name)) for name, df in prepared.frames().items()}
    elif final is not None:
        later = dict(prepared.frames())
    files = Background(log, _stage_files, prepared, label, findings, extras, define,
                       (held, final, early) if early is not None and held is not None and define else None,
                       acrf, enabled=background, release=True)
    del prepared
    if later is not None:
        # converted once the files' process has its copy of the frames: each frame is let go here as
        # it is converted (the written and the held forms of every dataset are not all held at once)
        held = {}
        for name in list(later):
            held[name] = held_frame(later.pop(name), spec.dataset(name))
        return_free_memory()
    if not background:  # written now, in order
        files = _Done(files.result())
    return StageOutput(frames, None, findings, files=files, held_frames=held, final=final)


class _Done:
    """A :class:`Background` whose result is already there."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def ready(self) -> bool:
        return True

    def result(self) -> Any:
        return self.value

    def cancel(self) -> None:
        pass


class Staging:
    """A staging root beside the output folders; ``commit`` moves its sub-folders into place."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.root = self.out / f".staging-{os.getpid()}"
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)

    def folder(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def commit(self) -> None:
        """Replace each final folder by its staged version (old one removed only after the swap)."""
        for staged in sorted(self.root.iterdir()):
            final = self.out / staged.name
            old = self.out / f".old-{staged.name}-{os.getpid()}"
            if final.exists():
                final.rename(old)
            staged.rename(final)
            if old.exists():
                shutil.rmtree(old)
        shutil.rmtree(self.root, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def save_stage_findings(folder: Path, findings: list[Finding]) -> None:
    d = folder / STAGE_DIR
    d.mkdir(parents=True, exist_ok=True)
    rows = [f.to_dict() for f in findings]
    (d / "findings.json").write_text(json.dumps(rows, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")


def load_spec(paths: Paths, log: RunLog) -> StudySpec:
    from cdisc_pipe.adam.plan import attach_plan_methods, check_methods, load_plans

    with log.step(f"loading specs from {paths.specs}"):
        spec = load_specs(paths.specs)
        # Plans are checked against the spec before any data is read; their steps give define.xml
        # the method text of each variable they derive.
        plans = load_plans(Path(paths.specs) / "plans", spec)
        spec = attach_plan_methods(spec, plans)
        raise_if(check_methods(spec), stage="specs")
    log.note(f"study {spec.study.name}: {len(spec.datasets)} dataset specs, {len(spec.codelists)} codelists")
    for name, plan in sorted(plans.items()):
        log.note(f"ADaM {name}: derivation plan {plan.path} ({len(plan.steps)} steps, SHA-256 {plan.sha256})")
        for own in plan.study_verbs:
            used = [v for v in plan.study_verbs_used() if v in own.verbs]
            log.warning(f"ADaM {name}: study verb file {own.path} (SHA-256 {own.sha256}) - the study's own code, "
                        f"not the library's, derives with {', '.join(used) or 'no step'}")
    return spec


def stage_sdtm(paths: Paths, spec: StudySpec, staging: Staging, log: RunLog, keep: bool = False,
               background: bool = False, define: bool = False, early: bool = False) -> StageOutput:
    """Raw export -> SDTM frames (PP included) -> XPT + Dataset-JSON in ``<staging>/sdtm``.

    ``keep``: also give the written datasets as validation reads them back (``StageOutput.held``).
    ``background``: the files are written in a second process while the caller goes on with the
    frames; ``StageOutput.wait()`` joins them (and fills ``written`` and ``held``).
    ``define``: also write define.xml (CT from ``paths.ct``) with the files; ``early`` (with
    ``keep`` and ``define``): and run the validation rules that need no ADaM dataset with them."""
    from cdisc_pipe.raw import read_export
    from cdisc_pipe.raw.detect import detect_format
    from cdisc_pipe.sdtm import build_sdtm

    with log.step(f"reading raw export {paths.raw}"):
        raw = read_export(paths.raw)
    log.note(f"raw export: {len(raw.forms)} forms, {sum(len(f) for f in raw.forms.values())} records")
    from cdisc_pipe.cutoff import resolve

    cutoff = resolve(paths.cutoff, paths.specs, raw)
    log.note(f"data cut-off: {cutoff.date or 'none'} (from {cutoff.source})")
    folder = staging.folder("sdtm")
    # the annotated CRF needs the raw export only: drawn in a second process while SDTM is mapped
    # (its pages are in place before define.xml, which points to them, is written with the files)
    acrf = Background(log, _write_acrf, raw, spec, paths.mappings, detect_format(paths.raw)[0], folder,
                      enabled=background)
    try:
        with log.step("mapping to SDTM"):
            result = build_sdtm(raw, spec, paths.mappings,
                                nca_settings_path=Path(paths.specs) / "settings" / "nca.yaml", cutoff=cutoff.date)
        acrf.result()
    except BaseException:
        acrf.cancel()
        raise
    findings = list(getattr(raw, "findings", []) or []) + list(result.findings)
    del raw, acrf  # the raw forms are not needed once SDTM is built and the aCRF drawn
    extras: dict[str, Any] = {}
    trace = getattr(result, "traceability", None)
    if trace is not None:
        extras["traceability.csv"] = trace
    records = getattr(result, "records", None)
    if records is not None:  # record -> raw rows: validation findings on a record name its raw rows
        extras["records.csv"] = records
    for name in ("nca_method", "nca"):
        extra = getattr(result, name, None)
        if isinstance(extra, dict):
            extras["nca.json"] = extra
    out = start_files(result.datasets, spec, folder, "Tabulation", "SDTM", log, findings, extras,
                       paths.out / "sdtm" if keep else None, background,
                       (spec, paths.ct, cutoff) if define else None,
                       early=validation_settings(paths, spec) if early else None, share_cores=True)
    out.cutoff = cutoff
    _log_findings(log, "SDTM", findings)
    return out


def stage_adam(paths: Paths, spec: StudySpec, staging: Staging, log: RunLog,
               sdtm: dict[str, pd.DataFrame] | None = None, cutoff: Any = None, keep: bool = False,
               release_sdtm: bool = False, background: bool = False, define: bool = False) -> StageOutput:
    """SDTM (frames in memory, or read from ``paths.sdtm_in``) -> ADaM in ``<staging>/adam``.

    ``keep``, ``background``, ``define``: as for :func:`stage_sdtm`.
    ``release_sdtm``: the caller needs the ``sdtm`` frames no more: ADaM empties the dict and lets
    each frame go as soon as it can (``build_adam(consume=True)``), so that they are freed before
    the ADaM write (always so for frames read here).  The derived frames are freed once conformed
    (``StageOutput.frames`` is empty): what follows uses the conformed ones."""
    from cdisc_pipe.adam import build_adam, read_sdtm

    if sdtm is None:
        with log.step(f"reading SDTM from {paths.sdtm_in}"):
            sdtm = read_sdtm(paths.sdtm_in, encoding=paths.encoding, log=log)
        release_sdtm = True  # read for ADaM only
    settings_dir = Path(paths.specs) / "settings"
    from cdisc_pipe.cutoff import Cutoff, check_date, from_ts

    if paths.cutoff:
        cut = Cutoff(check_date(paths.cutoff, "command line", "--cutoff"), "--cutoff")
    elif cutoff:  # the SDTM stage's (a Cutoff, or its date)
        cut = cutoff if isinstance(cutoff, Cutoff) else Cutoff(str(cutoff), "the SDTM stage")
    else:
        ts = from_ts(sdtm.get("TS", sdtm.get("ts")))
        cut = Cutoff(ts, "the SDTM package's TS DCUTDTC") if ts else Cutoff(None, "none (no --cutoff, no TS DCUTDTC)")
    log.note(f"ADaM data cut-off: {cut.date or 'none'} (from {cut.source})")
    with log.step("deriving ADaM"):
        result = build_adam(sdtm, spec, settings_dir, cutoff=cut.date, consume=release_sdtm)
    return_free_memory()  # the derivations' freed working arrays, before the files' process starts
    out = start_files(result.datasets, spec, staging.folder("adam"), "Analysis", "ADaM", log, list(result.findings),
                       {}, paths.out / "adam" if keep else None, background,
                       (spec, paths.ct, cut) if define else None, release_frames=True)
    out.cutoff = cut
    _log_findings(log, "ADaM", result.findings)
    return out


def spec_with_cutoff(spec: StudySpec, purpose: str, cutoff: Any) -> StudySpec:
    """The spec with the data cut-off added to the comment of the purpose's study-level dataset
    (TS for Tabulation, ADSL for Analysis, when it has a comment): define.xml records it."""
    date = (cutoff or {}).get("date") if isinstance(cutoff, dict) else getattr(cutoff, "date", None)
    source = (cutoff or {}).get("source") if isinstance(cutoff, dict) else getattr(cutoff, "source", None)
    ds = spec.datasets.get("TS" if purpose == "Tabulation" else "ADSL")
    if not date or ds is None or not ds.comment or ds.comment not in spec.comments:
        return spec
    com = spec.comments[ds.comment]
    from cdisc_pipe.cutoff import SETTINGS_FILE

    src = str(source or "")
    src = ("given for the run" if src.startswith("--cutoff") else "the study's data cut-off setting"
           if SETTINGS_FILE in src else src)  # define.xml names no internal file
    text = f"{com.description.rstrip()} Data cut-off of this package: {date} ({src}); collected dates after it " \
           "are reported and take part in no derivation."
    comments = dict(spec.comments)
    comments[ds.comment] = com.model_copy(update={"description": text})
    return spec.model_copy(update={"comments": comments})


def stage_define(spec: StudySpec, folder: Path, written: list[Any] | None, purpose: str, ct: Path | None,
                 log: RunLog, cutoff: Any = None) -> None:
    """Write ``define.xml`` and ``define.html`` into a dataset folder; schema problems are errors.
    ``cutoff`` (the run's data cut-off) is recorded in the comment of TS / ADSL."""
    from cdisc_pipe.define import build_define, validate_define

    spec = spec_with_cutoff(spec, purpose, cutoff)

    if written is None:
        from cdisc_pipe.define import written_from_folder

        written = written_from_folder(folder, purpose)
    if not written:
        log.warning(f"no {purpose} datasets in {folder}: no define.xml written")
        return
    if purpose == "Tabulation":  # PDFPageRefs: the pages of the generated aCRF (documents/pages.py)
        from cdisc_pipe.documents import spec_with_acrf_pages

        spec = spec_with_acrf_pages(spec, folder)
    with log.step(f"rendering define.xml for {len(written)} {purpose} datasets"):
        result = build_define(spec, written, purpose, ct_dir=ct)
        schema = validate_define(result.xml)
    # Spec gaps (a missing method, origin or SignificantDigits) go to the log one by one and to the
    # terminal as one line: they are metadata to-dos, not failures.
    for p in result.problems:
        log.record("WARNING", f"define.xml ({purpose}): {p}")
    if result.problems:
        log.warning(f"define.xml ({purpose}): {len(result.problems)} metadata gap(s), listed in the log")
    for p in schema:
        log.record("ERROR", f"define.xml ({purpose}) schema: {p}")
    if schema:
        raise InputError(schema, stage=f"define ({purpose})")
    _atomic_write(folder / "define.xml", result.xml)
    _atomic_write(folder / "define.html", result.html)


def _validate_while_waiting(log: RunLog, paths: Paths, spec: StudySpec, staging: Staging,
                            sdtm: dict[str, tuple[pd.DataFrame, Any]], adam: StageOutput, early: Any) -> Any:
    """The validation units (``validate_early``) on the SDTM datasets held and the ADaM frames held
    so far (their files and define.xml still being written), except those run already (``early``),
    until the ADaM files are there; the units that need ADaM file metadata are left for later."""
    from cdisc_pipe.validate import validate_early

    with log.step("validating the ADaM datasets while their files are written"):
        more = validate_early(sdtm, "Tabulation", paths.out / "sdtm", staging.folder("sdtm"), spec, paths.ct,
                              validation_settings(paths, spec), others=("Analysis", adam.held_frames),
                              skip=early, stop=adam.files.ready if adam.files is not None else None) or {}
    log.note(f"validation while the ADaM files were written: {sum(map(len, more.values()))} rule-dataset checks")
    return more


def validation_settings(paths: Paths, spec: StudySpec | None) -> Path | None:
    """The study's validation settings file (``<specs>/settings/validation.yaml``); None without specs."""
    return Path(paths.specs) / "settings" / "validation.yaml" if paths.specs and spec is not None else None


def stage_validate(paths: Paths, spec: StudySpec | None, log: RunLog,
                   held: dict[str, dict[str, tuple[pd.DataFrame, Any]]] | None = None, early: Any = None,
                   second: Any = None, workbook_later: bool = False) -> Any:
    """Validate ``<out>/sdtm`` and ``<out>/adam`` (or ``paths.sdtm_in``/``adam_in``).  ``held``: by
    purpose, the datasets this run wrote as a read-back would give them, validated without reading
    their files again; ``early``: the units run on some of them already; ``second``: when the rules
    may take a second process, ``workbook_later``: whether the workbook may be written in one while
    the caller goes on (``run_validation``; the caller then waits for the result)."""
    from cdisc_pipe.validate import run_validation
    from cdisc_pipe.validate.data import ReadOptions

    reading = ReadOptions(encoding=paths.encoding)
    with log.step("validating"):
        try:
            result = run_validation(paths.out, spec, paths.ct, sdtm_dir=paths.sdtm_in, adam_dir=paths.adam_in,
                                    settings_path=validation_settings(paths, spec), read_options=reading,
                                    held=held, early=early, second=second, workbook_later=workbook_later)
        finally:  # which encoding each file was read with, also when a forced one failed
            for note in reading.notes:
                log.note(note)
    log_validation(log, result)
    return result


def stage_guides(paths: Paths, spec: StudySpec, result: Any, log: RunLog,
                 written: dict[str, list[Any]] | None = None) -> None:
    """The reviewer's guides (cSDRG, ADRG; PDF and DOCX) beside each define.xml, from the validation
    result just computed (``written``: the writers' records of this run by purpose)."""
    from cdisc_pipe.documents import write_reviewer_guides

    with log.step("writing the reviewer's guides"):
        files = write_reviewer_guides(paths.out, spec, paths.specs, paths.mappings,
                                      getattr(result, "findings", None), getattr(result, "summary", None), written)
    out = Path(paths.out).resolve()  # the guides come back as absolute paths, --out may be relative
    log.note("reviewer's guides: " + (", ".join(str(Path(p).resolve().relative_to(out)) for p in files) or "none"))


def results_plan(specs: Path | None, log: RunLog) -> Any:
    """The study's results plan (``<specs>/results.yaml``), validated; None (with a NOTE) without one."""
    from cdisc_pipe.results import PLAN_FILE, load_results_plan

    path = Path(specs) / PLAN_FILE if specs is not None else None
    if path is None or not path.is_file():
        log.note(f"no results plan ({path or PLAN_FILE}): no results report (reports/results.html) written")
        return None
    plan = load_results_plan(path)
    log.note(f"results plan {path} (SHA-256 {sha256_file(path)}): {len(plan.analyses)} analyses")
    return plan


def _results_built(log: RunLog, plan: Any, study: str, held: dict[str, pd.DataFrame] | None = None,
                   adam_dir: Path | None = None, encoding: str | None = None) -> tuple[dict[str, Any], str, str]:
    """(summary, HTML, JSON) of the results report, from the ADaM datasets a run holds (``held``: by
    name, as validation holds them; the same frames reading the files gives, ``adam.io.as_read``)
    or read from ``adam_dir``.  The summary (problems, numbers of tables and figures) is plain
    data: a process receiving it needs none of the report's libraries (SciPy, matplotlib)."""
    from cdisc_pipe.adam import read_sdtm
    from cdisc_pipe.adam.io import as_read
    from cdisc_pipe.results import build_report

    if held is not None:
        frames = {name: as_read(df) for name, df in held.items()}
    else:
        with log.step(f"reading ADaM from {adam_dir}"):
            frames = read_sdtm(Path(adam_dir), encoding=encoding, log=log)
    with log.step(f"computing the results report ({len(plan.analyses)} analyses, figures as SVG)"):
        results, page, doc = build_report(plan, frames, study)
    return {"problems": [str(p) for p in results.problems], "tables": len(results.tables),
            "figures": len(results.figures)}, page, doc


def _results_saved(log: RunLog, out: Path, built: tuple[dict[str, Any], str, str]) -> list[Path]:
    """Write what :func:`_results_built` made into ``<out>/reports``; its problems to the log."""
    from cdisc_pipe.results import save_report

    summary, page, doc = built
    files = save_report(page, doc, Path(out) / "reports")
    for p in summary["problems"]:
        log.warning(f"results report: {p}")
    log.note(f"results report: {summary['tables']} tables, {summary['figures']} figures: "
             + ", ".join(str(f) for f in files))
    return files


def stage_results(out: Path, plan: Any, study: str, log: RunLog, adam_dir: Path | None = None,
                  encoding: str | None = None) -> list[Path]:
    """The results report (``<out>/reports/results.{html,json}``) from the ADaM folder."""
    adam_dir = Path(adam_dir) if adam_dir is not None else Path(out) / "adam"
    if not adam_dir.is_dir():
        raise InputError(Problem(str(adam_dir), "ADaM folder not found: no results report",
                                 hint="run 'cdisc-pipe run' (or 'cdisc-pipe adam') first, or pass --adam DIR"))
    return _results_saved(log, out, _results_built(log, plan, study, adam_dir=adam_dir, encoding=encoding))


def _atomic_write(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp.write_bytes(data)
    tmp.replace(path)


def _log_findings(log: RunLog, stage: str, findings: list[Finding]) -> None:
    by_rule: dict[tuple[str, str], int] = {}
    for f in findings:
        by_rule[(f.severity, f.rule)] = by_rule.get((f.severity, f.rule), 0) + 1
    for (sev, rule), n in sorted(by_rule.items()):
        text = f"{stage} finding {rule}: {n} record(s) (see the validation report)"
        # Data findings go to the log quietly (the report is where they are read); Error-severity
        # data findings do not fail the stage, the validation exit code carries them.
        log.record("ERROR" if sev == "Error" else "WARNING" if sev == "Warning" else "NOTE", text)


def records_of(written: list[Any], sub: str) -> dict[str, int]:
    out = {}
    for w in written:
        if getattr(w, "has_no_data", False):  # no file written (define.xml: HasNoData)
            continue
        name = Path(w.xpt_path).name
        out[f"{sub}/{name}"] = w.records
        if w.json_path:
            out[f"{sub}/{Path(w.json_path).name}"] = w.records
    return out


def study_verb_files(plans_dir: Path) -> list[dict[str, Any]]:
    """The study's own verb files the plans name (a plan's ``study_verbs``), with their SHA-256:
    the manifest says when study code, not only the library, derived a dataset.  Read from the
    plan files as data (nothing is run here)."""
    from cdisc_pipe.spec.load import read_yaml

    out = []
    for plan in sorted(Path(plans_dir).glob("*.yaml")) if Path(plans_dir).is_dir() else []:
        data = read_yaml(plan, [])
        files = (data.get("study_verbs") or []) if isinstance(data, dict) else []
        for rel in files:
            path = (plan.parent / str(rel)).resolve()
            out.append({"plan": plan.name, "file": str(rel),
                        "sha256": sha256_file(path) if path.is_file() else None})
    return out


def finish(command: str, paths: Paths, spec: StudySpec | None, log: RunLog, records: dict[str, int],
           stages: dict[str, str] | None = None, extra: dict[str, Any] | None = None,
           written: list[Any] | None = None) -> None:
    """Write the manifest (inputs, versions, output hashes, stage keys); ``written``: the writers'
    records of this run (their files' digests are taken from them, not read again)."""
    inputs = {"raw": paths.raw, "specs": paths.specs, "mappings": paths.mappings, "sdtm_in": paths.sdtm_in,
              "adam_in": paths.adam_in}
    manifest = build_manifest(command=command, inputs={k: v for k, v in inputs.items() if v is not None},
                              spec=spec, out_dir=paths.out, records=records, written=written_digests(written or []))
    manifest["stages"] = stages or {}
    manifest["datasets_without_data"] = datasets_without_data(paths.out)
    if paths.specs is not None:
        manifest["study_verbs"] = study_verb_files(Path(paths.specs) / "plans")
    manifest.update(extra or {})
    previous = paths.out / "manifest.json"
    if previous.exists():
        try:
            _carry_records(json.loads(previous.read_text()), manifest)
        except (ValueError, OSError):
            log.warning(f"previous manifest {previous} unreadable; row counts of untouched outputs omitted")
    write_manifest(manifest, paths.out)
    log.note(f"manifest written: {paths.out / 'manifest.json'}")


def written_digests(written: list[Any]) -> dict[str, str]:
    """``{"sdtm/dm.xpt": sha256, ...}``: the digests the writers computed of the files they wrote."""
    out: dict[str, str] = {}
    for w in written:
        if getattr(w, "has_no_data", False):
            continue
        if w.xpt_path and w.xpt_sha256:
            out[w.xpt_path] = w.xpt_sha256
        if w.json_path and w.json_sha256:
            out[w.json_path] = w.json_sha256
    return out


def datasets_without_data(out: Path) -> dict[str, list[str]]:
    """``{"sdtm": ["AE", "SUPPAE"], "adam": ["ADAE"]}``: the datasets that had no records, so no file
    (not submitted; define.xml lists them with ``def:HasNoData="Yes"``), per output folder."""
    from cdisc_pipe.xpt.datasets import no_data_datasets

    return {sub: [w.name for w in no_data_datasets(Path(out) / sub)] for sub in ("sdtm", "adam")}


def _carry_records(old: dict, new: dict) -> None:
    """Row counts of datasets this command did not rewrite come from the last manifest (same hash)."""
    for key, entry in new["outputs"].items():
        prev = old.get("outputs", {}).get(key, {})
        if "records" not in entry and "records" in prev and prev.get("sha256") == entry["sha256"]:
            entry["records"] = prev["records"]


def code_digest() -> str:
    """SHA-256 over the package's own source files (code, templates, bundled rules): a code change
    invalidates every cached stage."""
    import hashlib

    import cdisc_pipe

    root = Path(cdisc_pipe.__file__).parent
    h = hashlib.sha256()
    for rel, digest in file_table(root, ("**/*.py", "**/*.j2", "**/*.yaml", "**/*.json", "**/*.css", "**/*.js")).items():
        if "__pycache__" not in rel:
            h.update(f"{rel}={digest}\n".encode())
    return h.hexdigest()


def input_digests(paths: Paths) -> dict[str, str | None]:
    """SHA-256 of each input a command reads (folder: over its file table), None when absent."""
    named = {"raw": paths.raw, "specs": paths.specs, "mappings": paths.mappings, "ct": paths.ct,
             "sdtm": paths.sdtm_in, "adam": paths.adam_in}
    return {k: tree_digest(v) for k, v in named.items() if v is not None}


def stage_keys(paths: Paths, digests: dict[str, str | None] | None = None) -> dict[str, str]:
    """Content keys of the stages: a stage is reused only when its key and its outputs are unchanged.

    ``digests`` are :func:`input_digests` when the caller already has them (each tree hashed once)."""
    import hashlib

    def digest(*parts: object) -> str:
        return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()

    d = digests if digests is not None else input_digests(paths)
    code, specs, ct = code_digest(), d.get("specs"), d.get("ct")
    sdtm = digest("sdtm", code, d.get("raw"), specs, d.get("mappings"), ct, *([paths.cutoff] if paths.cutoff else []))
    adam = digest("adam", sdtm, code, specs)
    return {"sdtm": sdtm, "adam": adam, "validate": digest("validate", adam, code, specs, ct)}


def _previous_manifest(out: Path) -> dict:
    try:
        return json.loads((Path(out) / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def _reusable(prev: dict, stage: str, sub: str, key: str, out: Path) -> bool:
    """True when the last run's stage key equals ``key`` and its outputs under ``sub`` are intact."""
    if prev.get("stages", {}).get(stage) != key:
        return False
    expected = {k[len(sub) + 1:]: v["sha256"] for k, v in prev.get("outputs", {}).items() if k.startswith(sub + "/")}
    actual = file_table(Path(out) / sub, skip=is_snapshot)
    return bool(expected) and actual == expected


def run_all(paths: Paths, log: RunLog, digests: dict[str, str | None] | None = None) -> tuple[int, Any]:
    """The whole pipeline.  Returns the exit code (0, or 1 when validation has Error findings) and
    the validation result (a reused one is read back from ``reports/validation.json``).

    Stages whose content key (inputs, specs, mappings, CT, code) and outputs are unchanged since the
    last run in the same output root are reused; the manifest records the keys.
    """
    spec = load_spec(paths, log)
    plan = results_plan(paths.specs, log)  # checked before any work: a bad plan fails fast
    keys = stage_keys(paths, digests)
    prev = _previous_manifest(paths.out)
    reuse_sdtm = _reusable(prev, "sdtm", "sdtm", keys["sdtm"], paths.out)
    reuse_adam = reuse_sdtm and _reusable(prev, "adam", "adam", keys["adam"], paths.out)
    records: dict[str, int] = {}
    cutoff = prev.get("data_cutoff") if reuse_adam else None
    # The datasets this run writes are validated as it holds them: the frames and file metadata a
    # read-back of the files gives (validate.data.held_dataset), unless an encoding is forced for
    # reading: then the files are read as asked.
    keep = paths.encoding is None
    held: dict[str, dict[str, tuple[pd.DataFrame, Any]]] = {}
    early: Any = None  # validation units run with the SDTM files
    written: dict[str, list[Any]] = {}  # the writers' records of this run, by purpose
    report: Background | None = None  # the results report being computed
    if reuse_sdtm:
        log.progress(f"SDTM unchanged since the last run (key {keys['sdtm'][:12]}): reused")
    if reuse_adam:
        log.progress(f"ADaM unchanged since the last run (key {keys['adam'][:12]}): reused")
    if not reuse_adam:
        staging = Staging(paths.out)
        stages: list[tuple[StageOutput, str, str]] = []  # (stage, purpose, folder): files maybe still being written
        try:
            sdtm_frames = None
            if not reuse_sdtm:
                # SDTM's files (and define.xml) are written in a second process while ADaM is derived
                # and the validation rules that need no ADaM dataset run there on the SDTM datasets
                sdtm = stage_sdtm(paths, spec, staging, log, keep=keep, background=True, define=True, early=keep)
                stages.append((sdtm, "Tabulation", "sdtm"))
                sdtm_frames, sdtm.frames = sdtm.frames, {}  # ADaM empties them once derived (release_sdtm)
                cutoff = sdtm.cutoff.as_dict()
            else:
                paths.sdtm_in = paths.out / "sdtm"
            if spec.by_purpose("Analysis"):
                adam = stage_adam(paths, spec, staging, log, sdtm=sdtm_frames,
                                  cutoff=sdtm.cutoff if sdtm_frames is not None and sdtm.cutoff.date else None,
                                  keep=keep, release_sdtm=sdtm_frames is not None, background=True, define=True)
                stages.append((adam, "Analysis", "adam"))
                if plan is not None and adam.held_frames is not None:
                    # the results report from the ADaM datasets as written, while their files are
                    # written and validated; saved once they are in place
                    report = Background(log, _results_built, plan, spec.study.name, adam.held_frames)
                if cutoff is None and adam.cutoff is not None:
                    cutoff = adam.cutoff.as_dict()
            else:  # an SDTM-only study (or one whose ADaM is not specified yet)
                log.warning("no ADaM dataset specs (specs/adam/*.yaml): ADaM stage skipped")
            for stage, purpose, sub in stages:
                if purpose == "Analysis" and held.get("Tabulation") and stage.held_frames and early is not None:
                    # while the ADaM files are written: the checks that need no ADaM file metadata
                    more = _validate_while_waiting(log, paths, spec, staging, held["Tabulation"], stage, early)
                    early = {r: {**early.get(r, {}), **more.get(r, {})} for r in {*early, *more}}
                stage.wait()
                written[purpose] = stage.written
                if stage.held is not None:
                    held[purpose] = stage.held
                early = early or stage.early
                records |= records_of(stage.written, sub)
        except BaseException:
            for stage, _, _ in stages:
                stage.cancel()
            if report is not None:
                report.cancel()
            staging.discard()
            raise
        finally:
            paths.sdtm_in = None
        staging.commit()
    if report is None and plan is not None and (paths.out / "adam").is_dir():
        # the results report reads the ADaM files: in a second process beside validation
        report = Background(log, _results_built, plan, spec.study.name, None, paths.out / "adam")
    elif report is None and plan is not None:
        log.note("no ADaM datasets: no results report")
    result: Any = None
    try:
        if reuse_adam and _reusable(prev, "validate", "reports", keys["validate"], paths.out):
            log.progress("validation inputs unchanged: reports reused")
            code = int(prev.get("validation_exit_code", 0))
            result = previous_validation(paths.out)
        else:
            # the rules share the cores with the results report while it is being computed: a
            # second process for them once it is done
            # the workbook is written in a second process while the guides are
            result = stage_validate(paths, spec, log, held=held or None, early=early,
                                    second=report.ready if report is not None else None, workbook_later=True)
            held.clear()
            code = int(getattr(result, "exit_code", 0))
            stage_guides(paths, spec, result, log, written)
            result.wait()
    except BaseException:
        if report is not None:
            report.cancel()
        if result is not None and hasattr(result, "cancel"):
            result.cancel()
        raise
    if report is not None:
        _results_saved(log, paths.out, report.result())
    finish("run", paths, spec, log, records, stages=keys,
           extra={"validation_exit_code": code, "data_cutoff": cutoff or {"date": None, "source": "unknown"}},
           written=[w for ws in written.values() for w in ws])
    return code, result


def previous_validation(out: Path) -> Any:
    """The summary of the reports a run reused (``reports/validation.json``), shaped like a result."""
    from types import SimpleNamespace

    report = Path(out) / "reports" / "validation.json"
    try:
        summary = json.loads(report.read_text(encoding="utf-8")).get("summary", {})
    except (OSError, ValueError):
        summary = {}
    return SimpleNamespace(summary=summary, rules=[], reports={"html": report.with_suffix(".html")})


def run_single_stage(stage: str, paths: Paths, log: RunLog) -> None:
    """``cdisc-pipe sdtm`` / ``adam``: one stage and its define.xml, staged and swapped in on success."""
    spec = load_spec(paths, log)
    run = {"sdtm": stage_sdtm, "adam": stage_adam}[stage]
    staging = Staging(paths.out)
    try:
        res = run(paths, spec, staging, log, define=True).wait()
    except BaseException:
        staging.discard()
        raise
    staging.commit()
    finish(stage, paths, spec, log, records_of(res.written, stage),
           extra={"data_cutoff": res.cutoff.as_dict()} if res.cutoff is not None else None, written=res.written)


def problem(text: str, file: str = "command line", hint: str | None = None) -> InputError:
    return InputError(Problem(file, text, hint=hint))
