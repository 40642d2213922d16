"""Derivation plans: an ADaM dataset built from a file of ordered steps, each naming one verb.

A study's ``specs/plans/<dataset>.yaml`` (docs/ADAM.md, "Derivation plans")::

    dataset: ADSL
    source: {dataset: DM, where: [...], keep: [STUDYID, USUBJID, ...], working: [...]}   # optional
    steps:
      - verb: derive_vars_merged
        dataset_add: EX
        filter_add: [{variable: EXDOSE, comparator: GT, values: ["0"]}]
        order: [EXSTDTC, EXSEQ]
        mode: first
        new_vars: {_TRTSDTC: EXSTDTC}
      - {verb: derive_vars_dt, dtc: _TRTSDTC, new_vars_prefix: TRTS}
    order: [USUBJID]                                                     # optional, default: spec keys

Checked before any data is read (:func:`load_plans`): YAML, each step's arguments against its
verb, every variable a step reads on the dataset being built exists by then, every spec variable is
written by the source's ``keep`` or a step, and every variable written is in the spec (names
starting with ``_`` are working variables, dropped at the end).  Each variable's define.xml
method text is generated from the step that wrote it (:func:`plan_methods`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from cdisc_pipe.adam.conditions import condition_mask, where_variables
from cdisc_pipe.adam.derive import DuplicateRecordsError
from cdisc_pipe.adam.settings import Where
from cdisc_pipe.adam.verbs import VERBS, Context, StepArgs, Verb
from cdisc_pipe.errors import Finding, InputError, Problem
from cdisc_pipe.parallel import return_free_memory
from cdisc_pipe.spec.load import read_yaml, validate_model
from cdisc_pipe.spec.model import Method, StudySpec

__all__ = ["LoadedPlan", "load_plans", "run_plan", "plan_methods", "attach_plan_methods", "check_methods",
           "plans_dir_for"]

_WORKING = re.compile(r"^_[A-Z0-9_]+$")
#: After a step on at least ``_TRIM_ROWS`` records, the heap it freed goes back to the system when
#: it holds at least ``parallel.TRIM_AT_LEAST`` bytes (``parallel.return_free_memory``): a step
#: that replaced the whole working frame (records added) frees as much as the frame, which glibc
#: would keep and which would set the process's peak at 5,000 subjects (about 0.5 GB); smaller
#: frees are left for the next steps to reuse (giving them back costs page faults).
_TRIM_ROWS = 100_000


class PlanSource(BaseModel):
    """The records a plan starts from: a dataset, optionally filtered, and the variables it keeps."""

    model_config = ConfigDict(extra="forbid")
    dataset: str
    where: Where = Field(default_factory=list)
    keep: list[str] = Field(min_length=1)
    # Source variables the steps read that are not output (e.g. AESTDTC behind ASTDT): dropped at the end.
    working: list[str] = Field(default_factory=list)


class PlanFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str
    source: PlanSource | None = None
    steps: list[dict[str, Any]] = Field(min_length=1)
    order: list[str] | None = None
    # Python files of the study's own verbs, relative to the plan file (the escape hatch: docs/ADAM.md)
    study_verbs: list[str] = Field(default_factory=list)
    # SDTM datasets whose absence skips this dataset (a Notice) instead of stopping the run: data
    # not collected yet in a partial export (e.g. no response assessments before the first visit).
    skip_if_missing: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class StudyVerbFile:
    """A study's own verb file a plan named: where it is, its SHA-256, the verbs it defines."""

    path: Path
    sha256: str
    verbs: tuple[str, ...]


