"""The bundled study's eCRF design: codelists, forms, fields and the visit schedule.

This module is data only.  It is the single source of the export's data dictionary
(``data_dictionary.csv``) and of ``docs/RAW.md``; the generator fills exactly these fields, and the
reader checks an export against the dictionary written beside it.

Conventions (EDC style, CDASH-like field names):

* every form starts with the EDC metadata columns :data:`META_FIELDS`;
* coded fields hold the **code**; the decode is in the dictionary (``codes`` = ``code=decode|...``);
* dates are typed as sites type them: ``12 MAR 2024``; partial ``UN MAR 2024`` / ``UN UNK 2023``;
  times ``HH:MM``; EDC audit timestamps ``YYYY-MM-DD HH:MM:SS``.
"""

from __future__ import annotations

from dataclasses import dataclass

STUDYID = "BCMACART01"
SITEID = "101"

#: Codelists: name -> ((code, decode), ...).  Codes are what the export holds.
CODELISTS: dict[str, tuple[tuple[str, str], ...]] = {
    "NY": (("Y", "Yes"), ("N", "No")),
    "NYU": (("Y", "Yes"), ("N", "No"), ("U", "Not tested")),
    "SEX": (("M", "Male"), ("F", "Female")),
    "AGEU": (("YEARS", "Years"),),
    "ETHNIC": (("1", "Not Hispanic or Latino"), ("2", "Hispanic or Latino"), ("9", "Not reported")),
    "RACE": (("1", "Asian"), ("2", "White"), ("3", "Black or African American"), ("99", "Other")),
    "COHORT": (("ESC", "Dose escalation"), ("EXP", "Dose expansion")),
    "DOSELVL": (
        ("DL1", "DL1: 1.0x10^6 CAR+ T cells/kg"),
        ("DL2", "DL2: 3.0x10^6 CAR+ T cells/kg"),
        ("DL3", "DL3: 6.0x10^6 CAR+ T cells/kg"),
    ),
    "MMTYPE": (("IGG", "IgG"), ("IGA", "IgA"), ("IGD", "IgD"), ("LC", "Light chain only")),
    "MMLC": (("K", "Kappa"), ("L", "Lambda")),
    "ISS": (("1", "Stage I"), ("2", "Stage II"), ("3", "Stage III")),
    "RESP": (
        ("SCR", "Stringent complete response (sCR)"),
        ("CR", "Complete response (CR)"),
        ("VGPR", "Very good partial response (VGPR)"),
        ("PR", "Partial response (PR)"),
        ("MR", "Minimal response (MR)"),
        ("SD", "Stable disease (SD)"),
        ("PD", "Progressive disease (PD)"),
        ("NE", "Not evaluable (NE)"),
        ("UNK", "Unknown"),
    ),
    "ECOG": (
        ("0", "Fully active"),
        ("1", "Restricted in strenuous activity"),
        ("2", "Ambulatory, capable of self-care, unable to work"),
        ("3", "Capable of only limited self-care"),
        ("4", "Completely disabled"),
    ),
    "NORMABN": (("N", "Normal"), ("A", "Abnormal")),
    "MANUF": (("REL", "Product released"), ("FAIL", "Manufacturing failure")),
    "LDDRUG": (("FLU", "Fludarabine"), ("CY", "Cyclophosphamide")),
    "DOSEU": (("mg/m2", "mg/m2"),),
    "TOXGR": (("1", "Grade 1"), ("2", "Grade 2"), ("3", "Grade 3"), ("4", "Grade 4"), ("5", "Grade 5")),
    "GRSCL": (("ASTCT", "ASTCT 2019 consensus"), ("CTCAE", "CTCAE v5.0")),
    "REL": (
        ("1", "Not related"),
        ("2", "Unlikely related"),
        ("3", "Possibly related"),
        ("4", "Probably related"),
        ("5", "Definitely related"),
    ),
    "ACN": (
        ("NA", "Not applicable"),
        ("NONE", "Dose not changed"),
        ("DELAY", "Infusion delayed"),
        ("UNK", "Unknown"),
    ),
    "OUT": (
        ("REC", "Recovered/resolved"),
        ("RECSEQ", "Recovered/resolved with sequelae"),
        ("RECING", "Recovering/resolving"),
        ("NOTREC", "Not recovered/not resolved"),
        ("FATAL", "Fatal"),
        ("UNK", "Unknown"),
    ),
    "VASO": (("0", "None"), ("1", "One vasopressor (with or without vasopressin)"), ("2", "Multiple vasopressors")),
    "OXY": (
        ("NONE", "None"),
        ("LOWFLOW", "Low-flow nasal cannula (<=6 L/min)"),
        ("HIGHFLOW", "High-flow nasal cannula, face mask or Venturi mask"),
        ("POSPRES", "Positive pressure (CPAP, BiPAP, intubation)"),
    ),
    "CONSC": (
        ("AWAKE", "Awakens spontaneously"),
        ("VOICE", "Awakens to voice"),
        ("TOUCH", "Awakens only to tactile stimulus"),
        ("UNAROUS", "Unarousable"),
    ),
    "DOSU": (("mg", "mg"), ("g", "g"), ("mg/kg", "mg/kg"), ("mg/m2", "mg/m2"), ("ug", "ug"), ("IU", "IU"), ("mL", "mL"), ("OTHER", "Other, specify")),
    "ROUTE": (
        ("IV", "Intravenous"),
        ("PO", "Oral"),
        ("SC", "Subcutaneous"),
        ("IM", "Intramuscular"),
        ("INH", "Inhalation"),
        ("OTHER", "Other, specify"),
    ),
    "FRQ": (
        ("ONCE", "Once"),
        ("QD", "Once daily"),
        ("BID", "Twice daily"),
        ("TID", "Three times daily"),
        ("Q6H", "Every 6 hours"),
        ("Q8H", "Every 8 hours"),
        ("QW", "Once weekly"),
        ("PRN", "As needed"),
        ("OTHER", "Other, specify"),
    ),
    "LBCATL": (("CHEM", "Chemistry"), ("COAG", "Coagulation")),
    "LBCATC": (("CYTO", "Cytokines and inflammation"), ("DISEASE", "Disease assessment")),
    "LBSPEC": (("SERUM", "Serum"), ("PLASMA", "Plasma"), ("URINE", "Urine (24-hour collection)")),
    "LBMETH": (
        ("ELISA", "ELISA"),
        ("ELECTRO", "Electrophoresis"),
        ("IFE", "Immunofixation electrophoresis"),
        ("NEPH", "Nephelometry"),
        ("IMMUNO", "Immunoturbidimetry"),
    ),
    "LBTESTL": (
        ("ALT", "Alanine aminotransferase"),
        ("AST", "Aspartate aminotransferase"),
        ("TBIL", "Total bilirubin"),
        ("CREAT", "Creatinine"),
        ("CA", "Calcium"),
        ("ALB", "Albumin"),
        ("LDH", "Lactate dehydrogenase"),
        ("K", "Potassium"),
        ("B2M", "Beta-2 microglobulin"),
        ("PT", "Prothrombin time"),
        ("APTT", "Activated partial thromboplastin time"),
        ("FIB", "Fibrinogen"),
        ("DDIMER", "D-dimer"),
    ),
    "LBTESTC": (
        ("IL6", "Interleukin-6"),
        ("IL10", "Interleukin-10"),
        ("IFNG", "Interferon gamma"),
        ("TNFA", "Tumor necrosis factor alpha"),
        ("FERR", "Ferritin"),
        ("CRP", "C-reactive protein"),
        ("SMPROT", "Serum M-protein (SPEP)"),
        ("UMPROT", "Urine M-protein (24-hour UPEP)"),
        ("SIFE", "Serum immunofixation"),
        ("UIFE", "Urine immunofixation"),
        ("IFEISO", "Immunofixation isotype"),
        ("KFLC", "Serum free kappa light chain"),
        ("LFLC", "Serum free lambda light chain"),
        ("FLCR", "Serum free light chain kappa/lambda ratio"),
        ("IGG", "Immunoglobulin G"),
        ("IGA", "Immunoglobulin A"),
    ),
    "LABUNIT": (
        ("10^9/L", "10^9/L"),
        ("g/L", "g/L"),
        ("g/dL", "g/dL"),
        ("U/L", "U/L"),
        ("umol/L", "umol/L"),
        ("mg/dL", "mg/dL"),
        ("mmol/L", "mmol/L"),
        ("mg/L", "mg/L"),
        ("sec", "seconds"),
        ("mg/L FEU", "mg/L fibrinogen equivalent units"),
        ("pg/mL", "pg/mL"),
        ("ng/mL", "ng/mL"),
        ("mg/24h", "mg/24 hours"),
        ("ratio", "ratio (no unit)"),
    ),
    "POSNEG": (("POS", "Positive"), ("NEG", "Negative")),
    "CLON": (("POS", "Clonal plasma cells detected"), ("NEG", "No clonal plasma cells")),
    "BMMETH": (("IHC", "Immunohistochemistry"), ("FLOW", "Flow cytometry")),
    "MRDMETH": (("NGS", "Next-generation sequencing"),),
    "PCSPEC": (("PB", "Peripheral blood"), ("BM", "Bone marrow")),
    "PCTPT": (
        ("PRE", "Pre-infusion"),
        ("D1", "Day 1"),
        ("D4", "Day 4"),
        ("D7", "Day 7"),
        ("D10", "Day 10"),
        ("D14", "Day 14"),
        ("D21", "Day 21"),
        ("D28", "Day 28"),
        ("M2", "Month 2"),
        ("M3", "Month 3"),
        ("M6", "Month 6"),
        ("M9", "Month 9"),
        ("M12", "Month 12"),
        ("M18", "Month 18"),
        ("M24", "Month 24"),
        ("UNS", "Unscheduled"),
    ),
    "PCUNIT": (("copies/ug gDNA", "transgene copies per microgram genomic DNA"),),
    "THER": (
        ("SYS", "Systemic anticancer therapy"),
        ("ASCT", "Autologous stem cell transplant"),
        ("RT", "Radiotherapy"),
        ("OTHER", "Other, specify"),
    ),
    "DTHC": (("PD", "Progressive disease"), ("AE", "Adverse event"), ("OTHER", "Other, specify"), ("UNK", "Unknown")),
    "EOSSTAT": (("COMPLETED", "Completed"), ("DISCONT", "Discontinued")),
    "DCSREAS": (
        ("DEATH", "Death"),
        ("PD", "Progressive disease"),
        ("WITHDRAW", "Withdrawal by subject"),
        ("LOST", "Lost to follow-up"),
        ("PHYSDEC", "Physician decision"),
        ("OTHER", "Other, specify"),
    ),
    "SSSTAT": (("ALIVE", "Alive"), ("DEAD", "Dead"), ("UNK", "Unknown")),
    "CONTMETH": (("PHONE", "Telephone"), ("VISIT", "Clinic visit"), ("RECORDS", "Medical records")),
}

