"""Non-compartmental analysis of cellular kinetics: PC -> PP (+ RELREC, PCGRPID, SUPPPC, exclusions).

Public API (contract in docs/ARCHITECTURE.md, details in docs/NCA.md)::

    from cdisc_pipe.nca import build_pp, load_nca_settings
    settings = load_nca_settings("specs/settings/nca.yaml")
    result = build_pp(pc, dm, settings)   # NcaResult(pp, relrec, pc, supppc, exclusions, ...)

The tidy-frame engine (``run_nca``, ``prepare_profiles``, ``calc_parameters``, ``not_calculated_reasons``,
``auc_between``, ``interpolate_conc``) is usable on its own.
"""

from cdisc_pipe.nca.core import (
    Profiles,
    auc_between,
    calc_parameters,
    interpolate_conc,
    not_calculated_reasons,
    prepare_profiles,
    run_nca,
)
from cdisc_pipe.nca.pp import NcaResult, build_pp, describe_method, describe_parameters
from cdisc_pipe.nca.settings import NcaSettings, load_nca_settings

__all__ = [
    "NcaResult",
    "NcaSettings",
    "Profiles",
    "auc_between",
    "build_pp",
    "calc_parameters",
    "describe_method",
    "describe_parameters",
    "interpolate_conc",
    "load_nca_settings",
    "not_calculated_reasons",
    "prepare_profiles",
    "run_nca",
]