@dataclass
class LoadedPlan:
    """A checked plan: its file (path and SHA-256), source, typed steps and final order."""

    dataset: str
    path: Path
    sha256: str
    source: PlanSource | None
    steps: list[StepArgs]
    order: list[str] | None = None
    methods: dict[str, str] = field(default_factory=dict)
    verbs: dict[str, Verb] = field(default_factory=lambda: dict(VERBS))  # the library's, plus study verbs
    study_verbs: list[StudyVerbFile] = field(default_factory=list)
    skip_if_missing: list[str] = field(default_factory=list)

    def sources(self) -> list[str]:
        """Every dataset the plan reads (upper case), in order of first use."""
        names = [self.source.dataset.upper()] if self.source else []
        for step in self.steps:
            names += self.verbs[step.verb].sources(step)
        return list(dict.fromkeys(names))

    def steps_may_read(self) -> set[str] | None:
        """Every dataset (upper case) the plan's steps read or may read: each verb's sources, and
        every dataset a step's arguments name, optional ones included (read when present).  None
        when a step calls a study verb: it may read any dataset.  A library verb reading a dataset
        named by an argument called other than ``dataset``, ``dataset_*`` or ``*_dataset`` must
        list it in its ``sources`` (``build_adam(consume=True)`` lets go of what no step may read)."""
        if self.study_verbs_used():
            return None
        names: set[str] = set()
        for step in self.steps:
            names |= {*self.verbs[step.verb].sources(step), *_named_datasets(step)}
        return names

    def outputs(self) -> list[str]:
        """Every variable the plan writes (the source's keep list, then each step's)."""
        names = list(self.source.keep) if self.source else []
        for step in self.steps:
            names += self.verbs[step.verb].outputs(step)
        return list(dict.fromkeys(names))

    def needs(self) -> dict[str, list[str]]:
        """Variables the plan needs in each dataset it reads (those its verbs declare)."""
        out: dict[str, list[str]] = {}
        if self.source:
            out[self.source.dataset.upper()] = list(dict.fromkeys(
                [*self.source.keep, *self.source.working, *where_variables(self.source.where)]))
        added: dict[str, set[str]] = {}  # variables earlier steps add to a dataset for later ones
        for step in self.steps:
            verb = self.verbs[step.verb]
            for ds, names in verb.needs(step).items():
                have = out.setdefault(ds.upper(), [])
                have += [n for n in names if n not in have and n not in added.get(ds.upper(), set())]
            for ds, names in verb.augments(step).items():
                added.setdefault(ds.upper(), set()).update(names)
        return out

    def study_verbs_used(self) -> list[str]:
        """Names of the study's own verbs that steps of this plan call."""
        own = {v for f in self.study_verbs for v in f.verbs}
        return sorted({s.verb for s in self.steps if s.verb in own})


def _named_datasets(args: BaseModel) -> set[str]:
    """Datasets a step's arguments name (upper case): the values of every argument called
    ``dataset``, ``dataset_*`` or ``*_dataset``, in nested arguments too (events, sources ...)."""
    names: set[str] = set()
    for key, value in args:
        if isinstance(value, str) and (key == "dataset" or key.startswith("dataset_") or key.endswith("_dataset")):
            names.add(value.upper())
        items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                names |= _named_datasets(item)
    return names


def plans_dir_for(settings_dir: Path | str) -> Path:
    """A study's plans folder: ``<specs>/plans`` beside ``<specs>/settings``."""
    return Path(settings_dir).parent / "plans"


def _is_working(name: str) -> bool:
    return bool(_WORKING.match(name))


#: Study verb files already run in this process, by path and content (SHA-256): the specs and the
#: ADaM stage both load the plans, and a file must run once per content, not once per load.
_STUDY_MODULES: dict[tuple[str, str], Any] = {}


