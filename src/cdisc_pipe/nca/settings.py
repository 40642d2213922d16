"""NCA settings: the study's choices for the non-compartmental analysis (``specs/settings/nca.yaml``).

The settings are data, parsed by :class:`NcaSettings` (pydantic v2, unknown keys are errors) and
loaded by :func:`load_nca_settings`, which reports every problem with the file and the entry it is
in.  Defaults follow PKNCA's documented defaults (``auc.method = "lin up/log down"``,
``conc.blq = list(first = "keep", middle = "drop", last = "keep")`` with BLQ encoded as 0,
``start_conc0`` style imputation of a zero concentration at dose time, ``min.hl.points = 3``,
``adj.r.squared.factor = 1e-4``, ``allow.tmax.in.half.life = FALSE``) and neutral study values:
every analyte (PCTESTCD) and specimen (PCSPEC) of PC with every parameter, the concentration unit
of the PC results.  A study's own choices (its analyte, specimens, units, route, cut-off events,
wording) live in its ``specs/settings/nca.yaml``; :meth:`NcaSettings.resolve` fills the neutral
values from the PC data at run time.

Parameters are named by their CDISC PPTESTCD; the PPTEST, the computation and the unit kind come
from :mod:`cdisc_pipe.nca.catalog` (CT 2025-03-28).  Times (intervals, windows, tau, lambda-z
windows) are in ``units.time`` unless the key says ``_days``.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.nca import units as U
from cdisc_pipe.nca.catalog import (
    AUC_QUANTITIES,
    BY_CODE,
    QUANTITIES,
    QUANTITY_UNIT,
    ROUTES,
    TAU_QUANTITIES,
)

AucMethod = Literal["lin up/log down", "linear"]
TimeUnit = Literal["min", "h", "day", "week"]
Route = Literal["extravascular", "intravascular_bolus", "intravascular_infusion"]
C0Method = Literal["c0", "logslope", "c1", "cmin", "set0"]
GROUP_FIELDS = ("PCSPEC", "PCTESTCD", "PCTPTREF", "PROFILE", "RFTDTC")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")

__all__ = ["AUC_QUANTITIES", "QUANTITY_UNIT", "NcaSettings", "load_nca_settings"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _fmt(x: float) -> str:
    return f"{x:g}"


class BlqRules(_Model):
    """How BLQ samples are used, by position in the profile (PKNCA ``conc.blq``).

    ``leading``: BLQ before the first quantifiable concentration; ``middle``: between two
    quantifiable concentrations; ``trailing``: after the last quantifiable concentration.
    ``zero`` keeps the sample with concentration 0, ``drop`` removes it from the profile (the PC
    record is then listed as excluded), ``half_lloq`` (middle only) uses PCLLOQ / 2.
    """

    leading: Literal["zero", "drop"] = "zero"
    middle: Literal["drop", "zero", "half_lloq"] = "drop"
    trailing: Literal["zero", "drop"] = "zero"
    # PCSTRESC value that marks a BLQ result (PCSTRESN is null on those records).
    stresc: str = Field(default="BLQ", min_length=1)


class TimeZero(_Model):
    """Where the profile's time-zero concentration comes from.

    The last pre-dose sample (actual time <= 0) taken at most ``predose_max_days`` days before the
    dose is placed at time 0 (a BLQ pre-dose sample counts as 0).  Without one, a concentration of
    0 is imputed at the dose time when ``impute_zero`` is true (PKNCA ``start_conc0``, e.g. a first
    dose with no drug in the body before it); otherwise AUCs are not calculated.  An IV bolus
    profile's time-zero concentration is C0 (``c0_methods``).
    """

    use_predose: bool = True
    predose_max_days: float = Field(default=7.0, ge=0)
    impute_zero: bool = True


class Interval(_Model):
    """A partial-AUC interval (AUCINT) since the reference dose, with its ISO 8601 labels.

    ``start`` / ``end`` are in ``units.time`` (default 0 and 28); ``start_days`` / ``end_days`` give
    them in days instead.  ``stint`` / ``enint`` (PPSTINT / PPENINT) default to the ISO 8601
    duration of start / end in ``units.time`` (e.g. ``P0D``, ``P28D``; ``PT0H``, ``PT24H``)."""

    start: float | None = Field(default=None, ge=0)
    end: float | None = Field(default=None, gt=0)
    start_days: float | None = Field(default=None, ge=0)
    end_days: float | None = Field(default=None, gt=0)
    stint: str | None = Field(default=None, pattern=r"^-?P")  # PPSTINT
    enint: str | None = Field(default=None, pattern=r"^-?P")  # PPENINT

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if self.start is not None and self.start_days is not None:
            raise ValueError("give start or start_days, not both")
        if self.end is not None and self.end_days is not None:
            raise ValueError("give end or end_days, not both")
        if (self.start_days is not None or self.end_days is not None) and (self.start is not None or self.end is not None):
            raise ValueError("give start/end (in units.time) or start_days/end_days, not a mix")
        if self.start_days is not None or self.end_days is not None:
            s, e = self.start_days or 0.0, self.end_days if self.end_days is not None else 28.0
            if e <= s:
                raise ValueError("end_days must be after start_days")
        else:
            s, e = self.start or 0.0, self.end if self.end is not None else 28.0
            if e <= s:
                raise ValueError("end must be after start")
        return self

    def bounds(self, days_to_unit: Fraction) -> tuple[float, float]:
        """(start, end) in the study's time unit."""
        if self.start_days is not None or self.end_days is not None:
            s = self.start_days or 0.0
            e = self.end_days if self.end_days is not None else 28.0
            return float(U.scale(s, days_to_unit)), float(U.scale(e, days_to_unit))
        return (self.start or 0.0), (self.end if self.end is not None else 28.0)

    def labels(self, unit: str, days_to_unit: Fraction) -> tuple[str, str]:
        """(PPSTINT, PPENINT)."""
        s, e = self.bounds(days_to_unit)
        pre, suf = U.TIME_ISO[unit]
        return (self.stint or f"{pre}{_fmt(s)}{suf}"), (self.enint or f"{pre}{_fmt(e)}{suf}")


