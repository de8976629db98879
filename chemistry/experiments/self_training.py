"""Experiments on self-training N ⇜ N (SPEC E5–E7)."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from chemistry.experiments.base import Claim, Context, Experiment, Outcome, Scaled, write_rows
from chemistry.experiments.figures import box_figure, census_figure, trajectory_figure
from chemistry.experiments.self_application import (
    F32_NOTE,
    no_second_order,
    noise_label,
    noise_levels,
    noisy_copies,
    robustness_row,
    robustness_trials,
    status_columns,
    trial_table,
)
from chemistry.experiments.settings import (
    KERAS_SETTING,
    TORCH_VARIANT,
    DType,
    Encoding,
    Init,
    KerasTraining,
    Mode,
    ParticleSetting,
    file_suffix,
    metric_tag,
    particle_types,
    setting_label,
)
from chemistry.trajectories import Trajectories
from particles import (
    Status,
    Weightwise,
    classify,
    fixpoint_error,
    preset,
    self_prediction_loss,
    self_train,
)


def _median(values: torch.Tensor) -> float:
    return float(values.double().median()) if values.numel() else math.nan


JOURNAL = preset("journal2021")


def _pairwise_mae(w: torch.Tensor) -> torch.Tensor:
    """MAE between every unordered pair of rows of w [B, r]: [B·(B−1)/2] (SPEC D16)."""
    i, j = torch.triu_indices(w.shape[0], w.shape[0], offset=1)
    return (w[i] - w[j]).abs().mean(dim=1)


# --------------------------------------------------------------------------------------------
# E5


def path_measures(stack: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Movement measures of trajectories ``stack`` [steps + 1, B, r] (states 0..steps).

    Movement per step = MAE between consecutive states (SPEC D16); the path is its sum. Returns
    (path [B], late share = share of the path travelled in steps ⌊steps/2⌋+1..steps [B],
    settled step = first step after which at most 5 % of the path remains [B]).
    """
    steps = stack.shape[0] - 1
    movement = (stack[1:] - stack[:-1]).abs().mean(dim=2)  # [steps, B]
    path = movement.sum(dim=0)
    late_share = movement[steps // 2 :].sum(dim=0) / path
    remaining = path - movement.cumsum(dim=0)  # path still to travel after each step
    settled_at = (remaining <= 0.05 * path).long().argmax(dim=0) + 1
    return path, late_share, settled_at


def weightwise_trajectories(
    context: Context,
    *,
    particles: int = 10,
    steps: int = 100,
    continue_to: int = 1000,
    training: KerasTraining = KerasTraining(),
    init: Init = "glorot",
    encoding: Encoding = "keras",
    dtype: DType = "float32",
) -> Outcome:
    """E5, Fig 4: 10 fresh ww particles self-train 100 steps; every state recorded."""
    eps, lr, mode = training.eps, training.lr, training.mode
    count = particles
    continue_to = max(continue_to, steps)
    label = setting_label(init, encoding)
    arch = Weightwise(encoding=encoding, init_scheme=init)
    generator = context.generator(1)
    w = arch.init(count, generator=context.generator(0), dtype=context.dtype)
    record = Trajectories({"ww": arch.num_weights})
    uids = torch.arange(count)
    record.record("ww", 0, uids, w)
    states = [w]
    first_fixpoint = torch.full((count,), -1, dtype=torch.long)
    end = w
    for step in range(1, continue_to + 1):
        w = self_train(arch, w, steps=1, lr=lr, mode=mode, generator=generator).weights
        status = classify(arch, w, eps=eps)
        fresh = (first_fixpoint < 0) & (status == int(Status.FIXPOINT))
        first_fixpoint[fresh] = step
        if step <= steps:
            record.record("ww", step, uids, w)
            states.append(w)
        if step == steps:
            end = w
    later = w
    path, late_share, settled_at = path_measures(torch.stack(states))
    status_end, status_later = classify(arch, end, eps=eps), classify(arch, later, eps=eps)
    q_end, q_later = fixpoint_error(arch, end), fixpoint_error(arch, later)
    loss_end = self_prediction_loss(arch, end)
    pairs_end = _pairwise_mae(end)
    fixed = status_later == int(Status.FIXPOINT)
    pairs_fixed = _pairwise_mae(later[fixed])
    rows = [
        {
            "stage": "trajectory",
            "steps": steps,
            "particles": count,
            "mode": mode,
            "lr": lr,
            "eps": eps,
            "q_median": _median(q_end),
            "q_max": float(q_end.max()),
            "pairwise_mae_min": float(pairs_end.min()),
            "pairwise_mae_median": _median(pairs_end),
            "late_share_max": float(late_share.max()),
            "settled_at_median": _median(settled_at),
            **status_columns(status_end),
        },
        {
            "stage": "continued",
            "steps": continue_to,
            "particles": count,
            "mode": mode,
            "lr": lr,
            "eps": eps,
            "q_median": _median(q_later),
            "q_max": float(q_later.max()),
            "pairwise_mae_min": float(pairs_fixed.min()) if pairs_fixed.numel() else "",
            "pairwise_mae_median": _median(pairs_fixed),
            "first_fixpoint_median": _median(first_fixpoint[first_fixpoint > 0]),
            **status_columns(status_later),
        },
    ]
    write_rows(
        context.out / "particles.csv",
        [
            {
                "particle": k,
                f"class_{steps}": Status(int(status_end[k])).name,
                f"q_{steps}": float(q_end[k]),
                f"loss_l1_{steps}": float(loss_end[k]),
                "path_mae": float(path[k]),
                "late_share": float(late_share[k]),
                "settled_at": int(settled_at[k]),
                "first_fixpoint": int(first_fixpoint[k]) if first_fixpoint[k] > 0 else "",
                f"class_{continue_to}": Status(int(status_later[k])).name,
                f"q_{continue_to}": float(q_later[k]),
            }
            for k in range(count)
        ],
    )
    i, j = torch.triu_indices(count, count, offset=1)
    write_rows(
        context.out / "pairs.csv",
        [
            {"a": int(a), "b": int(b), f"mae_{steps}": float(d)}
            for a, b, d in zip(i, j, pairs_end, strict=True)
        ],
    )
    figure = trajectory_figure(
        record.pca(["ww"]),
        context.out / "fig4_weightwise_self_training.png",
        title=f"ww self-training, {count} particles, {steps} steps (joint PCA)",
        time_label="self-training step",
        final_status={k: Status(int(status_end[k])).name for k in range(count)},
    )
    fixpoints_end = int((status_end == int(Status.FIXPOINT)).sum())
    reached = first_fixpoint > 0
    share = 0.05
    claims = [
        Claim(
            "C7",
            f"particles move for a few steps, then stay put (≤ {share:.0%} of the path in steps "
            f"{steps // 2 + 1}–{steps}); every one stops at a different point",
            bool((late_share <= share).all()) and float(pairs_end.min()) > eps,
            f"share of the path in the second half: median {_median(late_share):.2g}, max "
            f"{float(late_share.max()):.2g}; 95% of the path done by step "
            f"{_median(settled_at):g} (median); smallest pairwise end-point MAE "
            f"{float(pairs_end.min()):.3g}",
            value=float(late_share.max()),
            quantity="largest share of a path in its second half",
            threshold=f"≤ {share} for every particle and smallest end-point MAE > ε = {eps:g}",
            setting=label,
        ),
        Claim(
            "C8",
            "the end points are non-zero fixpoints of self-application",
            fixpoints_end == count,
            f"{fixpoints_end}/{count} FIXPOINT at step {steps} (ε={eps:g}, median q "
            f"{_median(q_end):.2g}); training on: {int(reached.sum())}/{count} FIXPOINT by step "
            f"{continue_to}, first at step {_median(first_fixpoint[reached]):g} (median)",
            value=fixpoints_end,
            quantity=f"FIXPOINT of {count} at step {steps}",
            threshold=f"all {count}",
            setting=label,
        ),
        Claim(
            "C11",
            "no two particles self-train to the same fixpoint",
            int(fixed.sum()) >= 2 and float(pairs_fixed.min()) > eps,
            f"{int(fixed.sum())} FIXPOINT particles at step {continue_to}; smallest pairwise MAE "
            + (f"{float(pairs_fixed.min()):.3g}" if pairs_fixed.numel() else "n/a")
            + f" (same = MAE ≤ ε = {eps:g})",
            value=float(pairs_fixed.min()) if pairs_fixed.numel() else math.nan,
            quantity=f"smallest pairwise MAE of FIXPOINTs at step {continue_to}",
            threshold=f"≥ 2 FIXPOINTs and smallest MAE > ε = {eps:g}",
            setting=label,
        ),
    ]
    metrics = {
        "fixpoints_at_steps": float(fixpoints_end),
        "fixpoints_continued": float(fixed.sum()),
        "first_fixpoint_median": _median(first_fixpoint[reached]),
        "late_share_max": float(late_share.max()),
        "pairwise_mae_min": float(pairs_end.min()),
    }
    notes = [
        f"{mode} steps at lr {lr:g}, ε = {eps:g}. The trajectories and C7 use the paper's "
        f"{steps} steps; the same particles then train on, unplotted, to step {continue_to} to "
        "measure when each first becomes FIXPOINT (C8) and whether the fixpoints differ (C11). "
        f"Setting: {label}.",
        "Per-particle outcomes: particles.csv; pairwise end-point MAE: pairs.csv.",
    ]
    return Outcome(rows, claims, metrics, [figure], notes)


# --------------------------------------------------------------------------------------------
# E6


def training_census(
    context: Context,
    *,
    particles: int = Scaled(50, 10),
    steps: int = Scaled(1000, 500),
    training: KerasTraining = KerasTraining(),
    setting: ParticleSetting = ParticleSetting(),
) -> Outcome:
    """E6, Fig 5: 50 fresh particles per type, 1000 self-training steps each, then classified."""
    eps, lr, mode = training.eps, training.lr, training.mode
    count = particles
    tail = max(steps // 10, 1)
    rows, claims, metrics, figures = [], [], {}, []
    for number, (label, init_, encoding_) in enumerate(setting.variants()):
        counts, moved = {}, {}
        for index, (name, arch) in enumerate(particle_types(init_, encoding_).items()):
            generator = context.generator(100 + index + 10 * number)
            start = context.generator(index + 10 * number)
            w = arch.init(count, generator=start, dtype=context.dtype)
            w = self_train(
                arch, w, steps=steps - tail, lr=lr, mode=mode, generator=generator
            ).weights
            final = self_train(arch, w, steps=tail, lr=lr, mode=mode, generator=generator).weights
            status = classify(arch, final, eps=eps)
            counts[name] = status_columns(status)
            finite = torch.isfinite(final).all(dim=1)
            moved[name] = _median((final - w).abs().mean(dim=1)[finite])
            q = fixpoint_error(arch, final)
            rows.append(
                {
                    "setting": label,
                    "init": init_,
                    "encoding": encoding_,
                    "type": name,
                    "particles": count,
                    "steps": steps,
                    "mode": mode,
                    "lr": lr,
                    "eps": eps,
                    "q_median": _median(q[finite]),
                    f"moved_last_{tail}_median": moved[name],
                    **counts[name],
                }
            )
        suffix = file_suffix(number, label)
        figures.append(
            census_figure(
                counts,
                context.out / f"fig5_self_training_census{suffix}.png",
                title=f"After {steps} self-training steps (ε={eps:g}; {label})",
            )
        )
        ww, agg, rnn = counts["ww"], counts["agg"], counts["rnn"]
        claims += [
            Claim(
                "C9",
                "weightwise particles become non-zero fixpoints with utmost reliability",
                ww["FIXPOINT"] >= 0.95 * count,
                f"ww: {ww['FIXPOINT']}/{count} FIXPOINT, {ww['ZERO']} ZERO, {ww['OTHER']} OTHER, "
                f"{ww['DIVERGENT']} DIVERGENT",
                value=ww["FIXPOINT"],
                quantity=f"ww FIXPOINT of {count}",
                threshold=f"≥ 95% ({0.95 * count:g})",
                setting=label,
            ),
            Claim(
                "C9",
                "aggregating particles converge to weights that are not fixpoints",
                agg["OTHER"] > count / 2 and moved["agg"] <= eps,
                f"agg: {agg['OTHER']}/{count} OTHER, {agg['FIXPOINT']} FIXPOINT, "
                f"{agg['ZERO']} ZERO; median MAE moved over the last {tail} steps "
                f"{moved['agg']:.2g}",
                value=agg["OTHER"],
                quantity=f"agg OTHER of {count}",
                threshold=f"> {count / 2:g} OTHER and median move over the last {tail} steps "
                f"≤ ε = {eps:g} (converged)",
                setting=label,
            ),
            Claim(
                "C9",
                "recurrent particles often diverge",
                rnn["DIVERGENT"] >= 0.2 * count,
                f"rnn: {rnn['DIVERGENT']}/{count} DIVERGENT, {rnn['OTHER']} OTHER, "
                f"{rnn['FIXPOINT']} FIXPOINT, {rnn['ZERO']} ZERO",
                value=rnn["DIVERGENT"],
                quantity=f"rnn DIVERGENT of {count}",
                threshold=f"≥ 20% ({0.2 * count:g})",
                setting=label,
            ),
            no_second_order(counts, label),
        ]
        tag = metric_tag(number, label)
        metrics |= {
            f"{t}_{s}{tag}": float(counts[t][s])
            for t in counts
            for s in ("FIXPOINT", "ZERO", "DIVERGENT", "OTHER")
        }
    notes = [
        f"{mode} steps at lr {lr:g}, ε = {eps:g}. fft is this project's extension (SPEC D11); the "
        "paper makes no claim about it. The thresholds ('utmost reliability' ≥ 95%, 'often' "
        "≥ 20%) are this project's reading of the paper's words.",
    ]
    return Outcome(rows, claims, metrics, figures, notes)


# --------------------------------------------------------------------------------------------
# E7

# The journal script's heavy-ball momentum (SPEC §3); see the note in ``trained_robustness``.
FIG6_MOMENTUM = 0.9


def _train_fixpoints(context: Context, arch: Weightwise, w: torch.Tensor, eps: float):
    """Self-train per SPEC E7 in calls of ``call_length`` steps; returns (w, stop step or −1)."""
    mode = context.option("mode")
    lr = context.option("lr")
    steps = context.option("steps")
    momentum = context.option("momentum")
    call_length = context.option("call_length")
    stop = context.option("stop_at_fixpoint")
    generator = context.generator(3)
    stopped_at = torch.full((w.shape[0],), -1, dtype=torch.long)
    done = 0
    while done < steps:
        length = min(call_length, steps - done)
        if not stop:
            w = self_train(
                arch, w, steps=length, lr=lr, mode=mode, momentum=momentum, generator=generator
            ).weights
            done += length
            continue
        # One step at a time so that each particle stops at its first FIXPOINT step; the
        # momentum buffer is carried within the call and starts from zero with each call.
        velocity = None
        for _ in range(length):
            active = stopped_at < 0
            if not active.any():
                return w, stopped_at
            done += 1
            result = self_train(
                arch,
                w[active],
                steps=1,
                lr=lr,
                mode=mode,
                momentum=momentum,
                momentum_reset="never",
                velocity=None if velocity is None else velocity[active],
                generator=generator,
            )
            w = w.clone()
            w[active] = result.weights
            if result.velocity is not None:
                velocity = torch.zeros_like(w) if velocity is None else velocity
                velocity[active] = result.velocity
            fixpoint = classify(arch, result.weights, eps=eps) == int(Status.FIXPOINT)
            stopped_at[active.nonzero().squeeze(1)[fixpoint]] = done
    return w, stopped_at


def trained_robustness(
    context: Context,
    *,
    particles: int = Scaled(1000, 100),
    steps: int = 5000,
    lr: float = 0.004,
    momentum: float = FIG6_MOMENTUM,
    call_length: int = 1000,
    stop_at_fixpoint: bool = False,
    applications: int = 100,
    levels: int = 10,
    noise: Literal["uniform", "double_uniform"] = "uniform",
    identity_trials: int = Scaled(100, 30),
    eps: float = JOURNAL.eps,
    mode: Mode = "full_batch",
    dtype: DType = "float32",
) -> Outcome:
    """E7, Fig 6: robustness of trained ww fixpoints under the protocol of E4, against 𝓘.

    Journal-code figure: torch initialisation and journal encoding (the journal code's).
    """
    count = particles
    arch = Weightwise()
    w = arch.init(count, generator=context.generator(0), dtype=context.dtype)
    w, stopped_at = _train_fixpoints(context, arch, w, eps)
    status = classify(arch, w, eps=eps)
    q = fixpoint_error(arch, w)
    kept = w[status == int(Status.FIXPOINT)]
    K = kept.shape[0]
    levels = noise_levels(levels)
    rows: list[dict[str, Any]] = [
        {
            "part": "training",
            "particles": count,
            "steps": steps,
            "lr": lr,
            "momentum": momentum,
            "mode": mode,
            "eps": eps,
            "stop_at_fixpoint": context.option("stop_at_fixpoint"),
            "kept": K,
            "q_min": float(q.min()),
            "q_median": _median(q[torch.isfinite(q)]),
            "q_max": float(q.max()),
            **status_columns(status),
        }
    ]
    # The protocol of E4 at this experiment's ε, for the kept fixpoints and for 𝓘.
    identity = Weightwise.identity(dtype=context.dtype).expand(identity_trials, -1)
    sources = (
        {"trained": (kept, 1), "identity": (identity, 2)} if K else {"identity": (identity, 2)}
    )
    trials, indices = {}, {}
    for name, (start, stream) in sources.items():
        copies, index = noisy_copies(context, start, levels, stream=stream, noise=noise)
        trials[name] = robustness_trials(arch, copies, eps=eps, applications=applications)
        indices[name] = index
        rows += [
            {
                "part": name,
                "noise": level,
                "eps": eps,
                **robustness_row(trials[name], index == k, applications),
            }
            for k, level in enumerate(levels)
        ]
        trial_table(context.out / f"trials_{name}.csv", trials[name], levels, index)
    labels = [noise_label(level) for level in levels]

    def per_level(name: str, key: str) -> list[list[float]]:
        return [trials[name][key][indices[name] == k].tolist() for k in range(len(levels))]

    figures = []
    if K:
        figures.append(
            box_figure(
                {
                    "time as fixpoint F": per_level("trained", "F"),
                    "time to verge T": per_level("trained", "T"),
                },
                labels,
                context.out / "fig6_trained_fixpoint_robustness.png",
                title=f"Noisy trained fixpoints, self-applied ({K} kept, ε={eps:g})",
                xlabel="noise ζ",
                ylabel="self-applications",
            )
        )
    figures.append(
        box_figure(
            {f"{name} F": per_level(name, "F") for name in trials},
            labels,
            context.out / "fig6_time_as_fixpoint_vs_identity.png",
            title=f"Time as fixpoint F: trained fixpoints against identity I (ε={eps:g})",
            xlabel="noise ζ",
            ylabel="self-applications as FIXPOINT",
        )
    )
    by = {(row["part"], row.get("noise")): row for row in rows}
    identity_F = [by["identity", level]["F_mean"] for level in levels]
    trained_F = [by["trained", level]["F_mean"] for level in levels] if K else []
    below = [level for level in levels if level < eps]
    trained_below = [by["trained", level]["F_median"] for level in below] if K else []
    few = 2
    # "Fewer": over the levels at which a noisy 𝓘 stays FIXPOINT for ≥ 1 application on average,
    # the trained copies' mean F is lower by more than two standard errors of the difference.
    compared = [k for k, value in enumerate(identity_F) if value >= 1]
    gap, error = math.nan, math.nan
    if K and compared:
        pooled = {
            name: torch.cat([trials[name]["F"][indices[name] == k] for k in compared]).double()
            for name in ("trained", "identity")
        }
        gap = float(pooled["identity"].mean() - pooled["trained"].mean())
        error = math.sqrt(sum(float(v.var()) / v.numel() for v in pooled.values()))
    fewer = K > 0 and bool(compared) and gap > 2 * error
    none = f"no trained fixpoint kept ({status_columns(status)['FIXPOINT']}/{count} FIXPOINT)"
    claims = [
        Claim(
            "C10",
            "noisy trained fixpoints keep the fixpoint property for fewer applications than a "
            "noisy 𝓘",
            fewer,
            (
                "mean F by level (1 → 1e-9), trained: "
                + ", ".join(f"{v:.2g}" for v in trained_F)
                + "; 𝓘: "
                + ", ".join(f"{v:.2g}" for v in identity_F)
                + f"; at the levels where 𝓘's mean F ≥ 1, 𝓘 − trained = {gap:.2g} ± {error:.2g} "
                "(difference of pooled means ± standard error; shown if > 2 standard errors)"
            )
            if K
            else none,
            setting="torch init (journal)",
            value=gap,
            quantity="mean F of 𝓘 − trained (applications)",
            threshold="> 2 standard errors of the difference",
        ),
        Claim(
            "C10",
            f"below noise ε they still stay fixpoints for at least a few (≥ {few}) applications",
            K > 0 and bool(below) and all(v >= few for v in trained_below),
            (
                f"median F of trained fixpoints at ζ < ε={eps:g} ("
                + ", ".join(noise_label(v) for v in below)
                + "): "
                + ", ".join(f"{v:g}" for v in trained_below)
            )
            if K
            else none,
            setting="torch init (journal)",
            value=min(trained_below) if trained_below else math.nan,
            quantity="smallest median F at ζ < ε",
            threshold=f"≥ {few} at every ζ < ε",
        ),
    ]
    metrics = {"kept": float(K), "q_median": rows[0]["q_median"]}
    metrics.update({f"identity_F_mean_{lab}": v for lab, v in zip(labels, identity_F, strict=True)})
    metrics.update({f"trained_F_mean_{lab}": v for lab, v in zip(labels, trained_F, strict=False)})
    notes = [
        f"Training: {count} fresh ww particles, {steps} {mode} steps at lr {lr:g}, momentum "
        f"{momentum:g} (reset per {call_length}-step call), then "
        f"classified at ε = {eps:g}; FIXPOINTs are kept, ZEROs excluded. Then E4's protocol "
        f"(cap {applications}) with one noisy copy per kept fixpoint and level.",
        f"C10's comparison runs 𝓘 through the same protocol inside this experiment, at the same "
        f"ε = {eps:g} ({identity_trials} trials per level), because E4 uses the Keras ε = 1e-4 "
        "and its numbers are not comparable.",
        F32_NOTE,
        "Momentum 0.9 per 1000-step call is this experiment's default, as in the journal "
        "script; SPEC E7 lists it as an option, but with plain SGD at lr 0.004 no particle "
        "reaches ε = 1e-5 within 5000 steps (median q ≈ 0.02), so the figure would be empty. "
        "`--set momentum=0` gives SPEC's plain SGD.",
        "Per-trial outcomes: trials_trained.csv, trials_identity.csv.",
    ]
    if not K:
        notes.insert(
            1,
            f"No particle reached FIXPOINT (median q {rows[0]['q_median']:.2g} against ε = "
            f"{eps:g}), so the robustness of trained fixpoints could not be measured at these "
            "settings. The default (momentum 0.9 per 1000-step call, the original script) "
            "reaches FIXPOINT.",
        )
    if context.option("stop_at_fixpoint"):
        reached = stopped_at > 0
        notes.append(
            f"stop_at_fixpoint: {int(reached.sum())} particles stopped at their first FIXPOINT "
            f"step (median step {_median(stopped_at[reached]):g})."
        )
    return Outcome(rows, claims, metrics, figures, notes)


EXPERIMENTS = [
    Experiment(
        "E5",
        "fig4",
        "Fig 4: weightwise self-training trajectories",
        "keras2019",
        weightwise_trajectories,
        setting=f"{KERAS_SETTING}.",
        cost=0.6,
    ),
    Experiment(
        "E6",
        "fig5",
        "Fig 5: self-training census",
        "keras2019",
        training_census,
        setting=f"{KERAS_SETTING}. {TORCH_VARIANT}",
        cost=8,
    ),
    Experiment(
        "E7",
        "fig6",
        "Fig 6: robustness of trained fixpoints",
        "journal2021",
        trained_robustness,
        setting="the journal code's setting (torch initialisation, journal encoding, full-batch "
        "SGD at lr 0.004, ε = 1e-5), as the paper made this figure with the journal code; "
        "momentum 0.9 per 1000-step call as the journal script (see the notes).",
        cost=0.7,
    ),
]
