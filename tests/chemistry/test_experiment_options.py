"""Declared experiment options, strict ``--set`` and the report's verdicts over seeds."""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import pytest

from chemistry.cli import main
from chemistry.experiments import EXPERIMENTS
from chemistry.experiments.base import (
    Claim,
    Context,
    Experiment,
    Outcome,
    Scaled,
    mean_sd,
    report_section,
    seed_verdict,
)
from chemistry.experiments.command import claims_table, reproduce
from chemistry.experiments.settings import KerasTraining, ParticleSetting, SoupSchedule


def _foreign_option(name: str) -> str:
    """An option another experiment declares but ``name`` does not (an inapplicable name)."""
    mine = set(EXPERIMENTS[name].options)
    for other in EXPERIMENTS.values():
        for option in other.options:
            if option not in mine:
                return option
    raise AssertionError(f"every option is declared by {name}")


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_declares_typed_options_with_defaults(name):
    options = EXPERIMENTS[name].options
    assert options, name
    for option in options.values():
        assert option.kind is not None and option.default is not inspect_empty()
    resolved = EXPERIMENTS[name].resolve({}, "paper")
    assert set(resolved) == set(options)
    assert not any(isinstance(value, Scaled) for value in resolved.values())
    # Every default written as text (as on the command line) reads back as the same value.
    as_text = {
        key: ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        for key, value in resolved.items()
    }
    assert EXPERIMENTS[name].resolve(as_text, "paper") == resolved


def inspect_empty():
    import inspect

    return inspect.Parameter.empty


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_unknown_or_inapplicable_set_exits_2_for_every_experiment(name, tmp_path, capsys):
    out = tmp_path / "out"
    foreign = _foreign_option(name)
    for text in ("no_such_option=1", f"{foreign}=1"):
        code = main(["reproduce", name, "--scale", "quick", "--out", str(out), "--set", text])
        error = capsys.readouterr().err
        assert code == 2, (name, text)
        assert f"has no option {text.split('=')[0]!r}" in error
        assert "Traceback" not in error
    assert not out.exists() or not any(out.iterdir())


def test_a_typo_gets_a_suggestion_and_a_wrong_type_names_the_value(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["reproduce", "fig2", "--out", out, "--set", "partcles=5"]) == 2
    assert "did you mean 'particles'?" in capsys.readouterr().err
    assert main(["reproduce", "fig2", "--out", out, "--set", "particles=many"]) == 2
    error = capsys.readouterr().err
    assert "particles='many'" in error and "int" in error
    assert main(["reproduce", "fig2", "--out", out, "--set", "init=xavier"]) == 2
    assert "'glorot' | 'torch'" in capsys.readouterr().err
    # Several experiments: a name must apply to each of them.
    assert main(["reproduce", "fig2", "fig3", "--out", out, "--set", "init=torch"]) == 2
    assert "'fig3' has no option 'init'" in capsys.readouterr().err


def test_options_reach_the_run_and_the_report(tmp_path):
    out = tmp_path / "out"
    reproduce(
        ["fig2"],
        scale="quick",
        out=out,
        options={"particles": "6", "applications": 3, "torch_variant": "false"},
        stream=io.StringIO(),
    )
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "particles=6, applications=3" in report and "torch_variant=false" in report
    results = (out / "fig2" / "results.csv").read_text(encoding="utf-8")
    assert "torch init" not in results  # the variant was switched off
    assert ",6,3," in results  # particles, applications columns
    assert '"particles": "6"' in (out / "fig2" / "options.json").read_text(encoding="utf-8")


