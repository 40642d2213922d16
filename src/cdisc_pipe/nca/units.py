"""Units of the NCA: a small table (data) and the arithmetic that uses it.

Every unit the NCA reads or writes is parsed against the tables below; nothing is spelt in the
computing code.

- **Time** (``units.time``): ``min``, ``h``, ``day``, ``week`` (:data:`TIME_UNITS`, hours per unit).
  Times are computed from the ISO 8601 dates in that unit (never relabelled).
- **Amount** (dose, concentration numerator): mass, molar, international units, activity, copies
  (:data:`AMOUNT_UNITS`: dimension and power of ten of the dimension's base unit).
- **Volume** (concentration denominator, clearance and volume results): :data:`VOLUME_UNITS`.
- **Concentration** ``<amount>/<volume>`` (plasma, e.g. ``ng/mL``) or ``<amount>/<mass>`` (tissue,
  e.g. ``copies/ug``); two concentration units convert when both parts have the same dimensions
  (``ng/mL`` = ``ug/L`` = 1/1000 ``mg/L``).
- **Derived** result units (CDISC PKUNIT spelling): AUC ``<time>*<conc>``, AUMC ``<time>2*<conc>``,
  lambda z ``/<time>``, clearance ``<volume>/<time>``, volume ``<volume>``, percent ``%``.

Factors are exact rationals (:class:`fractions.Fraction`) applied by :func:`scale` with one
rounding, so a factor of 1 never changes a number.

:data:`PKUNIT_TERMS` is the CDISC PKUNIT codelist (C85494) of SDTM CT 2025-03-28; a result unit
outside it must be declared as a sponsor extension (``units.extensions``), else it is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

CT_VERSION = "2025-03-28"

# hours per unit; the keys are the PKUNIT spellings (week is not a PKUNIT term: an extension)
TIME_UNITS: dict[str, Fraction] = {"min": Fraction(1, 60), "h": Fraction(1), "day": Fraction(24), "week": Fraction(168)}
TIME_WORDS: dict[str, str] = {"min": "minutes", "h": "hours", "day": "days", "week": "weeks"}
# ISO 8601 duration designators for PPSTINT / PPENINT
TIME_ISO: dict[str, tuple[str, str]] = {"min": ("PT", "M"), "h": ("PT", "H"), "day": ("P", "D"), "week": ("P", "W")}
# pandas Timedelta keyword of one unit (dates -> time in the unit)
TIME_TIMEDELTA: dict[str, dict[str, int]] = {"min": {"minutes": 1}, "h": {"hours": 1}, "day": {"days": 1},
                                             "week": {"weeks": 1}}

# amount units: dimension, power of ten of the dimension's base unit (g, mol, IU, Bq, copy)
AMOUNT_UNITS: dict[str, tuple[str, int]] = {
    "kg": ("mass", 3), "g": ("mass", 0), "mg": ("mass", -3), "ug": ("mass", -6), "ng": ("mass", -9),
    "pg": ("mass", -12), "fg": ("mass", -15),
    "mol": ("molar", 0), "mmol": ("molar", -3), "umol": ("molar", -6), "nmol": ("molar", -9),
    "pmol": ("molar", -12),
    "IU": ("IU", 0), "mIU": ("IU", -3), "uIU": ("IU", -6),
    "GBq": ("activity", 9), "MBq": ("activity", 6), "kBq": ("activity", 3), "Bq": ("activity", 0),
    "copies": ("copies", 0), "DNA copies": ("DNA copies", 0),
}
# volume units: power of ten of the litre
VOLUME_UNITS: dict[str, int] = {"L": 0, "dL": -1, "mL": -3, "uL": -6, "nL": -9}

PKUNIT_TERMS: frozenset[str] = frozenset((
    "%", "%/g", "(Bq/g)/(kBq/kg)", "(Bq/mL)/(kBq/kg)", "(L/day)/(kg/m2)", "(L/day)/(mg/day)", "(L/day)/(mg/kg)",
    "(L/day)/(mg/kg/day)", "(L/day)/(mg/m2)", "(L/day)/(mg/m2/day)", "(L/day)/(ug/day)", "(L/day)/(ug/kg)",
    "(L/day)/(ug/kg/day)", "(L/day)/(ug/m2)", "(L/day)/(ug/m2/day)", "(L/day)/g", "(L/day)/kg", "(L/day)/m2",
    "(L/day)/mg", "(L/day)/ug", "(L/h)/(kg/m2)", "(L/h)/(mg/day)", "(L/h)/(mg/kg)", "(L/h)/(mg/kg/day)",
    "(L/h)/(mg/m2)", "(L/h)/(mg/m2/day)", "(L/h)/(ug/day)", "(L/h)/(ug/kg)", "(L/h)/(ug/kg/day)",
    "(L/h)/(ug/m2)", "(L/h)/(ug/m2/day)", "(L/h)/g", "(L/h)/kg", "(L/h)/m2", "(L/h)/mg", "(L/h)/ug",
    "(L/min)/(kg/m2)", "(L/min)/(mg/day)", "(L/min)/(mg/kg)", "(L/min)/(mg/kg/day)", "(L/min)/(mg/m2)",
    "(L/min)/(mg/m2/day)", "(L/min)/(ug/day)", "(L/min)/(ug/kg)", "(L/min)/(ug/kg/day)", "(L/min)/(ug/m2)",
    "(L/min)/(ug/m2/day)", "(L/min)/g", "(L/min)/kg", "(L/min)/m2", "(L/min)/mg", "(L/min)/ug",
    "(h*Bq/g)/(kBq/kg)", "(h*Bq/mL)/(kBq/kg)", "(mL/day)/(kg/m2)", "(mL/day)/(mg/day)", "(mL/day)/(mg/kg)",
    "(mL/day)/(mg/kg/day)", "(mL/day)/(mg/m2)", "(mL/day)/(mg/m2/day)", "(mL/day)/kg", "(mL/day)/m2",
    "(mL/h)/(kg/m2)", "(mL/h)/(mg/day)", "(mL/h)/(mg/kg)", "(mL/h)/(mg/kg/day)", "(mL/h)/(mg/m2)",
    "(mL/h)/(mg/m2/day)", "(mL/h)/kg", "(mL/h)/m2", "(mL/min)/(kg/m2)", "(mL/min)/(mg/day)", "(mL/min)/(mg/kg)",
    "(mL/min)/(mg/kg/day)", "(mL/min)/(mg/m2)", "(mL/min)/(mg/m2/day)", "(mL/min)/kg", "(mL/min)/m2", "/day",
    "/h", "/min", "Bq", "Bq/L", "Bq/g", "Bq/kg", "Bq/mL", "Bq/mg", "Bq/uL", "Bq/ug", "DNA copies/ug", "GBq",
    "GBq/g", "GBq/mg", "GBq/nL", "GBq/uL", "GBq/ug", "IU", "IU/day", "IU/h", "IU/mL", "IU/mL/(kg/m2)",
    "IU/mL/(mg/day)", "IU/mL/(mg/kg)", "IU/mL/(mg/kg/day)", "IU/mL/(mg/m2)", "IU/mL/(mg/m2/day)",
    "IU/mL/(ug/day)", "IU/mL/(ug/kg)", "IU/mL/(ug/kg/day)", "IU/mL/(ug/m2)", "IU/mL/(ug/m2/day)", "IU/mL/g",
    "IU/mL/kg", "IU/mL/m2", "IU/mL/mg", "IU/mL/ug", "IU/min", "L", "L/(kg/m2)", "L/(mg/day)", "L/(mg/kg)",
    "L/(mg/kg/day)", "L/(mg/m2)", "L/(mg/m2/day)", "L/(ug/day)", "L/(ug/kg)", "L/(ug/kg/day)", "L/(ug/m2)",
    "L/(ug/m2/day)", "L/day", "L/g", "L/h", "L/kg", "L/m2", "L/mg", "L/min", "L/ug", "MBq", "MBq/uL", "RATIO",
    "U/L", "copies/mL", "copies/uL", "copies/ug", "day", "day*fg/mL", "day*fg/mL/(kg/m2)", "day*fg/mL/(mg/g)",
    "day*fg/mL/(mg/g/day)", "day*fg/mL/g", "day*fg/mL/kg", "day*fg/mL/m2", "day*g/mL", "day*g/mL/(kg/m2)",
    "day*g/mL/(mg/g)", "day*g/mL/(mg/g/day)", "day*g/mL/g", "day*g/mL/kg", "day*g/mL/m2", "day*mg/mL",
    "day*mg/mL/(kg/m2)", "day*mg/mL/(mg/g)", "day*mg/mL/(mg/g/day)", "day*mg/mL/m2", "day*mmol/L",
    "day*mmol/L/(kg/m2)", "day*mmol/L/(mg/g)", "day*mmol/L/(mg/g/day)", "day*mmol/L/g", "day*mmol/L/m2",
    "day*mol/L", "day*mol/L/(kg/m2)", "day*mol/L/(mg/g)", "day*mol/L/(mg/g/day)", "day*mol/L/g", "day*mol/L/m2",
    "day*ng/mL", "day*ng/mL/(kg/m2)", "day*ng/mL/(mg/g)", "day*ng/mL/(mg/g/day)", "day*ng/mL/kg",
    "day*ng/mL/m2", "day*nmol/L", "day*nmol/L/(kg/m2)", "day*nmol/L/(mg/g)", "day*nmol/L/(mg/g/day)",
    "day*nmol/L/kg", "day*nmol/L/m2", "day*pg/mL", "day*pg/mL/(kg/m2)", "day*pg/mL/(mg/g)",
    "day*pg/mL/(mg/g/day)", "day*pg/mL/m2", "day*pmol/L", "day*pmol/L/(kg/m2)", "day*pmol/L/(mg/g)",
    "day*pmol/L/(mg/g/day)", "day*pmol/L/kg", "day*pmol/L/m2", "day*ug/mL", "day*ug/mL/(kg/m2)",
    "day*ug/mL/(mg/g)", "day*ug/mL/(mg/g/day)", "day*ug/mL/(mg/kg)", "day*ug/mL/g", "day*ug/mL/kg",
    "day*ug/mL/m2", "day*umol/L", "day*umol/L/(kg/m2)", "day*umol/L/(mg/g)", "day*umol/L/(mg/g/day)",
    "day*umol/L/g", "day*umol/L/kg", "day*umol/L/m2", "fg/mL", "fg/mL/(kg/m2)", "fg/mL/(mg/day)",
    "fg/mL/(mg/kg)", "fg/mL/(mg/kg/day)", "fg/mL/(mg/m2)", "fg/mL/(mg/m2/day)", "fg/mL/(ug/day)",
    "fg/mL/(ug/m2)", "fg/mL/(ug/m2/day)", "fg/mL/g", "fg/mL/kg", "fg/mL/m2", "fg/mL/ug", "fraction of 1", "g",
    "g/day", "g/h", "g/mL", "g/mL/(kg/m2)", "g/mL/(mg/day)", "g/mL/(mg/kg)", "g/mL/(mg/kg/day)", "g/mL/(mg/m2)",
    "g/mL/(mg/m2/day)", "g/mL/(ug/day)", "g/mL/(ug/kg)", "g/mL/(ug/kg/day)", "g/mL/(ug/m2)", "g/mL/(ug/m2/day)",
    "g/mL/g", "g/mL/m2", "g/mL/mg", "g/mL/ug", "g/min", "h", "h*Bq/g", "h*Bq/mL", "h*DNA copies/ug", "h*fg/mL",
    "h*fg/mL/(kg/m2)", "h*fg/mL/(mg/g)", "h*fg/mL/(mg/g/day)", "h*fg/mL/kg", "h*fg/mL/m2", "h*g/mL",
    "h*g/mL/(kg/m2)", "h*g/mL/(mg/g)", "h*g/mL/(mg/g/day)", "h*g/mL/(mg/kg)", "h*g/mL/(mg/kg/day)", "h*g/mL/g",
    "h*g/mL/m2", "h*mIU/mL", "h*mg/mL", "h*mg/mL/(kg/m2)", "h*mg/mL/(mg/g)", "h*mg/mL/(mg/g/day)",
    "h*mg/mL/(mg/kg)", "h*mg/mL/(mg/kg/day)", "h*mg/mL/m2", "h*mmol/L", "h*mmol/L/(kg/m2)", "h*mmol/L/(mg/g)",
    "h*mmol/L/(mg/g/day)", "h*mmol/L/g", "h*mmol/L/kg", "h*mmol/L/m2", "h*mol/L", "h*mol/L/(kg/m2)",
    "h*mol/L/(mg/g)", "h*mol/L/(mg/g/day)", "h*mol/L/g", "h*mol/L/m2", "h*ng/mL", "h*ng/mL/(kg/m2)",
    "h*ng/mL/(mg/cm2)", "h*ng/mL/(mg/cm2/day)", "h*ng/mL/(mg/g)", "h*ng/mL/(mg/g/day)", "h*ng/mL/(mg/kg)",
    "h*ng/mL/(mg/kg/day)", "h*ng/mL/(mg/m2)", "h*ng/mL/g", "h*ng/mL/kg", "h*ng/mL/m2", "h*ng/mL/mg",
    "h*ngEq/mL", "h*ngEq/mL/mgEq", "h*nmol/L", "h*nmol/L/(kg/m2)", "h*nmol/L/(mg/g)", "h*nmol/L/(mg/g/day)",
    "h*nmol/L/(mg/kg)", "h*nmol/L/m2", "h*nmolEq/L", "h*nmolEq/L/mg", "h*nmolEq/L/ug", "h*pg/mL",
    "h*pg/mL/(kg/m2)", "h*pg/mL/(mg/g)", "h*pg/mL/(mg/g/day)", "h*pg/mL/(mg/kg)", "h*pg/mL/(mg/kg/day)",
    "h*pg/mL/kg", "h*pg/mL/m2", "h*pgEq/mL", "h*pgEq/mL/mgEq", "h*pmol/L", "h*pmol/L/(kg/m2)",
    "h*pmol/L/(mg/g)", "h*pmol/L/(mg/g/day)", "h*pmol/L/(mg/kg)", "h*pmol/L/g", "h*pmol/L/kg", "h*pmol/L/m2",
    "h*uIU/mL", "h*ug/g", "h*ug/mL", "h*ug/mL/(kg/m2)", "h*ug/mL/(mg/g)", "h*ug/mL/(mg/g/day)",
    "h*ug/mL/(mg/kg)", "h*ug/mL/(mg/kg/day)", "h*ug/mL/m2", "h*ug/mL/mg", "h*ugEq/mL", "h*ugEq/mL/mgEq",
    "h*umol/L", "h*umol/L/(kg/m2)", "h*umol/L/(mg/g)", "h*umol/L/(mg/g/day)", "h*umol/L/(mg/kg)", "h*umol/L/kg",
    "h*umol/L/m2", "h2*DNA copies/ug", "h2*mg/mL", "h2*mmol/L", "h2*mol/L", "h2*ng/mL", "h2*nmol/L", "h2*pg/mL",
    "h2*pmol/L", "h2*ug/mL", "h2*umol/L", "kBq", "kBq/uL", "mIU/mL", "mIU/mL/(kg/m2)", "mIU/mL/(mg/day)",
    "mIU/mL/(mg/kg)", "mIU/mL/(mg/kg/day)", "mIU/mL/(mg/m2)", "mIU/mL/(mg/m2/day)", "mIU/mL/kg", "mIU/mL/m2",
    "mL", "mL/(kg/m2)", "mL/(mg/day)", "mL/(mg/kg)", "mL/(mg/kg/day)", "mL/(mg/m2)", "mL/(mg/m2/day)",
    "mL/(ug/kg)", "mL/day", "mL/h", "mL/kg", "mL/m2", "mL/min", "mg", "mg/dL", "mg/day", "mg/h", "mg/kg",
    "mg/kg/day", "mg/mL", "mg/mL/(kg/m2)", "mg/mL/(mg/day)", "mg/mL/(mg/kg)", "mg/mL/(mg/kg/day)",
    "mg/mL/(mg/m2)", "mg/mL/(mg/m2/day)", "mg/mL/m2", "mg/min", "mgEq", "min", "min*fg/mL", "min*fg/mL/(kg/m2)",
    "min*fg/mL/(mg/g)", "min*fg/mL/(mg/g/day)", "min*fg/mL/g", "min*fg/mL/kg", "min*fg/mL/m2", "min*g/mL",
    "min*g/mL/(kg/m2)", "min*g/mL/(mg/g)", "min*g/mL/(mg/g/day)", "min*g/mL/g", "min*g/mL/kg", "min*g/mL/m2",
    "min*mg/mL", "min*mg/mL/(kg/m2)", "min*mg/mL/(mg/g)", "min*mg/mL/(mg/g/day)", "min*mg/mL/m2", "min*mmol/L",
    "min*mmol/L/(kg/m2)", "min*mmol/L/(mg/g)", "min*mmol/L/(mg/g/day)", "min*mmol/L/g", "min*mmol/L/m2",
    "min*mol/L", "min*mol/L/(kg/m2)", "min*mol/L/(mg/g)", "min*mol/L/(mg/g/day)", "min*mol/L/g", "min*mol/L/m2",
    "min*ng/mL", "min*ng/mL/(kg/m2)", "min*ng/mL/(mg/g)", "min*ng/mL/(mg/g/day)", "min*ng/mL/kg",
    "min*ng/mL/m2", "min*nmol/L", "min*nmol/L/(kg/m2)", "min*nmol/L/(mg/g)", "min*nmol/L/(mg/g/day)",
    "min*nmol/L/kg", "min*nmol/L/m2", "min*pg/mL", "min*pg/mL/(kg/m2)", "min*pg/mL/(mg/g)",
    "min*pg/mL/(mg/g/day)", "min*pg/mL/m2", "min*pmol/L", "min*pmol/L/(kg/m2)", "min*pmol/L/(mg/g)",
    "min*pmol/L/(mg/g/day)", "min*pmol/L/kg", "min*pmol/L/m2", "min*ug/mL", "min*ug/mL/(kg/m2)",
    "min*ug/mL/(mg/g)", "min*ug/mL/(mg/g/day)", "min*ug/mL/g", "min*ug/mL/kg", "min*ug/mL/m2", "min*umol/L",
    "min*umol/L/(kg/m2)", "min*umol/L/(mg/g)", "min*umol/L/(mg/g/day)", "min*umol/L/g", "min*umol/L/kg",
    "min*umol/L/m2", "mmol", "mmol/L", "mmol/L/(kg/m2)", "mmol/L/(mg/day)", "mmol/L/(mg/kg)",
    "mmol/L/(mg/kg/day)", "mmol/L/(mg/m2)", "mmol/L/(mg/m2/day)", "mmol/L/(ug/day)", "mmol/L/(ug/kg)",
    "mmol/L/(ug/kg/day)", "mmol/L/(ug/m2)", "mmol/L/(ug/m2/day)", "mmol/L/g", "mmol/L/m2", "mmol/L/mg",
    "mmol/L/ug", "mmol/h", "mmol/min", "mol", "mol/L", "mol/L/(kg/m2)", "mol/L/(ug/day)", "mol/L/(ug/kg)",
    "mol/L/(ug/kg/day)", "mol/L/(ug/m2)", "mol/L/(ug/m2/day)", "mol/L/m2", "mol/L/ug", "mol/day", "mol/h",
    "mol/min", "ng", "ng/day", "ng/h", "ng/kg/min", "ng/mL", "ng/mL/(kg/m2)", "ng/mL/(mg/cm2)",
    "ng/mL/(mg/day)", "ng/mL/(mg/kg)", "ng/mL/(mg/kg/day)", "ng/mL/(mg/m2)", "ng/mL/(mg/m2/day)",
    "ng/mL/(ug/day)", "ng/mL/(ug/m2)", "ng/mL/(ug/m2/day)", "ng/mL/kg", "ng/mL/m2", "ng/mL/mg", "ng/min",
    "ngEq", "ngEq/g", "ngEq/mL", "ngEq/mL/mgEq", "nmol", "nmol/L", "nmol/L/(kg/m2)", "nmol/L/(mg/day)",
    "nmol/L/(mg/kg)", "nmol/L/(mg/kg/day)", "nmol/L/(mg/m2)", "nmol/L/(mg/m2/day)", "nmol/L/(ug/day)",
    "nmol/L/(ug/kg)", "nmol/L/(ug/kg/day)", "nmol/L/(ug/m2)", "nmol/L/(ug/m2/day)", "nmol/L/g", "nmol/L/kg",
    "nmol/L/m2", "nmol/day", "nmol/g", "nmol/h", "nmol/kg", "nmol/min", "nmolEq", "nmolEq/L", "nmolEq/L/mg",
    "nmolEq/L/ug", "nmolEq/kg", "pg/day", "pg/h", "pg/mL", "pg/mL/(kg/m2)", "pg/mL/(mg/kg)",
    "pg/mL/(mg/kg/day)", "pg/mL/m2", "pg/mg", "pg/min", "pgEq/g", "pgEq/mL", "pgEq/mL/mgEq", "pmol", "pmol/L",
    "pmol/L/(kg/m2)", "pmol/L/(mg/day)", "pmol/L/(mg/kg)", "pmol/L/(mg/kg/day)", "pmol/L/(mg/m2)",
    "pmol/L/(mg/m2/day)", "pmol/L/kg", "pmol/L/m2", "pmol/L/ug", "uIU/mL", "uIU/mL/(kg/m2)", "uIU/mL/(mg/day)",
    "uIU/mL/(mg/kg)", "uIU/mL/(mg/kg/day)", "uIU/mL/(mg/m2)", "uIU/mL/(mg/m2/day)", "uIU/mL/kg", "uIU/mL/m2",
    "ug", "ug/dL", "ug/day", "ug/h", "ug/mL", "ug/mL/(kg/m2)", "ug/mL/(mg/kg)", "ug/mL/(mg/kg/day)", "ug/mL/m2",
    "ug/mL/mg", "ug/min", "ugEq", "ugEq/g", "ugEq/mL", "ugEq/mL/mgEq", "umol", "umol/L", "umol/L/(kg/m2)",
    "umol/L/m2", "umol/day", "umol/h", "umol/min", "vg/dose", "vg/kg", "vg/mL",
))


class UnitError(ValueError):
    """A unit the table cannot read, or two units that do not convert."""


@dataclass(frozen=True)
class Conc:
    """A concentration unit ``<amount>/<denominator>``: dimensions and factor to the base units."""

    text: str
    amount: str  # amount unit (e.g. ng)
    per: str  # denominator unit (e.g. mL)
    amount_dim: str  # mass, molar, IU, activity, copies, DNA copies
    per_dim: str  # volume or mass
    exp: int  # power of ten of (base amount / base denominator)

    @property
    def per_volume(self) -> bool:
        return self.per_dim == "volume"


def pow10(exp: int) -> Fraction:
    return Fraction(10) ** exp


def _known(table: dict, what: str, *units: str) -> None:
    """UnitError naming the first of ``units`` that ``table`` (a unit table of this module) lacks."""
    for u in units:
        if u not in table:
            raise UnitError(f"unknown {what} unit {u!r} (known: {', '.join(table)})")


def time_factor(src: str, dst: str) -> Fraction:
    """Number of ``dst`` units in one ``src`` unit (``day`` -> ``h`` = 24)."""
    _known(TIME_UNITS, "time", src, dst)
    return TIME_UNITS[src] / TIME_UNITS[dst]


def parse_conc(text: str) -> Conc:
    """``ng/mL`` -> :class:`Conc`; raises :class:`UnitError` when the table cannot read it."""
    t = (text or "").strip()
    if t.count("/") != 1:
        raise UnitError(f"{text!r} is not a concentration unit <amount>/<volume or mass>")
    num, den = (p.strip() for p in t.split("/"))
    if num not in AMOUNT_UNITS:
        raise UnitError(f"unknown amount unit {num!r} in {text!r} (known: {', '.join(AMOUNT_UNITS)})")
    dim, e_num = AMOUNT_UNITS[num]
    if den in VOLUME_UNITS:
        return Conc(t, num, den, dim, "volume", e_num - VOLUME_UNITS[den])
    if den in AMOUNT_UNITS and AMOUNT_UNITS[den][0] == "mass":
        return Conc(t, num, den, dim, "mass", e_num - AMOUNT_UNITS[den][1])
    raise UnitError(f"unknown denominator {den!r} in {text!r} (a volume {', '.join(VOLUME_UNITS)} or a mass)")


def conc_factor(src: str, dst: str) -> Fraction:
    """Factor converting a concentration in ``src`` to ``dst`` (``ng/mL`` -> ``ug/L`` = 1)."""
    a, b = parse_conc(src), parse_conc(dst)
    if (a.amount_dim, a.per_dim) != (b.amount_dim, b.per_dim):
        raise UnitError(f"{src} ({a.amount_dim} per {a.per_dim}) does not convert to {dst} "
                        f"({b.amount_dim} per {b.per_dim})")
    return pow10(a.exp - b.exp)


def amount_factor(src: str, dst: str) -> Fraction:
    """Factor converting an amount (dose) in ``src`` to ``dst`` (``mg`` -> ``ug`` = 1000)."""
    _known(AMOUNT_UNITS, "amount", src, dst)
    (da, ea), (db, eb) = AMOUNT_UNITS[src], AMOUNT_UNITS[dst]
    if da != db:
        raise UnitError(f"{src} ({da}) does not convert to {dst} ({db})")
    return pow10(ea - eb)


def volume_factor(src: str, dst: str) -> Fraction:
    _known(VOLUME_UNITS, "volume", src, dst)
    return pow10(VOLUME_UNITS[src] - VOLUME_UNITS[dst])


def split_time_product(text: str, power: int) -> tuple[str, str]:
    """``h*ng/mL`` (power 1) or ``h2*ng/mL`` (power 2) -> (time unit, concentration unit)."""
    t = (text or "").strip()
    if "*" not in t:
        raise UnitError(f"{text!r} is not <time>{'2' if power == 2 else ''}*<concentration>")
    tu, cu = t.split("*", 1)
    if power == 2:
        if not tu.endswith("2"):
            raise UnitError(f"{text!r}: an AUMC unit is <time>2*<concentration> (e.g. h2*ng/mL)")
        tu = tu[:-1]
    if tu not in TIME_UNITS:
        raise UnitError(f"unknown time unit {tu!r} in {text!r}")
    parse_conc(cu)
    return tu, cu


def split_per_time(text: str) -> tuple[str, str]:
    """``L/h`` -> (volume unit, time unit)."""
    t = (text or "").strip()
    if t.count("/") != 1:
        raise UnitError(f"{text!r} is not a clearance unit <volume>/<time>")
    v, tu = t.split("/")
    if v not in VOLUME_UNITS or tu not in TIME_UNITS:
        raise UnitError(f"{text!r} is not a clearance unit <volume>/<time> ({', '.join(VOLUME_UNITS)} / "
                        f"{', '.join(TIME_UNITS)})")
    return v, tu


@dataclass(frozen=True)
class ResultUnits:
    """The unit of every result kind and the factor from the computed value to it.

    The engine computes in the study's time unit ``time``, the PP concentration unit ``conc`` and the
    dose unit ``dose``: AUC in time*conc, AUMC in time^2*conc, lambda z in 1/time, clearance in
    dose/(time*conc), volume in dose/conc.  ``factor[kind]`` converts that to ``unit[kind]``.
    """

    unit: dict[str, str | None]
    factor: dict[str, Fraction]


def result_units(time: str, conc: str, *, auc: str | None = None, aumc: str | None = None,
                 dose: str | None = None, volume: str = "L", clearance: str | None = None,
                 kinds: set[str] | None = None) -> ResultUnits:
    """Units and factors for the result kinds (``kinds``: only these are checked; default all).

    Raises :class:`UnitError` when a unit cannot be read or does not convert.
    """
    want = kinds if kinds is not None else {"conc", "time", "auc", "aumc", "per_time", "percent",
                                             "clearance", "volume", "none"}
    unit: dict[str, str | None] = {"conc": conc, "time": time, "per_time": f"/{time}", "percent": "%", "none": None}
    factor: dict[str, Fraction] = {k: Fraction(1) for k in unit}
    if time not in TIME_UNITS:
        raise UnitError(f"unknown time unit {time!r} (known: {', '.join(TIME_UNITS)})")
    # the derived default of an AUC / AUMC unit needs no parsing (a concentration unit the table
    # does not know, e.g. cells/uL, still gives Cmax, AUClast ...); another spelling is converted
    if "auc" in want:
        text = auc or f"{time}*{conc}"
        unit["auc"], factor["auc"] = text, Fraction(1)
        if text != f"{time}*{conc}":
            tu, cu = split_time_product(text, 1)
            factor["auc"] = time_factor(time, tu) * (Fraction(1) if cu == conc else conc_factor(conc, cu))
    if "aumc" in want:
        text = aumc or f"{time}2*{conc}"
        unit["aumc"], factor["aumc"] = text, Fraction(1)
        if text != f"{time}2*{conc}":
            tu, cu = split_time_product(text, 2)
            factor["aumc"] = time_factor(time, tu) ** 2 * (Fraction(1) if cu == conc else conc_factor(conc, cu))
    if want & {"clearance", "volume"}:
        c = parse_conc(conc)
        if not c.per_volume:
            raise UnitError(f"clearance and volume need a concentration per volume; {conc} is per {c.per_dim}")
        if not dose:
            raise UnitError("clearance and volume need the dose unit (units.dose)")
        d = amount_factor(dose, c.amount)  # dose in the concentration's amount unit
        if volume not in VOLUME_UNITS:
            raise UnitError(f"unknown volume unit {volume!r} (known: {', '.join(VOLUME_UNITS)})")
        v = volume_factor(c.per, volume)  # the concentration's volume in the result volume
        unit["volume"], factor["volume"] = volume, d * v
        text = clearance or f"{volume}/{time}"
        cv, ct = split_per_time(text)
        unit["clearance"] = text
        factor["clearance"] = d * volume_factor(c.per, cv) / time_factor(time, ct)
    return ResultUnits(unit=unit, factor=factor)


def scale(values: np.ndarray, factor: Fraction) -> np.ndarray:
    """``values * factor`` with one rounding per value (a factor of 1 returns the values)."""
    x = np.asarray(values, dtype="float64")
    if factor == 1:
        return x
    if factor.denominator == 1:
        return x * float(factor.numerator)
    if factor.numerator == 1:
        return x / float(factor.denominator)
    return x * float(factor)


def check_terms(units: dict[str, str | None], extensions: list[str]) -> list[tuple[str, str]]:
    """The (kind, unit) pairs that are neither PKUNIT terms nor declared sponsor extensions."""
    allowed = PKUNIT_TERMS | set(extensions)
    return [(k, u) for k, u in units.items() if u is not None and u not in allowed]


__all__ = ["AMOUNT_UNITS", "CT_VERSION", "PKUNIT_TERMS", "TIME_UNITS", "VOLUME_UNITS", "Conc", "ResultUnits",
           "UnitError", "amount_factor", "check_terms", "conc_factor", "parse_conc", "result_units", "scale",
           "time_factor"]
