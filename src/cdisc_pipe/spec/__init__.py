"""Study metadata: the model (``model``), the strict YAML loader (``load``) and the P21-style
specification workbook round trip (``xlsx``)."""

from cdisc_pipe.spec.load import load_specs
from cdisc_pipe.spec.model import (
    Codelist,
    CodelistTerm,
    Comment,
    Dataset,
    Dictionary,
    Document,
    Method,
    Origin,
    Standard,
    Study,
    StudySpec,
    ValueLevel,
    Variable,
    WhereClause,
    WhereCondition,
)

__all__ = [
    "load_specs", "Codelist", "CodelistTerm", "Comment", "Dataset", "Dictionary", "Document", "Method",
    "Origin", "Standard", "Study", "StudySpec", "ValueLevel", "Variable", "WhereClause", "WhereCondition",
]