class MinData(_Model):
    """Minimum-data rules; a parameter that fails one is reported as not calculated, with the reason."""

    # Quantifiable post-dose concentrations needed for the AUCs.
    auc_quantifiable_points: int = Field(default=3, ge=1)
    # AUCINT needs a sample (quantifiable or BLQ kept in the profile) within the interval end +/- this
    # (units.time; default 3), or end_window_days in days.
    end_window: float | None = Field(default=None, ge=0)
    end_window_days: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> MinData:
        if self.end_window is not None and self.end_window_days is not None:
            raise ValueError("give end_window or end_window_days, not both")
        return self

    def window(self, days_to_unit: Fraction) -> float:
        if self.end_window_days is not None:
            return float(U.scale(self.end_window_days, days_to_unit))
        return 3.0 if self.end_window is None else self.end_window


class Units(_Model):
    """Units of the computation and of the results (PPORRESU = PPSTRESU, CDISC PKUNIT terms).

    ``time``: the unit all times are computed in, from the ISO 8601 dates (min, h, day, week).
    ``conc``: the PP concentration unit (left out: the PCSTRESU of the analysed results); PC results
    in another unit are converted with the units table (``ng/mL`` = ``ug/L``, ...).  ``auc``
    (``<time>*<conc>``), ``aumc`` (``<time>2*<conc>``), ``clearance`` (``<volume>/<time>``) default to
    the derived units; ``dose`` is the unit doses are converted to (needed for clearance and volume),
    ``volume`` the volume unit of clearance and volume results.  Every result unit must be a PKUNIT
    term (C85494) or listed in ``extensions`` (sponsor-extended terms), else the run stops."""

    conc: str | None = None
    time: TimeUnit = "day"
    auc: str | None = None
    aumc: str | None = None
    dose: str | None = None
    volume: str = "L"
    clearance: str | None = None
    extensions: list[str] = Field(default_factory=list)

    def of(self, kind: str) -> str:
        """The label of a unit kind (no checks; :meth:`NcaSettings.result_units` checks)."""
        conc = self.conc or ""
        return {"conc": conc, "time": self.time, "auc": self.auc or f"{self.time}*{conc}",
                "aumc": self.aumc or f"{self.time}2*{conc}", "per_time": f"/{self.time}", "percent": "%",
                "volume": self.volume, "clearance": self.clearance or f"{self.volume}/{self.time}"}.get(kind, "")


