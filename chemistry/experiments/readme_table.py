"""Rewrite the README's claims table from a ``reproduce`` run, without hand editing.

    python -m chemistry.experiments.readme_table RUN/CLAIMS.md [--readme README.md]
    make readme-table RUN=reproduction

The table sits in README.md between the lines ``START`` and ``END``; everything between them is
replaced by the run's table: the lines of CLAIMS.md that start with "|" (a REPORT.md is turned
into that table first, as ``reproduce`` does). Text outside the markers is never touched. A
missing file, a source without a claims table, or a README without exactly one START followed
by one END ends with one message and exit code 2, and the README is left as it was.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chemistry.experiments.command import CLAIMS_HEADER, claims_table
from chemistry.storage import write_text_atomically

START = "<!-- claims table: start (python -m chemistry.experiments.readme_table RUN/CLAIMS.md) -->"
END = "<!-- claims table: end -->"


def table_lines(source: str) -> list[str]:
    """The claims table of a CLAIMS.md or REPORT.md text (header and rows).

    Raises:
        ValueError: if the text holds no claim row.
    """
    text = source if CLAIMS_HEADER in source else claims_table(source)
    lines = [line.rstrip() for line in text.splitlines() if line.startswith("|")]
    if len(lines) < 3 or lines[0] != CLAIMS_HEADER:
        raise ValueError("it holds no claims table (no claim rows under the CLAIMS.md header)")
    return lines


def replace_table(readme: str, table: list[str]) -> str:
    """``readme`` with the lines between START and END replaced by ``table``.

    Raises:
        ValueError: unless ``readme`` has exactly one START line followed by one END line.
    """
    lines = readme.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip() == START]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError(
            f"the README needs exactly one line {START!r} and, after it, one line {END!r} "
            f"around the claims table (found {len(starts)} and {len(ends)})"
        )
    return "\n".join(lines[: starts[0] + 1] + table + lines[ends[0] :])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chemistry.experiments.readme_table",
        description="Rewrite README.md's claims table from a reproduce run's CLAIMS.md.",
    )
    parser.add_argument("claims", type=Path, help="RUN/CLAIMS.md (or RUN/REPORT.md)")
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    arguments = parser.parse_args(argv)
    try:
        source = arguments.claims.read_text(encoding="utf-8")
        readme = arguments.readme.read_text(encoding="utf-8")
        try:
            table = table_lines(source)
        except ValueError as error:
            raise ValueError(f"{arguments.claims}: {error}") from None
        try:
            updated = replace_table(readme, table)
        except ValueError as error:
            raise ValueError(f"{arguments.readme}: {error}") from None
    except (OSError, ValueError) as error:
        message = f"{error.strerror} ({error.filename})" if isinstance(error, OSError) else error
        print(f"readme_table: error: {message}", file=sys.stderr)
        return 2
    write_text_atomically(arguments.readme, updated)
    rows = len(table) - 2
    print(f"{arguments.readme}: claims table rewritten from {arguments.claims} ({rows} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
