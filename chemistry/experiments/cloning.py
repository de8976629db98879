"""Noisy clones of trained weightwise fixpoints, and clones between two parents (SPEC E8, E9).

Both experiments train ``ww`` parents by self-training, make children from them (noisy copies in
E8, points on the segment between two parents in E9), self-train the children further and measure
where they end relative to their parents (SPEC D16). Every particle of a setting is one row of a
single population tensor, so a whole experiment is a handful of batched training calls.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

import torch

from chemistry.experiments.base import Claim, Context, Experiment, Outcome, Scaled, write_rows
from chemistry.experiments.figures import box_figure, paired_figure, scatter_figure
from chemistry.plots import plot_trajectories
from chemistry.trajectories import Trajectories
from particles import (
    Status,
    Weightwise,
    add_noise,
    classify,
    count_statuses,
    distance,
    fixpoint_error,
    preset,
    self_prediction_loss,
    self_train,
)

Tensor = torch.Tensor
ARCH = Weightwise()
JOURNAL = preset("journal2021")
JOURNAL_SETTING = (
    "the journal code's setting (the paper made this figure with the journal code): torch "
    "initialisation, journal encoding, preset journal2021 (full-batch SGD, lr 0.04, ε = 1e-5)."
)
NOISE_LEVELS = tuple(10.0**-k for k in range(1, 12))
MOVEMENT_COLOURS = {"approaching": "#2ca02c", "distancing": "#d62728", "stationary": "#7f7f7f"}
RETURN_SHARE = 0.01  # a child within 1% of its initial distance has "returned" to the parent
FAR_SHARE = 0.5  # a child that removed at least half of its initial distance "travelled far"
HIGH_NOISE = 1e-6  # C13: "for ζ > 1e-6"
LOW_NOISE = 1e-7  # C13: "from 1e-7 down"
OFTEN = 0.25  # C13: "often" = at least a quarter of the low-noise children
TRAVEL = 4e-8  # C13: "at 1e-11 a child can travel 4e-8 or more"
RATIO = 40.0  # C13: "over 40 times the disturbance"
MAJORITY = 0.75  # C15: share of a half of the segment that must move the claimed way


def _median(values: Tensor) -> float:
    return float(values.median()) if values.numel() else math.nan


def _max(values: Tensor) -> float:
    return float(values.max()) if values.numel() else math.nan


def _share(mask: Tensor) -> float:
    return float(mask.double().mean()) if mask.numel() else math.nan


def _status_columns(status: Tensor) -> dict[str, int]:
    return {s.name: n for s, n in count_statuses(status).items()}


def _training(context: Context) -> dict[str, Any]:
    """Training settings (the journal preset's, unless switched by the experiment's options)."""
    return {
        "lr": context.option("lr"),
        "mode": context.option("mode"),
    }


def _train(w: Tensor, steps: int, training: dict[str, Any], generator, stride: int, record=None):
    """Self-train ``steps`` steps in chunks of ``stride``, calling ``record(step, w)`` after each.

    Chunking changes nothing in full_batch mode (no state is carried between steps).
    """
    done = 0
    while done < steps:
        chunk = min(stride, steps - done) if record is not None else steps
        w = self_train(ARCH, w, steps=chunk, generator=generator, **training).weights
        done += chunk
        if record is not None:
            record(done, w)
    return w


# --------------------------------------------------------------------------------------------
# E8: noisy cloning of trained parents (Figs 7-9)


def _cloning_run(context: Context, start: Tensor, dtype: torch.dtype, stream: int) -> dict:
    """The E8 protocol in one dtype from the initial parents ``start`` [P, r]."""
    training = _training(context)
    eps = context.option("eps")
    parent_steps = context.option("parent_steps")
    clone_steps = context.option("clone_steps")
    clones = context.option("clones")
    noise = context.option("noise")
    stride = context.option("record_stride")
    fig7_noise = context.option("fig7_noise")
    levels = [z for z in NOISE_LEVELS]
    if fig7_noise not in levels:
        levels = sorted({*levels, fig7_noise}, reverse=True)
    generator = context.generator(stream)

    history = [(0, start.to(dtype))]
    parents = _train(
        start.to(dtype),
        parent_steps,
        training,
        generator,
        stride,
        lambda step, w: history.append((step, w)),
    )
    parent_status = classify(ARCH, parents, eps=eps)
    kept = parent_status == int(Status.FIXPOINT)
    result = {
        "config": {
            "noise_kind": noise,
            "mode": training["mode"],
            "lr": training["lr"],
            "eps": eps,
            "parent_steps": parent_steps,
            "clone_steps": clone_steps,
        },
        "dtype": str(dtype).removeprefix("torch."),
        "levels": levels,
        "clones": clones,
        "fig7_noise": fig7_noise,
        "eps": eps,
        "parent_steps": parent_steps,
        "clone_steps": clone_steps,
        "parent_status": parent_status,
        "parent_q": fixpoint_error(ARCH, parents),
        "parent_l": self_prediction_loss(ARCH, parents),
        "kept": kept,
    }
    kept_parents = parents[kept]
    count = kept_parents.shape[0]
    if count == 0:
        return result

    # Rows ordered (noise level, parent, clone); ``reference`` is each clone's parent at cloning.
    reference = kept_parents.repeat_interleave(clones, 0).repeat(len(levels), 1)
    noisy = torch.cat(
        [
            add_noise(
                kept_parents.repeat_interleave(clones, 0), z, generator=generator, noise=noise
            )
            for z in levels
        ]
    )
    zeta = torch.tensor(levels, dtype=torch.float64).repeat_interleave(count * clones)
    total = noisy.shape[0]
    shown = levels.index(fig7_noise) * count * clones  # the Fig 7 parent's clones start here
    continued = []

    def record(step: int, w: Tensor) -> None:
        continued.append((parent_steps + step, w[shown : shown + clones], w[total : total + 1]))

    population = _train(
        torch.cat([noisy, kept_parents]), clone_steps, training, generator, stride, record
    )
    children, parents_end = population[:total], population[total:]
    mae_pre, mae_post = distance(noisy, reference), distance(children, reference)
    delta = (mae_pre.double() - mae_post.double()) / zeta
    result.update(
        {
            "zeta": zeta,
            "parent_index": kept.nonzero().flatten().repeat_interleave(clones).repeat(len(levels)),
            "mae_pre": mae_pre,
            "mae_post": mae_post,
            "mse_pre": distance(noisy, reference, "mse"),
            "mse_post": distance(children, reference, "mse"),
            "mim_pre": distance(noisy, reference, "mim"),
            "mim_post": distance(children, reference, "mim"),
            "delta": delta,
            "to_parent_end": distance(
                children, parents_end.repeat_interleave(clones, 0).repeat(len(levels), 1)
            ),
            "status": classify(ARCH, children, eps=eps),
            "q": fixpoint_error(ARCH, children),
            "l": self_prediction_loss(ARCH, children),
            "drift": distance(kept_parents, parents_end),
            "parent_end_q": fixpoint_error(ARCH, parents_end),
            "parent_end_l": self_prediction_loss(ARCH, parents_end),
            "fig7": {
                "parent": int(kept.nonzero()[0]),
                "history": history,
                "noisy": noisy[shown : shown + clones],
                "continued": continued,
                "status": classify(ARCH, population[shown : shown + clones], eps=eps),
                "parent_status": classify(ARCH, parents_end[:1], eps=eps),
            },
        }
    )
    return result


def _movement(delta: Tensor) -> list[str]:
    return [
        "approaching" if d > 0 else "distancing" if d < 0 else "stationary" for d in delta.tolist()
    ]


def _cloning_rows(run: dict) -> tuple[list[dict], list[dict]]:
    """results.csv rows (parents, then one per noise level) and the raw per-particle rows."""
    rows, raw = _cloning_rows_plain(run)
    return [{**row, **run["config"]} for row in rows], raw


def _cloning_rows_plain(run: dict) -> tuple[list[dict], list[dict]]:
    parent_l, parent_q = run["parent_l"].double(), run["parent_q"].double()
    kept = run["kept"]
    parent_row = {
        "dtype": run["dtype"],
        "role": "parents",
        "noise": "",
        "particles": kept.numel(),
        "kept": int(kept.sum()),
        **_status_columns(run["parent_status"]),
        "q_median": _median(parent_q[kept]),
        "q_max": _max(parent_q[kept]),
        "l_median": _median(parent_l[kept]),
        "l_max": _max(parent_l[kept]),
        "l_le_1e-6": _share(parent_l <= 1e-6),
        "l_le_1e-7": _share(parent_l <= 1e-7),
    }
    raw = [
        {
            "dtype": run["dtype"],
            "role": "parent",
            "parent": index,
            "noise": "",
            "status": Status(int(run["parent_status"][index])).name,
            "q": float(parent_q[index]),
            "l": float(parent_l[index]),
        }
        for index in range(kept.numel())
    ]
    if "zeta" not in run:
        return [parent_row], raw
    drift = run["drift"].double()
    parent_row.update(
        {
            "drift_median": _median(drift),
            "drift_max": _max(drift),
            "q_end_median": _median(run["parent_end_q"].double()),
            "l_end_median": _median(run["parent_end_l"].double()),
        }
    )
    rows = [parent_row]
    movement = _movement(run["delta"])
    pre, post = run["mae_pre"].double(), run["mae_post"].double()
    for z in run["levels"]:
        at = run["zeta"] == z
        moves = [m for m, a in zip(movement, at.tolist(), strict=True) if a]
        travel = (pre[at] - post[at]).abs()
        moved = at & (pre > 0)
        rows.append(
            {
                "dtype": run["dtype"],
                "role": "clones",
                "noise": z,
                "particles": int(at.sum()),
                "noise_lost": int((pre[at] == 0).sum()),
                "approaching": moves.count("approaching"),
                "distancing": moves.count("distancing"),
                "stationary": moves.count("stationary"),
                **_status_columns(run["status"][at]),
                **{
                    f"{m}_{when}_median": _median(run[f"{m}_{when}"][at].double())
                    for m in ("mae", "mse", "mim")
                    for when in ("pre", "post")
                },
                "delta_median": _median(run["delta"][at]),
                "delta_min": -_max(-run["delta"][at]),
                "delta_max": _max(run["delta"][at]),
                "travel_max": _max(travel),
                "share_back_max": _max(((pre - post) / pre)[moved]),
                "to_parent_end_median": _median(run["to_parent_end"][at].double()),
                "q_median": _median(run["q"][at].double()),
                "q_max": _max(run["q"][at].double()),
                "l_median": _median(run["l"][at].double()),
                "l_max": _max(run["l"][at].double()),
                "l_le_1e-6": _share(run["l"][at] <= 1e-6),
                "l_le_1e-7": _share(run["l"][at] <= 1e-7),
            }
        )
    columns = (
        "mae_pre",
        "mae_post",
        "mse_pre",
        "mse_post",
        "mim_pre",
        "mim_post",
        "delta",
        "to_parent_end",
        "q",
        "l",
    )
    values = {c: run[c].double().tolist() for c in columns}
    for index, kind in enumerate(movement):
        raw.append(
            {
                "dtype": run["dtype"],
                "role": "clone",
                "parent": int(run["parent_index"][index]),
                "noise": float(run["zeta"][index]),
                "clone": index % run["clones"],
                "status": Status(int(run["status"][index])).name,
                "movement": kind,
                **{c: values[c][index] for c in columns},
            }
        )
    return rows, raw


def _cloning_claims(run: dict, suffix: str) -> tuple[list[Claim], dict[str, float]]:
    """C12-C14 judged on one dtype's numbers (definitions in the module constants)."""
    texts = {
        "C12": "after cloning and 2500 more steps all children are ε-fixpoints again; none returns "
        "to the parent, some travel far toward it",
        "C13": "ζ > 1e-6: every child ends closer to the parent but stops in between; from 1e-7 "
        "down children often move away; travel stays ~constant (≥ 4e-8 at 1e-11), never "
        "that large relative to ζ at high noise",
        "C14": "after 2500 steps almost all particles are 1e-6-fixpoints, some 1e-7-fixpoints; "
        "children reach the parents' level whatever the noise",
    }
    kept = run["kept"]
    if "zeta" not in run:
        message = f"no parent became FIXPOINT ({int(kept.numel())} trained); nothing to clone"
        return [Claim(k, t, False, message, setting=run["dtype"]) for k, t in texts.items()], {}
    zeta, status = run["zeta"], run["status"]
    pre, post, delta = run["mae_pre"].double(), run["mae_post"].double(), run["delta"]
    moved = pre > 0
    share_back = torch.where(moved, (pre - post) / pre.clamp_min(1e-300), torch.zeros_like(pre))
    returned = moved & (post <= RETURN_SHARE * pre)
    fixpoints = int((status == int(Status.FIXPOINT)).sum())
    total = status.numel()
    far = share_back >= FAR_SHARE
    c12 = Claim(
        "C12",
        texts["C12"],
        fixpoints == total and not bool(returned.any()) and bool(far.any()),
        f"{fixpoints}/{total} children FIXPOINT; {int(returned.sum())} back within "
        f"{RETURN_SHARE:.0%} of their initial distance; largest share of the distance travelled "
        f"back {_max(share_back[moved]):.2f} ({int(far.sum())} children ≥ {FAR_SHARE}); "
        f"{int((~moved).sum())} children identical to their parent (noise lost to rounding)",
        value=fixpoints / total,
        quantity="share of children FIXPOINT",
        threshold=f"share = 1, none within {RETURN_SHARE:.0%} of its initial distance, ≥ 1 "
        f"travelled ≥ {FAR_SHARE:.0%} back",
        setting=run["dtype"],
    )

    high, low = zeta > HIGH_NOISE, zeta <= LOW_NOISE
    smallest = zeta == zeta.min()
    travel = (pre - post).abs()
    high_approach = bool((delta[high] > 0).all()) and not bool(returned[high].any())
    low_distancing = _share(delta[low] < 0)
    low_travel = _max(travel[zeta == LOW_NOISE]) if bool((zeta == LOW_NOISE).any()) else math.nan
    small_travel = _max(travel[smallest])
    high_ratio = _max(delta[high].abs())
    c13_parts = [
        high_approach,
        low_distancing >= OFTEN,
        small_travel >= TRAVEL,
        high_ratio < RATIO,
        small_travel >= 0.1 * low_travel,
    ]
    failed = ", ".join(p for p, ok in zip("abcde", c13_parts, strict=True) if not ok)
    c13 = Claim(
        "C13",
        texts["C13"],
        all(c13_parts),
        f"(a) ζ > 1e-6: {int((delta[high] > 0).sum())}/{int(high.sum())} approaching, "
        f"{int(returned[high].sum())} back at the parent; (b) ζ ≤ 1e-7: {low_distancing:.0%} "
        f"distancing, {int((delta[low] == 0).sum())}/{int(low.sum())} stationary; (c, e) largest "
        f"travel {small_travel:.2g} at {float(zeta.min()):.0e}, {low_travel:.2g} at 1e-7; (d) "
        f"largest abs(δ) at ζ > 1e-6: {high_ratio:.3g}; parent drift median "
        f"{_median(run['drift'].double()):.2g}, max {_max(run['drift'].double()):.2g}; "
        f"failed: {failed or 'none'}",
        value=low_distancing,
        quantity="share distancing at ζ ≤ 1e-7",
        threshold=f"(a) all approach at ζ > 1e-6; (b) share ≥ {OFTEN}; (c) travel ≥ {TRAVEL:g} at "
        f"the smallest ζ; (d) abs(δ) < {RATIO:g} at ζ > 1e-6; (e) travel at the smallest ζ ≥ 0.1× "
        "that at 1e-7",
        setting=run["dtype"],
    )

    parent_l = run["parent_l"].double()
    near = _share(parent_l <= 1e-6)
    some = int((parent_l <= 1e-7).sum())
    level = _median(parent_l[kept])
    worst = max(_median(run["l"][zeta == z].double()) for z in run["levels"])
    c14 = Claim(
        "C14",
        texts["C14"],
        near >= 0.9 and some >= 1 and worst <= 10 * level,
        f"parents at {run['parent_steps']} steps: {near:.0%} with ℓ ≤ 1e-6, {some} with ℓ ≤ 1e-7 "
        f"(q ≤ 1e-6: {_share(run['parent_q'] <= 1e-6):.0%}); median ℓ kept parents {level:.2g}, "
        f"children's median ℓ per noise level at most {worst:.2g} ({int((run['l'] <= 1e-7).sum())}"
        f"/{total} children with ℓ ≤ 1e-7)",
        value=near,
        quantity="share of parents with ℓ ≤ 1e-6",
        threshold="≥ 0.9, ≥ 1 parent ℓ ≤ 1e-7, children's median ℓ ≤ 10× the parents'",
        setting=run["dtype"],
    )
    key = run["dtype"]
    metrics = {
        f"{key}_parents_kept": float(kept.sum()),
        f"{key}_children_fixpoint_share": fixpoints / total,
        f"{key}_high_noise_approaching_share": _share(delta[high] > 0),
        f"{key}_low_noise_distancing_share": low_distancing,
        f"{key}_travel_max_smallest_noise": small_travel,
        f"{key}_parent_l_median": level,
        f"{key}_child_l_median": _median(run["l"].double()),
        f"{key}_parent_drift_median": _median(run["drift"].double()),
    }
    return [c12, c13, c14], metrics


