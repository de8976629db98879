"""The paper's Fig 12 soup: 20 weightwise particles that attack each other and self-train.

SPEC E11: 20 ``ww`` particles, attack (α = 0.1, per particle), 30 self-training steps per epoch
with the Keras preset (per-sample SGD, lr 0.01), respawn of divergent and zero particles,
ε = 1e-4, 100 epochs. Prints a table of class counts every few epochs and the final census.

    python examples/soup_basic.py
    python examples/soup_basic.py --epochs 10 --out /tmp/fig12   # also writes metrics.csv

With ``--out`` the per-epoch metrics (``metrics.csv``) and the genealogy (``genealogy.json``)
are written to that directory; nothing is written otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chemistry import Soup  # noqa: E402
from interactions import Attack, Respawn, SelfTrain  # noqa: E402
from particles import Weightwise  # noqa: E402

COLUMNS = ["epoch", "fixpoint", "zero", "other", "divergent", "events_attack", "events_respawn"]


def build(particles: int, seed: int) -> Soup:
    """The Fig 12 soup (SPEC E11)."""
    return Soup(
        [Attack(0.1), SelfTrain(30), Respawn()],
        population=particles,
        architecture=Weightwise(),
        rng=seed,
        eps=1e-4,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the paper's Fig 12 soup.")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--particles", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="directory for metrics.csv")
    args = parser.parse_args(argv)

    soup = build(args.particles, args.seed)
    soup.run_for(args.epochs)

    rows = soup.datacollector.get_model_vars_dataframe()
    every = max(1, args.epochs // 10)
    table = rows[rows["epoch"] % every == 0][COLUMNS + ["fixpoint_error_median"]]
    header = [c.removeprefix("events_") for c in COLUMNS] + ["median q"]
    print("  ".join(f"{h:>9}" for h in header))
    for values in table.itertuples(index=False):
        *counts, median = values
        print("  ".join(f"{int(v):>9}" for v in counts) + f"  {median:>9.2e}")

    attacks = int(rows["events_attack"].sum())
    respawns = int(rows["events_respawn"].sum())
    print(f"\nafter {soup.epoch} epochs: {attacks} attacks, {respawns} respawns")
    print("final census:", ", ".join(f"{k} {v}" for k, v in soup.status_counts().items()))

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        rows.to_csv(args.out / "metrics.csv", index=False)
        soup.genealogy.to_node_link_json(args.out / "genealogy.json")
        print(f"wrote {args.out / 'metrics.csv'} and {args.out / 'genealogy.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