def test_worker_processes_do_not_change_results(tmp_path):
    small = {"particles": 4, "applications": 5}
    one, two = tmp_path / "one", tmp_path / "two"
    reproduce(["fig2"], scale="quick", seeds=2, out=one, options=small, stream=io.StringIO())
    reproduce(
        ["fig2"], scale="quick", seeds=2, out=two, options=small, workers=2, stream=io.StringIO()
    )
    first = (one / "fig2" / "results.csv").read_text(encoding="utf-8")
    assert first == (two / "fig2" / "results.csv").read_text(encoding="utf-8")
    # In the pool, an experiment's own sweeps run inside its task: pools never nest.
    assert "the sweeps of fig13 and learn-soup run inside them" in (two / "REPORT.md").read_text(
        encoding="utf-8"
    )
    assert first.count("\n1,") >= 1 and first.count("\n0,") >= 1  # both seeds present


# ------------------------------------------------------------------------------------------------
# Verdicts over seeds on hand-built outcomes


def test_mean_sd_and_verdict_rule():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_sd([5.0]) == (5.0, 0.0)
    assert mean_sd([math.nan, 4.0, 6.0]) == (5.0, pytest.approx(math.sqrt(2)))
    assert seed_verdict([True] * 8 + [False] * 2) == "yes"
    assert seed_verdict([True] * 7 + [False] * 3) == "seed-dependent"
    assert seed_verdict([True] * 2 + [False] * 8) == "no"
    assert seed_verdict([True] * 3 + [False] * 7) == "seed-dependent"


def test_report_row_states_setting_seeds_mean_sd_fraction_threshold_verdict():
    def outcome(value: float, holds: bool) -> Outcome:
        claim = Claim(
            "C2",
            "recurrent particles diverge most often",
            holds,
            f"{value} DIVERGENT",
            value=value,
            quantity="rnn DIVERGENT of 50",
            threshold="≥ 1",
            setting="glorot+keras",
            remark="text and figure agree",
        )
        return Outcome([], [claim])

    experiment = Experiment("E2", "fig2", "Fig 2", "keras2019", lambda context: None)
    outcomes = [outcome(40, True), outcome(44, True), outcome(48, False)]
    section = report_section(experiment, outcomes, "paper", 1.0, {"particles": 50})
    row = next(line for line in section.splitlines() if line.startswith("| C2 "))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == [
        "C2",
        "recurrent particles diverge most often",
        "glorot+keras",
        "3",
        "44 ± 4 rnn DIVERGENT of 50",
        "2/3",
        "≥ 1",
        "seed-dependent",
    ]
    assert "Options: `particles=50`" in section
    assert "- C2 (glorot+keras): text and figure agree" in section
    summary = claims_table(section).splitlines()
    assert summary[2] == (
        "| E2 | C2 | recurrent particles diverge most often | glorot+keras | 3 | "
        "44 ± 4 rnn DIVERGENT of 50 | ≥ 1 | 2/3 | seed-dependent |"
    )


def test_quick_scale_runs_every_experiment_once_per_seed(tmp_path: Path):
    """``all`` expands to every experiment, the quines included."""
    from chemistry.experiments.command import resolve_names

    names = resolve_names(["all"])
    assert "quine" in names and "quine-aux" in names
    assert names == list(EXPERIMENTS)
    assert resolve_names(["fig2", "all"])[0] == "fig2"


# ------------------------------------------------------------------------------------------------
# Option bundles: shared options declared once


def _bundled(particles: int = 3):
    seen = {}

    def run(
        context,
        *,
        particles: int = particles,
        setting: ParticleSetting = ParticleSetting(),
        training: KerasTraining = KerasTraining(),
    ) -> Outcome:
        seen.update(particles=particles, setting=setting, training=training)
        return Outcome([], [])

    return Experiment("EX", "bundled", "X", "keras2019", run), seen


def test_a_bundle_s_fields_are_flat_options_and_reach_the_run_as_one_instance(tmp_path):
    experiment, seen = _bundled()
    names = ["particles", "init", "encoding", "torch_variant", "dtype", "eps", "lr", "mode"]
    assert list(experiment.options) == names
    assert experiment.options["lr"].group == "training"
    assert experiment.options["init"].bundle is ParticleSetting
    given = {"init": "torch", "torch_variant": "false", "lr": "0.5", "particles": "7"}
    options = experiment.resolve(given, "paper")
    assert options["torch_variant"] is False and options["lr"] == 0.5
    experiment.call(Context("paper", 0, tmp_path, options=options), options)
    assert seen == {
        "particles": 7,
        "setting": ParticleSetting(init="torch", encoding="keras", torch_variant=False),
        "training": KerasTraining(eps=1e-4, lr=0.5, mode="per_sample"),
    }
    with pytest.raises(ValueError, match="did you mean 'encoding'"):
        experiment.resolve({"encodng": "torch"}, "paper")