def _fig7(run: dict, folder) -> list:
    """Whitened joint PCA of one parent and its clones; the cloning jump is at the parent step.

    Two figures: the whole history (the parent's early training dominates the axes) and the same
    particles from the cloning step on, fitted on those states only, where the jump is visible.
    """
    data = run["fig7"]
    parent, clones = data["parent"], data["noisy"].shape[0]
    final = {0: Status(int(data["parent_status"][0])).name}
    final.update({i + 1: Status(int(s)).name for i, s in enumerate(data["status"].tolist())})
    parent_uid = torch.zeros(1, dtype=torch.long)
    clone_uids = torch.arange(1, clones + 1)
    paths = []
    for name, since in (("fig7_clone_trajectories", 0), ("fig7_clone_trajectories_zoom", None)):
        tracks = Trajectories({"ww": ARCH.num_weights})
        history = data["history"] if since == 0 else data["history"][-1:]
        for step, w in history:
            tracks.record("ww", step, parent_uid, w[parent : parent + 1])
        at_cloning = data["history"][-1][1][parent : parent + 1]
        tracks.record("ww", run["parent_steps"], clone_uids, at_cloning.expand(clones, -1))
        tracks.record("ww", run["parent_steps"], clone_uids, data["noisy"])
        for step, children, parent_w in data["continued"]:
            tracks.record("ww", step, clone_uids, children)
            tracks.record("ww", step, parent_uid, parent_w)
        span = "" if since == 0 else f"from step {run['parent_steps']}, "
        paths.append(
            plot_trajectories(
                tracks.pca(whiten=True),
                folder / f"{name}.png",
                final_status=final,
                title=f"Parent {parent} (uid 0) and {clones} clones at ζ={run['fig7_noise']:g} "
                f"({run['dtype']}; {span}z = training step, jump at {run['parent_steps']})",
            )
        )
    return paths


