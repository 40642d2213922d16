"""``python -m cdisc_pipe.define check FOLDER...``: check define.xml files without running the pipeline.

For each folder: the Define-XML 2.1 schema and OID references of ``FOLDER/define.xml``
(:func:`~cdisc_pipe.define.validate_define`), then its agreement with the XPT files beside it
(:func:`~cdisc_pipe.define.check_define_against_data`).  Prints one line per problem or finding;
exit code 0 when clean, 1 when there is any schema problem or Error finding, 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cdisc_pipe.define.consistency import check_define_against_data
from cdisc_pipe.define.schema import validate_define
from cdisc_pipe.errors import InputError


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m cdisc_pipe.define", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check", help="schema + data consistency of FOLDER/define.xml")
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--no-values", action="store_true", help="skip the codelist value checks")
    p.add_argument("--ct", type=Path, default=None,
                   help="folder of CDISC CT files: values outside non-extensible codelists become errors")
    args = parser.parse_args(argv)
    failed = False
    for folder in args.folders:
        define = folder / "define.xml"
        if not define.is_file():
            print(f"{define}: not found", file=sys.stderr)
            return 2
        problems = validate_define(define.read_bytes(), file=str(define))
        for prob in problems:
            print(f"SCHEMA  {prob}")
        failed |= bool(problems)
        try:
            findings = check_define_against_data(define, folder, check_values=not args.no_values, ct_dir=args.ct)
        except InputError as exc:
            print(exc.summary(), file=sys.stderr)
            return 2
        for f in findings:
            where = ".".join(x for x in (f.dataset, f.variable) if x)
            value = f" (value: {f.value!r})" if f.value is not None else ""
            print(f"{f.severity.upper():7} {f.rule} {where}: {f.message}{value}")
            failed |= f.severity == "Error"
        print(f"{define}: {len(problems)} schema problem(s), {len(findings)} finding(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
