"""ADaM stage: SDTM in, ADaM datasets out (admiral verb grammar).

Public entry points (contract in docs/ADAM.md):

- :func:`read_sdtm` reads a folder of SDTM XPT (or Dataset-JSON) files;
- :func:`build_adam` builds every ADaM dataset of the spec from its derivation plan
  (``specs/plans/<name>.yaml``: ordered steps naming the verbs of :mod:`cdisc_pipe.adam.verbs`),
  ADSL first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from cdisc_pipe.adam.derive import convert_blanks_to_na
from cdisc_pipe.adam.io import read_sdtm
from cdisc_pipe.errors import Finding, InputError, Problem
from cdisc_pipe.parallel import map_shared
from cdisc_pipe.spec.model import Dataset, StudySpec

if TYPE_CHECKING:
    from cdisc_pipe.adam.plan import LoadedPlan  # noqa: F401 (annotations)

__all__ = ["AdamResult", "build_adam", "read_sdtm", "conform_to_spec"]


@dataclass
class AdamResult:
    """What the ADaM stage produced: frames by dataset name, and findings (records kept)."""

    datasets: dict[str, pd.DataFrame]
    findings: list[Finding] = field(default_factory=list)


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


def _skipped(plans: dict[str, LoadedPlan], frames: dict[str, pd.DataFrame]) -> tuple[set[str], list[Finding]]:
    """Plans skipped because an SDTM dataset they list in ``skip_if_missing`` is absent, and the
    plans that read a skipped dataset in turn; a Notice for each."""
    skipped: dict[str, str] = {}
    for name, plan in plans.items():
        gone = [d for d in plan.skip_if_missing if d not in frames]
        if gone and name != "ADSL":
            skipped[name] = f"{name} not built: SDTM input missing: {', '.join(gone)}"
    changed = True
    while changed:
        changed = False
        for name, plan in plans.items():
            if name in skipped:
                continue
            reads = [d for d in plan.sources() if d in skipped]
            if reads:
                skipped[name] = f"{name} not built: needs {', '.join(reads)}, which is not built"
                changed = True
    findings = [Finding("ADAM.SKIPPED", "Notice", msg, dataset=name) for name, msg in sorted(skipped.items())]
    return set(skipped), findings


def _check_inputs(plans: dict[str, LoadedPlan], frames: dict[str, pd.DataFrame]) -> None:
    """Every dataset and variable the plans read exists (in the SDTM, or written by the plan of an
    ADaM dataset of this run), before anything is derived: one InputError naming every gap."""
    gaps: dict[str, dict[str, set[str]]] = {}  # dataset -> {"*" or variable: readers}
    for name, plan in plans.items():
        needs = plan.needs()
        for ds in plan.sources():
            if ds in frames:
                have = set(frames[ds].columns)
            elif ds in plans and ds != name:
                have = {v for v in plans[ds].outputs() if not v.startswith("_")}
            else:
                gaps.setdefault(ds, {}).setdefault("*", set()).add(name)
                continue
            for var in needs.get(ds, []):
                if var not in have:
                    gaps.setdefault(ds, {}).setdefault(var, set()).add(name)
    problems = []
    for ds in sorted(gaps):
        readers = sorted({r for rs in gaps[ds].values() for r in rs})
        if "*" in gaps[ds]:
            problems.append(Problem(f"{ds.lower()}.xpt", f"SDTM dataset {ds} is missing; {', '.join(readers)} need(s) it",
                                    entry=ds, hint=f"Provide {ds.lower()}.xpt in the SDTM folder, or change the "
                                                   f"plan(s) of {', '.join(readers)}"))
            continue
        lacking = sorted(gaps[ds])
        if ds in plans:
            problems.append(Problem(str(plans[ds].path), f"{ds} does not write {', '.join(lacking)}; "
                                                          f"{', '.join(readers)} read(s) them",
                                    entry=ds, column=", ".join(lacking)))
        else:
            problems.append(Problem(f"{ds.lower()}.xpt", f"SDTM dataset {ds} lacks {', '.join(lacking)}; "
                                                         f"{', '.join(readers)} need(s) them",
                                    entry=ds, column=", ".join(lacking),
                                    hint="Provide the variables in the SDTM, or change the plans that read them"))
    if problems:
        raise InputError(problems, stage="adam")


def _dependency_order(plans: dict[str, LoadedPlan]) -> list[str]:
    """ADSL first, then each plan once the ADaM datasets it reads are built (ties alphabetical)."""
    deps = {n: [d for d in p.sources() if d in plans and d != n] for n, p in plans.items()}
    done = ["ADSL"] if "ADSL" in plans else []
    pending = sorted(n for n in plans if n not in done)
    while pending:
        ready = [n for n in pending if all(d in done for d in deps[n])]
        if not ready:
            raise InputError([Problem(str(plans[n].path), f"{n} cannot be built: it reads "
                                      f"{', '.join(d for d in deps[n] if d not in done)}, which read(s) it in turn",
                                      entry=n) for n in pending], stage="adam")
        done.append(ready[0])
        pending.remove(ready[0])
    return done


def build_adam(sdtm: dict[str, pd.DataFrame], spec: StudySpec, settings_dir: Path,
               plans_dir: Path | None = None, cutoff: str | None = None, consume: bool = False) -> AdamResult:
    """Build every ADaM dataset of ``spec`` from its derivation plan, ADSL first.

    Plans are ``<specs>/plans/<name>.yaml`` (``plans_dir``, default the ``plans`` folder beside
    ``settings_dir``; docs/ADAM.md).  A dataset with a spec and no plan is an InputError, never
    dropped.  Raises InputError (before deriving anything) when plans are invalid or their inputs
    are missing; a plan whose ``skip_if_missing`` input is absent is skipped with a Notice.
    Findings collect data problems and skipped datasets.

    ``cutoff`` (``YYYY-MM-DD``, default the SDTM package's TS DCUTDTC): every date imputed from a
    --DTC after it is missing for the derivations (last known alive, censoring, ADT/ADY ...), while
    the --DTC copied from SDTM keeps the collected value (:mod:`cdisc_pipe.cutoff`).

    ``consume`` (the caller needs the SDTM frames no more): ``sdtm`` is emptied once the inputs
    are made from it, and each process lets an SDTM dataset go as soon as no plan it has still to
    derive may read it (:meth:`~cdisc_pipe.adam.plan.LoadedPlan.steps_may_read`; nothing with a
    study verb), a plan's source as soon as the plan has taken its records from it: the variables
    it does not take are freed while its steps run (5,000 subjects: 0.45 GB less at the peak).
    The datasets and findings are the same either way.
    """
    from cdisc_pipe import cutoff as _cutoff

    if cutoff is None:
        cutoff = _cutoff.from_ts(sdtm.get("TS", sdtm.get("ts")))
    with _cutoff.in_force(cutoff):
        return _build_adam(sdtm, spec, settings_dir, plans_dir, consume)


def _build_adam(sdtm: dict[str, pd.DataFrame], spec: StudySpec, settings_dir: Path,
                plans_dir: Path | None = None, consume: bool = False) -> AdamResult:
    from cdisc_pipe.adam.plan import load_plans, plans_dir_for, run_plan

    plans_dir = Path(plans_dir) if plans_dir is not None else plans_dir_for(settings_dir)
    if "ADSL" not in spec.datasets:
        raise InputError(Problem("specs/adam/adsl.yaml", "no ADSL spec", hint="ADaM needs specs/adam/adsl.yaml"), stage="adam")
    plans = load_plans(plans_dir, spec)
    unplanned = [d.name for d in spec.by_purpose("Analysis") if d.name not in plans]
    if unplanned:
        raise InputError([Problem(f"specs/adam/{n.lower()}.yaml", f"{n} has a spec but no derivation plan", entry=n,
                                  hint=f"Write {plans_dir / (n.lower() + '.yaml')} (docs/ADAM.md, "
                                       "'Derivation plans'), or remove the spec")
                          for n in unplanned], stage="adam")
    frames = {name.upper(): convert_blanks_to_na(df) for name, df in sdtm.items()}
    if consume:
        sdtm.clear()
    skipped, findings = _skipped(plans, frames)
    active = {n: p for n, p in plans.items() if n not in skipped}
    _check_inputs(active, frames)
    order = _dependency_order(active)
    built: dict[str, tuple[pd.DataFrame, list[Finding]]] = {}
    reads = _datasets_read(active) if consume else None
    todo: list[str] = list(order)  # the plans still to derive in this process (when reads)

    def derive(names: list[str]) -> dict[str, tuple[pd.DataFrame, list[Finding]]]:
        """The datasets ``names`` (in dependency order), each from the SDTM and the ADaM datasets
        built before it."""
        own: dict[str, tuple[pd.DataFrame, list[Finding]]] = {}
        for name in names:
            adam = {n: df for n, (df, _) in {**built, **own}.items()}
            release = False
            if reads is not None:  # SDTM datasets no later plan of this process may read: let go
                todo.remove(name)
                later = set().union(*(reads[n] for n in todo))
                for gone in [d for d in frames if d not in later and d not in reads[name]]:
                    del frames[gone]
                source = active[name].source.dataset.upper() if active[name].source else None
                release = source in frames and source not in later and source not in active[name].steps_may_read()
            inputs = {**frames, **adam}
            if release:  # run_plan lets it go once the plan's records are taken from it
                del frames[source]
            df, found = run_plan(active[name], inputs, release_source=release)
            del inputs
            df, conformed = conform_to_spec(df, spec.dataset(name))
            own[name] = (df, found + conformed)
        return own

    # ADSL (and what it reads) first; then the groups of datasets that read none of each other's,
    # about half of them (by the records of the SDTM dataset each plan starts from) derived in a
    # second process (cdisc_pipe.parallel)
    first, groups = _independent_groups(order, active)
    weight = {g[0]: sum(len(frames.get(active[n].source.dataset.upper(), ())) for n in g if active[n].source)
              for g in groups}  # before the first datasets are derived: frames may go then
    built.update(derive(first))
    by_first = {g[0]: g for g in groups}
    def only(keys: list[str]) -> None:  # in each process, the plans it derives
        todo[:] = [n for key in keys for n in by_first[key]]

    for part in map_shared(lambda key: derive(by_first[key]), list(weight.items()),
                           before=only if reads is not None else None).values():
        built.update(part)
    datasets: dict[str, pd.DataFrame] = {}
    for name in order:  # findings in dependency order, whichever process derived the dataset
        datasets[name], found = built[name]
        findings += found
    return AdamResult(datasets=datasets, findings=findings)


def _datasets_read(plans: dict[str, LoadedPlan]) -> dict[str, set[str]] | None:
    """Per plan, every dataset it may read (upper case): its source and what its steps may read
    (:meth:`~cdisc_pipe.adam.plan.LoadedPlan.steps_may_read`); None when a step calls a study
    verb (it may read any dataset)."""
    out = {}
    for name, p in plans.items():
        steps = p.steps_may_read()
        if steps is None:
            return None
        out[name] = steps | ({p.source.dataset.upper()} if p.source else set())
    return out


def _independent_groups(order: list[str], plans: dict[str, LoadedPlan]) -> tuple[list[str], list[list[str]]]:
    """``order`` (dependency order) split into the datasets built first (ADSL and what it reads)
    and groups of the others that read no dataset of another group (each in ``order``), ordered by
    their first dataset's position."""
    deps = {n: {d for d in plans[n].sources() if d in plans and d != n} for n in order}
    first: list[str] = []
    if "ADSL" in plans:
        need, stack = set(), ["ADSL"]
        while stack:
            n = stack.pop()
            if n not in need:
                need.add(n)
                stack += deps[n]
        first = [n for n in order if n in need]
    rest = [n for n in order if n not in first]
    group = {n: n for n in rest}  # union-find over "reads"

    def root(n: str) -> str:
        while group[n] != n:
            n = group[n]
        return n
    for n in rest:
        for d in deps[n]:
            if d in group:
                group[root(d)] = root(n)
    groups: dict[str, list[str]] = {}
    for n in rest:
        groups.setdefault(root(n), []).append(n)
    return first, sorted(groups.values(), key=lambda g: order.index(g[0]))
