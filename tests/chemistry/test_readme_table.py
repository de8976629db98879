"""``python -m chemistry.experiments.readme_table``: the README's claims table from a run."""

from __future__ import annotations

from pathlib import Path

from chemistry.experiments.readme_table import END, START, main

CLAIMS = "\n".join(
    [
        "| experiment | claim | paper | setting | seeds | measured (mean ± sd) | threshold "
        "| holds in | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
        "| E2 | C2 | recurrent particles diverge most often | glorot+keras | 10 "
        "| 44 ± 2 rnn DIVERGENT of 50 | ≥ 1 | 10/10 | yes |",
        "| E9 | C15 | segment \\| halves | torch init | 10 | 0.9 ± 0.05 share | ≥ 0.75 | 7/10 "
        "| seed-dependent |",
        "",
    ]
)

README = f"""# Project

Intro text.

{START}
| experiment | claim | old |
|---|---|---|
| E1 | C3 | stale row |
{END}

After the table.
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_table_between_the_markers_is_replaced_and_nothing_else(tmp_path, capsys):
    claims = write(tmp_path, "CLAIMS.md", CLAIMS)
    readme = write(tmp_path, "README.md", README)
    assert main([str(claims), "--readme", str(readme)]) == 0
    assert "(2 rows)" in capsys.readouterr().out
    expected = README.replace(
        "| experiment | claim | old |\n|---|---|---|\n| E1 | C3 | stale row |\n", CLAIMS
    )
    assert readme.read_text(encoding="utf-8") == expected
    assert main([str(claims), "--readme", str(readme)]) == 0  # a second run changes nothing
    assert readme.read_text(encoding="utf-8") == expected


def test_a_report_is_turned_into_its_claims_table(tmp_path):
    report = write(
        tmp_path,
        "REPORT.md",
        "# Reproduction report\n\n## E2: Fig 2: census\n\ntext\n\n"
        "| claim | paper | setting | seeds | measured (mean ± sd) | holds in | threshold "
        "| verdict |\n"
        "|---|---|---|---|---|---|---|---|\n"
        "| C2 | recurrent particles diverge most often | glorot+keras | 10 | 44 ± 2 rnn DIVERGENT "
        "of 50 | 10/10 | ≥ 1 | yes |\n",
    )
    readme = write(tmp_path, "README.md", README)
    assert main([str(report), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert CLAIMS.splitlines()[2] in text.splitlines()  # columns reordered as in CLAIMS.md
    assert "stale row" not in text and text.endswith("After the table.\n")


def test_bad_input_exits_2_and_leaves_the_readme_alone(tmp_path, capsys):
    claims = write(tmp_path, "CLAIMS.md", CLAIMS)
    no_markers = write(tmp_path, "README.md", "# Project\n\n| a | b |\n")
    assert main([str(claims), "--readme", str(no_markers)]) == 2
    assert "exactly one line" in capsys.readouterr().err
    assert no_markers.read_text(encoding="utf-8") == "# Project\n\n| a | b |\n"
    swapped = write(tmp_path, "SWAPPED.md", f"{END}\n{START}\n")
    assert main([str(claims), "--readme", str(swapped)]) == 2
    readme = write(tmp_path, "OK.md", README)
    empty = write(tmp_path, "EMPTY.md", "# nothing here\n")
    assert main([str(empty), "--readme", str(readme)]) == 2
    assert "no claims table" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.md"), "--readme", str(readme)]) == 2
    error = capsys.readouterr().err
    assert "missing.md" in error and "Traceback" not in error
    assert readme.read_text(encoding="utf-8") == README


def test_the_readme_of_this_repository_has_the_markers():
    text = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1
    assert text.index(START) < text.index(END)