def _cloning_figures(context: Context, run: dict, suffix: str) -> list:
    """Figs 8 and 9 for one dtype's run."""
    if "zeta" not in run:
        return []
    name = f"_{suffix}" if suffix else ""
    labels = [f"{z:.0e}" for z in run["levels"]]
    movement = _movement(run["delta"])
    before, after, kinds, notes = [], [], [], []
    for z in run["levels"]:
        at = (run["zeta"] == z).tolist()
        before.append(run["mae_pre"].double()[at].tolist())
        after.append(run["mae_post"].double()[at].tolist())
        kinds.append([m for m, a in zip(movement, at, strict=True) if a])
        notes.append(f"↓{kinds[-1].count('approaching')} ↑{kinds[-1].count('distancing')}")
    fig8 = paired_figure(
        labels,
        before,
        after,
        kinds,
        MOVEMENT_COLOURS,
        context.out / f"fig8_clone_distances{name}.png",
        title=f"MAE of each clone to its parent before and after {run['clone_steps']} steps "
        f"({run['dtype']}; ↓ approaching, ↑ distancing)",
        xlabel="noise ζ",
        ylabel="MAE to parent (at cloning)",
        annotations=notes,
    )
    floor = 1e-18
    parents = run["parent_l"].double()[run["kept"]].clamp_min(floor).tolist()
    children = [
        run["l"].double()[run["zeta"] == z].clamp_min(floor).tolist() for z in run["levels"]
    ]
    fig9 = box_figure(
        {"parents": [parents] * len(labels), "children": children},
        labels,
        context.out / f"fig9_fixpoint_loss{name}.png",
        title=f"Self-prediction loss ℓ, parents at cloning vs children after training "
        f"({run['dtype']})",
        xlabel="noise ζ",
        ylabel="ℓ",
        log=True,
        references=(1e-6, 1e-7),
    )
    return [fig8, fig9]


