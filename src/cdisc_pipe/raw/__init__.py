"""Reading a raw EDC export: ``read_export(raw_dir) -> RawExport`` (see docs/RAW.md)."""

from cdisc_pipe.raw.reader import ROW, RawExport, read_csv_form, read_export

__all__ = ["ROW", "RawExport", "read_csv_form", "read_export"]