class Parameter(_Model):
    """One PK parameter: its CDISC PPTESTCD; PPTEST and the computation come from the catalog.

    Written as a code (``CMAX``) or a mapping (``{testcd: CMAX, test: Max Conc, quantity: cmax}``;
    ``test`` and ``quantity`` must then match the catalog).  A code not in CDISC CT needs
    ``extended: true``, its ``test`` and its ``quantity``."""

    testcd: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    test: str = Field(min_length=1, max_length=40)
    quantity: str
    extended: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_catalog(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"testcd": data}
        if not isinstance(data, dict):
            return data
        code = data.get("testcd")
        entry = BY_CODE.get(code) if isinstance(code, str) else None
        if entry is None:
            return data
        out = dict(data)
        if entry.nci is None and not out.get("extended"):
            raise ValueError(f"{code} is not a CDISC PKPARMCD term (CT {U.CT_VERSION}): declare it with "
                             f"extended: true")
        if entry.nci is not None and out.get("extended"):
            raise ValueError(f"{code} is a CDISC PKPARMCD term ({entry.nci}): not an extension")
        if out.get("test") not in (None, entry.name):
            raise ValueError(f"PPTEST of {code} is {entry.name!r} in CDISC CT (PKPARM C85493), not {out['test']!r}")
        if out.get("quantity") not in (None, entry.quantity):
            raise ValueError(f"{code} computes {entry.quantity}, not {out['quantity']}")
        out.setdefault("test", entry.name)
        out.setdefault("quantity", entry.quantity)
        return out

    @model_validator(mode="after")
    def _known(self) -> Parameter:
        if self.quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {self.quantity!r} (known: {', '.join(QUANTITIES)})")
        if self.testcd not in BY_CODE and not self.extended:
            raise ValueError(f"{self.testcd} is not in the catalog of CDISC PPTESTCD terms: declare it with "
                             "extended: true")
        return self


class LambdaZRule(_Model):
    """Manual lambda-z points of the profiles it matches (PKNCA ``manually.selected.points`` /
    ``exclude_half.life``), with the reason (shown as a finding).

    The profile: ``usubjid`` and optionally ``pctestcd``, ``pcspec``, ``pcrftdtc`` (the reference
    dose), ``pctptref``.  ``points``: the PCSEQ of the points to fit (no automatic selection);
    ``start``/``end``: fit the points in this actual-time window (units.time); ``exclude``: PCSEQ
    left out of the automatic selection."""

    usubjid: str = Field(min_length=1)
    pctestcd: str | None = None
    pcspec: str | None = None
    pcrftdtc: str | None = None
    pctptref: str | None = None
    points: list[int] = Field(default_factory=list)
    start: float | None = None
    end: float | None = None
    exclude: list[int] = Field(default_factory=list)
    reason: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_kind(self) -> LambdaZRule:
        window = self.start is not None or self.end is not None
        if not (self.points or window or self.exclude):
            raise ValueError("give points, start/end or exclude")
        if self.points and window:
            raise ValueError("give points or start/end, not both")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("end must not be before start")
        return self

    @property
    def manual(self) -> bool:
        return bool(self.points) or self.start is not None or self.end is not None


class LambdaZ(_Model):
    """Terminal phase (PKNCA ``pk.calc.half.life``) and the acceptance thresholds.

    Log-linear least squares of ln(C) on t over the last n points after Tmax (Cmax excluded unless
    ``include_tmax``, PKNCA ``allow.tmax.in.half.life``), n >= ``min_points`` (``min.hl.points``),
    BLQ points excluded; the fit with the best adjusted R^2 is chosen, a fit within
    ``adj_r2_factor`` (``adj.r.squared.factor``) of the best with more points wins; lambda z must be
    > 0.  Thresholds (None = off) make the dependent parameters NOT DONE: ``min_r2adj``
    (``exclude_nca_min.hl.adj.r.squared``), ``min_span_ratio`` (``exclude_nca_span.ratio``),
    ``max_aucpext`` in % (``exclude_nca_max.aucinf.pext``)."""

    min_points: int = Field(default=3, ge=2)
    include_tmax: bool = False
    adj_r2_factor: float = Field(default=1e-4, gt=0, lt=1)
    min_r2adj: float | None = Field(default=0.8, gt=0, lt=1)
    min_span_ratio: float | None = Field(default=None, gt=0)
    max_aucpext: float | None = Field(default=20.0, gt=0, lt=100)
    manual: list[LambdaZRule] = Field(default_factory=list)


