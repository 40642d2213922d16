"""The PK parameters the NCA computes: CDISC code, name, quantity, result unit kind, route (data).

``code`` is the PPTESTCD (PKPARMCD, C85839) and ``name`` the PPTEST (PKPARM, C85493) of SDTM CT
2025-03-28, looked up by NCI code (``nci``); ``tests/test_nca_catalog.py`` checks every entry against
the CT file.  ``quantity`` names the computation (``cdisc_pipe.nca.core``), ``unit`` the result unit
kind (``cdisc_pipe.nca.units.result_units``), ``route`` the administration the code is defined for
(None: any).  An entry with ``nci`` None is not in CDISC CT: a study that reports it must declare
it as a sponsor extension (``extended: true`` in its ``parameters`` entry).
"""

from __future__ import annotations

from dataclasses import dataclass

EV = "extravascular"
BOLUS = "intravascular_bolus"
INFUSION = "intravascular_infusion"
IV = (BOLUS, INFUSION)
ROUTES = (EV, BOLUS, INFUSION)


@dataclass(frozen=True)
class Entry:
    code: str
    name: str
    nci: str | None
    quantity: str
    unit: str  # conc, time, auc, aumc, per_time, percent, clearance, volume, none
    routes: tuple[str, ...] = ROUTES


CATALOG: tuple[Entry, ...] = (
    Entry("CMAX", "Max Conc", "C70918", "cmax", "conc"),
    Entry("TMAX", "Time of CMAX Observation", "C70919", "tmax", "time"),
    Entry("CLST", "Last Nonzero Conc", "C85655", "clast", "conc"),
    Entry("TLST", "Time of Last Nonzero Conc", "C85822", "tlast", "time"),
    Entry("AUCLST", "AUC to Last Nonzero Conc", "C85565", "auclast", "auc"),
    Entry("AUCINT", "AUC from T1 to T2", "C85566", "aucint", "auc"),
    Entry("LAMZ", "Lambda z", "C85652", "lambda_z", "per_time"),
    Entry("LAMZHL", "Half-Life Lambda z", "C85818", "half_life", "time"),
    Entry("LAMZNPT", "Number of Points for Lambda z", "C85816", "lambda_z_n", "none"),
    Entry("R2", "R Squared", "C85542", "r2", "none"),
    Entry("R2ADJ", "R Squared Adjusted", "C85553", "r2adj", "none"),
    Entry("LAMZLL", "Lambda z Lower Limit", "C85653", "lambda_z_lower", "time"),
    Entry("LAMZUL", "Lambda z Upper Limit", "C85654", "lambda_z_upper", "time"),
    Entry("LAMZSPN", "Lambda z Span", "C135492", "span_ratio", "none"),
    # PKNCA clast.pred; no PKPARMCD in CT 2025-03-28 (a sponsor extension when reported)
    Entry("CLSTP", "Last Nonzero Conc Pred", None, "clast_pred", "conc"),
    Entry("AUCIFO", "AUC Infinity Obs", "C85761", "aucinf_obs", "auc"),
    Entry("AUCIFP", "AUC Infinity Pred", "C85785", "aucinf_pred", "auc"),
    Entry("AUCPEO", "AUC %Extrapolation Obs", "C85764", "aucpext_obs", "percent"),
    Entry("AUCPEP", "AUC %Extrapolation Pred", "C85788", "aucpext_pred", "percent"),
    Entry("AUMCLST", "AUMC to Last Nonzero Conc", "C85569", "aumclast", "aumc"),
    Entry("AUMCIFO", "AUMC Infinity Obs", "C85765", "aumcinf_obs", "aumc"),
    Entry("AUMCIFP", "AUMC Infinity Pred", "C85789", "aumcinf_pred", "aumc"),
    Entry("MRTEVIFO", "MRT Extravasc Infinity Obs", "C120724", "mrt_obs", "time", (EV,)),
    Entry("MRTEVIFP", "MRT Extravasc Infinity Pred", "C120725", "mrt_pred", "time", (EV,)),
    Entry("MRTIBIFO", "MRT IV Bolus Infinity Obs", "C121134", "mrt_obs", "time", (BOLUS,)),
    Entry("MRTIBIFP", "MRT IV Bolus Infinity Pred", "C121136", "mrt_pred", "time", (BOLUS,)),
    Entry("MRTICIFO", "MRT IV Cont Inf Infinity Obs", "C181517", "mrt_obs", "time", (INFUSION,)),
    Entry("MRTICIFP", "MRT IV Cont Inf Infinity Pred", "C181518", "mrt_pred", "time", (INFUSION,)),
    Entry("CLFO", "Total CL Obs by F", "C85772", "cl_obs", "clearance", (EV,)),
    Entry("CLFP", "Total CL Pred by F", "C85796", "cl_pred", "clearance", (EV,)),
    Entry("CLO", "Total CL Obs", "C85773", "cl_obs", "clearance", IV),
    Entry("CLP", "Total CL Pred", "C85797", "cl_pred", "clearance", IV),
    Entry("VZFO", "Vz Obs by F", "C85775", "vz_obs", "volume", (EV,)),
    Entry("VZFP", "Vz Pred by F", "C85799", "vz_pred", "volume", (EV,)),
    Entry("VZO", "Vz Obs", "C85774", "vz_obs", "volume", IV),
    Entry("VZP", "Vz Pred", "C85798", "vz_pred", "volume", IV),
    Entry("C0", "Initial Conc", "C85644", "c0", "conc", (BOLUS,)),
    Entry("AUCTAU", "AUC Over Dosing Interval", "C85567", "auctau", "auc"),
    Entry("CAVG", "Average Concentration", "C85575", "cavg", "conc"),
    Entry("CTROUGH", "Conc Trough", "C102394", "ctrough", "conc"),
    Entry("CMIN", "Min Conc", "C85579", "cmin", "conc"),
)