def noisy_cloning(
    context: Context,
    *,
    parents: int = Scaled(10, 3),
    clones: int = Scaled(10, 4),
    parent_steps: int = 2500,
    clone_steps: int = 2500,
    noise: Literal["uniform", "double_uniform"] = "uniform",
    fig7_noise: float = 1e-2,
    record_stride: int = 25,
    float64_control: bool = True,
    eps: float = JOURNAL.eps,
    lr: float = JOURNAL.lr,
    mode: Literal["full_batch", "per_sample"] = "full_batch",
    dtype: Literal["float32", "float64"] = "float32",
) -> Outcome:
    """E8, Figs 7-9: noisy clones of trained ww fixpoints, in float32 and as a float64 control.

    Journal-code figure: torch initialisation and journal encoding, the journal2021 preset.
    """
    count = context.option("parents")
    # Parents are drawn once (in float32) and cast, so every dtype starts from the same parents.
    start = ARCH.init(count, generator=context.generator(0), dtype=torch.float32)
    dtypes = [context.dtype]
    if context.dtype == torch.float32 and context.option("float64_control"):
        dtypes.append(torch.float64)
    rows, raw, claims, metrics, figures, notes = [], [], [], {}, [], []
    for index, dtype in enumerate(dtypes):
        run = _cloning_run(context, start, dtype, stream=1 + index)
        run_rows, run_raw = _cloning_rows(run)
        rows += run_rows
        raw += run_raw
        suffix = "" if index == 0 else "float64"
        run_claims, run_metrics = _cloning_claims(run, suffix)
        claims += run_claims
        metrics.update(run_metrics)
        if index == 0 and "zeta" in run:
            figures += _fig7(run, context.out)
        figures += _cloning_figures(context, run, suffix)
        notes += _cloning_notes(run, index == 0)
    write_rows(context.out / "particles.csv", raw)
    return Outcome(rows, claims, metrics, figures, notes)


