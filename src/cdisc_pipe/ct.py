"""CDISC Controlled Terminology: read NCI EVS exports, look up codelists and terms, check specs.

The CT files are configuration (``--ct DIR``), not part of the product: the study's
``specs/study.yaml`` names the package of each publishing set (``ct_file``), and this module reads
it from the CT folder.  Two formats are read: the NCI EVS tab-delimited ``.txt`` and the ``.csv``
export; both have the columns Code, Codelist Code, Codelist Extensible (Yes/No), Codelist Name,
CDISC Submission Value, CDISC Synonym(s), CDISC Definition, NCI Preferred Term.

Command line (helps spec writers take terms from CT instead of memory)::

    python -m cdisc_pipe.ct codelist C66731 --terms F M --oid CL.SEX --ct ../shared/ct/sdtm-ct-2025-03-28.txt
    python -m cdisc_pipe.ct find "Interleukin 6" --ct ../shared/ct/sdtm-ct-2025-03-28.txt
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import yaml

from cdisc_pipe.errors import InputError, Problem

COLUMNS = {
    "Code": "code",
    "Codelist Code": "codelist_code",
    "Codelist Extensible (Yes/No)": "extensible",
    "Codelist Name": "codelist_name",
    "CDISC Submission Value": "submission_value",
    "CDISC Synonym(s)": "synonyms",
    "CDISC Definition": "definition",
    "NCI Preferred Term": "preferred_term",
}


@dataclass(frozen=True)
class CtPackage:
    """One CT package: ``codelists`` (one row per codelist) and ``terms`` (one row per term)."""

    path: str
    codelists: pd.DataFrame  # code, extensible, codelist_name, submission_value (short name), preferred_term
    terms: pd.DataFrame  # code, codelist_code, submission_value, synonyms, preferred_term

    def find_codelist(self, key: str) -> pd.Series | None:
        """A codelist by C-code (``C66731``) or short name (``SEX``)."""
        hit = self.codelists[(self.codelists["code"] == key) | (self.codelists["submission_value"] == key)]
        return None if hit.empty else hit.iloc[0]

    def codelist_terms(self, codelist_code: str) -> pd.DataFrame:
        return self.terms[self.terms["codelist_code"] == codelist_code]


@lru_cache(maxsize=8)
def _read(path: str) -> CtPackage:
    p = Path(path)
    if p.suffix.lower() == ".txt":
        df = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8", quoting=3)
    else:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(Problem(str(p), "not a CDISC CT export: columns missing", value=", ".join(missing)))
    df = df.rename(columns=COLUMNS)[list(COLUMNS.values())]
    is_list = df["codelist_code"] == ""
    codelists = df[is_list].reset_index(drop=True)
    terms = df[~is_list].reset_index(drop=True)
    return CtPackage(str(p), codelists, terms)


def load_ct(path: str | Path) -> CtPackage:
    """Read one CT file (cached per path).  Raises InputError if it is not a CT export."""
    p = Path(path)
    if not p.is_file():
        raise InputError(Problem(str(p), "CT file not found", hint="Pass --ct DIR with the CDISC CT files"))
    return _read(str(p.resolve()))


def codelist_yaml(ct: CtPackage, key: str, terms: list[str] | None, oid: str, standard: str | None,
                  name: str | None = None) -> str:
    """A specs/codelists YAML document for codelist ``key``, restricted to ``terms`` (all if None)."""
    row = ct.find_codelist(key)
    if row is None:
        raise InputError(Problem(ct.path, "codelist not found", value=key))
    pool = ct.codelist_terms(row["code"])
    chosen = pool if terms is None else pool[pool["submission_value"].isin(terms)]
    missing = [] if terms is None else [t for t in terms if t not in set(pool["submission_value"])]
    doc = {
        "oid": oid,
        "name": name or row["codelist_name"],
        "nci_code": row["code"],
        "extensible": row["extensible"] == "Yes",
        **({"standard": standard} if standard else {}),
        "terms": [
            {"submission_value": t["submission_value"], "decode": t["preferred_term"], "nci_code": t["code"]}
            for _, t in chosen.sort_values("submission_value").iterrows()
        ],
    }
    for t in missing:
        doc["terms"].append({"submission_value": t, "decode": t, "extended": True})
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=False, width=120)
    if missing and row["extensible"] != "Yes":
        text = f"# WARNING: {', '.join(missing)} not in non-extensible codelist {row['code']}\n" + text
    return text


def check_codelists(spec, ct_dir: Path) -> list[Problem]:
    """Check every codelist term in the spec against the CT package its codelist declares.

    A term with an NCI code must exist in that codelist with that code and submission value; a term
    without one must be ``extended: true`` in an extensible codelist and must not already exist in
    CT (then it should carry its code).  Codelists without ``nci_code`` are sponsor lists and are
    not checked against CT.
    """
    problems: list[Problem] = []
    standards = {s.oid: s for s in spec.standards}
    for cl in spec.codelists.values():
        if cl.nci_code is None or cl.dictionary:
            continue
        where = f"codelist {cl.oid}"
        std = standards.get(cl.standard or "")
        if std is None or not std.ct_file:
            problems.append(Problem("specs/codelists", "codelist with an NCI code needs a CT standard with ct_file",
                                    entry=where))
            continue
        path = Path(ct_dir) / std.ct_file
        if not path.is_file():
            problems.append(Problem(str(path), "CT file of the declared package not found", entry=where))
            continue
        ct = load_ct(path)
        row = ct.find_codelist(cl.nci_code)
        if row is None or row["code"] != cl.nci_code:
            problems.append(Problem(std.ct_file, "codelist code not in the CT package", entry=where, value=cl.nci_code))
            continue
        ct_ext = row["extensible"] == "Yes"
        if cl.extensible is not None and cl.extensible != ct_ext:
            problems.append(Problem(std.ct_file, f"extensible should be {ct_ext}", entry=where))
        pool = ct.codelist_terms(cl.nci_code)
        by_value = dict(zip(pool["submission_value"], pool["code"]))
        for term in cl.terms:
            e = f"{where} term {term.submission_value}"
            if term.nci_code:
                if by_value.get(term.submission_value) != term.nci_code:
                    problems.append(Problem(std.ct_file, "term/code pair not in the CT codelist", entry=e,
                                            value=f"{term.submission_value}={term.nci_code}"))
            elif term.submission_value in by_value:
                problems.append(Problem(std.ct_file, "CT term lacks its NCI code", entry=e,
                                        value=by_value[term.submission_value]))
            elif not term.extended:
                problems.append(Problem(std.ct_file, "term not in CT and not marked extended", entry=e))
            elif not ct_ext:
                problems.append(Problem(std.ct_file, "sponsor term in a non-extensible codelist", entry=e))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdisc_pipe.ct", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("codelist", help="print a specs/codelists YAML for a CT codelist")
    c.add_argument("key", help="codelist C-code or short name")
    c.add_argument("--terms", nargs="*", help="submission values to keep (default: all)")
    c.add_argument("--oid", required=True)
    c.add_argument("--name")
    c.add_argument("--standard", help="Standard OID, e.g. STD.SDTM.CT.2025-03-28")
    c.add_argument("--ct", required=True, help="CT file")
    f = sub.add_parser("find", help="search terms by submission value, synonym or preferred term")
    f.add_argument("text")
    f.add_argument("--ct", required=True)
    args = parser.parse_args(argv)
    try:
        ct = load_ct(args.ct)
        if args.cmd == "codelist":
            sys.stdout.write(codelist_yaml(ct, args.key, args.terms, args.oid, args.standard, args.name))
        else:
            t = ct.terms
            pat = args.text.lower()
            hit = t[t["submission_value"].str.lower().str.contains(pat, regex=False)
                    | t["synonyms"].str.lower().str.contains(pat, regex=False)
                    | t["preferred_term"].str.lower().str.contains(pat, regex=False)]
            names = ct.codelists.set_index("code")["submission_value"]
            for _, r in hit.head(200).iterrows():
                print(f"{r['codelist_code']}({names.get(r['codelist_code'], '?')})\t{r['code']}\t"
                      f"{r['submission_value']}\t{r['preferred_term']}")
    except InputError as exc:
        print(exc.summary(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
