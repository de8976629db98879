"""This project's version, and the check that ``particles`` / ``chemistry`` are this project's.

``particles`` and ``chemistry`` are also the names of other projects on the package index.
Installing one of them into the same environment puts a different package under the same
import name (or overwrites this project's files), which shows up later as puzzling import
errors; the check here says what happened instead.
"""

from __future__ import annotations

import importlib.util
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


def check_distribution() -> None:
    """Raise PackageClashError if an import name resolves to another project's package; warn if
    a distribution called ``particles`` or ``chemistry`` is installed beside this one."""
    for name, own_file in OWN_FILES.items():
        spec = importlib.util.find_spec(name) if name != "chemistry" else None
        origin = Path(__file__) if spec is None else Path(spec.origin or "")
        if spec is not None and not (origin.parent / own_file).is_file():
            raise PackageClashError(_clash_message(name, str(origin.parent)))
    from importlib.metadata import PackageNotFoundError, distribution

    for name in ("particles", "chemistry"):
        try:
            other = distribution(name)
        except PackageNotFoundError:
            continue
        warnings.warn(
            _clash_message(name, f"{other.locate_file('')} (distribution {name} {other.version})"),
            stacklevel=3,
        )
