"""cdisc-pipe: raw EDC export -> SDTM -> ADaM -> define.xml -> validation reports."""

__version__ = "0.1.0"
