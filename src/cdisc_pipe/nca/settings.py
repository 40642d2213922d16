"""NCA settings: the study's choices for the non-compartmental analysis (``specs/settings/nca.yaml``).

The settings are data, parsed by :class:`NcaSettings` (pydantic v2, unknown keys are errors) and
loaded by :func:`load_nca_settings`, which reports every problem with the file and the entry it is
in.  Defaults follow PKNCA's documented defaults (``auc.method = "lin up/log down"``,
``conc.blq = list(first = "keep", middle = "drop", last = "keep")`` with BLQ encoded as 0, and
``start_conc0`` style imputation of a zero concentration at dose time) and neutral study values:
every analyte (PCTESTCD) and specimen (PCSPEC) of PC with every parameter, the concentration unit
of the PC results.  A study's own choices (its analyte, specimens, units, cut-off events, wording)
live in its ``specs/settings/nca.yaml``; :meth:`NcaSettings.resolve` fills the neutral values from
the PC data at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdisc_pipe.errors import InputError, Problem

AucMethod = Literal["lin up/log down", "linear"]
# What a parameter code computes.  The PPTESTCD / PPTEST text lives in the settings (from CT);
# the quantity says which computation it is.
Quantity = Literal["cmax", "tmax", "clast", "tlast", "auclast", "aucint"]
UnitKind = Literal["conc", "time", "auc"]
QUANTITY_UNIT: dict[str, UnitKind] = {
    "cmax": "conc",
    "tmax": "time",
    "clast": "conc",
    "tlast": "time",
    "auclast": "auc",
    "aucint": "auc",
}
AUC_QUANTITIES = ("auclast", "aucint")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    The last pre-infusion sample (actual time <= 0) taken at most ``predose_max_days`` before the
    infusion is placed at time 0 (a BLQ pre-infusion sample counts as 0).  Without one, a
    concentration of 0 is imputed at the infusion time when ``impute_zero`` is true (PKNCA
    ``start_conc0``, for example a first dose with no drug in the body before it); otherwise AUCs
    are not calculated.
    """

    use_predose: bool = True
    predose_max_days: float = Field(default=7.0, ge=0)
    impute_zero: bool = True


class Interval(_Model):
    """The partial-AUC interval (AUCINT), in days since infusion, with its ISO 8601 labels."""

    start_days: float = Field(default=0.0, ge=0)
    end_days: float = Field(default=28.0, gt=0)
    stint: str = Field(default="P0D", pattern=r"^-?P")  # PPSTINT
    enint: str = Field(default="P28D", pattern=r"^-?P")  # PPENINT

    @model_validator(mode="after")
    def _ordered(self) -> "Interval":
        if self.end_days <= self.start_days:
            raise ValueError("end_days must be after start_days")
        return self


class MinData(_Model):
    """Minimum-data rules; a parameter that fails one is reported as not calculated, with the reason."""

    # Quantifiable post-infusion concentrations needed for AUCLST and AUCINT.
    auc_quantifiable_points: int = Field(default=3, ge=1)
    # AUCINT needs a sample (quantifiable or BLQ kept in the profile) within end_days +/- this.
    end_window_days: float = Field(default=3.0, ge=0)


class Units(_Model):
    """Result units (PPORRESU = PPSTRESU); ``conc`` must equal the PC records' PCSTRESU.

    ``conc`` left out: the PCSTRESU of the analysed results (one unit, else an input error);
    ``auc`` left out: ``<time>*<conc>``.  Times are computed in days (``time`` is its label)."""

    conc: str | None = None
    time: str = "day"
    auc: str | None = None

    def of(self, kind: UnitKind) -> str:
        auc = self.auc or f"{self.time}*{self.conc}"
        return {"conc": self.conc or "", "time": self.time, "auc": auc}[kind]