#: EDC metadata columns at the start of every form: (field, label, type).
META_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("STUDYID", "Study identifier", "text"),
    ("SITEID", "Site number", "text"),
    ("SUBJID", "Subject number", "text"),
    ("FOLDER", "Folder (visit) OID", "text"),
    ("FOLDERNAME", "Folder (visit) name", "text"),
    ("FORMINST", "Form instance within the folder", "integer"),
    ("RECPOS", "Record position (0 = single-record form, 1..n = log line)", "integer"),
    ("ENTRYDTM", "Date/time the record was first entered (EDC audit)", "datetime"),
    ("MODDTM", "Date/time the record was last modified (EDC audit)", "datetime"),
)


@dataclass(frozen=True)
class Field:
    """One eCRF field: name, label, type (text/integer/float/date/time/datetime), codelist, required."""

    name: str
    label: str
    type: str = "text"
    codelist: str | None = None
    required: bool = False
    unit: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Form:
    """One eCRF form, exported as ``<name>.csv`` (or a sheet named ``<name>``)."""

    name: str
    title: str
    structure: str
    fields: tuple[Field, ...]


F = Field
D = "date"
CBC_TESTS: tuple[tuple[str, str, str, int], ...] = (
    # code, label, unit, decimals
    ("WBC", "White blood cell count", "10^9/L", 2),
    ("NEUT", "Absolute neutrophil count", "10^9/L", 2),
    ("LYM", "Absolute lymphocyte count", "10^9/L", 2),
    ("MONO", "Absolute monocyte count", "10^9/L", 2),
    ("HGB", "Hemoglobin", "g/L", 0),
    ("PLAT", "Platelet count", "10^9/L", 0),
)


