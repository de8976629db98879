"""E11 — Fig 12: one soup of attack and self-training (SPEC E11, claim C17)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from chemistry.experiments.base import Claim, Context, Experiment, Outcome, Scaled
from chemistry.experiments.settings import (
    KERAS_SETTING,
    TORCH_VARIANT,
    KerasTraining,
    ParticleSetting,
    SoupSchedule,
    file_suffix,
    metric_tag,
)
from chemistry.experiments.soup_tools import (
    Tensor,
    TrackedAttack,
    _fmt,
    _mae,
    _pairwise_mae,
    _soup_seed,
    _weights_at,
)
from chemistry.plots import plot_counts, plot_trajectories
from chemistry.soup import Soup
from interactions import Respawn, SelfTrain
from particles import Status, Weightwise, distance, fixpoint_error

# ------------------------------------------------------------------------------------------------
# E11 — Fig 12: one soup of attack and self-training


def _main_cluster(points: Tensor, fraction: float) -> Tensor:
    """Indices of the largest single-linkage group of ``points`` [n, r] (float64).

    Two points are linked when their MAE is at most ``fraction`` times the median pairwise MAE of
    all points; ties between equally large groups go to the tighter one.
    """
    count = points.shape[0]
    if count <= 2:
        return torch.arange(count)
    matrix = _pairwise_mae(points)
    off = matrix[~torch.eye(count, dtype=torch.bool)]
    linked = matrix <= fraction * float(off.median())
    label = torch.arange(count)
    for _ in range(count):  # label propagation to the smallest reachable index
        new = torch.where(linked, label[None, :], count).amin(dim=1)
        new = torch.minimum(new, label)
        if torch.equal(new, label):
            break
        label = new
    best, best_key = None, None
    for value in label.unique():
        members = torch.nonzero(label == value).flatten()
        tight = float(matrix[members][:, members].mean())
        key = (members.numel(), -tight)
        if best_key is None or key > best_key:
            best, best_key = members, key
    return best


def soup_trajectories(
    context: Context,
    *,
    particles: int = 20,
    epochs: int = Scaled(100, 40),
    alpha: float = 0.1,
    steps: int = 30,
    cluster_fraction: float = 0.25,
    attack_mode: Literal["per_particle", "single"] = "per_particle",
    scheduling: SoupSchedule = SoupSchedule(),
    whiten: bool = False,
    training: KerasTraining = KerasTraining(),
    setting: ParticleSetting = ParticleSetting(),
) -> Outcome:
    """E11, Fig 12: 20 ww particles, 100 epochs of Attack(0.1) → SelfTrain(30) → Respawn.

    One soup per setting (the chosen one, then the torch-init variant), each from its own seed
    stream; claims, rows and figures are tagged with the setting.
    """
    merged = Outcome([], [], {}, [], [])
    for number, (label, init_, encoding_) in enumerate(setting.variants()):
        arch = Weightwise(init_scheme=init_, encoding=encoding_)
        suffix = file_suffix(number, label)
        one = _one_soup(context, arch, number, suffix)
        merged.rows += [
            {"setting": label, "init": init_, "encoding": encoding_, **r} for r in one.rows
        ]
        for claim in one.claims:
            claim.setting = label
        merged.claims += one.claims
        tag = metric_tag(number, label)
        merged.metrics |= {f"{key}{tag}": value for key, value in one.metrics.items()}
        merged.figures += one.figures
        merged.notes += one.notes if number == 0 else []
    return merged


def _one_soup(context: Context, arch: Weightwise, number: int, suffix: str) -> Outcome:
    """The E11 soup of particles ``arch`` and its measures."""
    option = context.option
    eps, particles, epochs = option("eps"), option("particles"), option("epochs")
    alpha, steps, link = option("alpha"), option("steps"), option("cluster_fraction")
    attack = TrackedAttack(alpha, pairing=option("attack_mode"), allow_self=option("allow_self"))
    train = SelfTrain(steps, lr=option("lr"), training_mode=option("mode"))
    rules = [attack, train, Respawn(divergent=True, zero=True)]
    soup = Soup(
        rules,
        population=particles,
        architecture=arch,
        rng=_soup_seed(context, 100 * number),
        preset="keras2019",
        dtype=context.dtype,
        eps=eps,
        schedule=option("schedule"),
    )
    initial = _weights_at(soup, soup.occupied_nodes()).double()
    last_class: dict[int, str] = {}  # last known class of every uid (for the figure)
    fixpoint_epochs: dict[int, list[int]] = {}  # epochs at whose end a uid was FIXPOINT
    for _ in range(epochs):
        soup.step()
        nodes = soup.occupied_nodes()
        uids = soup.uids_at(nodes).tolist()
        for uid, status in zip(uids, soup.node_status[nodes].tolist(), strict=True):
            last_class[uid] = Status(status).name
            if status == Status.FIXPOINT:
                fixpoint_epochs.setdefault(uid, []).append(soup.epoch)
    columns = soup.datacollector.model_vars
    final_nodes = soup.occupied_nodes()
    final = _weights_at(soup, final_nodes).double()
    final_status = soup.node_status[final_nodes]
    census = {s.name: int((final_status == s).sum()) for s in Status}

    # The main cluster: the largest tight group of final FIXPOINTs (all FIXPOINTs also reported).
    fixpoints = final[final_status == Status.FIXPOINT]
    initial_centroid = initial.mean(dim=0, keepdim=True)
    centroid = None
    cluster_size, spread, from_zero, from_initial = 0, math.nan, math.nan, math.nan
    all_from_zero = all_spread = math.nan
    if fixpoints.shape[0]:
        members = fixpoints[_main_cluster(fixpoints, link)]
        cluster_size = members.shape[0]
        centroid = members.mean(dim=0, keepdim=True)
        spread = float(_mae(members, centroid).mean())
        from_zero = float(centroid.abs().mean())
        from_initial = float(_mae(centroid, initial_centroid)[0])
        everyone = fixpoints.mean(dim=0, keepdim=True)
        all_from_zero = float(everyone.abs().mean())
        all_spread = float(_mae(fixpoints, everyone).mean())
    initial_size = float(initial.abs().mean())

    # Every applied attack: the victim's distance to the main cluster's centroid and its fixpoint
    # error q just before and just after the rule, q at the end of that epoch (after retraining)
    # and whether the victim was FIXPOINT at the end of that or a later epoch.
    log = attack.log
    applied = torch.tensor(log.applied, dtype=torch.bool)
    attacks, effective = len(log), int(applied.sum())
    toward, jumps_early, jumps_late = 0, [], []
    raised = retrained_q = refixed = 0
    if effective:
        before, after = (w[applied] for w in log.stacked())
        attack_epochs = torch.tensor(log.epochs)[applied]
        victims = torch.tensor(log.victims)[applied]
        jump = distance(after, before, "mae")
        if centroid is not None:
            d_before, d_after = _mae(before, centroid), _mae(after, centroid)
            toward = int((torch.isfinite(d_after) & (d_after < d_before)).sum())
        jumps_early = jump[attack_epochs <= epochs // 2].tolist()
        jumps_late = jump[attack_epochs > epochs // 2].tolist()
        q_before = fixpoint_error(arch, before)
        q_after = fixpoint_error(arch, after)
        name = soup.architecture_names[arch]
        record_epochs, record_uids, record_weights = soup.trajectories.arrays(name)
        keys = zip(record_epochs.tolist(), record_uids.tolist(), strict=True)
        where = {key: i for i, key in enumerate(keys)}
        for index in range(effective):
            if not q_after[index] > max(float(q_before[index]), eps):
                continue  # the attack did not make the victim a worse fixpoint
            raised += 1
            epoch, uid = int(attack_epochs[index]), int(victims[index])
            row = where.get((epoch, uid))
            if row is not None:
                end = torch.as_tensor(record_weights[row : row + 1])
                retrained_q += float(fixpoint_error(arch, end)[0]) < float(q_after[index])
            refixed += any(e >= epoch for e in fixpoint_epochs.get(uid, []))
    median_early = float(np.median(jumps_early)) if jumps_early else math.nan
    median_late = float(np.median(jumps_late)) if jumps_late else math.nan
    toward_fraction = toward / effective if effective and centroid is not None else math.nan

    q_median = columns["fixpoint_error_median"]
    window = max(1, epochs // 10)
    q_start, q_window = q_median[0], q_median[window]
    fixpoints_in_window = max(columns["fixpoint"][1 : window + 1])
    respawns = int(sum(columns["events_respawn"]))

    row = {
        "particles": particles,
        "epochs": epochs,
        "alpha": alpha,
        "self_train_steps": steps,
        **census,
        "respawns": respawns,
        "attacks": attacks,
        "attacks_applied": effective,
        "attacks_toward_main_cluster": toward,
        "toward_fraction": toward_fraction,
        "main_cluster_size": cluster_size,
        "main_cluster_mae_from_zero": from_zero,
        "main_cluster_mae_from_initial_centroid": from_initial,
        "main_cluster_spread_mae": spread,
        "all_fixpoints_centroid_mae_from_zero": all_from_zero,
        "all_fixpoints_spread_mae": all_spread,
        "initial_mean_abs_weight": initial_size,
        "q_median_epoch0": q_start,
        f"q_median_epoch{window}": q_window,
        "q_median_final": q_median[-1],
        f"max_fixpoints_epochs_1_{window}": fixpoints_in_window,
        "jump_median_first_half": median_early,
        "jump_median_second_half": median_late,
        "attacks_raising_q": raised,
        "raised_then_q_fell_same_epoch": retrained_q,
        "raised_then_fixpoint_again": refixed,
    }

    projection = soup.trajectories.pca(whiten=option("whiten"))
    figures = [
        plot_trajectories(
            projection,
            context.out / f"fig12_soup_trajectories{suffix}.png",
            final_status=last_class,
            title=f"Soup of {particles} ww: attack {alpha}, self-train {steps}, respawn",
        ),
        plot_counts(
            columns,
            context.out / f"fig12_classes_per_epoch{suffix}.png",
            title="Classes per epoch (E11 soup)",
        ),
    ]

    claims = [
        Claim(
            "C17a",
            "particles first train toward fixpoints",
            q_window < q_start / 10,
            f"median fixpoint error q: epoch 0 {_fmt(q_start)}, epoch {window} "
            f"{_fmt(q_window)}, end {_fmt(q_median[-1])}; up to {fixpoints_in_window:.0f} "
            f"FIXPOINT in epochs 1–{window}",
            value=q_window / q_start if q_start else math.nan,
            quantity=f"median q at epoch {window} / at epoch 0",
            threshold="< 0.1",
        ),
        Claim(
            "C17b",
            "attacks cause jumps followed by retraining to new fixpoints",
            raised > 0 and retrained_q > raised / 2 and refixed > raised / 2,
            f"{raised} of {effective} applied attacks raised the victim's q; after {retrained_q} "
            f"of them q fell again within the epoch; {refixed} victims were FIXPOINT again "
            "later",
            value=refixed / raised if raised else math.nan,
            quantity="share of q-raising attacks whose victim was FIXPOINT again",
            threshold="≥ 1 attack raised q; > 0.5 of those retrained within the epoch and > 0.5 "
            "FIXPOINT again",
        ),
        Claim(
            "C17c",
            "later attacks matter less",
            not math.isnan(median_late) and median_late < median_early,
            f"median jump MAE(victim before, after): epochs 1–{epochs // 2}: "
            f"{_fmt(median_early)} ({len(jumps_early)} attacks); later: {_fmt(median_late)} "
            f"({len(jumps_late)} attacks)",
            value=median_late / median_early if median_early else math.nan,
            quantity="median jump, second half / first half",
            threshold="< 1",
        ),
        Claim(
            "C17d",
            "most attacks push victims toward the main cluster",
            effective > 0 and toward > effective / 2,
            f"{toward} of {effective} applied attacks moved the victim closer to the main "
            f"cluster's centroid ({cluster_size} of {census['FIXPOINT']} final FIXPOINTs)",
            value=toward_fraction,
            quantity="share of applied attacks toward the main cluster",
            threshold="> 0.5",
        ),
        Claim(
            "C17e",
            "the main cluster lies neither at the initial centre of mass nor near 0",
            centroid is not None and cluster_size >= 2 and min(from_zero, from_initial) > spread,
            f"main cluster centroid MAE from 0: {_fmt(from_zero)}, from the initial centroid: "
            f"{_fmt(from_initial)}; its spread (mean MAE to centroid): {_fmt(spread)}; initial "
            f"mean abs weight {_fmt(initial_size)}",
            value=min(from_zero, from_initial) / spread if spread else math.nan,
            quantity="min(distance from 0, from the initial centroid) / cluster spread",
            threshold="> 1, with ≥ 2 particles in the cluster",
        ),
        Claim(
            "C17f",
            "particles end as non-zero fixpoints (the figure's end points)",
            census["FIXPOINT"] > particles / 2,
            f"final census: {census['FIXPOINT']} FIXPOINT, {census['ZERO']} ZERO, "
            f"{census['OTHER']} OTHER, {census['DIVERGENT']} DIVERGENT of {particles}",
            value=census["FIXPOINT"],
            quantity=f"FIXPOINT of {particles}",
            threshold=f"> {particles / 2:g}",
        ),
    ]
    metrics = {
        "FIXPOINT": float(census["FIXPOINT"]),
        "main_cluster_size": float(cluster_size),
        "toward_fraction": toward_fraction,
        "main_cluster_mae_from_zero": from_zero,
        "main_cluster_mae_from_initial_centroid": from_initial,
        "main_cluster_spread_mae": spread,
        "jump_median_first_half": median_early,
        "jump_median_second_half": median_late,
        "q_median_epoch0": q_start,
        f"q_median_epoch{window}": q_window,
    }
    notes = [
        "Main cluster [interpretation]: the largest single-linkage group of the final FIXPOINTs, "
        f"linking two when their MAE is at most {link} × the median pairwise MAE "
        f"(option cluster_fraction). The centroid of all {census['FIXPOINT']} final FIXPOINTs is "
        f"{_fmt(all_from_zero)} from 0 (MAE) with spread {_fmt(all_spread)}.",
        "Attack measures use the victim's weights just before and just after the attack rule; "
        "overwritten attacks (SPEC R1) count in 'attacks' only. 'Raised q' means the attack left "
        "the victim with a larger fixpoint error than before and above ε.",
        "By Proposition 2 a fixpoint attacker with u(w) ≈ (1,0,0,0) maps its victim almost onto "
        "itself, which is why attacks by trained particles barely move their victims.",
    ]
    return Outcome([row], claims, metrics, figures, notes)


EXPERIMENTS = [
    Experiment(
        "E11",
        "fig12",
        "Fig 12: soup trajectories (attack and self-train)",
        "keras2019",
        soup_trajectories,
        setting=f"{KERAS_SETTING}. Schedule: SPEC's synchronous rules with self-attack excluded "
        "(canonical; `--set schedule=sequential --set allow_self=true` gives the Keras code's "
        f"loop). {TORCH_VARIANT}",
        cost=1.5,
    ),
]