def _cloning_notes(run: dict, first: bool) -> list[str]:
    notes = []
    if first:
        notes += [
            "Definitions used for the verdicts: a child has *returned* when its MAE to the parent "
            f"fell to ≤ {RETURN_SHARE:.0%} of the initial MAE; it *travelled far* when it removed "
            f"≥ {FAR_SHARE:.0%} of it; *often* (C13) = ≥ {OFTEN:.0%} of the children at "
            "ζ ≤ 1e-7 distancing; *travel stays constant* = the largest travel at the smallest ζ "
            "is ≥ 4e-8 and ≥ 1/10 of the largest at 1e-7; C14 is read on ℓ (the quantity of "
            "Fig 9) and children reach the parents' level when every noise level's median ℓ is "
            "≤ 10× the kept parents' median ℓ. Clones identical to their parent (noise lost to "
            "rounding) count as stationary.",
            "Parents are drawn in float32 and cast, so the float64 control starts from the same "
            "parents; its noise is drawn separately. particles.csv holds every parent and clone.",
        ]
    if "zeta" not in run:
        return notes
    zeta, pre = run["zeta"], run["mae_pre"]
    lost = ", ".join(
        f"{z:.0e}: {_share(pre[zeta == z] == 0):.0%}"
        for z in run["levels"]
        if bool((pre[zeta == z] == 0).any())
    )
    notes.append(
        f"O1 ({run['dtype']}): kept parents' q at cloning median "
        f"{_median(run['parent_q'][run['kept']].double()):.2g}, after {run['clone_steps']} more "
        f"steps {_median(run['parent_end_q'].double()):.2g}; parent drift MAE median "
        f"{_median(run['drift'].double()):.2g} (max {_max(run['drift'].double()):.2g}); "
        f"children's MAE to the parent's own end point median "
        f"{_median(run['to_parent_end'].double()):.2g}; clones identical to the parent after "
        f"noise (lost to rounding): {lost or 'none'}."
    )
    return notes


