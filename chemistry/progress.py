"""The progress bar of a running soup: epochs done and live class counts, drawn by tqdm.

In a terminal tqdm draws a text bar (on stderr); in Jupyter ``tqdm.auto`` draws its widget.
``Soup.run_for(n, progress=True)`` and ``chemistry run`` / ``resume`` show the same bar.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chemistry.soup import Soup


class ProgressBar:
    """Epochs ``start``..``total`` with the class counts of the last classification.

    Args:
        total: the epoch the run ends at.
        start: the epoch it starts from (a resumed run starts part way).
        stream: where a text bar goes (default stderr; ignored by the notebook widget).
    """

    def __init__(self, total: int, *, start: int = 0, stream: IO[str] | None = None) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=max(total, start),
            initial=start,
            unit="epoch",
            file=stream,
            dynamic_ncols=True,
            mininterval=0.2,
        )

    def update(self, done: int, counts: dict[str, int]) -> None:
        """Show ``done`` epochs and the class counts (classes with no particle left out)."""
        shown = " ".join(f"{name}={count}" for name, count in counts.items() if count)
        self.bar.set_postfix_str(shown, refresh=False)
        self.bar.update(done - self.bar.n)

    def show(self, soup: Soup) -> None:
        """Show the soup's epoch and class counts."""
        self.update(soup.epoch, soup.status_counts())

    def interrupt(self, message: str) -> None:
        """Print ``message`` on a line of its own; the bar goes on below it."""
        self.bar.write(message, file=self.bar.fp)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
