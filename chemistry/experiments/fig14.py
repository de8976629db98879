"""E13 — Fig 14: a soup of noisy clones (SPEC E13, claim C19)."""

from __future__ import annotations

import math
from typing import Literal

import torch

from chemistry.experiments.base import Claim, Context, Experiment, Outcome
from chemistry.experiments.figures import epoch_lines_figure, family_trajectories_figure
from chemistry.experiments.settings import SoupSchedule
from chemistry.experiments.soup_tools import (
    TrackedAttack,
    _fmt,
    _pairwise_mae,
    _soup_seed,
    _weights_at,
)
from chemistry.soup import Soup
from interactions import SelfTrain
from particles import (
    Status,
    Weightwise,
    add_noise,
    classify,
    count_statuses,
    distance,
    preset,
    self_train,
)

JOURNAL = preset("journal2021")


def clone_soup(
    context: Context,
    *,
    parents: int = 3,
    clones: int = 5,
    parent_steps: int = 1500,
    fidelity: bool = False,
    include_parents: bool = False,
    epochs: int | None = None,
    steps: int | None = None,
    attack_mode: Literal["per_particle", "single"] | None = None,
    alpha: float = 0.1,
    scheduling: SoupSchedule = SoupSchedule(),
    noise: Literal["uniform", "double_uniform"] = "uniform",
    whiten: bool = True,
    eps: float = JOURNAL.eps,
    lr: float = JOURNAL.lr,
    mode: Literal["full_batch", "per_sample"] = "full_batch",
    dtype: Literal["float32", "float64"] = "float32",
) -> Outcome:
    """E13, Fig 14: 3 trained ww parents, 5 noisy clones each per ζ, one soup of the 15 clones.

    ``epochs``, ``steps`` and ``attack_mode`` default (None) to the canonical 10 epochs (5 at
    quick scale), A = 150, per_particle, or with ``fidelity`` to 1 epoch, A = 1500, single.
    """
    parents_count = parents
    children = clones
    if epochs is None:
        epochs = 1 if fidelity else context.size(10, 5)
    if steps is None:
        steps = 1500 if fidelity else 150
    if attack_mode is None:
        attack_mode = "single" if fidelity else "per_particle"
    zetas = [1e-2, 1e-3, 1e-4]
    arch = Weightwise()

    start = arch.init(parents_count, generator=context.generator(0), dtype=context.dtype)
    parents = self_train(
        arch, start, steps=parent_steps, lr=lr, mode=mode, generator=context.generator(1)
    ).weights
    parent_class = classify(arch, parents, eps=eps)
    parent_census = {s.name: n for s, n in count_statuses(parent_class).items()}
    parents_between = _pairwise_mae(parents)
    off_diagonal = ~torch.eye(parents_count, dtype=torch.bool)
    parent_distance = float(parents_between[off_diagonal].mean()) if parents_count > 1 else math.nan

    rows, figures, series = [], [], {}
    all_stay, all_ratio = True, []
    for index, zeta in enumerate(zetas):
        clones = add_noise(
            parents.repeat_interleave(children, dim=0),
            zeta,
            generator=context.generator(10 + index),
            noise=noise,
        )
        family = torch.arange(parents_count).repeat_interleave(children)
        is_parent = torch.zeros(clones.shape[0], dtype=torch.bool)
        start_weights = clones
        if include_parents:
            start_weights = torch.cat([clones, parents])
            family = torch.cat([family, torch.arange(parents_count)])
            is_parent = torch.cat([is_parent, torch.ones(parents_count, dtype=torch.bool)])
        attack = TrackedAttack(alpha, pairing=attack_mode, allow_self=scheduling.allow_self)
        soup = Soup(
            [attack, SelfTrain(steps, lr=lr, training_mode=mode)],
            population={arch: start_weights},
            rng=_soup_seed(context, 20 + index),
            preset="journal2021",
            dtype=context.dtype,
            eps=eps,
            schedule=scheduling.schedule,
        )
        uids = soup.uids_at(soup.occupied_nodes())  # particles sit on nodes in weight order
        family_of = dict(zip(uids.tolist(), family.tolist(), strict=True))
        same = family[:, None] == family[None, :]
        upper = torch.triu(torch.ones_like(same), diagonal=1)
        within_pairs, between_pairs = same & upper, ~same & upper
        nodes = soup.occupied_nodes()

        within, between = [], []
        for epoch in range(epochs + 1):
            if epoch:
                soup.step()
            matrix = _pairwise_mae(_weights_at(soup, nodes))
            w_now, b_now = float(matrix[within_pairs].mean()), float(matrix[between_pairs].mean())
            within.append(w_now)
            between.append(b_now)
        final = _weights_at(soup, nodes)
        status = soup.node_status[nodes]
        clone_rows = ~is_parent
        own_parent = parents[family]
        before = distance(clones, parents.repeat_interleave(children, dim=0), "mae").double()
        after = distance(final[: clones.shape[0]], own_parent[: clones.shape[0]], "mae").double()
        to_every_parent = torch.cdist(final.double(), parents.double(), p=1) / arch.num_weights
        nearest_own = to_every_parent.argmin(dim=1) == family
        stay = bool(nearest_own[clone_rows].all())
        all_stay &= stay

        log = attack.log
        attacker_family = [family_of.get(u, -1) for u in log.attackers]
        victim_family = [family_of.get(u, -1) for u in log.victims]
        cross = [a != v for a, v in zip(attacker_family, victim_family, strict=True)]
        cross_applied = [c and ok for c, ok in zip(cross, log.applied, strict=True)]
        cross_jump = math.nan
        if any(cross_applied):
            b_w, a_w = log.stacked()
            mask = torch.tensor(cross_applied)
            cross_jump = float(distance(a_w[mask], b_w[mask], "mae").mean())
        ratio = within[-1] / between[-1] if between[-1] > 0 else math.nan
        all_ratio.append(ratio)
        census = {s.name: int((status[clone_rows] == s).sum()) for s in Status}
        row = {
            "zeta": zeta,
            "clones": int(clone_rows.sum()),
            "parents_in_soup": int(is_parent.sum()),
            "epochs": epochs,
            "self_train_steps": steps,
            "attack_mode": attack_mode,
            **census,
            "attacks": len(log),
            "attacks_applied": int(sum(log.applied)),
            "cross_family_attacks": int(sum(cross)),
            "cross_family_attacks_applied": int(sum(cross_applied)),
            "cross_family_jump_mae_mean": cross_jump,
            "within_family_mae_start": within[0],
            "within_family_mae_end": within[-1],
            "between_family_mae_start": between[0],
            "between_family_mae_end": between[-1],
            "within_between_ratio_end": ratio,
            "mae_to_parent_before_mean": float(before.mean()),
            "mae_to_parent_after_mean": float(after.mean()),
            "clones_approaching": int((after < before).sum()),
            "clones_distancing": int((after > before).sum()),
            "clones_nearest_own_parent": int(nearest_own[clone_rows].sum()),
        }
        if include_parents:
            row["parent_drift_mae_mean"] = float(
                distance(final[is_parent], parents, "mae").double().mean()
            )
        rows.append(row)
        series[f"within ζ={zeta:g}"] = within
        series[f"between ζ={zeta:g}"] = between
        projection = soup.trajectories.pca(whiten=whiten)
        figures.append(
            family_trajectories_figure(
                projection,
                family_of,
                context.out / f"fig14_clone_soup_zeta{zeta:g}.png",
                title=f"Soup of noisy clones, ζ={zeta:g} ({epochs} epochs × A={steps})",
                emphasised={u for u, p in zip(uids.tolist(), is_parent.tolist(), strict=True) if p},
            )
        )
    figures.insert(
        0,
        epoch_lines_figure(
            list(range(epochs + 1)),
            series,
            context.out / "fig14_family_distances.png",
            title="Mean pairwise MAE within and between families",
            xlabel="epoch",
            ylabel="mean pairwise MAE",
        ),
    )
    ratio_max = max(all_ratio) if all_ratio else math.nan
    cross_total = sum(r["cross_family_attacks_applied"] for r in rows)
    claims = [
        Claim(
            "C19",
            "in a soup of noisy clones each parent's children stay together and the families "
            "hardly influence each other",
            all_stay and ratio_max < 0.1,
            "; ".join(
                f"ζ={r['zeta']:g}: within {r['within_family_mae_end']:.2g} vs between "
                f"{r['between_family_mae_end']:.2g}, {r['clones_nearest_own_parent']}/"
                f"{r['clones']} nearest own parent, {r['cross_family_attacks_applied']} "
                "cross-family attacks applied"
                for r in rows
            ),
            value=ratio_max,
            quantity="largest within/between family MAE ratio at the end",
            threshold="< 0.1, and every clone ends nearest its own parent",
            setting="torch init",
        ),
    ]
    metrics = {f"within_end_zeta{r['zeta']:g}": r["within_family_mae_end"] for r in rows}
    metrics |= {f"between_end_zeta{r['zeta']:g}": r["between_family_mae_end"] for r in rows}
    metrics["cross_family_attacks_applied"] = float(cross_total)
    metrics["parents_FIXPOINT"] = float(parent_census["FIXPOINT"])
    notes = [
        f"Parents after {parent_steps} steps: "
        + ", ".join(f"{k} {v}" for k, v in parent_census.items() if v)
        + f"; mean MAE between parents {_fmt(parent_distance)}. Clones are made whatever the "
        "parent's class (SPEC E13).",
        f"This run: {epochs} epoch(s) of attack ({attack_mode}, α={alpha}) then self-train "
        f"A={steps}{', parents included' if include_parents else ''}. Canonical [decision, "
        "SPEC O3]: 10 epochs, per_particle, A=150; fidelity=True: 1 epoch, attack_mode single, "
        "A=1500 (most such runs contain no attack); include_parents=True adds the parents.",
        "C19 is read as: every clone ends nearest (MAE) to its own parent and the within-family "
        "mean pairwise MAE stays below a tenth of the between-family one [interpretation].",
        "The clones are written into the soup's bank rows before epoch 1 (Soup has no "
        "initial-weights argument); families are tracked by uid.",
    ]
    return Outcome(rows, claims, metrics, figures, notes)


EXPERIMENTS = [
    Experiment(
        "E13",
        "fig14",
        "Fig 14: a soup of noisy clones",
        "journal2021",
        clone_soup,
        setting="the journal code's setting (torch initialisation, journal encoding, preset "
        "journal2021), as the paper made this figure with the journal code.",
        cost=1.2,
    ),
]
