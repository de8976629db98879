"""This project's version, and the check that ``particles`` / ``chemistry`` are this project's.

``particles`` and ``chemistry`` are also the names of other projects on the package index.
Installing one of them into the same environment puts a different package under the same
import name (or overwrites this project's files), which shows up later as puzzling import
errors; the check here says what happened instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path

__version__ = "0.1.0"

DISTRIBUTION = "self-replicating-chemistry"
#: top-level package -> a file only this project's package has
OWN_FILES = {"particles": "bank.py", "interactions": "events.py", "chemistry": "soup.py"}


class PackageClashError(ImportError):
    """A top-level package of this project is shadowed by another project's package."""


def _clash_message(name: str, where: str) -> str:
    return (
        f"the '{name}' package found at {where} is not the one of {DISTRIBUTION} (this "
        f"project): another project on the package index is also called '{name}', and it is "
        f"installed here too. Uninstall it (pip uninstall {name}) and reinstall this project "
        f"(pip install --force-reinstall -e .), or use a separate virtual environment"
    )


def _foreign_distributions() -> list[tuple[str, str, str]]:
    """(folder, name, version) of installed distributions called ``particles`` or ``chemistry``.

    Reads the ``*.dist-info`` / ``*.egg-info`` folder names on ``sys.path`` (as
    ``importlib.metadata`` does, without its import cost on every start of the command line).
    """
    found = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            project, _, version = name.rsplit(".", 1)[0].partition("-")
            if project.lower() in ("particles", "chemistry"):
                found.append((os.path.join(entry, name), project.lower(), version or "?"))
    return found


def check_distribution() -> None:
    """Raise PackageClashError if an import name resolves to another project's package; warn if
    a distribution called ``particles`` or ``chemistry`` is installed beside this one."""
    for name, own_file in OWN_FILES.items():
        spec = importlib.util.find_spec(name) if name != "chemistry" else None
        origin = Path(__file__) if spec is None else Path(spec.origin or "")
        if spec is not None and not (origin.parent / own_file).is_file():
            raise PackageClashError(_clash_message(name, str(origin.parent)))
    for where, name, version in _foreign_distributions():
        warnings.warn(
            _clash_message(name, f"{where} (distribution {name} {version})"), stacklevel=3
        )