def _cbc_fields() -> tuple[Field, ...]:
    out: list[Field] = []
    for code, label, unit, _ in CBC_TESTS:
        out += [
            F(f"{code}_ORRES", f"{label}: result", "float"),
            F(f"{code}_ORRESU", f"{label}: unit", "text", "LABUNIT"),
            F(f"{code}_ORNRLO", f"{label}: normal range lower limit", "float"),
            F(f"{code}_ORNRHI", f"{label}: normal range upper limit", "float"),
        ]
    return tuple(out)


FORMS: tuple[Form, ...] = (
    Form("enrol", "Enrolment and informed consent", "one record per subject", (
        F("RFICDAT", "Date informed consent signed", D, required=True),
        F("PROTVER", "Protocol version consented", "text"),
        F("ELIGYN", "All eligibility criteria met", "text", "NY", True),
        F("ENRLDAT", "Date of enrolment", D, required=True),
        F("COHORT", "Study part", "text", "COHORT", True),
        F("DOSELVL", "Assigned (planned) CAR-T dose level", "text", "DOSELVL", True),
    )),
    Form("dm", "Demography", "one record per subject", (
        F("BRTHDAT", "Date of birth", D, note="partial dates allowed"),
        F("AGE", "Age at informed consent", "integer", required=True),
        F("AGEU", "Age unit", "text", "AGEU", True),
        F("SEX", "Sex", "text", "SEX", True),
        F("ETHNIC", "Ethnicity", "text", "ETHNIC"),
        F("RACE", "Race", "text", "RACE", True),
        F("RACEOTH", "Race, other specify", "text"),
    )),
    Form("mmhist", "Multiple myeloma history", "one record per subject", (
        F("MMDIAGDAT", "Date of initial diagnosis of multiple myeloma", D, required=True, note="partial dates allowed"),
        F("MMTYPE", "Heavy-chain isotype at diagnosis", "text", "MMTYPE", True),
        F("MMLC", "Light-chain type", "text", "MMLC", True),
        F("ISS", "ISS stage at study entry", "text", "ISS", True),
        F("RISS", "R-ISS stage at study entry", "text", "ISS", True),
        F("HRCYTO", "High-risk cytogenetics (del(17p), t(4;14) or t(14;16))", "text", "NY", True),
        F("DEL17P", "del(17p) by FISH", "text", "NYU"),
        F("T414", "t(4;14) by FISH", "text", "NYU"),
        F("T1416", "t(14;16) by FISH", "text", "NYU"),
        F("GAIN1Q", "gain/amp(1q) by FISH", "text", "NYU"),
        F("PRLINES", "Number of prior lines of therapy", "integer", required=True),
        F("PIREF", "Refractory to a proteasome inhibitor", "text", "NY"),
        F("IMIDREF", "Refractory to an immunomodulatory drug", "text", "NY"),
        F("CD38REF", "Refractory to an anti-CD38 antibody", "text", "NY"),
        F("PRASCT", "Prior autologous stem cell transplant", "text", "NY", True),
        F("PRASCTDAT", "Date of prior ASCT", D, note="partial dates allowed"),
        F("EMD", "Extramedullary disease at study entry", "text", "NY", True),
        F("EMDLOC", "Extramedullary disease location", "text"),
    )),
    Form("priortx", "Prior anti-myeloma therapy", "one record per prior line", (
        F("LINENUM", "Line of therapy number", "integer", required=True),
        F("CMTRT", "Regimen (as written)", "text", required=True),
        F("CMSTDAT", "Start date", D, note="partial dates allowed"),
        F("CMENDAT", "End date", D, note="partial dates allowed"),
        F("BESTRESP", "Best response to this line", "text", "RESP"),
        F("REFRACT", "Refractory to this line", "text", "NY", True),
    )),
    Form("mh", "Medical history", "one record per condition", (
        F("MHTERM", "Condition (verbatim)", "text", required=True),
        F("MHSTDAT", "Start date", D, note="partial dates allowed"),
        F("MHONGO", "Ongoing at screening", "text", "NY"),
    )),
    Form("visit", "Visit date", "one record per subject per visit (scheduled and unscheduled)", (
        F("VISOCCUR", "Did the visit take place", "text", "NY", True),
        F("VISDAT", "Visit date", D),
        F("VISREAS", "Reason the visit did not take place", "text"),
    )),
    Form("ecog", "ECOG performance status", "one record per assessment", (
        F("ECOGDAT", "Assessment date", D, required=True),
        F("ECOG", "ECOG performance status", "integer", "ECOG", True),
    )),
    Form("vs", "Vital signs (wide: one column per measurement)", "one record per visit", (
        F("VSDAT", "Measurement date", D, required=True),
        F("VSTIM", "Measurement time", "time"),
        F("TEMP", "Body temperature", "float", unit="C"),
        F("SYSBP", "Systolic blood pressure", "integer", unit="mmHg"),
        F("DIABP", "Diastolic blood pressure", "integer", unit="mmHg"),
        F("PULSE", "Pulse rate", "integer", unit="beats/min"),
        F("RESP", "Respiratory rate", "integer", unit="breaths/min"),
        F("SPO2", "Oxygen saturation", "integer", unit="%"),
        F("WEIGHT", "Weight", "float", unit="kg"),
        F("HEIGHT", "Height (screening only)", "float", unit="cm"),
    )),
    Form("pe", "Physical examination", "one record per visit", (
        F("PEPERF", "Physical examination performed", "text", "NY", True),
        F("PEDAT", "Examination date", D),
        F("PERES", "Overall result", "text", "NORMABN"),
        F("PEABN", "Abnormal findings, specify", "text"),
    )),
    Form("aph", "Leukapheresis", "one record per subject", (
        F("PRSTDAT", "Leukapheresis date", D, required=True),
        F("PRSTTIM", "Start time", "time"),
        F("PRENTIM", "End time", "time"),
        F("PRVOL", "Total blood volume processed", "float", unit="L"),
        F("MANUF", "Manufacturing outcome", "text", "MANUF", True),
        F("MANUFRSN", "Manufacturing failure, specify", "text"),
    )),
    Form("bridge", "Bridging therapy", "one record per drug", (
        F("CMTRT", "Bridging drug (as written)", "text", required=True),
        F("CMDOSE", "Dose per administration", "float"),
        F("CMDOSU", "Dose unit", "text", "DOSU"),
        F("CMROUTE", "Route", "text", "ROUTE"),
        F("CMSTDAT", "Start date", D, required=True),
        F("CMENDAT", "End date", D),
    )),
    Form("ld", "Lymphodepleting chemotherapy", "one record per drug per day", (
        F("LDDAY", "Protocol day (infusion = Day 0)", "integer", required=True),
        F("EXTRT", "Drug", "text", "LDDRUG", True),
        F("EXSTDAT", "Administration date", D, required=True),
        F("EXSTTIM", "Start time", "time"),
        F("BSA", "Body surface area used for dosing", "float", unit="m2"),
        F("EXDOSE", "Dose administered per m2", "float", required=True, unit="mg/m2"),
        F("EXDOSU", "Dose unit", "text", "DOSEU", True),
        F("EXDOSTOT", "Total dose administered", "float", unit="mg"),
        F("EXADJ", "Reason for dose adjustment", "text"),
    )),
    Form("cart", "CAR-T cell infusion", "one record per subject", (
        F("EXYN", "Was the CAR-T product infused", "text", "NY", True),
        F("EXREASND", "Reason not infused", "text"),
        F("DOSELVL", "Planned dose level", "text", "DOSELVL", True),
        F("EXSTDAT", "Infusion date", D),
        F("EXSTTIM", "Infusion start time", "time"),
        F("EXENTIM", "Infusion end time", "time"),
        F("CELLSKG", "Dose infused (x10^6 CAR+ T cells/kg)", "float", unit="10^6 cells/kg"),
        F("TOTCART", "Total CAR+ T cells infused (x10^6)", "float", unit="10^6 cells"),
        F("WEIGHT", "Weight used for dosing", "float", unit="kg"),
        F("BAGVOL", "Infused bag volume", "float", unit="mL"),
        F("EXLOT", "Product lot number", "text"),
    )),
    Form("ae", "Adverse events", "one record per adverse event", (
        F("AESPID", "AE number", "integer", required=True),
        F("AETERM", "Adverse event (verbatim)", "text", required=True),
        F("AELLT", "MedDRA lowest level term", "text", note="coded by the sponsor, MedDRA 26.1"),
        F("AEDECOD", "MedDRA preferred term", "text", required=True, note="coded by the sponsor, MedDRA 26.1"),
        F("AESOC", "MedDRA primary system organ class", "text", required=True),
        F("AESTDAT", "Start date", D, required=True),
        F("AEENDAT", "End date", D),
        F("AEONGO", "Ongoing", "text", "NY"),
        F("AETOXGR", "Toxicity grade", "text", "TOXGR", True),
        F("AEGRSCL", "Grading scale", "text", "GRSCL", True),
        F("AESER", "Serious", "text", "NY", True),
        F("AESDTH", "Serious: resulted in death", "text", "NY"),
        F("AESLIFE", "Serious: life threatening", "text", "NY"),
        F("AESHOSP", "Serious: hospitalisation (initial or prolonged)", "text", "NY"),
        F("AESDISAB", "Serious: disability/incapacity", "text", "NY"),
        F("AESCONG", "Serious: congenital anomaly", "text", "NY"),
        F("AESMIE", "Serious: other medically important event", "text", "NY"),
        F("AERELCAR", "Relationship to CAR-T cells", "text", "REL", True),
        F("AERELLD", "Relationship to lymphodepletion", "text", "REL"),
        F("AEACN", "Action taken with CAR-T infusion", "text", "ACN"),
        F("AEACNOTH", "Other action taken, specify", "text"),
        F("AEOUT", "Outcome", "text", "OUT", True),
        F("AEDLT", "Dose-limiting toxicity (investigator)", "text", "NY", True),
    )),
    Form("crs", "Cytokine release syndrome detail", "one record per CRS episode", (
        F("AESPID", "AE number of the CRS event", "integer", required=True),
        F("CRSSTDAT", "CRS onset date", D, required=True),
        F("MAXTEMP", "Maximum body temperature", "float", required=True, unit="C"),
        F("HYPOTEN", "Hypotension", "text", "NY", True),
        F("VASOPRES", "Vasopressor use", "text", "VASO", True),
        F("OXYSUPP", "Highest oxygen support", "text", "OXY", True),
        F("TOCI", "Tocilizumab given", "text", "NY"),
        F("STEROID", "Corticosteroids given", "text", "NY"),
    )),
    Form("icans", "ICANS detail", "one record per ICANS episode", (
        F("AESPID", "AE number of the ICANS event", "integer", required=True),
        F("ICANSDAT", "ICANS onset date", D, required=True),
        F("ICESCORE", "Lowest ICE score (0-10)", "integer", required=True),
        F("CONSC", "Worst depressed level of consciousness", "text", "CONSC"),
        F("SEIZURE", "Seizure", "text", "NY"),
        F("MOTOR", "Motor findings", "text", "NY"),
        F("CEREDEMA", "Raised intracranial pressure / cerebral edema", "text", "NY"),
    )),
    Form("cm", "Concomitant medications", "one record per medication", (
        F("CMTRT", "Medication (verbatim)", "text", required=True),
        F("CMDECOD", "Standardised medication name (WHODrug)", "text"),
        F("CMCLAS", "ATC class (WHODrug)", "text"),
        F("CMINDC", "Indication", "text"),
        F("CMAENO", "Related AE number", "integer"),
        F("CMDSTXT", "Dose per administration", "text"),
        F("CMDOSU", "Dose unit", "text", "DOSU"),
        F("CMDOSUO", "Dose unit, other specify", "text"),
        F("CMROUTE", "Route", "text", "ROUTE"),
        F("CMROUTEO", "Route, other specify", "text"),
        F("CMFRQ", "Frequency", "text", "FRQ"),
        F("CMFRQO", "Frequency, other specify", "text"),
        F("CMSTDAT", "Start date", D, required=True, note="partial dates allowed"),
        F("CMENDAT", "End date", D, note="partial dates allowed"),
        F("CMONGO", "Ongoing", "text", "NY"),
    )),
    Form("cbc", "Local haematology (wide: one column group per test)", "one record per sample", (
        F("LBDAT", "Sample date", D, required=True),
        F("LBTIM", "Sample time", "time"),
        F("LBNAM", "Laboratory name", "text"),
    ) + _cbc_fields()),
    Form("chem", "Local chemistry and coagulation (long)", "one record per test per sample", (
        F("LBDAT", "Sample date", D, required=True),
        F("LBTIM", "Sample time", "time"),
        F("LBNAM", "Laboratory name", "text"),
        F("LBCAT", "Panel", "text", "LBCATL", True),
        F("LBTESTCD", "Test code (local)", "text", "LBTESTL", True),
        F("LBTEST", "Test name", "text", required=True),
        F("LBORRES", "Result", "text", required=True, note="may carry < or > qualifiers"),
        F("LBORRESU", "Unit", "text", "LABUNIT"),
        F("LBORNRLO", "Normal range lower limit", "float"),
        F("LBORNRHI", "Normal range upper limit", "float"),
    )),
    Form("lbcent", "Central laboratory transfer: cytokines and disease markers (long)", "one record per test per sample", (
        F("LBREFID", "Accession number", "text", required=True),
        F("LBDAT", "Collection date", D, required=True),
        F("LBTIM", "Collection time", "time"),
        F("LBENDAT", "Collection end date (24-hour urine)", D),
        F("LBCAT", "Panel", "text", "LBCATC", True),
        F("LBSPEC", "Specimen", "text", "LBSPEC", True),
        F("LBMETHOD", "Method", "text", "LBMETH"),
        F("LBTESTCD", "Test code (central lab)", "text", "LBTESTC", True),
        F("LBTEST", "Test name", "text", required=True),
        F("LBORRES", "Result", "text", required=True, note="may carry < or > qualifiers; IFE: POSITIVE/NEGATIVE"),
        F("LBORRESU", "Unit", "text", "LABUNIT"),
        F("LBORNRLO", "Normal range lower limit", "text"),
        F("LBORNRHI", "Normal range upper limit", "text"),
        F("LBLLOQ", "Lower limit of quantitation", "float"),
    )),
    Form("bm", "Bone marrow assessment", "one record per aspirate/biopsy", (
        F("BMDAT", "Bone marrow date", D, required=True),
        F("BMPC", "Plasma cells (% of nucleated cells, morphology)", "float", required=True, unit="%"),
        F("BMCLON", "Clonal plasma cells", "text", "CLON"),
        F("BMCLMETH", "Clonality method", "text", "BMMETH"),
    )),
    Form("mrd", "Minimal residual disease (bone marrow)", "one record per MRD sample", (
        F("MRDDAT", "Bone marrow sample date", D, required=True),
        F("MRDMETH", "Method", "text", "MRDMETH", True),
        F("MRDRES", "MRD status", "text", "POSNEG", True),
        F("MRDVAL", "Residual tumour fraction", "text", note="e.g. 3.2E-04; <1.0E-05 when negative"),
        F("MRDSENS", "Assay sensitivity", "float", required=True, note="e.g. 1E-05"),
    )),
    Form("pc", "CAR transgene by qPCR", "one record per sample", (
        F("PCREFID", "Sample accession number", "text", required=True),
        F("PCSPEC", "Specimen", "text", "PCSPEC", True),
        F("PCTPT", "Nominal time point", "text", "PCTPT", True),
        F("PCDAT", "Collection date", D, required=True),
        F("PCTIM", "Collection time", "time"),
        F("PCORRES", "Result", "text", required=True, note="<LLOQ written as e.g. <50"),
        F("PCORRESU", "Unit", "text", "PCUNIT", True),
        F("PCLLOQ", "Lower limit of quantitation", "float", required=True, unit="copies/ug gDNA"),
    )),
    Form("rs", "Investigator response assessment (IMWG 2016)", "one record per assessment", (
        F("RSDAT", "Assessment date", D, required=True),
        F("RSORRES", "Overall response", "text", "RESP", True),
    )),
    Form("prog", "Disease progression", "one record per subject with progression", (
        F("PDDAT", "Date of progression", D, required=True),
        F("PDSERUM", "Serum M-protein increase", "text", "NY"),
        F("PDURINE", "Urine M-protein increase", "text", "NY"),
        F("PDFLC", "Involved free light chain increase", "text", "NY"),
        F("PDBM", "Bone marrow plasma cell increase", "text", "NY"),
        F("PDNEWLES", "New or enlarging lesions / plasmacytoma", "text", "NY"),
        F("PDOTH", "Other progression criterion, specify", "text"),
    )),
    Form("subtx", "Subsequent anticancer therapy", "one record per therapy", (
        F("THERTYPE", "Type of therapy", "text", "THER", True),
        F("THEROTH", "Type of therapy, other specify", "text"),
        F("CMTRT", "Therapy (as written)", "text", required=True),
        F("CMSTDAT", "Start date", D, required=True),
        F("CMENDAT", "End date", D),
    )),
    Form("death", "Death", "one record per subject who died", (
        F("DTHDAT", "Date of death", D, required=True),
        F("DTHCAUS", "Primary cause of death", "text", "DTHC", True),
        F("DTHCAUSO", "Cause of death, specify", "text"),
        F("AUTOPSY", "Autopsy performed", "text", "NY"),
    )),
    Form("eos", "End of study", "one record per subject who left the study", (
        F("EOSDAT", "Date of end of study", D, required=True),
        F("EOSSTAT", "Status", "text", "EOSSTAT", True),
        F("DCSREAS", "Primary reason for discontinuation", "text", "DCSREAS"),
        F("DCSREASO", "Reason, other specify", "text"),
    )),
    Form("surv", "Survival follow-up contact", "one record per contact", (
        F("SSDAT", "Contact date", D, required=True),
        F("SSSTAT", "Survival status", "text", "SSSTAT", True),
        F("CONTMETH", "Contact method", "text", "CONTMETH"),
    )),
)