BY_CODE: dict[str, Entry] = {e.code: e for e in CATALOG}
QUANTITIES: tuple[str, ...] = tuple(dict.fromkeys(e.quantity for e in CATALOG))
# result unit kind of each quantity
QUANTITY_UNIT: dict[str, str] = {e.quantity: e.unit for e in CATALOG}

# quantities by what they need (used by the settings checks and the not-calculated rules)
AUC_QUANTITIES = ("auclast", "aucint", "aucinf_obs", "aucinf_pred", "aucpext_obs", "aucpext_pred", "aumclast",
                  "aumcinf_obs", "aumcinf_pred", "mrt_obs", "mrt_pred", "cl_obs", "cl_pred", "vz_obs", "vz_pred",
                  "auctau", "cavg")
LAMBDA_Z_FIT = ("lambda_z_n", "r2", "r2adj", "lambda_z_lower", "lambda_z_upper", "span_ratio")
LAMBDA_Z_ESTIMATES = ("lambda_z", "half_life", "clast_pred")
INF_OBS = ("aucinf_obs", "aumcinf_obs", "mrt_obs", "cl_obs", "vz_obs")
INF_PRED = ("aucinf_pred", "aumcinf_pred", "mrt_pred", "cl_pred", "vz_pred")
LAMBDA_Z_QUANTITIES = (*LAMBDA_Z_FIT, *LAMBDA_Z_ESTIMATES, *INF_OBS, *INF_PRED, "aucpext_obs", "aucpext_pred")
DOSE_QUANTITIES = ("cl_obs", "cl_pred", "vz_obs", "vz_pred")
TAU_QUANTITIES = ("auctau", "cavg", "ctrough", "cmin")

__all__ = [
    "AUC_QUANTITIES",
    "BY_CODE",
    "CATALOG",
    "DOSE_QUANTITIES",
    "INF_OBS",
    "INF_PRED",
    "LAMBDA_Z_QUANTITIES",
    "QUANTITIES",
    "QUANTITY_UNIT",
    "ROUTES",
    "TAU_QUANTITIES",
    "Entry",
]
