"""``cdisc-pipe``: the command line.

Exit codes: 0 success; 1 validation findings of severity Error; 2 bad input or usage (every
problem listed with file, entry, column, value and what to do); 3 an internal error (a bug: the
traceback goes to the log, a one-line message to the terminal).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from cdisc_pipe import __version__
from cdisc_pipe.errors import InputError, Problem, raise_if
from cdisc_pipe.paths import default_ct, default_mappings, default_raw, default_specs
from cdisc_pipe.runlog import RunLog
from cdisc_pipe.summary import log_header, run_summary

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as exit code 2 with one clear line (argparse's own code)."""

    def error(self, message: str) -> None:  # pragma: no cover - argparse path
        self.print_usage(sys.stderr)
        print(f"ERROR: {message}. Run '{self.prog} --help' for the options.", file=sys.stderr)
        raise SystemExit(EXIT_INPUT)


def _common(p: argparse.ArgumentParser, *, raw=False, specs=True, mappings=False, ct=False) -> None:
    p.add_argument("--out", type=Path, default=Path("outputs"), help="output root (default: outputs/)")
    if raw:
        p.add_argument("--raw", type=Path, default=None, help="raw EDC export folder or .xlsx (default: the bundled study)")
    if specs:
        p.add_argument("--specs", type=Path, default=None, help="study specs folder (default: the bundled study's specs/)")
    if mappings:
        p.add_argument("--mappings", type=Path, default=None, help="mappings folder (default: the bundled study's mappings/)")
    if ct:
        p.add_argument("--ct", type=Path, default=None,
                       help="folder with the CDISC CT files named in specs/study.yaml (default: $CDISC_PIPE_CT or ../shared/ct)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def _encoding(name: str) -> str:
    """``--encoding``: a Python codec name that reads ASCII as ASCII (usage error otherwise)."""
    from cdisc_pipe.xpt.datasets import normalise_encoding

    try:
        return normalise_encoding(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _encoding_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoding", type=_encoding, default=None, metavar="NAME",
                   help="encoding of the text in every input XPT file (e.g. latin-1, cp1252); default: UTF-8, "
                        "or per file the first of cp1252, latin-1 that decodes it (reported in the log)")


def _cutoff_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cutoff", default=None, metavar="YYYY-MM-DD",
                   help="data cut-off: collected dates after it are Error findings and take no part in any derivation "
                        "(default: specs/settings/data_cutoff.yaml, else the export's date, else its latest EDC audit date)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cdisc-pipe", description="Raw EDC export -> SDTM -> ADaM -> define.xml -> validation reports.")
    parser.add_argument("--version", action="version", version=f"cdisc-pipe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="every stage: SDTM, ADaM, define.xml, validation (default: the bundled study)")
    _common(p, raw=True, mappings=True, ct=True)
    _cutoff_option(p)

    p = sub.add_parser("synth", help="generate a synthetic raw EDC export of the bundled study design")
    p.add_argument("--subjects", type=int, default=18, help="number of subjects (default 18)")
    p.add_argument("--seed", type=int, default=20240301, help="random seed (default: the bundled export's)")
    p.add_argument("--out", type=Path, required=True, help="folder to write the export into")
    p.add_argument("--format", dest="format", choices=("csv", "xlsx", "odm", "sas"), default=None,
                   help="csv (default: one CSV per form + data_dictionary.csv), xlsx (one workbook), odm (one CDISC "
                        "ODM-XML 1.3.2 file export.xml), sas (one SAS XPORT dataset per form + data_dictionary.csv)")
    p.add_argument("--xlsx", action="store_true", help="same as --format xlsx")
    p.add_argument("-q", "--quiet", action="store_true")

    p = sub.add_parser("sdtm", help="raw export -> SDTM datasets (XPT + Dataset-JSON) and their define.xml")
    _common(p, raw=True, mappings=True, ct=True)
    _cutoff_option(p)

    p = sub.add_parser("adam", help="SDTM folder (XPT or Dataset-JSON) -> ADaM datasets and their define.xml")
    _common(p, ct=True)
    p.add_argument("--sdtm", type=Path, default=None, help="SDTM folder (default: <out>/sdtm)")
    _encoding_option(p)
    _cutoff_option(p)

    p = sub.add_parser("define", help="(re)render define.xml and define.html for <out>/sdtm and <out>/adam")
    _common(p, ct=True)

    p = sub.add_parser("validate", help="validate an output root, or folders of SDTM/ADaM XPT files with define.xml")
    _common(p, ct=True)
    p.add_argument("--sdtm", type=Path, default=None, help="SDTM folder to validate (default: <out>/sdtm)")
    p.add_argument("--adam", type=Path, default=None, help="ADaM folder to validate (default: <out>/adam)")
    p.add_argument("--no-spec", action="store_true", help="validate without study specs (another study's package)")
    _encoding_option(p)

    p = sub.add_parser("results", help="the results report (reports/results.{html,json}) from an ADaM folder "
                                       "and the study's results plan (specs/results.yaml)")
    _common(p)
    p.add_argument("--adam", type=Path, default=None, help="ADaM folder (default: <out>/adam)")
    _encoding_option(p)

    p = sub.add_parser("package", help="lay out the eCTD module 5 folders of a validated output root")
    p.add_argument("--out", type=Path, default=Path("outputs"), help="output root holding sdtm/, adam/, reports/")
    p.add_argument("--dest", type=Path, default=None, help="where to write the package (default: <out>/package)")
    p.add_argument("-q", "--quiet", action="store_true")

    p = sub.add_parser("spec", help="export the specs to a P21-style workbook, or import one")
    ssub = p.add_subparsers(dest="spec_command", required=True, parser_class=_Parser)
    e = ssub.add_parser("export", help="specs folder -> xlsx workbook")
    e.add_argument("--specs", type=Path, default=None, help="specs folder (default: the bundled study's)")
    e.add_argument("--xlsx", type=Path, required=True, help="workbook to write")
    e.add_argument("-q", "--quiet", action="store_true")
    i = ssub.add_parser("import", help="xlsx workbook -> specs folder (YAML)")
    i.add_argument("--xlsx", type=Path, required=True, help="workbook to read")
    i.add_argument("--specs", type=Path, required=True, help="specs folder to write")
    i.add_argument("-q", "--quiet", action="store_true")
    return parser


def _paths(args: argparse.Namespace):
    from cdisc_pipe.pipeline import Paths

    raw = getattr(args, "raw", None) or default_raw()
    return Paths(
        out=args.out,
        raw=raw,
        specs=getattr(args, "specs", None) or default_specs(),
        mappings=getattr(args, "mappings", None) or default_mappings(),
        ct=getattr(args, "ct", None) or default_ct(),
        sdtm_in=getattr(args, "sdtm", None),
        adam_in=getattr(args, "adam", None),
        encoding=getattr(args, "encoding", None),
        cutoff=getattr(args, "cutoff", None),
    )


def check_out_folder(out: Path) -> list[Problem]:
    """Problems with ``--out`` before any work: a file instead of a folder, a folder that cannot be
    created or written (checked by writing a probe file, since permission bits do not bind root)."""
    import tempfile

    out = Path(out)
    if out.exists() and not out.is_dir():
        return [Problem(str(out), "--out names a file, not a folder", entry="--out",
                        hint="give a folder (it is created when missing), e.g. --out outputs")]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as exc:
        return [Problem(str(out), f"the output folder cannot be written: {exc.strerror or exc}", entry="--out",
                        hint="choose a folder you can write to, or fix its permissions")]
    return []


def _dispatch(args: argparse.Namespace, log: RunLog, argv: list[str], outcome: dict) -> int:
    """Run the command; ``outcome`` receives what the end-of-run summary reports (the validation result)."""
    from cdisc_pipe.environment import check_installed

    raise_if(check_installed())  # an untested, older pandas/numpy gives wrong results, not errors
    from cdisc_pipe import pipeline as pl

    cmd = args.command
    if cmd == "synth":
        if args.subjects < 1:
            raise InputError(Problem("command line", "--subjects must be at least 1", value=str(args.subjects)))
        if args.xlsx and args.format not in (None, "xlsx"):
            raise InputError(Problem("command line", f"--xlsx contradicts --format {args.format}",
                                     hint="give only --format"))
        fmt = args.format or ("xlsx" if args.xlsx else "csv")
        from cdisc_pipe.synth import generate

        with log.step(f"generating {args.subjects} subjects (seed {args.seed}, {fmt}) into {args.out}"):
            generate(subjects=args.subjects, seed=args.seed, out_dir=args.out, fmt=fmt)
        return EXIT_OK
    if cmd == "spec":
        from cdisc_pipe.spec import load_specs
        from cdisc_pipe.spec.xlsx import export_xlsx, import_xlsx, write_yaml_specs

        if args.spec_command == "export":
            spec = load_specs(args.specs or default_specs())
            export_xlsx(spec, args.xlsx)
            log.progress(f"wrote {args.xlsx}")
        else:
            spec = import_xlsx(args.xlsx)
            files = write_yaml_specs(spec, args.specs)
            log.progress(f"wrote {len(files)} spec files under {args.specs}")
        return EXIT_OK
    if cmd == "package":
        from cdisc_pipe.define import package

        dest = args.dest or (args.out / "package")
        with log.step(f"packaging {args.out} into {dest}"):
            package(args.out, dest)
        return EXIT_OK

    paths = _paths(args)
    raise_if(check_out_folder(paths.out))
    if paths.cutoff:  # a wrong --cutoff is a user error before any work (exit 2)
        from cdisc_pipe.cutoff import check_date

        check_date(paths.cutoff, "command line", "--cutoff")
    digests = pl.input_digests(paths)
    log_header(log, argv, {"out": paths.out, "raw": paths.raw, "specs": paths.specs, "mappings": paths.mappings,
                           "ct": paths.ct, "sdtm": paths.sdtm_in, "adam": paths.adam_in, "encoding": paths.encoding, "cutoff": paths.cutoff,
                           "no-spec": True if getattr(args, "no_spec", False) else None}, digests)
    if cmd == "run":
        code, outcome["validation"] = pl.run_all(paths, log, digests)
        return code
    if cmd == "sdtm":
        pl.run_single_stage("sdtm", paths, log)
        return EXIT_OK
    if cmd == "adam":
        paths.sdtm_in = paths.sdtm_in or (paths.out / "sdtm")
        if not paths.sdtm_in.is_dir():
            raise InputError(Problem(str(paths.sdtm_in), "SDTM folder not found",
                                     hint="Run 'cdisc-pipe sdtm' first or pass --sdtm DIR"))
        pl.run_single_stage("adam", paths, log)
        return EXIT_OK
    if cmd == "define":
        spec = pl.load_spec(paths, log)
        done = 0
        for sub, purpose in (("sdtm", "Tabulation"), ("adam", "Analysis")):
            folder = paths.out / sub
            if folder.is_dir():
                pl.stage_define(spec, folder, None, purpose, paths.ct, log,
                                cutoff=pl._previous_manifest(paths.out).get("data_cutoff"))
                done += 1
        if not done:
            raise InputError(Problem(str(paths.out), "no sdtm/ or adam/ folder to describe",
                                     hint="Run 'cdisc-pipe sdtm' / 'adam' first"))
        pl.finish("define", paths, spec, log, {})
        return EXIT_OK
    if cmd == "results":
        plan = pl.results_plan(paths.specs, log)
        if plan is None:
            raise InputError(Problem(str(Path(paths.specs) / "results.yaml"), "the study has no results plan",
                                     hint="write specs/results.yaml (docs/RESULTS.md)"))
        from cdisc_pipe.spec.load import read_yaml

        study_file = Path(paths.specs) / "study.yaml"
        meta = (read_yaml(study_file, []) if study_file.is_file() else None) or {}
        study = (meta.get("study") or {}).get("name", "") if isinstance(meta, dict) else ""
        files = pl.stage_results(paths.out, plan, str(study), log, adam_dir=paths.adam_in, encoding=paths.encoding)
        for f in files:
            log.progress(f"wrote {f}")
        return EXIT_OK
    if cmd == "validate":
        spec = None if args.no_spec else pl.load_spec(paths, log)
        result = outcome["validation"] = pl.stage_validate(paths, spec, log)
        if paths.sdtm_in is None and paths.adam_in is None:
            pl.finish("validate", paths, spec, log, {})
        return int(getattr(result, "exit_code", 0))
    raise InputError(Problem("command line", f"unknown command {cmd}"))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cdisc-pipe`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version / usage errors
        return int(exc.code or 0)
    command = args.command if args.command != "spec" else f"spec-{args.spec_command}"
    log = RunLog(command, quiet=getattr(args, "quiet", False))
    out = getattr(args, "out", None)
    code = EXIT_INTERNAL
    outcome: dict = {}
    try:
        code = _dispatch(args, log, list(sys.argv[1:] if argv is None else argv), outcome)
    except InputError as exc:
        for p in exc.problems:
            log.record("ERROR", str(p))
        print(f"ERROR: {exc.summary()}", file=sys.stderr)
        code = EXIT_INPUT
    except KeyboardInterrupt:
        log.record("ERROR", "interrupted")
        code = 130
    except OSError as exc:  # the machine said no (permissions, a full disk, a path that is a file): not our bug
        name = exc.filename or "a file"
        log.record("ERROR", f"cannot use {name}: {exc.strerror or exc}\n" + "".join(traceback.format_exception(exc)))
        print(f"ERROR: cannot use {name}: {exc.strerror or exc}. Check the path, the permissions and the free "
              "space, then run again.", file=sys.stderr)
        code = EXIT_INPUT
    except Exception as exc:  # a bug: keep the traceback for the log, one line for the terminal
        log.record("ERROR", "internal error: " + "".join(traceback.format_exception(exc)))
        print(f"ERROR: internal error ({type(exc).__name__}: {exc}). This is a bug in cdisc-pipe; "
              f"the traceback is in the log.", file=sys.stderr)
        code = EXIT_INTERNAL
    finally:
        log_path = None
        if out is not None and args.command not in ("synth",):
            try:
                log_path = log.save(out)
            except OSError as exc:  # the log is not lost: it goes to stderr instead
                print(f"WARNING: could not write the log under {out}: {exc.strerror or exc}; the log follows",
                      file=sys.stderr)
                print("\n".join(log.lines), file=sys.stderr)
        if out is not None and args.command in ("run", "sdtm", "adam", "validate", "define") and not log.quiet:
            print(run_summary(command, out, code, outcome.get("validation"), log_path), flush=True)
        elif log_path is not None and not log.quiet:
            print(f"log: {log_path}", file=sys.stderr)
    if code == EXIT_FINDINGS and log.quiet:
        print(f"Validation found Error-severity findings: see {Path(out).resolve() / 'reports' / 'validation.html'}",
              file=sys.stderr)
    return code


def console() -> None:
    """The ``cdisc-pipe`` console script: :func:`main`, then the process ends at once.  Everything is
    written and closed by then (outputs, log, manifest; standard streams flushed here), so Python's
    own teardown, which frees every object of a run one by one (0.25 s at 1,000 subjects, more at
    5,000), is skipped."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stream: leave the exit to Python
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    console()