def _load_study_verbs(plan_path: Path, files: list[str],
                      problems: list[Problem]) -> tuple[list[StudyVerbFile], dict[str, Verb]]:
    """The study's own verb files a plan names: each must define ``VERBS``, a list of
    :class:`~cdisc_pipe.adam.verbs.Verb`, whose names do not shadow the library's.

    The file is run as Python, once, because the plan names it (never found by search, never
    imported from the package); its SHA-256 is recorded so the log and manifest say what ran.
    """
    import importlib.util

    loaded = []
    for i, rel in enumerate(files):
        path = (plan_path.parent / rel).resolve()
        entry = f"study_verbs[{i}]"
        if not path.is_file() or path.suffix != ".py":
            problems.append(Problem(str(plan_path), "study verb file not found (a .py file, relative to the plan)",
                                    entry=entry, value=rel))
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        module = _STUDY_MODULES.get((str(path), digest))
        if module is None:
            spec = importlib.util.spec_from_file_location(f"cdisc_pipe_study_verbs_{digest[:16]}", path)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            try:
                spec.loader.exec_module(module)  # type: ignore[union-attr]
            except Exception as exc:  # the study's code: its error is an input problem, named with its file
                problems.append(Problem(str(path), f"study verb file failed to load: {type(exc).__name__}: {exc}",
                                        entry=entry, hint="Fix the file; it is named by " + str(plan_path)))
                continue
            _STUDY_MODULES[(str(path), digest)] = module
        verbs = getattr(module, "VERBS", None)
        if not isinstance(verbs, list) or not all(isinstance(v, Verb) for v in verbs) or not verbs:
            problems.append(Problem(str(path), "a study verb file must define VERBS, a non-empty list of "
                                               "cdisc_pipe.adam.verbs.Verb", entry=entry))
            continue
        clash = [v.name for v in verbs if v.name in VERBS]
        if clash:
            problems.append(Problem(str(path), f"study verb(s) named like library verbs: {', '.join(clash)}",
                                    entry=entry, hint="Give the study's verbs names of their own"))
            continue
        loaded.append((StudyVerbFile(path=path, sha256=digest, verbs=tuple(v.name for v in verbs)), verbs))
    return [f for f, _ in loaded], {v.name: v for _, vs in loaded for v in vs}


def _parse_steps(raw: list[dict[str, Any]], file: str, problems: list[Problem],
                 verbs: dict[str, Verb] = VERBS) -> list[StepArgs]:
    steps: list[StepArgs] = []
    for i, item in enumerate(raw):
        name = item.get("verb") if isinstance(item, dict) else None
        if not isinstance(name, str) or name not in verbs:
            problems.append(Problem(file, "unknown verb" if name else "a step needs a verb", entry=f"steps[{i}].verb",
                                    value=None if name is None else str(name),
                                    hint=f"One of: {', '.join(sorted(verbs))} (docs/ADAM.md lists their arguments)"))
            continue
        step = validate_model(verbs[name].args, item, file, problems, prefix=f"steps[{i}:{name}]")
        if step is not None:
            steps.append(step)
    return steps


def _check_against_spec(plan: LoadedPlan, spec: StudySpec, file: str, problems: list[Problem]) -> None:
    """Spec variables nobody writes, written variables the spec lacks, reads before writes."""
    ds = spec.dataset(plan.dataset)
    available = set(plan.source.keep) | set(plan.source.working) if plan.source else set()
    for i, step in enumerate(plan.steps):
        verb = plan.verbs[step.verb]
        lacking = [v for v in verb.reads(step) if v not in available]
        if lacking and not (i == 0 and plan.source is None):
            problems.append(Problem(file, f"step reads {', '.join(lacking)}, which no earlier step (nor the source's "
                                          "keep list) writes", entry=f"steps[{i}:{step.verb}]",
                                    value=", ".join(lacking),
                                    hint="Keep the variable from the source, derive it in an earlier step, or fix the name"))
        available.update(verb.outputs(step))
    written = plan.outputs()
    not_derived = [v.name for v in ds.variables if v.name not in written]
    if not_derived:
        problems.append(Problem(file, f"{plan.dataset} spec variable(s) written by no step: {', '.join(not_derived)}",
                                entry="steps", value=", ".join(not_derived),
                                hint=f"Add a step that derives them, or remove them from specs/adam/{plan.dataset.lower()}.yaml"))
    extra = [v for v in written if v not in ds.variable_names and not _is_working(v)]
    if extra:
        problems.append(Problem(file, f"step(s) write variable(s) not in the {plan.dataset} spec: {', '.join(extra)}",
                                entry="steps", value=", ".join(extra),
                                hint=f"Add them to specs/adam/{plan.dataset.lower()}.yaml, or name them _X "
                                     "(a working variable, not output)"))


