"""Non-compartmental analysis: PC -> PP (+ RELREC, PCGRPID, SUPPPC, exclusions), one profile per dose.

Public API (contract in docs/ARCHITECTURE.md, details in docs/NCA.md)::

    from cdisc_pipe.nca import build_pp, load_nca_settings
    settings = load_nca_settings("specs/settings/nca.yaml")
    result = build_pp(pc, dm, settings)   # NcaResult(pp, relrec, pc, supppc, exclusions, ...)
    result = build_pp(pc, dm, settings, doses=dose_records(datasets, settings))  # CL, Vz: doses (EX)

The tidy-frame engine (``run_nca``, ``prepare_profiles``, ``calc_parameters``, ``not_calculated_reasons``,
``auc_between``, ``aumc_between``, ``interpolate_conc``, ``fit_lambda_z``, ``initial_conc``) is usable
on its own; ``cdisc_pipe.nca.units`` is the units table and ``cdisc_pipe.nca.catalog`` the parameter
catalog (CDISC codes).
"""

from cdisc_pipe.nca.core import (
    Profiles,
    auc_between,
    aumc_between,
    calc_parameters,
    fit_lambda_z,
    initial_conc,
    interpolate_conc,
    not_calculated_reasons,
    prepare_profiles,
    run_nca,
)
from cdisc_pipe.nca.pp import (
    NcaResult,
    build_pp,
    describe_method,
    describe_parameters,
    dose_records,
)
from cdisc_pipe.nca.settings import NcaSettings, load_nca_settings

__all__ = [
    "NcaResult",
    "NcaSettings",
    "Profiles",
    "auc_between",
    "aumc_between",
    "build_pp",
    "calc_parameters",
    "describe_method",
    "describe_parameters",
    "dose_records",
    "fit_lambda_z",
    "initial_conc",
    "interpolate_conc",
    "load_nca_settings",
    "not_calculated_reasons",
    "prepare_profiles",
    "run_nca",
]
