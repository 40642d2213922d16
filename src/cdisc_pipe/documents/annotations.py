"""What each raw field becomes in SDTM, in the words of an annotated CRF, read from the mappings.

A pure function of the mappings, the spec and the raw data dictionary: :func:`field_annotations`
walks every rule of every ``mappings/<dataset>.yaml`` and says, for each raw field it reads, which
SDTM variable(s) it fills and under which condition, following the CDISC/FDA aCRF conventions:

- a field copied, decoded, parsed as a date or a number: the variable name (``AETERM``, ``AESTDTC``);
- a field read by a conditional rule: ``DSTERM when DCSREAS = 'OTHER' and DCSREASO is not blank``;
  a field a condition tests to set a constant: ``ARMNRS = 'SCREEN FAILURE' when ELIGYN = 'N'``;
- a field a source's ``where`` tests: ``when EXYN = 'Y' then EX`` (records of that dataset exist
  only when it holds);
- a supplemental qualifier: ``SUPPAE.QVAL when QNAM = 'AEDLT'``;
- a result of a findings form: ``LBORRES when LBTESTCD = 'WBC'`` (wide form, one test per field
  group), or ``LBORRES when LBTESTCD in (ALT, AST, ...)`` (long form, the test code collected);
- the subject and site fields: ``USUBJID`` (built from them), ``SUBJID``/``SITEID`` where mapped;
  the visit field: ``VISIT`` (``VISITNUM`` from TV);
- a field no rule reads: ``[NOT SUBMITTED]``, with the reason the mapping's ``not_submitted`` gives,
  or ``form not mapped to SDTM`` for a form no mapping reads.

Each annotation also carries its *targets* - ``(dataset, variable, conditions)`` - so that the
pages where it lands can be given to define.xml (:mod:`cdisc_pipe.documents.pages`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import pandas as pd

from cdisc_pipe.sdtm.algorithms import codelist_lookup
from cdisc_pipe.sdtm.mapping import Condition, DatasetMapping, Mappings, Rule
from cdisc_pipe.spec.model import StudySpec

NOT_SUBMITTED = "[NOT SUBMITTED]"
FORM_NOT_MAPPED = "form not mapped to SDTM"
EDC_FIELD = "EDC metadata, not a question of the form"
# Roles whose values depend on the test of a findings record (annotated "... when --TESTCD = ...").
_PER_TEST_ROLES = ("Result Qualifier", "Variable Qualifier")
_MAX_CODES_IN_TEXT = 24


@dataclass(frozen=True, order=True)
class Target:
    """An SDTM variable an annotation stands for; ``where`` = ((variable, (values...)), ...) narrows it
    to value-level records (``LBORRES`` where ``LBTESTCD`` is ``WBC``).  A value ending in ``*`` is a
    prefix (``AETERM*`` = the numbered SUPP qualifiers of a split text)."""

    dataset: str
    variable: str
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Annotation:
    """One annotation box: its text, the domain whose colour it takes (the parent domain for a
    SUPP-- qualifier; empty for not submitted) and the variables it stands for."""

    text: str
    domain: str
    targets: tuple[Target, ...] = ()
    not_submitted: bool = False


@dataclass
class FormAnnotations:
    """A form's annotations: per field (dictionary order), the datasets it feeds (domain boxes, in
    order of first appearance) and the constants its records get (``DSCAT = 'PROTOCOL MILESTONE'``)."""

    form: str
    fields: dict[str, list[Annotation]] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    constants: list[Annotation] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # record-level selection: "when ... then DS (reason)"


def quote(value: object) -> str:
    return f"'{value}'"


def condition_text(c: Condition) -> str:
    """``{field: EXYN, op: eq, value: Y}`` -> ``EXYN = 'Y'`` (joined forms' prefixes dropped)."""
    name = c.field.split(".", 1)[-1]
    ops = {"eq": "=", "ne": "^=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
    if c.op in ops:
        return f"{name} {ops[c.op]} {quote(c.value)}"
    if c.op in ("in", "notin"):
        values = ", ".join(quote(v) for v in c.value or [])
        return f"{name} {'in' if c.op == 'in' else 'not in'} ({values})"
    if c.op == "blank":
        return f"{name} is blank"
    if c.op == "notblank":
        return f"{name} is not blank"
    return f"{name} matches {quote(c.value)}"


def conditions_text(conditions: Iterable[Condition]) -> str:
    return " and ".join(condition_text(c) for c in conditions)


def _split_field(name: str, form: str) -> tuple[str, str]:
    """``dm.SEX`` read on the enrol source -> (``dm``, ``SEX``); ``SEX`` -> (form, ``SEX``)."""
    if "." in name:
        f, fld = name.split(".", 1)
        return f, fld
    return form, name


def _constant(rule: Rule) -> str | None:
    if rule.value is None:
        return None
    v = rule.value
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


class _Collector:
    """Accumulates annotations per (form, field) without duplicates, in the order found."""

    def __init__(self, spec: StudySpec, dictionary: pd.DataFrame, synonyms: dict[str, dict[str, str]]):
        self.spec = spec
        self.synonyms = synonyms
        self.forms: dict[str, FormAnnotations] = {}
        self.fields: dict[str, list[str]] = {}
        self.codes: dict[tuple[str, str], list[str]] = {}
        for row in dictionary.itertuples(index=False):
            form, fld = str(row.form), str(row.field)
            self.fields.setdefault(form, [])
            if fld not in self.fields[form]:
                self.fields[form].append(fld)
            codes = getattr(row, "codes", None)
            if isinstance(codes, str) and codes.strip():
                self.codes[(form, fld)] = [p.split("=", 1)[0].strip() for p in codes.split("|") if p.strip()]
        for form, flds in self.fields.items():
            self.forms[form] = FormAnnotations(form=form, fields={f: [] for f in flds})

    def has(self, form: str, fld: str) -> bool:
        return fld in self.fields.get(form, [])

    def add(self, form: str, fld: str, ann: Annotation) -> None:
        if not self.has(form, fld):
            return  # a field the dictionary does not list (checked elsewhere when data are read)
        slot = self.forms[form].fields[fld]
        for i, old in enumerate(slot):
            if old.text == ann.text:  # one box for the same words (USUBJID of DM and of DS)
                if set(ann.targets) - set(old.targets):
                    slot[i] = Annotation(old.text, old.domain, tuple(sorted(set(old.targets) | set(ann.targets))))
                return
        slot.append(ann)

    def uses(self, form: str, dataset: str) -> None:
        fa = self.forms.get(form)
        if fa is not None and dataset not in fa.datasets:
            fa.datasets.append(dataset)

    def constant(self, form: str, ann: Annotation) -> None:
        fa = self.forms.get(form)
        if fa is not None and all(a.text != ann.text for a in fa.constants):
            fa.constants.append(ann)

    def translate(self, form: str, fld: str, rule: Rule) -> list[str]:
        """The submission values an assign rule gives the codes the dictionary lists for a field
        (codes it cannot translate are kept as collected, as the mapping engine keeps them)."""
        codes = self.codes.get((form, fld), [])
        if rule.assign is None:
            return codes
        cl = self.spec.codelists.get(rule.assign.codelist) if rule.assign.codelist else None
        syn = dict(self.synonyms.get(rule.assign.synonyms, {})) if rule.assign.synonyms else {}
        syn.update(rule.assign.map)
        look = codelist_lookup(cl, syn)
        return [look.get(c.strip().upper(), c) for c in codes]


def _domain_of(dataset: str, spec: StudySpec) -> str:
    """The colour-giving domain: SUPPAE -> AE; otherwise the dataset itself."""
    if dataset.startswith("SUPP") and dataset[4:] in spec.datasets:
        return dataset[4:]
    return dataset


def _testcd_variable(m: DatasetMapping, spec: StudySpec) -> str | None:
    if m.results is not None:
        return m.results.testcd
    ds = spec.datasets.get(m.dataset)
    if ds is not None and ds.domain and f"{ds.domain}TESTCD" in ds.variable_names:
        return f"{ds.domain}TESTCD"
    return None


def _roles(m: DatasetMapping, spec: StudySpec) -> dict[str, str | None]:
    ds = spec.datasets.get(m.dataset)
    return {v.name: v.role for v in ds.variables} if ds is not None else {}


def _annotate_rule(col: _Collector, form: str, dataset: str, variable: str, rule: Rule,
                   test: tuple[str, tuple[str, ...]] | None, when: list[Condition] | None = None) -> None:
    """Annotations for one target variable's rule on one source form."""
    where = (test,) if test else ()
    suffix_parts = []
    if test:
        codes = test[1]
        if len(codes) == 1:
            suffix_parts.append(f"{test[0]} = {quote(codes[0])}")
        elif len(codes) <= _MAX_CODES_IN_TEXT:
            suffix_parts.append(f"{test[0]} in ({', '.join(codes)})")
        else:
            suffix_parts.append(f"{test[0]} in ({', '.join(codes[:_MAX_CODES_IN_TEXT])}, ...)")
    if when:
        suffix_parts.append(conditions_text(when))
    suffix = f" when {' and '.join(suffix_parts)}" if suffix_parts else ""
    target = Target(dataset, variable, where)
    domain = _domain_of(dataset, col.spec)
    if rule.when is not None:
        for case in rule.when:
            _annotate_rule(col, form, dataset, variable, case.then, test, (when or []) + list(case.if_))
        other = rule.else_
        if other is not None and other.when is None and _constant(other) not in (None, ""):
            # "EXDOSE = '0' otherwise": on the fields the branches test, not a constant of every record
            text = f"{variable} = {quote(_constant(other))} otherwise{suffix}"
            for c in (c for case in rule.when for c in case.if_):
                f, fld = _split_field(c.field, form)
                col.add(f, fld, Annotation(text, domain, (target,)))
        elif other is not None:
            _annotate_rule(col, form, dataset, variable, other, test, when)
        return
    const = _constant(rule)
    if const == "":
        return  # a rule that leaves the variable empty on this form says nothing about a field
    if const is not None:
        # A constant set under conditions: the fields tested carry "VAR = 'X' when ...".
        if when:
            text = f"{variable} = {quote(const)}{suffix}"
            for c in when:
                f, fld = _split_field(c.field, form)
                col.add(f, fld, Annotation(text, domain, (target,)))
        else:
            col.constant(form, Annotation(f"{variable} = {quote(const)}{suffix}", domain, (target,)))
        return
    text = f"{variable}{suffix}"
    for name in rule.direct_fields():
        f, fld = _split_field(name, form)
        col.add(f, fld, Annotation(text, domain, (target,)))


def _supp_text(dataset: str, qnam: str) -> str:
    return f"SUPP{dataset}.QVAL when QNAM = {quote(qnam)}"


def _annotate_mapping(col: _Collector, m: DatasetMapping) -> None:
    spec = col.spec
    roles = _roles(m, spec)
    testcd = _testcd_variable(m, spec)
    ds_spec = spec.datasets.get(m.dataset)
    names = set(ds_spec.variable_names) if ds_spec is not None else set()
    for src in m.sources:
        form = src.form
        col.uses(form, m.dataset)
        for j in src.join:
            col.uses(j.form, m.dataset)
        rules = {**m.variables, **src.variables}
        # The test a findings source is about: a constant (RSTESTCD = 'OVRLRESP') or a collected code.
        test: tuple[str, tuple[str, ...]] | None = None
        if testcd and testcd in rules:
            r = rules[testcd]
            const = _constant(r)
            if const is not None:
                test = (testcd, (const,))
            elif r.assign is not None or r.copy_:
                fld = r.assign.field if r.assign is not None else r.copy_
                f, name = _split_field(fld, form)
                codes = tuple(dict.fromkeys(col.translate(f, name, r)))
                if codes:
                    test = (testcd, codes)
        for variable, rule in rules.items():
            if m.visit is not None and variable == m.visit.variable:
                continue  # annotated below with VISITNUM
            per_test = test if (test and variable != testcd and roles.get(variable) in _PER_TEST_ROLES) else None
            _annotate_rule(col, form, m.dataset, variable, rule, per_test)
        if src.transpose is not None:
            for t in src.transpose.tests:
                code = t.set.get(testcd) if testcd else None
                ttest = (testcd, (str(code),)) if code is not None else None
                for variable, rule in t.variables.items():
                    _annotate_rule(col, form, m.dataset, variable, rule, ttest)
        if src.where:
            text = f"when {conditions_text(src.where)} then {m.dataset}"
            for c in src.where:
                f, fld = _split_field(c.field, form)
                col.add(f, fld, Annotation(text, _domain_of(m.dataset, spec)))
            fa = col.forms.get(form)
            if fa is not None and src.reason:
                fa.reasons.append(f"{text}: otherwise {src.reason}")
        # identifiers: USUBJID from the subject (and site) field; VISIT from the visit field
        usubjid = Annotation("USUBJID", _domain_of(m.dataset, spec),
                             (Target(m.dataset, "USUBJID"),) if "USUBJID" in names else ())
        for f in [form] + [j.form for j in src.join]:  # joined forms are matched by subject
            col.add(f, m.subject_field, usubjid)
            if m.site_field:
                col.add(f, m.site_field, usubjid)
    if m.visit is not None:
        vis = m.visit.variable
        extra = (Target(m.dataset, "VISITNUM"),) if "VISITNUM" in names else ()
        for src in m.sources:
            rule = {**m.variables, **src.variables}.get(vis)
            if rule is not None:
                for name in rule.direct_fields():
                    f, fld = _split_field(name, src.form)
                    col.add(f, fld, Annotation(f"{vis} / VISITNUM" if extra else vis, _domain_of(m.dataset, spec),
                                               (Target(m.dataset, vis),) + extra))
    supp_ds = f"SUPP{m.dataset}"
    for s in m.supp:
        target = Target(supp_ds, "QVAL", (("QNAM", (s.qnam,)),))
        text = _supp_text(m.dataset, s.qnam)
        forms = [s.form] if s.form else [src.form for src in m.sources]
        for form in forms:
            for name in sorted(s.rule.fields()):
                f, fld = _split_field(name, form)
                col.add(f, fld, Annotation(text, m.dataset, (target,)))
    for sp in m.split:
        if sp.into == "supp":
            target = Target(supp_ds, "QVAL", (("QNAM", (f"{sp.variable}*",)),))
            text = f"SUPP{m.dataset}.QVAL when QNAM = '{sp.variable}1', '{sp.variable}2', ... (text over 200 characters)"
        else:
            target = Target(m.dataset, f"{sp.variable}1")
            text = f"{sp.variable}1, {sp.variable}2, ... (text over 200 characters)"
        for src in m.sources:
            rule = {**m.variables, **src.variables}.get(sp.variable)
            for name in rule.direct_fields() if rule is not None else []:
                f, fld = _split_field(name, src.form)
                col.add(f, fld, Annotation(text, m.dataset, (target,)))


def field_annotations(dictionary: pd.DataFrame, mappings: Mappings, spec: StudySpec,
                      not_submitted: dict[tuple[str, str], str] | None = None) -> dict[str, FormAnnotations]:
    """Every form of the dictionary with every one of its fields annotated, in dictionary order.

    Args:
        dictionary: the raw export's data dictionary (``form``, ``field``, ``codes``, ...).
        mappings: the loaded mappings (:func:`cdisc_pipe.sdtm.mapping.load_mappings`).
        spec: the study spec (dataset roles, codelists, SUPP-- datasets).
        not_submitted: ``(form, field) -> reason`` for fields the mappings say are not submitted
            (default: read from the mappings' ``not_submitted`` entries).
    """
    col = _Collector(spec, dictionary, mappings.synonyms)
    for name in sorted(mappings.datasets):
        _annotate_mapping(col, mappings.datasets[name])
    reasons = dict(not_submitted if not_submitted is not None else not_submitted_reasons(mappings, dictionary))
    # The export's own structural columns (docs/RAW.md: "EDC metadata" in the dictionary's note)
    notes = dictionary["note"] if "note" in dictionary else pd.Series("", index=dictionary.index)
    edc = {(str(f), str(x)) for f, x, n in zip(dictionary["form"], dictionary["field"], notes)
           if isinstance(n, str) and n.strip().upper().startswith("EDC METADATA")}
    for form, fa in col.forms.items():
        mapped = bool(fa.datasets)
        for fld, anns in fa.fields.items():
            if not anns:
                reason = reasons.get((form, fld)) or (None if mapped else FORM_NOT_MAPPED) or \
                    (EDC_FIELD if (form, fld) in edc else None)
                text = NOT_SUBMITTED + (f" {reason}" if reason else "")
                anns.append(Annotation(text, "", (), not_submitted=True))
    return col.forms


def not_submitted_reasons(mappings: Mappings, dictionary: pd.DataFrame) -> dict[tuple[str, str], str]:
    """``(form, field) -> reason`` from each mapping's ``not_submitted`` (``FIELD`` = that field on
    every source form of the mapping that has it; ``form.FIELD`` = on that form only)."""
    present = set(zip(dictionary["form"].astype(str), dictionary["field"].astype(str)))
    out: dict[tuple[str, str], str] = {}
    for name in sorted(mappings.datasets):
        m = mappings.datasets[name]
        forms = [s.form for s in m.sources] + [j.form for s in m.sources for j in s.join]
        for key, reason in m.not_submitted.items():
            if "." in key:
                f, fld = key.split(".", 1)
                out.setdefault((f, fld), reason)
            else:
                for f in forms:
                    if (f, key) in present:
                        out.setdefault((f, key), reason)
    return out


def not_submitted_problems(mappings: Mappings, dictionary: pd.DataFrame,
                           annotated: dict[str, FormAnnotations]) -> list[str]:
    """``not_submitted`` entries that say nothing true: a field no source form of the mapping has,
    or a field a rule does read (its annotations win; the entry should go)."""
    present = set(zip(dictionary["form"].astype(str), dictionary["field"].astype(str)))
    out = []
    for name in sorted(mappings.datasets):
        m = mappings.datasets[name]
        forms = [s.form for s in m.sources] + [j.form for s in m.sources for j in s.join]
        for key in m.not_submitted:
            where = [tuple(key.split(".", 1))] if "." in key else [(f, key) for f in forms]
            hits = [w for w in where if w in present]
            file = mappings.files.get(name, f"{name.lower()}.yaml")
            if not hits:
                out.append(f"{file}, not_submitted.{key}: no such field on the mapping's forms")
            for f, fld in hits:
                if any(not a.not_submitted for a in annotated.get(f, FormAnnotations(f)).fields.get(fld, [])):
                    out.append(f"{file}, not_submitted.{key}: {f}.{fld} is read by a rule of the mappings")
    return out