def load_plans(plans_dir: Path | str, spec: StudySpec) -> dict[str, LoadedPlan]:
    """Every ``<plans_dir>/*.yaml`` as a checked :class:`LoadedPlan`, by dataset name.

    Collects every problem of every file and raises one :class:`InputError` (exit 2); returns {}
    when the folder does not exist.
    """
    folder = Path(plans_dir)
    if not folder.is_dir():
        return {}
    problems: list[Problem] = []
    plans: dict[str, LoadedPlan] = {}
    for path in sorted(folder.glob("*.yaml")):
        file = str(path)
        start = len(problems)
        data = read_yaml(path, problems)
        if data is None:
            if len(problems) == start:
                problems.append(Problem(file, "empty plan file"))
            continue
        top = validate_model(PlanFile, data, file, problems)
        if top is None:
            continue
        name = top.dataset.upper()
        if name != path.stem.upper():
            problems.append(Problem(file, f"plan for {name} in a file named {path.name}", entry="dataset", value=name,
                                    hint=f"Name the file {name.lower()}.yaml"))
        if name not in spec.datasets or spec.dataset(name).purpose != "Analysis":
            problems.append(Problem(file, f"no ADaM dataset spec for {name}", entry="dataset", value=name,
                                    hint=f"Add specs/adam/{name.lower()}.yaml"))
            continue
        study_files, study_verbs = _load_study_verbs(path, top.study_verbs, problems)
        verbs = {**VERBS, **study_verbs}
        steps = _parse_steps(top.steps, file, problems, verbs)
        if len(problems) > start:
            continue
        plan = LoadedPlan(dataset=name, path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                          source=top.source, steps=steps, order=top.order, verbs=verbs, study_verbs=study_files,
                          skip_if_missing=[d.upper() for d in top.skip_if_missing])
        _check_against_spec(plan, spec, file, problems)
        plan.methods = plan_methods(plan)
        plans[name] = plan
    if problems:
        raise InputError(problems, stage="adam plans")
    return plans


def _missing_variable(plan: LoadedPlan, entry: str, variable: str, where: str) -> InputError:
    return InputError(Problem(str(plan.path), f"variable {variable} is not in {where}", entry=entry, value=variable,
                              hint=f"Check the name, or provide {variable} in {where}"), stage="adam")


def run_plan(plan: LoadedPlan, frames: dict[str, pd.DataFrame],
             release_source: bool = False) -> tuple[pd.DataFrame, list[Finding]]:
    """Run a plan over ``frames`` (SDTM and ADaM datasets by upper-case name).

    Returns the dataset (working variables dropped, sorted by the plan's ``order``) and the
    findings its verbs reported.  A variable a step needs and its input lacks is an InputError
    naming the plan file, the step and the variable.  ``release_source`` (the plan's steps read
    its source dataset no more: see :meth:`LoadedPlan.steps_may_read`): the source dataset is taken
    out of ``frames`` once the plan's records are taken from it (its other variables are freed
    while the steps run, when nothing else holds it).
    """
    ctx = Context(frames=frames, dataset=plan.dataset)
    if plan.source is not None:
        src = frames[plan.source.dataset.upper()]
        columns = list(dict.fromkeys([*plan.source.keep, *plan.source.working]))
        lacking = [v for v in [*columns, *where_variables(plan.source.where)] if v not in src.columns]
        if lacking:
            raise _missing_variable(plan, "source", ", ".join(dict.fromkeys(lacking)), f"{plan.source.dataset.upper()}")
        if plan.source.where:
            src = src[condition_mask(src, plan.source.where)]
        df = src[columns].reset_index(drop=True)
        if release_source:
            del src
            frames.pop(plan.source.dataset.upper(), None)
    else:
        df = pd.DataFrame()
    for i, step in enumerate(plan.steps):
        try:
            df = plan.verbs[step.verb].run(df, step, ctx)
        except KeyError as exc:
            name = exc.args[0] if exc.args else "?"
            where = next((s for s in plan.verbs[step.verb].sources(step) if s in frames and name not in frames[s].columns
                          and name not in df.columns), plan.dataset)
            raise _missing_variable(plan, f"steps[{i}:{step.verb}]", str(name), where) from None
        except DuplicateRecordsError as exc:
            names = plan.verbs[step.verb].sources(step)
            raise InputError(Problem(str(plan.path), f"{', '.join(names) or plan.dataset}: {exc}",
                                     entry=f"steps[{i}:{step.verb}]",
                                     hint="Give the step an order and mode (first/last), or a filter that leaves "
                                          "one record per group"), stage="adam") from None
        except Exception as exc:
            own = next((f for f in plan.study_verbs if step.verb in f.verbs), None)
            if own is None:
                raise  # the library's verb failed: a bug of ours (exit 3)
            raise InputError(Problem(str(own.path), f"study verb {step.verb} failed: {type(exc).__name__}: {exc}",
                                     entry=f"{plan.path.name} steps[{i}:{step.verb}]",
                                     hint="Fix the study's verb file"), stage="adam") from None
        df = df.reset_index(drop=True)
        if len(df) >= _TRIM_ROWS:
            return_free_memory()
    dropped = set(plan.source.working) - set(plan.source.keep) if plan.source else set()
    df = df[[c for c in df.columns if not _is_working(str(c)) and c not in dropped]]
    if plan.order:
        from cdisc_pipe.adam.derive import _sort

        df = _sort(df, plan.order).reset_index(drop=True)
    return df, list(ctx.findings)