# --------------------------------------------------------------------------------------------
# E9: clones on the segment between two parents (Fig 10)


def segment_clones(
    context: Context,
    *,
    parents: int = Scaled(10, 5),
    segment_steps: int = 2000,
    segment_clones: int = 25,
    eps: float = JOURNAL.eps,
    lr: float = JOURNAL.lr,
    mode: Literal["full_batch", "per_sample"] = "full_batch",
    dtype: Literal["float32", "float64"] = "float32",
) -> Outcome:
    """E9, Fig 10: children on the segment between two trained fixpoints, trained further."""
    training = _training(context)
    eps = context.option("eps")
    count = context.option("parents")
    steps = context.option("segment_steps")
    per_pair = context.option("segment_clones")
    generator = context.generator(1)
    start = ARCH.init(count, generator=context.generator(0), dtype=context.dtype)
    parents = _train(start, steps, training, generator, steps)
    parent_status = classify(ARCH, parents, eps=eps)
    fixed = (parent_status == int(Status.FIXPOINT)).nonzero().flatten().tolist()
    pairs = list(itertools.combinations(fixed, 2))
    texts = {
        "C15": "on the segment between far-apart parents, the first half approaches parent 1, "
        "the second half moves away from it toward parent 2",
        "C15 (close)": "for close parents the points lie nearly on the diagonal, with a slight "
        "opposite tendency",
    }
    if not pairs:
        message = f"{len(fixed)} of {count} parents FIXPOINT: no pair to test"
        rows = [{"pair": "", **_status_columns(parent_status)}]
        return Outcome(rows, [Claim(k, t, False, message) for k, t in texts.items()])

    first = torch.tensor([a for a, _ in pairs])
    second = torch.tensor([b for _, b in pairs])
    p1 = parents[first].repeat_interleave(per_pair, 0)
    p2 = parents[second].repeat_interleave(per_pair, 0)
    position = torch.arange(per_pair, dtype=parents.dtype).repeat(len(pairs)).unsqueeze(1)
    pre = p1 + (position / per_pair) * (p2 - p1)
    post = _train(pre, steps, training, generator, steps)
    status = classify(ARCH, post, eps=eps)
    kept = status != int(Status.DIVERGENT)
    pre1, post1 = distance(pre, p1).double(), distance(post, p1).double()
    pre2, post2 = distance(pre, p2).double(), distance(post, p2).double()
    pair_distance = distance(parents[first], parents[second]).double()
    index = position.flatten().long()
    # Min-max normalisation over each pair's pre and post values of its surviving children.
    both = torch.stack([pre1, post1], 1).view(len(pairs), per_pair, 2)
    alive = kept.view(len(pairs), per_pair, 1).expand(-1, -1, 2)
    low = torch.where(alive, both, torch.full_like(both, math.inf)).amin(dim=(1, 2))
    high = torch.where(alive, both, torch.full_like(both, -math.inf)).amax(dim=(1, 2))
    span = torch.where(high > low, high - low, torch.ones_like(high))
    normal = ((both - low.view(-1, 1, 1)) / span.view(-1, 1, 1)).view(-1, 2)
    pre_n, post_n = normal[:, 0], normal[:, 1]

    cut = _median(pair_distance)
    far_pair = pair_distance >= cut
    far = far_pair.repeat_interleave(per_pair) & kept
    close = ~far_pair.repeat_interleave(per_pair) & kept
    half_one = (index > 0) & (2 * index < per_pair)  # j = 0 is parent 1 itself
    half_two = 2 * index > per_pair
    approach1, away1, toward2 = post1 < pre1, post1 > pre1, post2 < pre2
    deviation = (post_n - pre_n).abs()

    rows = []
    for k, (a, b) in enumerate(pairs):
        at = torch.zeros(len(pairs), dtype=torch.bool)
        at[k] = True
        mine = at.repeat_interleave(per_pair) & kept
        rows.append(
            {
                "dtype": str(context.dtype).removeprefix("torch."),
                "mode": training["mode"],
                "lr": training["lr"],
                "eps": eps,
                "steps": steps,
                "pair": k,
                "parent1": a,
                "parent2": b,
                "parent_distance": float(pair_distance[k]),
                "far": bool(far_pair[k]),
                "clones": per_pair,
                "dropped": int(per_pair - mine.sum()),
                **_status_columns(status[at.repeat_interleave(per_pair)]),
                "first_half_approach_p1": _share(approach1[mine & half_one]),
                "first_half_away_p1": _share(away1[mine & half_one]),
                "second_half_away_p1": _share(away1[mine & half_two]),
                "second_half_toward_p2": _share(toward2[mine & half_two]),
                "deviation_median": _median(deviation[mine]),
            }
        )
    write_rows(
        context.out / "particles.csv",
        [
            {
                "pair": k // per_pair,
                "j": int(index[k]),
                "status": Status(int(status[k])).name,
                "mae_pre_p1": float(pre1[k]),
                "mae_post_p1": float(post1[k]),
                "mae_pre_p2": float(pre2[k]),
                "mae_post_p2": float(post2[k]),
                "pre_normalised": float(pre_n[k]),
                "post_normalised": float(post_n[k]),
                "parent_distance": float(pair_distance[k // per_pair]),
            }
            for k in range(pre.shape[0])
        ],
    )

    far_first = _share(approach1[far & half_one])
    far_second = _share((away1 & toward2)[far & half_two])
    close_first_away = _share(away1[close & half_one])
    close_second_back = _share(approach1[close & half_two])
    far_dev, close_dev = _median(deviation[far]), _median(deviation[close])
    dropped = int((~kept).sum())
    claims = [
        Claim(
            "C15",
            texts["C15"],
            far_first >= MAJORITY and far_second >= MAJORITY,
            f"far pairs (parent MAE ≥ median {cut:.3g}, {int(far_pair.sum())} pairs): first half "
            f"{far_first:.0%} approach p1, second half {far_second:.0%} move away from p1 and "
            f"toward p2 (needed ≥ {MAJORITY:.0%} each); {dropped} divergent children dropped",
            setting="torch init (journal)",
            value=min(far_first, far_second),
            quantity="smaller of the two far-pair half shares",
            threshold=f"≥ {MAJORITY} in each half",
        ),
        Claim(
            "C15 (close)",
            texts["C15 (close)"],
            close_dev <= 0.5 * far_dev and close_first_away > 0.5 and close_second_back > 0.5,
            f"close pairs ({int((~far_pair).sum())}): median abs(post−pre) normalised "
            f"{close_dev:.2f} vs far {far_dev:.2f} (near diagonal = at most half); first half "
            f"{close_first_away:.0%} move away from p1, second half {close_second_back:.0%} "
            "toward p1 (opposite tendency = both > 50%)",
            setting="torch init (journal)",
            value=close_dev / far_dev if far_dev else math.nan,
            quantity="close/far median deviation from the diagonal",
            threshold="≤ 0.5, and both opposite-tendency shares > 0.5",
        ),
    ]
    figure = scatter_figure(
        pre_n[kept].tolist(),
        post_n[kept].tolist(),
        pair_distance.repeat_interleave(per_pair)[kept].tolist(),
        context.out / "fig10_segment_clones.png",
        title=f"Clones between two parents: MAE to parent 1 before/after {steps} steps "
        f"(normalised per pair)",
        xlabel="MAE to p1 before training (normalised)",
        ylabel="MAE to p1 after training (normalised)",
        colour_label="parent distance MAE(p1, p2) (dark = far)",
    )
    metrics = {
        "parents_fixpoint": float(len(fixed)),
        "pairs": float(len(pairs)),
        "dropped": float(dropped),
        "far_first_half_approach_p1": far_first,
        "far_second_half_toward_p2": far_second,
        "close_deviation_median": close_dev,
        "far_deviation_median": far_dev,
    }
    notes = [
        f"{len(fixed)} of {count} parents FIXPOINT after {steps} steps ({len(pairs)} pairs). Far "
        "and close pairs are split at the median parent distance. Normalisation is per pair over "
        "its surviving children's pre and post MAE to p1. The particle has 14 weights, not the "
        "paper's 20 (SPEC O2).",
    ]
    return Outcome(rows, claims, metrics, [figure], notes)


EXPERIMENTS = [
    Experiment(
        "E8",
        "fig7-9",
        "Figs 7-9: noisy cloning of trained parents",
        "journal2021",
        noisy_cloning,
        setting=JOURNAL_SETTING,
        cost=2.4,
    ),
    Experiment(
        "E9",
        "fig10",
        "Fig 10: clones on the segment between two parents",
        "journal2021",
        segment_clones,
        setting=JOURNAL_SETTING,
        cost=0.3,
    ),
]
