"""ADaM stage: SDTM in, ADaM datasets out (admiral verb grammar).

Public entry points (contract in docs/ADAM.md):

- :func:`read_sdtm` reads a folder of SDTM XPT (or Dataset-JSON) files;
- :func:`build_adam` builds ADSL, then every ADaM dataset that has both a spec
  (``specs/adam/<name>.yaml``) and a builder module ``cdisc_pipe.adam.<name>``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd

from cdisc_pipe.adam.derive import convert_blanks_to_na
from cdisc_pipe.adam.io import read_sdtm
from cdisc_pipe.adam.settings import load_adam_settings
from cdisc_pipe.errors import Finding, InputError, Problem
from cdisc_pipe.spec.model import Dataset, StudySpec

if TYPE_CHECKING:
    from cdisc_pipe.adam.plan import LoadedPlan

__all__ = ["AdamResult", "build_adam", "read_sdtm", "builder_modules", "check_inputs", "conform_to_spec"]


@dataclass
class AdamResult:
    """What the ADaM stage produced: frames by dataset name, and findings (records kept)."""

    datasets: dict[str, pd.DataFrame]
    findings: list[Finding] = field(default_factory=list)


def builder_modules(spec: StudySpec) -> dict[str, ModuleType]:
    """ADaM datasets of ``spec`` (purpose Analysis) that have a builder module, ADSL first."""
    found: dict[str, ModuleType] = {}
    for ds in spec.by_purpose("Analysis"):
        try:
            module = importlib.import_module(f"cdisc_pipe.adam.{ds.name.lower()}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cdisc_pipe.adam.{ds.name.lower()}":
                continue
            raise
        if hasattr(module, "build"):
            found[ds.name] = module
    return found


def _missing(sdtm: dict[str, pd.DataFrame], requires: dict[str, list[str]], built: set[str]) -> dict[str, list[str]]:
    """Required datasets/variables absent from ``sdtm``: {dataset: [missing variables]} ([] = whole dataset)."""
    gaps: dict[str, list[str]] = {}
    for name, variables in requires.items():
        if name in built:
            continue  # an ADaM input built earlier in this run
        if name not in sdtm:
            gaps[name] = []
            continue
        lacking = [v for v in variables if v not in sdtm[name].columns]
        if lacking:
            gaps[name] = lacking
    return gaps


def _describe(gaps: dict[str, list[str]]) -> str:
    return "; ".join(f"{d} (whole dataset)" if not v else f"{d}.{', '.join(v)}" for d, v in gaps.items())


def check_inputs(sdtm: dict[str, pd.DataFrame], modules: dict[str, ModuleType]) -> tuple[dict[str, ModuleType], list[Finding]]:
    """Check every builder's ``REQUIRES`` before deriving anything.

    Missing inputs of ADSL or of a ``CORE`` builder: one InputError with one Problem per SDTM
    dataset naming the missing variables and which ADaM datasets need them.  Missing inputs of a
    non-core builder (or of a builder depending on a skipped one): the dataset is skipped with a
    Notice finding.  Returns the builders that will run and the skip findings.
    """
    problems: dict[str, dict[str, set[str]]] = {}
    findings: list[Finding] = []
    runnable: dict[str, ModuleType] = {}
    adam_names = set(modules)
    for name, module in modules.items():
        requires = getattr(module, "REQUIRES", {})
        gaps = _missing(sdtm, requires, adam_names)
        core = name == "ADSL" or getattr(module, "CORE", False)
        if gaps and core:
            for dom, variables in gaps.items():
                problems.setdefault(dom, {}).setdefault(name, set()).update(variables or ["*"])
        elif gaps:
            findings.append(Finding("ADAM.SKIPPED", "Notice", f"{name} not built: SDTM input missing: {_describe(gaps)}",
                                    dataset=name))
        else:
            runnable[name] = module
    if problems:
        plist = []
        for dom in sorted(problems):
            needs = problems[dom]
            whole = any("*" in v for v in needs.values())
            lacking = sorted({v for vs in needs.values() for v in vs if v != "*"})
            users = ", ".join(sorted(needs))
            if whole:
                msg = f"SDTM dataset {dom} is missing; {users} need(s) it"
            else:
                msg = f"SDTM dataset {dom} lacks {', '.join(lacking)}; {users} need(s) them"
            plist.append(Problem(f"{dom.lower()}.xpt", msg, entry=dom, column=None if whole else ", ".join(lacking),
                                 hint="Provide the SDTM dataset with these variables (docs/ADAM.md lists each "
                                      "builder's inputs)"))
        raise InputError(plist, stage="adam")
    # Drop builders whose ADaM dependencies will not be built.
    changed = True
    while changed:
        changed = False
        for name, module in list(runnable.items()):
            deps = [d for d in getattr(module, "DEPENDS", []) if d not in runnable]
            if deps and name != "ADSL":
                del runnable[name]
                findings.append(Finding("ADAM.SKIPPED", "Notice", f"{name} not built: needs {', '.join(deps)}, which is not built",
                                        dataset=name))
                changed = True
    return runnable, findings


def conform_to_spec(df: pd.DataFrame, dataset: Dataset) -> tuple[pd.DataFrame, list[Finding]]:
    """Keep exactly the spec's variables in spec order.

    A spec variable the builder did not produce is added empty with a Warning finding (the writer
    and validation then report it); a column the builder produced that the spec does not have is
    not output and is named in a Notice (``__``-prefixed working columns silently); numeric
    variables become float64, numeric dates datetime64.
    """
    findings: list[Finding] = []
    extra = [c for c in df.columns if c not in dataset.variable_names and not str(c).startswith("__")]
    if extra:
        findings.append(Finding("ADAM.SPEC.EXTRA", "Notice",
                                f"{dataset.name}: derived column(s) not in the spec, not output: {', '.join(map(str, extra))}",
                                dataset=dataset.name, value=", ".join(map(str, extra))))
    out = pd.DataFrame(index=df.index)
    for var in sorted(dataset.variables, key=lambda v: v.order or 0):
        if var.name in df.columns:
            col = df[var.name]
        else:
            findings.append(Finding("ADAM.SPEC.NOTDERIVED", "Warning",
                                    f"{dataset.name}.{var.name} is in the spec but was not derived; left empty",
                                    dataset=dataset.name, variable=var.name))
            col = pd.Series(None, index=df.index, dtype=object)
        if var.data_type in ("date", "datetime", "time") and var.display_format:
            col = pd.to_datetime(col).astype("datetime64[ns]")
        elif var.data_type in ("integer", "float"):
            col = pd.to_numeric(col, errors="coerce").astype("float64")
        else:
            col = pd.Series(col.to_numpy(dtype=object), index=df.index, dtype=object)
            present = col.notna()
            if not present.all():
                col = col.where(present, None)
        out[var.name] = col
    return out.reset_index(drop=True), findings


def _plan_inputs(plans: dict[str, "LoadedPlan"], frames: dict[str, pd.DataFrame], adam_names: set[str]) -> None:
    """Every dataset a plan reads is in the SDTM given or built in this run: else one InputError."""
    problems = []
    for name, plan in plans.items():
        for src in plan.sources():
            if src not in frames and src not in adam_names:
                problems.append(Problem(f"{src.lower()}.xpt", f"SDTM dataset {src} is missing; the {name} plan reads it",
                                        entry=src, hint=f"Provide {src.lower()}.xpt in the SDTM folder, or change "
                                                        f"{plan.path}"))
    if problems:
        raise InputError(problems, stage="adam")


def build_adam(sdtm: dict[str, pd.DataFrame], spec: StudySpec, settings_dir: Path) -> AdamResult:
    """Build every ADaM dataset of ``spec``, ADSL first.

    A dataset is built by its derivation plan (``<specs>/plans/<name>.yaml``, docs/ADAM.md) or,
    for datasets without one, by a builder module ``cdisc_pipe.adam.<name>``; a dataset with a spec
    and neither is an InputError, never dropped.  Raises InputError (before deriving anything) when
    plans are invalid or inputs are missing.  Findings collect data problems and skipped datasets.
    """
    from cdisc_pipe.adam.plan import load_plans, plans_dir_for, run_plan

    if "ADSL" not in spec.datasets:
        raise InputError(Problem("specs/adam/adsl.yaml", "no ADSL spec", hint="ADaM needs specs/adam/adsl.yaml"), stage="adam")
    plans = load_plans(plans_dir_for(settings_dir), spec)
    modules = {n: m for n, m in builder_modules(spec).items() if n not in plans}
    unbuildable = [d.name for d in spec.by_purpose("Analysis") if d.name not in plans and d.name not in modules]
    if unbuildable:
        raise InputError([Problem(f"specs/adam/{n.lower()}.yaml", f"{n} has a spec but no derivation plan", entry=n,
                                  hint=f"Write {plans_dir_for(settings_dir) / (n.lower() + '.yaml')} "
                                       "(docs/ADAM.md, 'Derivation plans'), or remove the spec")
                          for n in unbuildable], stage="adam")
    if modules:
        load_adam_settings(settings_dir)  # fail early on bad settings, before any derivation
    frames = {name.upper(): convert_blanks_to_na(df) for name, df in sdtm.items()}
    runnable, findings = check_inputs(frames, modules) if modules else ({}, [])
    _plan_inputs(plans, frames, set(plans) | set(runnable))
    datasets: dict[str, pd.DataFrame] = {}

    def finish(name: str, df: pd.DataFrame, found: list[Finding]) -> None:
        df, f2 = conform_to_spec(df, spec.dataset(name))
        datasets[name] = df
        findings.extend(found + f2)

    if "ADSL" in plans:
        finish("ADSL", *run_plan(plans["ADSL"], frames))
    else:
        finish("ADSL", *runnable["ADSL"].build(frames, None, Path(settings_dir)))
    adsl = datasets["ADSL"]
    # Plans and builder modules in one dependency order (a plan may read a module's dataset and the
    # reverse); ties alphabetical.
    deps = {n: [d for d in p.sources() if d in plans or d in runnable] for n, p in plans.items() if n != "ADSL"}
    deps.update({n: list(getattr(m, "DEPENDS", [])) for n, m in runnable.items() if n != "ADSL"})
    pending = sorted(deps)
    while pending:
        ready = [n for n in pending if all(d in datasets for d in deps[n])]
        if not ready:
            raise InputError([Problem(str(plans[n].path) if n in plans else f"cdisc_pipe.adam.{n.lower()}",
                                      f"{n} cannot be built: it reads {', '.join(d for d in deps[n] if d not in datasets)},"
                                      " which read(s) it in turn", entry=n) for n in pending], stage="adam")
        name = ready[0]
        pending.remove(name)
        if name in plans:
            finish(name, *run_plan(plans[name], {**frames, **datasets}))
        else:
            finish(name, *runnable[name].build({**frames, **datasets}, adsl, Path(settings_dir)))
    return AdamResult(datasets=datasets, findings=findings)