def plan_methods(plan: LoadedPlan) -> dict[str, str]:
    """Method text per variable written by a step, in words (working variables spelt out)."""
    texts: dict[str, str] = {}
    for step in plan.steps:
        described = plan.verbs[step.verb].describe(step)
        for var in plan.verbs[step.verb].outputs(step):
            text = step.description or described.get(var)
            if not text:
                continue
            # "Date part of" reads "then date part of"; "PARAMCD ..." keeps its capitals
            lead = text[0].lower() if text[1:2].islower() else text[0]
            texts[var] = f"{texts[var]}; then {lead}{text[1:]}" if var in texts else text
    working = {k: v for k, v in texts.items() if _is_working(k)}

    def mentioned(text: str) -> list[str]:
        return [w for w in working if re.search(rf"(?<![A-Z0-9_]){re.escape(w)}(?![A-Z0-9_])", text)]

    out = {}
    for var, text in texts.items():
        if _is_working(var):
            continue
        # every working variable behind this one, each spelt out once, nearest first
        chain: list[str] = []
        todo = mentioned(text)
        while todo:
            w = todo.pop(0)
            if w not in chain:
                chain.append(w)
                todo += [x for x in mentioned(working[w]) if x not in chain]
        out[var] = text + "".join(f" [{w}: {working[w]}]" for w in chain)
    return out


def attach_plan_methods(spec: StudySpec, plans: dict[str, LoadedPlan]) -> StudySpec:
    """A copy of ``spec`` whose Derived variables of planned datasets cite a MethodDef generated
    from the plan (OID ``MT.<DATASET>.<VARIABLE>``); other variables and datasets are unchanged."""
    if not plans:
        return spec
    methods = dict(spec.methods)
    datasets = dict(spec.datasets)
    for name, plan in plans.items():
        ds = spec.dataset(name)
        variables = []
        for var in ds.variables:
            text = plan.methods.get(var.name)
            if text and var.origin.type == "Derived":
                oid = f"MT.{name}.{var.name}"
                methods[oid] = Method(oid=oid, name=f"Algorithm to derive {name}.{var.name}", type="Computation",
                                      description=f"{var.name}: {text}")
                var = var.model_copy(update={"method": oid})
            variables.append(var)
        datasets[name] = ds.model_copy(update={"variables": variables})
    return spec.model_copy(update={"datasets": datasets, "methods": methods})


def check_methods(spec: StudySpec) -> list[Problem]:
    """Derived ADaM variables with neither a generated method (a plan step) nor one in the spec."""
    problems = []
    for ds in spec.by_purpose("Analysis"):
        for i, var in enumerate(ds.variables):
            if var.origin.type == "Derived" and var.method is None:
                problems.append(Problem(f"specs/adam/{ds.name.lower()}.yaml", "a Derived ADaM variable needs a method",
                                        entry=f"variables[{i}:{var.name}]",
                                        hint="Derive it in a step of the dataset's plan (its method text is then "
                                             "generated), or give it method: MT.<...> in the spec"))
    return problems