def test_an_option_declared_twice_is_refused():
    def run(context, *, eps: float = 1.0, training: KerasTraining = KerasTraining()) -> Outcome:
        return Outcome([], [])

    with pytest.raises(TypeError, match="declares option 'eps' twice"):
        _ = Experiment("EX", "twice", "X", "keras2019", run).options


@pytest.mark.parametrize(
    "bundle, users",
    [
        (ParticleSetting, ("fig2", "fig5", "fig11", "fig12", "fig13", "learn-soup")),
        (KerasTraining, ("fig4", "fig5", "fig11", "fig12", "fig13", "learn-soup")),
        (SoupSchedule, ("fig12", "fig13", "fig14", "learn-soup")),
    ],
)
def test_shared_options_come_from_their_bundle_in_every_experiment(bundle, users):
    fields = {field.name: field.default for field in dataclasses.fields(bundle)}
    for name in users:
        options = EXPERIMENTS[name].options
        mine = {o.name: o.default for o in options.values() if o.bundle is bundle}
        assert mine == fields, name
    # Keras-code defaults: glorot + keras, lr 0.01 per_sample at ε = 1e-4 (SPEC Table 2)
    assert ParticleSetting().init == "glorot" and ParticleSetting().encoding == "keras"
    assert KerasTraining() == KerasTraining(eps=1e-4, lr=0.01, mode="per_sample")


# ------------------------------------------------------------------------------------------------
# Timing in REPORT.md


def test_report_records_cpu_and_wall_seconds_and_a_timing_section_kept_last(tmp_path):
    out = tmp_path / "out"
    small = {"particles": 4, "applications": 5}
    stream = io.StringIO()
    reproduce(["fig2"], scale="quick", seeds=2, out=out, options=small, stream=stream)
    reproduce(["fig3"], scale="quick", out=out, options={"trials": 3}, stream=stream)
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    header = next(
        line for line in report.splitlines() if line.startswith("`chemistry reproduce fig2")
    )
    assert "CPU s (" in header and "per seed), " in header and "s wall in its tasks" in header
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections[-1].startswith("## Timing:") and len(sections) == 3
    timing = report[report.index("## Timing:") :]
    rows = [line for line in timing.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == ["fig3", "total"]  # the last run only
    seeds, cpu, per_seed = (float(cell) for cell in rows[0].split("|")[2:5])
    assert seeds == 1 and cpu > 0 and per_seed == pytest.approx(cpu, abs=0.051)
    assert "Wall time of the whole run:" in timing
    printed = stream.getvalue()
    assert "s wall" in printed and "CPU s; report:" in printed
    assert "Timing" not in (out / "CLAIMS.md").read_text(encoding="utf-8")


def test_report_sections_follow_the_registry_whatever_order_they_finish_in(tmp_path):
    from chemistry.experiments.command import update_report

    report = tmp_path / "REPORT.md"
    for key in ("Timing", "Q4", "E10", "E2", "E1"):  # the order a pool may finish them in
        update_report(report, key, f"## {key}: first\n\ntext of {key}\n")
    update_report(report, "E2", "## E2: again\n\nnew text\n")  # replaced where it stands
    text = report.read_text(encoding="utf-8")
    keys = [line[3:].split(":")[0] for line in text.splitlines() if line.startswith("## ")]
    assert keys == ["E1", "E2", "E10", "Q4", "Timing"]
    assert "new text" in text and "text of E2" not in text and text.startswith("# Reproduction")
