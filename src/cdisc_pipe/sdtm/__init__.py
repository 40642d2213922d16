"""SDTM stage: spec-driven mapping engine, algorithms, shared derivations and domain assembly.

Entry point: :func:`build_sdtm` (raw export + study spec + mappings folder -> :class:`SdtmResult`).
The mapping vocabulary is documented in ``docs/MAPPINGS.md``.
"""

from cdisc_pipe.sdtm.build import SdtmResult, build_sdtm
from cdisc_pipe.sdtm.mapping import Mappings, load_mappings

__all__ = ["SdtmResult", "build_sdtm", "Mappings", "load_mappings"]