FORM_BY_NAME: dict[str, Form] = {f.name: f for f in FORMS}


@dataclass(frozen=True)
class Visit:
    """A scheduled folder: OID, name, anchor (``scr``/``aph``/``inf``), nominal day and window."""

    folder: str
    name: str
    anchor: str
    day: int
    window: int
    order: int


#: Scheduled folders; ``day`` is the protocol day relative to the anchor (infusion = Day 0).
VISITS: tuple[Visit, ...] = (
    Visit("SCR", "Screening", "scr", 0, 0, 10),
    Visit("APH", "Leukapheresis", "aph", 0, 0, 20),
    Visit("LD", "Lymphodepletion (Day -5)", "inf", -5, 0, 30),
    Visit("D0", "Day 0 (CAR-T infusion)", "inf", 0, 0, 40),
    Visit("D1", "Day 1", "inf", 1, 0, 50),
    Visit("D4", "Day 4", "inf", 4, 0, 60),
    Visit("D7", "Day 7", "inf", 7, 1, 70),
    Visit("D10", "Day 10", "inf", 10, 1, 80),
    Visit("D14", "Day 14", "inf", 14, 1, 90),
    Visit("D21", "Day 21", "inf", 21, 2, 100),
    Visit("D28", "Day 28", "inf", 28, 2, 110),
    Visit("M2", "Month 2", "inf", 60, 5, 120),
    Visit("M3", "Month 3", "inf", 90, 7, 130),
    Visit("M6", "Month 6", "inf", 180, 14, 140),
    Visit("M9", "Month 9", "inf", 270, 14, 150),
    Visit("M12", "Month 12", "inf", 365, 14, 160),
    Visit("M18", "Month 18", "inf", 545, 21, 170),
    Visit("M24", "Month 24", "inf", 730, 21, 180),
)
VISIT_BY_FOLDER: dict[str, Visit] = {v.folder: v for v in VISITS}