class MultipleDose(_Model):
    """Dosing-interval profiles (AUCTAU, CAVG, CTROUGH, CMIN): the interval [0, tau].

    ``tau`` in units.time; ``pctptref``: the PCTPTREF values of the profiles with this tau (empty:
    every profile).  ``window``: a sample within tau +/- window is the one at tau (CTROUGH), and
    AUCTAU needs a sample at or after tau - window.  ``ctrough``: the concentration at tau, the
    pre-dose sample, or at tau else pre-dose.  ``impute_zero``: impute 0 at the dose time when the
    profile has no pre-dose sample (false: at steady state there is drug before the dose)."""

    tau: float = Field(gt=0)
    pctptref: list[str] = Field(default_factory=list)
    window: float = Field(default=0.0, ge=0)
    ctrough: Literal["tau", "predose", "tau_or_predose"] = "tau_or_predose"
    impute_zero: bool = False
    stint: str | None = Field(default=None, pattern=r"^-?P")
    enint: str | None = Field(default=None, pattern=r"^-?P")


class DoseSource(_Model):
    """Where the doses come from (for clearance, volume and the infusion duration): records of an
    SDTM dataset (``dataset``, default EX) with the dose start (``dtc``), optional end (``endtc``),
    amount and unit; ``variable``/``values`` select records (e.g. EXTRT).  A profile's dose is the
    sum of the subject's doses starting exactly at its reference time (PCRFTDTC)."""

    dataset: str = Field(default="EX", pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    dtc: str = Field(default="EXSTDTC", pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    endtc: str | None = Field(default="EXENDTC", pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    amount: str = Field(default="EXDOSE", pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    unit: str = Field(default="EXDOSU", pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    variable: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    values: list[str] = Field(default_factory=list)


class SupppcQnams(_Model):
    """SUPPPC qualifiers put on PC records excluded from the NCA."""

    flag: str = Field(default="NCAXFL", pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    flag_label: str = Field(default="Excluded from NCA Flag", max_length=40)
    reason: str = Field(default="NCAXRS", pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    reason_label: str = Field(default="Reason Excluded from NCA", max_length=40)


class CutoffEvent(_Model):
    """SDTM records that end a subject's NCA window: PC samples on or after the earliest such date
    are excluded (for example the start of a subsequent therapy, after which the concentrations no
    longer describe the study treatment).  ``variable``/``values`` select the records; ``dtc`` is
    their date variable; ``reason`` is the exclusion reason written to SUPPPC."""

    dataset: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    variable: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    values: list[str] = Field(min_length=1)
    dtc: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    reason: str = Field(default="taken on or after a cut-off event of the NCA settings", max_length=200)


def _default_parameters() -> list[Parameter]:
    return [Parameter(testcd=c) for c in ("CMAX", "TMAX", "AUCINT", "AUCLST", "CLST", "TLST")]


class NcaSettings(_Model):
    """All NCA settings of a study.  Every field has the documented default."""

    analytes: list[str] = Field(default_factory=list)  # PCTESTCD values analysed; empty = every one in PC
    # What actual time is measured from, in the method text (define.xml): "time since <this>".
    reference_event: str = Field(default="the reference dose", min_length=1, max_length=80)
    # Administration: decides the route-specific codes (CLFO/CLO, VZFO/VZO, MRT...), C0 and the
    # IV-bolus time-zero concentration; null = not stated (route-specific parameters then imply it).
    route: Route | None = None
    auc_method: AucMethod = "lin up/log down"
    blq: BlqRules = Field(default_factory=BlqRules)
    time_zero: TimeZero = Field(default_factory=TimeZero)
    # IV bolus: how C0 is obtained, first method giving a value wins (PKNCA pk.calc.c0 ``method``)
    c0_methods: list[C0Method] = Field(default_factory=lambda: ["c0", "logslope", "c1", "cmin", "set0"], min_length=1)
    # AUCINT interval(s): one mapping or a list of them (one AUCINT record per interval)
    interval: list[Interval] = Field(default_factory=lambda: [Interval()], min_length=1)
    min_data: MinData = Field(default_factory=MinData)
    lambda_z: LambdaZ = Field(default_factory=LambdaZ)
    multiple_dose: MultipleDose | None = None
    doses: DoseSource | None = None
    units: Units = Field(default_factory=Units)
    parameters: list[Parameter] = Field(default_factory=_default_parameters)
    # PCSPEC -> PPTESTCD values reported for that specimen (in this order).  A specimen not listed
    # is not analysed (its records are listed as excluded).  Empty: every PCSPEC of the analysed
    # records (sorted), each with every parameter in ``parameters`` order.
    specimens: dict[str, list[str]] = Field(default_factory=dict)
    # PCGRPID / PPGRPID of a profile: "spec" (the specimen, ARCHITECTURE.md), "testcd_spec"
    # ("<PCTESTCD>-<PCSPEC>") or a template of {PCSPEC} {PCTESTCD} {PCTPTREF} {PROFILE} {RFTDTC}
    # ({PROFILE}: 1, 2, ... by reference time within subject x analyte x specimen); it must be
    # unique per profile within a subject.
    group_id: str = Field(default="spec", min_length=1, max_length=80)
    significant_digits: int = Field(default=6, ge=1, le=15)
    # Keep PPORRESU/PPSTRESU on NOT DONE records (the parameter's unit), so each PPTESTCD has one
    # unit throughout (validation rule FND.STRESU.CONSISTENT; ADPP PARAM carries the unit).
    units_when_not_done: bool = True
    supppc: SupppcQnams = Field(default_factory=SupppcQnams)
    cutoff_events: list[CutoffEvent] = Field(default_factory=list)

    @field_validator("interval", mode="before")
    @classmethod
    def _one_or_more(cls, v: Any) -> Any:
        return [v] if isinstance(v, (dict, Interval)) else v

    @model_validator(mode="after")
    def _consistent(self) -> NcaSettings:
        codes = [p.testcd for p in self.parameters]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"duplicate parameter testcd: {', '.join(dupes)}")
        for spec, wanted in self.specimens.items():
            unknown = [c for c in wanted if c not in codes]
            if unknown:
                raise ValueError(f"specimens[{spec}] names parameters not in parameters: {', '.join(unknown)}")
        template = self.group_template
        bad = sorted(set(_PLACEHOLDER.findall(template)) - set(GROUP_FIELDS))
        if bad or not _PLACEHOLDER.search(template):
            raise ValueError(f"group_id must be spec, testcd_spec or a template of {{{'}, {'.join(GROUP_FIELDS)}}}"
                             + (f" (unknown: {', '.join(bad)})" if bad else ""))
        if len(self.analytes) > 1 and "{PCTESTCD}" not in template:
            raise ValueError("several analytes need group_id: testcd_spec (PCGRPID must be unique per profile)")
        routes = set(ROUTES) if self.route is None else {self.route}
        for p in self.parameters:
            entry = BY_CODE.get(p.testcd)
            if entry is not None:
                allowed = routes & set(entry.routes)
                if not allowed:
                    raise ValueError(f"{p.testcd} is defined for {' or '.join(entry.routes)}, not for route "
                                     f"{self.route or ', '.join(sorted(routes))} (give the route-specific code)")
                routes = allowed
        if self.multiple_dose is None:
            tau = [p.testcd for p in self.parameters if p.quantity in TAU_QUANTITIES]
            if tau:
                raise ValueError(f"{', '.join(tau)} need multiple_dose (tau)")
        return self

    # ------------------------------------------------------------------ derived values
    @property
    def group_template(self) -> str:
        return {"spec": "{PCSPEC}", "testcd_spec": "{PCTESTCD}-{PCSPEC}"}.get(self.group_id, self.group_id)

    @property
    def effective_route(self) -> str | None:
        """The route, or the one the route-specific parameters imply (None when neither says)."""
        if self.route is not None:
            return self.route
        routes = set(ROUTES)
        for p in self.parameters:
            entry = BY_CODE.get(p.testcd)
            if entry is not None:
                routes &= set(entry.routes)
        return next(iter(routes)) if len(routes) == 1 else None

    @property
    def days_to_unit(self) -> Fraction:
        """Number of ``units.time`` in one day."""
        return U.time_factor("day", self.units.time)

    @property
    def intervals(self) -> list[Interval]:
        return list(self.interval)

    @property
    def words(self) -> dict[str, str]:
        """Wording of the dose event in reasons and method text (an infusion or a dose)."""
        if self.effective_route == "intravascular_infusion":
            return {"dose": "infusion", "pre": "pre-infusion", "post": "post-infusion"}
        return {"dose": "dose", "pre": "pre-dose", "post": "post-dose"}

    def resolve(self, testcd, spec, stresu, analysed_result) -> NcaSettings:
        """The settings with their neutral values filled from the PC data: ``analytes`` (every
        PCTESTCD), ``specimens`` (every PCSPEC of the analysed records, every parameter) and
        ``units.conc`` (the PCSTRESU of the analysed results).  Raises InputError when the data
        leave them ambiguous (several analytes with ``group_id: spec``, several units)."""
        import pandas as pd

        testcd, spec, stresu = (pd.Series(x, dtype="object").reset_index(drop=True) for x in (testcd, spec, stresu))
        update: dict = {}
        analytes = self.analytes or sorted(testcd.dropna().astype(str).unique())
        if not self.analytes:
            update["analytes"] = analytes
            if len(analytes) > 1 and "{PCTESTCD}" not in self.group_template:
                raise InputError(Problem("NCA settings", f"PC has several analytes ({', '.join(analytes)}) and the "
                                         "settings name none", entry="analytes",
                                         hint="List the analytes to analyse, or set group_id: testcd_spec"), stage="nca")
        rows = testcd.isin(analytes).to_numpy()
        if not self.specimens:
            codes = [p.testcd for p in self.parameters]
            update["specimens"] = {sp: list(codes) for sp in sorted(spec[rows].dropna().astype(str).unique())}
        if self.units.conc is None:
            units = sorted(stresu[rows & pd.Series(analysed_result).to_numpy(dtype=bool)].dropna().astype(str).unique())
            if len(units) > 1:
                raise InputError(Problem("NCA settings", f"the PC results have several units ({', '.join(units)}) "
                                         "and the settings name none", entry="units.conc",
                                         hint="Set units.conc to the unit the NCA uses"), stage="nca")
            update["units"] = self.units.model_copy(update={"conc": units[0] if units else ""})
        return self.model_copy(update=update) if update else self

    def parameter(self, testcd: str) -> Parameter:
        for p in self.parameters:
            if p.testcd == testcd:
                return p
        raise KeyError(testcd)

    def reported_quantities(self) -> set[str]:
        """The quantities of the parameters some specimen reports (every parameter when no specimens)."""
        codes = {c for cs in self.specimens.values() for c in cs} if self.specimens else {p.testcd for p in self.parameters}
        return {p.quantity for p in self.parameters if p.testcd in codes}

    def result_units(self) -> U.ResultUnits:
        """Units and conversion factors of the reported parameters; InputError when a unit cannot be
        read, does not convert, or is neither a PKUNIT term nor a declared extension."""
        kinds = {QUANTITY_UNIT[q] for q in self.reported_quantities()}
        u = self.units
        entry = {"conc": "units.conc", "auc": "units.auc", "aumc": "units.aumc", "clearance": "units.clearance",
                 "volume": "units.volume", "time": "units.time", "per_time": "units.time", "percent": "units"}
        try:
            res = U.result_units(u.time, u.conc or "", auc=u.auc, aumc=u.aumc, dose=u.dose, volume=u.volume,
                                 clearance=u.clearance, kinds=kinds)
        except U.UnitError as exc:
            raise InputError(Problem("NCA settings", str(exc), entry="units",
                                     hint="Units are read with the table in cdisc_pipe/nca/units.py (docs/NCA.md)"),
                             stage="nca") from exc
        wanted = {k: res.unit[k] for k in kinds if k in res.unit and k != "none"}
        if "conc" in wanted and not wanted["conc"]:
            del wanted["conc"]  # no concentration result at all (empty PC)
        bad = U.check_terms(wanted, u.extensions)
        if bad:
            raise InputError([Problem("NCA settings", f"{unit!r} is not a CDISC PKUNIT term (C85494, CT {U.CT_VERSION})",
                                      entry=entry.get(kind, "units"), value=unit,
                                      hint="Use the PKUNIT spelling, or declare it in units.extensions "
                                           "(a sponsor extension)") for kind, unit in bad], stage="nca")
        return res


def load_nca_settings(path: str | Path) -> NcaSettings:
    """Read and validate ``nca.yaml``.

    Args:
        path: the settings file (YAML, safe loader).

    Returns:
        The validated :class:`NcaSettings`; keys left out take their defaults.

    Raises:
        InputError: naming the file, the entry (e.g. ``blq.middle``) and the problem for every
            error found (unreadable file, YAML syntax, unknown key, bad value).
    """
    # Imported here: the spec loader's helpers turn YAML / pydantic errors into Problems.
    from cdisc_pipe.spec.load import read_yaml, validate_model

    file = Path(path)
    problems: list[Problem] = []
    if not file.is_file():
        raise InputError(Problem(str(file), "NCA settings file not found",
                                 hint="Create specs/settings/nca.yaml (see docs/NCA.md)"), stage="nca")
    data = read_yaml(file, problems)
    if not problems:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.append(Problem(str(file), "top level must be a mapping of settings", entry="(top level)"))
        else:
            settings = validate_model(NcaSettings, data, str(file), problems)
            if settings is not None and not problems:
                return settings
    raise InputError(problems, stage="nca")