class Parameter(_Model):
    """One PK parameter: its CDISC code and name (PKPARMCD / PKPARM) and what it computes."""

    testcd: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    test: str = Field(min_length=1, max_length=40)
    quantity: Quantity


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


class NcaSettings(_Model):
    """All NCA settings of a study.  Every field has the documented default."""

    analytes: list[str] = Field(default_factory=list)  # PCTESTCD values analysed; empty = every one in PC
    # What actual time is measured from, in the method text (define.xml): "time since <this>".
    reference_event: str = Field(default="the reference dose", min_length=1, max_length=80)
    auc_method: AucMethod = "lin up/log down"
    blq: BlqRules = Field(default_factory=BlqRules)
    time_zero: TimeZero = Field(default_factory=TimeZero)
    interval: Interval = Field(default_factory=Interval)
    min_data: MinData = Field(default_factory=MinData)
    units: Units = Field(default_factory=Units)
    parameters: list[Parameter] = Field(
        default_factory=lambda: [
            Parameter(testcd="CMAX", test="Max Conc", quantity="cmax"),
            Parameter(testcd="TMAX", test="Time of CMAX Observation", quantity="tmax"),
            Parameter(testcd="AUCINT", test="AUC from T1 to T2", quantity="aucint"),
            Parameter(testcd="AUCLST", test="AUC to Last Nonzero Conc", quantity="auclast"),
            Parameter(testcd="CLST", test="Last Nonzero Conc", quantity="clast"),
            Parameter(testcd="TLST", test="Time of Last Nonzero Conc", quantity="tlast"),
        ]
    )
    # PCSPEC -> PPTESTCD values reported for that specimen (in this order).  A specimen not listed
    # is not analysed (its records are listed as excluded).  Empty: every PCSPEC of the analysed
    # records (sorted), each with every parameter in ``parameters`` order.
    specimens: dict[str, list[str]] = Field(default_factory=dict)
    # PCGRPID / PPGRPID value: the specimen ("spec", the convention in ARCHITECTURE.md) or
    # "<PCTESTCD>-<PCSPEC>" when several analytes are analysed.
    group_id: Literal["spec", "testcd_spec"] = "spec"
    significant_digits: int = Field(default=6, ge=1, le=15)
    # Keep PPORRESU/PPSTRESU on NOT DONE records (the parameter's unit), so each PPTESTCD has one
    # unit throughout (validation rule FND.STRESU.CONSISTENT; ADPP PARAM carries the unit).
    units_when_not_done: bool = True
    supppc: SupppcQnams = Field(default_factory=SupppcQnams)
    cutoff_events: list[CutoffEvent] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "NcaSettings":
        codes = [p.testcd for p in self.parameters]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"duplicate parameter testcd: {', '.join(dupes)}")
        for spec, wanted in self.specimens.items():
            unknown = [c for c in wanted if c not in codes]
            if unknown:
                raise ValueError(f"specimens[{spec}] names parameters not in parameters: {', '.join(unknown)}")
        if len(self.analytes) > 1 and self.group_id == "spec":
            raise ValueError("several analytes need group_id: testcd_spec (PCGRPID must be unique per profile)")
        return self

    def resolve(self, testcd, spec, stresu, analysed_result) -> "NcaSettings":
        """The settings with their neutral values filled from the PC data: ``analytes`` (every
        PCTESTCD), ``specimens`` (every PCSPEC of the analysed records, every parameter) and
        ``units.conc`` (the PCSTRESU of the analysed results).  Raises InputError when the data
        leave them ambiguous (several analytes with ``group_id: spec``, several units)."""
        import pandas as pd  # noqa: PLC0415

        testcd, spec, stresu = (pd.Series(x, dtype="object").reset_index(drop=True) for x in (testcd, spec, stresu))
        update: dict = {}
        analytes = self.analytes or sorted(testcd.dropna().astype(str).unique())
        if not self.analytes:
            update["analytes"] = analytes
            if len(analytes) > 1 and self.group_id == "spec":
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