#: Log-form folders (forms that are not visit-bound).
LOG_FOLDERS: dict[str, str] = {
    "AELOG": "Adverse events",
    "CMLOG": "Concomitant medications",
    "MHLOG": "Medical history",
    "PTXLOG": "Prior therapy",
    "BRLOG": "Bridging therapy",
    "SUBLOG": "Subsequent therapy",
    "EVENTS": "Study events",
}

#: Which scheduled folders each visit-bound form is collected at.
FORM_VISITS: dict[str, tuple[str, ...]] = {
    "ecog": ("SCR", "LD", "D28", "M3", "M6", "M12", "M18", "M24"),
    "vs": ("SCR", "LD", "D0", "D1", "D4", "D7", "D10", "D14", "D21", "D28", "M2", "M3", "M6", "M12"),
    "pe": ("SCR", "D0", "D28", "M3", "M6", "M12", "M24"),
    "cbc": ("SCR", "LD", "D0", "D1", "D4", "D7", "D10", "D14", "D21", "D28", "M2", "M3", "M6", "M9", "M12", "M18", "M24"),
    "chem": ("SCR", "LD", "D0", "D1", "D4", "D7", "D10", "D14", "D21", "D28", "M2", "M3", "M6", "M12", "M24"),
    "cyto": ("LD", "D0", "D1", "D4", "D7", "D10", "D14", "D21", "D28"),
    "disease": ("SCR", "D0", "D28", "M2", "M3", "M6", "M9", "M12", "M18", "M24"),
    "bm": ("SCR", "D28", "M3", "M6", "M12", "M24"),
    "mrd": ("SCR", "D28", "M3", "M6", "M12", "M24"),
    "pcpb": ("D0", "D1", "D4", "D7", "D10", "D14", "D21", "D28", "M2", "M3", "M6", "M9", "M12", "M18", "M24"),
    "pcbm": ("D28", "M3", "M6", "M12"),
    "rs": ("D28", "M2", "M3", "M6", "M9", "M12", "M18", "M24"),
}

