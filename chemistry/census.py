"""What happened to the population in the last epoch: respawns and divergences, and a one-time
warning when every particle diverges epoch after epoch (a learning rate far too large).

With respawn on, a divergent particle is replaced within its epoch, so the class counts show
DIVERGENT 0 however many diverged; the turnover counts them before they were replaced:

    diverged = particles classified DIVERGENT + divergent particles respawned in the epoch
"""

from __future__ import annotations

from chemistry.soup import Soup
from interactions import Respawn
from interactions.events import EventKind

DIVERGENCE_EPOCHS = 3  # consecutive epochs in which every particle diverges before warning


def turnover(soup: Soup, counts: dict[str, int] | None = None) -> dict[str, int]:
    """``{"respawned": R, "diverged": D}`` of the last epoch (``counts``: the soup's
    :meth:`~chemistry.soup.Soup.status_counts`, if already at hand)."""
    counts = soup.status_counts() if counts is None else counts
    replaced = sum(rule.last_divergent for rule in soup.rules if isinstance(rule, Respawn))
    return {
        "respawned": soup.last_event_counts()[EventKind.RESPAWN],
        "diverged": counts["DIVERGENT"] + replaced,
    }


class DivergenceWatch:
    """Says once when every particle has diverged in each of ``epochs`` consecutive epochs."""

    def __init__(self, epochs: int = DIVERGENCE_EPOCHS) -> None:
        self.epochs = epochs
        self.streak = 0
        self.warned = False

    def update(self, soup: Soup, diverged: int) -> str | None:
        """The warning, the first time the streak reaches ``epochs``; otherwise None."""
        everyone = len(soup) > 0 and diverged >= len(soup)
        self.streak = self.streak + 1 if everyone else 0
        if self.warned or self.streak < self.epochs:
            return None
        self.warned = True
        return (
            f"warning: every particle diverged (non-finite weights) in each of the last "
            f"{self.epochs} epochs, up to epoch {soup.epoch}; the soup holds only fresh respawns. "
            "Is a learning rate far too large?"
        )
