"""Conform, check and write datasets as SAS transport v5 (and Dataset-JSON); read them back.

Public API (see ``docs/XPT.md``):

- :func:`conform` / :func:`conform_frame`: order, presence, types, sort and unique keys per spec;
- :func:`check_frame`: the FDA transport rules (names, labels, ASCII, 200 bytes, spec length);
- :func:`write_datasets`: all of the above for every dataset, one ``InputError``, then the files;
- :func:`read_xpt`, :func:`read_folder`: read back in the pipeline's in-memory conventions;
- :func:`read_xport`: the vectorised reader, returning what ``pyreadstat.read_xport`` returns
  (frame and metadata), 10-20x faster; :func:`read_header` / :func:`read_data` for raw access;
- :func:`write_xpt_v5` / :func:`xpt_v5_bytes`: the vectorised v5 writer (no checks).
"""

from cdisc_pipe.xpt.conform import check_frame, conform, conform_frame
from cdisc_pipe.xpt.datasets import (
    prepare_datasets,
    read_folder,
    read_xpt,
    read_xpt_with_meta,
    write_datasets,
    write_xpt_file,
    write_xpt_pyreadstat,
)
from cdisc_pipe.xpt.reader import XptMetadata, XptReadError, read_data, read_header, read_xport
from cdisc_pipe.xpt.v5 import XptVariable, format_timestamp, ieee_to_ibm, write_xpt_v5, xpt_v5_bytes

__all__ = [
    "check_frame", "conform", "conform_frame", "prepare_datasets", "read_folder", "read_xpt", "read_xpt_with_meta",
    "write_datasets", "write_xpt_file", "write_xpt_pyreadstat", "XptVariable", "format_timestamp", "ieee_to_ibm",
    "write_xpt_v5", "xpt_v5_bytes", "XptMetadata", "XptReadError", "read_data", "read_header", "read_xport",
]
