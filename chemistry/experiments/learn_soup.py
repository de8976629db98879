"""E14 — the Keras code's learn-from soup (no paper figure; SPEC E14)."""

from __future__ import annotations

import torch

from chemistry.experiments.base import Claim, Context, Experiment, Outcome, Scaled
from chemistry.experiments.figures import lines_figure
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
    _events,
    _final_status_by_component,
    _fmt,
    _recorded_weights,
    _run_config_base,
    _run_experiment_sweep,
    _spearman,
    _sweep_note,
)
from interactions import EventKind
from particles import Status

Tensor = torch.Tensor
SEVERITY_KEY = "rules.learn.severity"


def _independent_census(w: Tensor, eps: float, encoding: str = "torch") -> tuple[int, int, Tensor]:
    """ZERO and FIXPOINT counts of default ww particles recomputed here, in float64.

    Uses Proposition 2 directly: u = W_2 W_1 W_0 from the D1 layout, F(w)_i = u·x_i(w) with the
    D6 features built from the layer shapes (the keras encoding swaps the row and column
    features), q = max_i |F(w)_i − w_i|. Returns (zero, fixpoint, max|u − (1,0,0,0)| per
    particle).
    """
    w = w.double()
    w0 = w[:, :8].reshape(-1, 2, 4)
    w1 = w[:, 8:12].reshape(-1, 2, 2)
    w2 = w[:, 12:14].reshape(-1, 1, 2)
    u = (w2 @ w1 @ w0)[:, 0, :]
    rows = []
    for layer, (out, inp) in enumerate([(2, 4), (2, 2), (1, 2)]):
        for c in range(out):
            for p in range(inp):
                row = c / (out - 1) if out > 1 else 0.0
                column = p / (inp - 1) if inp > 1 else 0.0
                pair = [column, row] if encoding == "keras" else [row, column]
                rows.append([layer / 2, *pair])
    positions = torch.tensor(rows, dtype=torch.float64)
    image = u[:, :1] * w + u[:, 1:] @ positions.T
    gap = (image - w).abs().amax(dim=1)
    finite = torch.isfinite(w).all(dim=1)
    zero = finite & (w.abs().amax(dim=1) <= eps)
    fixpoint = finite & ~zero & (gap <= eps)
    e0 = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    return int(zero.sum()), int(fixpoint.sum()), (u - e0).abs().amax(dim=1)


def learn_soup(
    context: Context,
    *,
    soups: int = Scaled(10, 4),
    particles: int = 10,
    epochs: int = Scaled(100, 30),
    chance: float = 0.1,
    step: int = Scaled(10, 50),
    scheduling: SoupSchedule = SoupSchedule(),
    training: KerasTraining = KerasTraining(),
    setting: ParticleSetting = ParticleSetting(),
) -> Outcome:
    """E14: per severity s, 10 soups of 10 ww particles, 100 epochs of Learn(0.1, s) only.

    One sweep over s per setting of one base run configuration; each point's soups run as one
    population on disjoint cliques. Its weights are recorded at epoch 0 and at the end
    (``trajectories.npz``) for the independent recount.
    """
    size = particles
    grid = list(range(0, 101, step))
    merged = Outcome([], [], {}, [], [])
    for number, (label, init_, encoding_) in enumerate(setting.variants()):
        suffix = file_suffix(number, label)
        base = _run_config_base(context, epochs, training.eps, scheduling.schedule)
        base["record"]["trajectories_every"] = max(epochs, 1)
        base |= {
            "description": f"E14: {soups} soups × {size} ww ({label}), learn {chance} with "
            "severity s",
            "topology": {"kind": "disjoint_cliques", "size": size, "num_soups": soups},
            "population": [
                {
                    "architecture": "ww",
                    "count": soups * size,
                    "init_scheme": init_,
                    "encoding": encoding_,
                }
            ],
            "rules": [
                {
                    "type": "learn",
                    "chance": chance,
                    "severity": 0,
                    "allow_self": scheduling.allow_self,
                    "lr": training.lr,
                    "training_mode": training.mode,
                }
            ],
        }
        points = _run_experiment_sweep(
            context,
            base,
            {SEVERITY_KEY: grid},
            parameter=SEVERITY_KEY,
            description=f"E14 (learn-from soup, {label}): final FIXPOINTs against severity s",
            folder=f"sweep{suffix}",
        )
        one = _measure(context, points, grid, label, suffix, encoding_)
        merged.rows += one.rows
        merged.claims += one.claims
        tag = metric_tag(number, label)
        merged.metrics |= {f"{key}{tag}": value for key, value in one.metrics.items()}
        merged.figures += one.figures
        merged.notes += one.notes if number == 0 else []
    return merged


