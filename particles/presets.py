"""Named settings of the two original code bases (SPEC Table 2): training mode, learning rate,
fixpoint tolerance ε, and how fresh particles are initialised and encode positions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from particles.architectures import Architecture
from particles.validation import check_choice


@dataclass(frozen=True)
class Preset:
    """The setting of one original code base.

    Args:
        name: "keras2019" or "journal2021".
        mode: training mode of the training rules ("per_sample" or "full_batch").
        lr: learning rate of the training rules.
        eps: fixpoint tolerance.
        init_scheme: initialisation of the particles a soup creates by default ("glorot": the
            Keras code's glorot-uniform / orthogonal weights; "torch": torch's defaults).
        encoding: weightwise position encoding of those particles ("keras" or "torch").
    """

    name: str
    mode: str
    lr: float
    eps: float
    init_scheme: str = "torch"
    encoding: str = "torch"

    def architecture_options(self, cls: type[Architecture]) -> dict[str, Any]:
        """The preset's settings among the fields of architecture class ``cls``."""
        fields = {f.name for f in dataclasses.fields(cls) if f.init}
        settings = {"init_scheme": self.init_scheme, "encoding": self.encoding}
        return {name: value for name, value in settings.items() if name in fields}

    def architecture(self, cls: type[Architecture], **options: Any) -> Architecture:
        """An architecture of class ``cls`` in this preset's setting (``options`` win)."""
        return cls(**(self.architecture_options(cls) | options))


PRESETS: dict[str, Preset] = {
    "keras2019": Preset(
        "keras2019", mode="per_sample", lr=0.01, eps=1e-4, init_scheme="glorot", encoding="keras"
    ),
    "journal2021": Preset("journal2021", mode="full_batch", lr=0.04, eps=1e-5),
}
#: The preset of a soup that names none: the setting of the paper's soups.
DEFAULT_PRESET = "keras2019"


def preset(name: str) -> Preset:
    """The preset called ``name`` ("keras2019" or "journal2021")."""
    check_choice("preset", name, PRESETS)
    return PRESETS[name]
