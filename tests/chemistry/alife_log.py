"""A synthetic event log with every case the ALife phylogeny CSV covers (for its tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chemistry.event_log import EventLog


def synthetic_log(
    seed: int = 0, particles: int = 40, epochs: int = 12, directory: Path | None = None
) -> EventLog:
    """Births (with ``architecture`` / ``node`` data), attacks (some overwritten), learn, clones,
    melts (a parent named twice), respawns, deaths, and classes with errors (NaN too).

    With ``directory``: streamed there from the start, in chunks of at most 5 rows.
    """
    rng = np.random.default_rng(seed)
    log = EventLog()
    if directory is not None:
        for table in log.tables.values():
            table.flush_rows = 5
        log.attach(directory)
    alive = list(range(particles))
    next_uid = particles
    names = np.array(["weightwise", "aggregating"], dtype=object)
    log.record_batch(
        0,
        "birth",
        children=alive,
        columns={"architecture": names[rng.integers(0, 2, particles)], "node": alive},
    )
    statuses = ["FIXPOINT", "ZERO", "DIVERGENT", "OTHER"]
    for epoch in range(1, epochs + 1):
        living = np.array(alive)
        actors = rng.choice(living, 10)
        targets = rng.choice(living, 10)
        lost = np.where(rng.random(10) < 0.3, True, None)
        log.record_batch(epoch, "attack", actors, targets, columns={"overwritten": lost})
        log.record_batch(
            epoch, "learn", rng.choice(living, 3), rng.choice(living, 3), data={"steps": 5}
        )
        # A clone replacing a victim, then a melt of two parents (the first named twice).
        parent, victim = (int(u) for u in rng.choice(living, 2, replace=False))
        child, next_uid = next_uid, next_uid + 1
        log.record_batch(epoch, "clone", [parent], [victim], [child])
        log.record_batch(epoch, "death", targets=[victim])
        log.record_batch(epoch, "birth", children=[child], columns={"node": [epoch]})
        alive = [u for u in alive if u != victim] + [child]
        a, b, victim = (int(u) for u in rng.choice(np.array(alive), 3, replace=False))
        child, next_uid = next_uid, next_uid + 1
        log.record_batch(epoch, "melt", [a, b, a], [victim] * 3, [child] * 3)
        log.record_batch(epoch, "death", targets=[victim])
        log.record_batch(epoch, "birth", children=[child], columns={"architecture": ["weightwise"]})
        alive = [u for u in alive if u != victim] + [child]
        # A respawn of one particle (birth without data), every other epoch a plain death.
        old = int(rng.choice(np.array(alive)))
        new, next_uid = next_uid, next_uid + 1
        log.record_batch(epoch, "respawn", targets=[old], children=[new])
        log.record_batch(epoch, "death", targets=[old])
        log.record_batch(epoch, "birth", children=[new])
        alive = [u for u in alive if u != old] + [new]
        if epoch % 2:
            gone = int(rng.choice(np.array(alive)))
            log.record_batch(epoch, "death", targets=[gone])
            alive.remove(gone)
        measured = rng.choice(np.array(alive), len(alive) // 2, replace=False)
        errors = rng.random(len(measured)).astype(np.float32) * 10.0 ** rng.integers(-6, 2)
        errors[rng.random(len(measured)) < 0.2] = np.nan
        codes = [log.status_code(statuses[i]) for i in rng.integers(0, 4, len(measured))]
        log.record_classes(epoch, measured, codes, errors)
    log.record_classes(epochs, [next_uid + 5], [log.status_code("OTHER")], [0.5])  # only a class
    return log
