"""ADaM stage: SDTM in, ADaM datasets out (admiral verb grammar).

Public entry points (see docs/ADAM.md): :func:`read_sdtm` and :func:`build_adam`.
"""