def _measure(context: Context, points, grid, label: str, suffix: str, encoding: str) -> Outcome:
    """Rows, claims and the figure of one setting's sweep."""
    eps, soups, size = context.option("eps"), context.option("soups"), context.option("particles")
    epochs, chance = context.option("epochs"), context.option("chance")
    rows = []
    unchanged_at_zero = True
    mismatches = 0
    for point in points:
        severity = point.overrides[SEVERITY_KEY]
        graph = point.run.genealogy().graph
        initial = _recorded_weights(point, "ww", 0)
        final = _recorded_weights(point, "ww", epochs)
        per_soup = _final_status_by_component(point, graph).double()
        mean = per_soup.mean(dim=0)
        zero, fixpoint, u_gap = _independent_census(final, eps, encoding)
        mismatches += abs(zero - int(per_soup[:, Status.ZERO].sum()))
        mismatches += abs(fixpoint - int(per_soup[:, Status.FIXPOINT].sum()))
        if severity == 0:
            unchanged_at_zero &= bool(torch.equal(initial, final))
        row = {
            "setting": label,
            "encoding": encoding,
            "severity": severity,
            "soups": soups,
            "particles": size,
            "epochs": epochs,
            "chance": chance,
        }
        for status in Status:
            row[status.name] = float(mean[status])
        row["ZERO_std"] = float(per_soup[:, Status.ZERO].std()) if soups > 1 else 0.0
        row["FIXPOINT_std"] = float(per_soup[:, Status.FIXPOINT].std()) if soups > 1 else 0.0
        row["ZERO_recount"] = zero / soups
        row["FIXPOINT_recount"] = fixpoint / soups
        row["u_gap_median"] = float(u_gap.median())
        row["mean_abs_weight"] = float(final.double().abs().mean())
        row["learn_events"] = _events(graph, EventKind.LEARN)
        row["point"] = f"{point.run.path.parent.parent.name}/{point.run.path.name}"
        rows.append(row)
    fix = [r["FIXPOINT"] for r in rows]
    zeros = [r["ZERO"] for r in rows]
    gaps = [r["u_gap_median"] for r in rows]
    rho = _spearman(grid, fix)
    rho_gap = _spearman(grid, gaps)
    figure = lines_figure(
        grid,
        {"ZERO": zeros, "FIXPOINT": fix},
        context.out / f"learn_soup_against_severity{suffix}.png",
        title=f"Learn-from soup: {soups} soups × {size} ww, {epochs} epochs, λ={chance} ({label})",
        xlabel="severity s (training steps per learning event)",
        ylabel="mean particles per soup",
    )
    claims = [
        Claim(
            "check",
            "(no paper claim) FIXPOINT count grows with severity s",
            fix[-1] > fix[0] and rho >= 0.8,
            "FIXPOINT per soup: "
            + ", ".join(f"s={s}: {v:.2g}" for s, v in zip(grid, fix, strict=True))
            + f"; ZERO per soup: max {max(zeros):.2g}; Spearman ρ = {_fmt(rho)}",
            value=fix[-1],
            quantity=f"FIXPOINT per soup (of {size}) at s = {grid[-1]}",
            threshold="more at the largest s than at s = 0, Spearman ρ(s, FIXPOINT) ≥ 0.8",
            setting=label,
        ),
        Claim(
            "check",
            "(no paper claim) learning moves u(w) toward (1,0,0,0), the fixpoint set of "
            "Proposition 2",
            rho_gap <= -0.8,
            "median of max abs(u − (1,0,0,0)): "
            + ", ".join(f"s={s}: {g:.2g}" for s, g in zip(grid, gaps, strict=True))
            + f"; Spearman ρ = {_fmt(rho_gap)}",
            value=rho_gap,
            quantity="Spearman ρ(s, median gap of u to (1,0,0,0))",
            threshold="≤ −0.8",
            setting=label,
        ),
        Claim(
            "check",
            "(no paper claim) independent float64 recount agrees with the soup's classes; s = 0 "
            "changes nothing",
            mismatches == 0 and unchanged_at_zero,
            f"{mismatches} ZERO/FIXPOINT count differences over all settings; s=0 weights "
            f"{'unchanged' if unchanged_at_zero else 'CHANGED'}",
            value=mismatches,
            quantity="count differences",
            threshold="= 0 and s = 0 leaves every weight unchanged",
            setting=label,
        ),
    ]
    metrics = {f"FIXPOINT_s{r['severity']}": r["FIXPOINT"] for r in rows}
    metrics |= {f"ZERO_s{r['severity']}": r["ZERO"] for r in rows}
    metrics["spearman_s_fixpoint"] = rho
    notes = [
        "The paper makes no claim here; the 'check' rows are this project's independent checks.",
        "A ww learner fits the teacher's encoding rows x_i to the teacher's weights; "
        "u = (1,0,0,0) fits every teacher exactly (Proposition 2), so learning alone is expected "
        "to drive particles onto fixpoints rather than to copy the teacher.",
        _sweep_note(soups, size),
        "The recount reads each point's final weights from its trajectories.npz (recorded at "
        "epoch 0 and at the end); learn_events counts the learn edges of its genealogy.",
    ]
    return Outcome(rows, claims, metrics, [figure], notes)


EXPERIMENTS = [
    Experiment(
        "E14",
        "learn-soup",
        "Learn-from soup (Keras code, no paper figure)",
        "keras2019",
        learn_soup,
        setting=f"{KERAS_SETTING}. {TORCH_VARIANT}",
        cost=7.3,
    ),
]