LOCAL_LABS: dict[str, tuple[str, str, str, float, float, int]] = {
    # code: (category, name, unit, low, high, decimals)
    "ALT": ("CHEM", "Alanine aminotransferase", "U/L", 7.0, 40.0, 0),
    "AST": ("CHEM", "Aspartate aminotransferase", "U/L", 13.0, 35.0, 0),
    "TBIL": ("CHEM", "Total bilirubin", "umol/L", 3.4, 20.5, 1),
    "CREAT": ("CHEM", "Creatinine", "umol/L", 41.0, 81.0, 0),
    "CA": ("CHEM", "Calcium", "mmol/L", 2.11, 2.52, 2),
    "ALB": ("CHEM", "Albumin", "g/L", 40.0, 55.0, 1),
    "LDH": ("CHEM", "Lactate dehydrogenase", "U/L", 120.0, 250.0, 0),
    "K": ("CHEM", "Potassium", "mmol/L", 3.5, 5.3, 2),
    "B2M": ("CHEM", "Beta-2 microglobulin", "mg/L", 1.0, 3.0, 2),
    "PT": ("COAG", "Prothrombin time", "sec", 9.8, 12.1, 1),
    "APTT": ("COAG", "Activated partial thromboplastin time", "sec", 25.0, 31.3, 1),
    "FIB": ("COAG", "Fibrinogen", "g/L", 2.0, 4.0, 2),
    "DDIMER": ("COAG", "D-dimer", "mg/L FEU", 0.0, 0.55, 2),
}
