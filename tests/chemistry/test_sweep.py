"""Tests of parameter sweeps: the sweep schema, the local and Ray backends, resuming, failures."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from chemistry.cli import main
from chemistry.config import RunConfig
from chemistry.sweep import (
    SweepConfig,
    SweepError,
    apply_point,
    load_sweep,
    point_id,
    run_sweep,
)

# A 2 x 2 grid x 2 seeds of tiny soups: 6 particles, 3 epochs, a checkpoint every epoch.
SWEEP = """\
description = "tiny sweep"
seeds = 2

[base]
epochs = 3

[base.record]
figures = false
checkpoint_every = 1

[[base.population]]
architecture = "ww"
count = 6

[[base.rules]]
type = "attack"
chance = 0.1

[[base.rules]]
type = "self_train"
steps = 2

[[base.rules]]
type = "respawn"

[grid]
"rules.self_train.steps" = [1, 5]
"rules.0.chance" = [0.1, 0.5]

[summary]
metric = "fixpoint"
parameter = "rules.self_train.steps"
"""


def write_sweep(directory: Path, text: str = SWEEP, name: str = "sweep.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The tiny sweep run once on the local backend (two worker processes)."""
    directory = tmp_path_factory.mktemp("sweep")
    sweep = load_sweep(write_sweep(directory))
    report = run_sweep(sweep, directory / "out", backend="local", workers=2)
    return sweep, report


# ----------------------------------------------------------------------------------------------
# The schema and the overrides


def test_point_ids_are_stable_and_readable():
    a = point_id({"rules.1.steps": 10, "population.0.count": 20}, 3)
    b = point_id({"population.0.count": 20, "rules.1.steps": 10}, 3)
    assert a == b
    assert a.startswith("population.0.count=20_rules.1.steps=10-") and a.endswith("-seed3")
    assert point_id({"rules.1.steps": 10}, 0) != point_id({"rules.1.steps": 11}, 0)
    assert point_id({}, 0).startswith("base-")


def test_overrides_address_tables_by_index_and_by_name():
    base = {"population": [{"architecture": "ww", "count": 4}], "topology": {"kind": "ring"}}
    data = apply_point(base, {"population.ww.count": 9, "rules.self_train.steps": 7})
    assert data["population"] == [{"architecture": "ww", "count": 9}]
    assert base["population"][0]["count"] == 4  # the base is not changed
    # the default rules are addressed when the base has none
    assert [r.get("steps") for r in data["rules"]] == [None, 7, None]
    config = RunConfig.from_dict(data)
    assert config.topology.params["nodes"] == 9  # a derived default follows the override
    data = apply_point({}, {"rules.1": {"type": "learn", "chance": 0.2}, "record.figures": False})
    assert data["rules"][1] == {"type": "learn", "chance": 0.2}
    assert data["record"] == {"figures": False}


def test_points_cross_the_grid():
    sweep = SweepConfig.from_dict(
        {
            "seeds": [4, 2],
            "grid": {"epochs": [1, 2]},
            "points": [{"rules.attack.chance": 0.0}, {"rules.attack.chance": 0.5}],
        }
    )
    assert sweep.swept == ["epochs", "rules.attack.chance"]
    assert sweep.parameter == "epochs"
    assert len(sweep.combinations()) == 4
    points = sweep.expand()
    assert [p.seed for p in points[:2]] == [4, 2]
    assert len(points) == 8 and len({p.id for p in points}) == 8
    assert all(p.config["seed"] == p.seed for p in points)


# ----------------------------------------------------------------------------------------------
# The local backend


def test_local_sweep_writes_runs_results_and_summary(local_sweep, tmp_path):
    sweep, report = local_sweep
    out = report.out
    rows = read_rows(out / "results.csv")
    assert len(rows) == 8
    assert {row["status"] for row in rows} == {"ok"}
    assert {(row["rules.self_train.steps"], row["rules.0.chance"]) for row in rows} == {
        ("1", "0.1"),
        ("1", "0.5"),
        ("5", "0.1"),
        ("5", "0.5"),
    }
    assert sorted(row["seed"] for row in rows) == ["0"] * 4 + ["1"] * 4
    assert all(float(row["epoch"]) == 3.0 and float(row["particles"]) == 6 for row in rows)
    assert (out / "summary.png").stat().st_size > 1000
    assert json.loads((out / "sweep.json").read_text())["seeds"] == [0, 1]
    assert report.count("ran") == 8
    # a point is a normal run directory: `chemistry run` on its config.toml writes the same data
    point = out / "points" / rows[5]["point"]
    for name in ("config.toml", "config.json", "metrics.csv", "manifest.json", "checkpoints"):
        assert (point / name).exists(), name
    assert main(["run", str(point / "config.toml"), "--out", str(tmp_path / "again")]) == 0
    for name in ("metrics.csv", "genealogy.json", "trajectories.npz", "config.json"):
        assert (point / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_one_worker_gives_the_same_results(local_sweep, tmp_path):
    sweep, report = local_sweep
    again = run_sweep(sweep, tmp_path / "out", workers=1)
    assert again.results_path.read_bytes() == report.results_path.read_bytes()


# ----------------------------------------------------------------------------------------------
# The Ray backend


def test_ray_sweep_gives_identical_results(local_sweep, tmp_path):
    pytest.importorskip("ray", reason="the ray backend needs Ray (pip install -e '.[test]')")
    import ray

    sweep, report = local_sweep
    try:
        on_ray = run_sweep(sweep, tmp_path / "out", backend="ray", workers=2)
    finally:
        ray.shutdown()
    assert not ray.is_initialized()
    assert on_ray.count("ran") == 8
    assert on_ray.results_path.read_bytes() == report.results_path.read_bytes()
    for point in on_ray.points:
        for name in ("metrics.csv", "genealogy.json"):
            assert (tmp_path / "out" / "points" / point.id / name).read_bytes() == (
                report.out / "points" / point.id / name
            ).read_bytes()


# ----------------------------------------------------------------------------------------------
# Resuming


def test_rerun_resumes_an_interrupted_sweep(local_sweep, tmp_path):
    sweep, report = local_sweep
    out = tmp_path / "out"
    shutil.copytree(report.out, out)
    points = out / "points"
    ids = [point.id for point in report.points]
    # point 0 stopped after its checkpoint of epoch 1 (killed mid-run): later files are gone
    stopped = points / ids[0]
    index = json.loads((stopped / "checkpoints" / "index.json").read_text())
    for entry in index["checkpoints"][2:]:
        (stopped / "checkpoints" / entry["file"]).unlink()
    index["checkpoints"] = index["checkpoints"][:2]
    (stopped / "checkpoints" / "index.json").write_text(json.dumps(index))
    for name in ("manifest.json", "metrics.csv", "genealogy.json", "genealogy.graphml"):
        (stopped / name).unlink()
    # point 3 has a truncated manifest, point 6 was never started
    manifest = points / ids[3] / "manifest.json"
    manifest.write_text(manifest.read_text()[:20])
    shutil.rmtree(points / ids[6])
    (out / "results.csv").unlink()
    untouched = [i for i in range(8) if i not in (0, 3, 6)]
    mtimes = {i: (points / ids[i] / "manifest.json").stat().st_mtime_ns for i in untouched}

    again = run_sweep(sweep, out, workers=2)
    actions = {result["id"]: result["action"] for result in again.results}
    assert actions[ids[0]] == "resumed" and actions[ids[3]] == "resumed"
    assert actions[ids[6]] == "ran"
    assert again.count("skipped") == 5
    for i in untouched:  # finished points are not run again
        assert (points / ids[i] / "manifest.json").stat().st_mtime_ns == mtimes[i]
    assert again.results_path.read_bytes() == report.results_path.read_bytes()
    for i in (0, 3, 6):
        mine, reference = points / ids[i], report.out / "points" / ids[i]
        for name in ("metrics.csv", "trajectories.npz", "genealogy.json", "genealogy.graphml"):
            assert (mine / name).read_bytes() == (reference / name).read_bytes(), (i, name)


def test_a_changed_base_is_not_mixed_with_old_points(local_sweep, tmp_path, capsys):
    sweep, report = local_sweep
    out = tmp_path / "out"
    shutil.copytree(report.out, out)
    path = write_sweep(tmp_path, SWEEP.replace("epochs = 3", "epochs = 4"))
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "holds a run of a different configuration (differs in: epochs)" in captured.out
    assert (out / "points" / report.points[0].id / "manifest.json").exists()  # not replaced


# ----------------------------------------------------------------------------------------------
# Failures and the command line


def test_a_failing_point_is_reported_and_the_others_finish(tmp_path, capsys):
    text = SWEEP.replace(
        '"rules.0.chance" = [0.1, 0.5]',
        '"population.0.count" = [6, 0]\n"device" = ["cpu", "cuda:99"]',
    ).replace("seeds = 2", "seeds = 1")
    path = write_sweep(tmp_path, text)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "2"]) == 1
    captured = capsys.readouterr()
    rows = read_rows(out / "results.csv")
    assert len(rows) == 8
    ok = [row for row in rows if row["status"] == "ok"]
    failed = [row for row in rows if row["status"] == "failed"]
    assert len(ok) == 2  # count 6 on the cpu, for both steps
    assert all(row["population.0.count"] == "6" and row["device"] == "cpu" for row in ok)
    assert all(row["error"] for row in failed) and not any(row["error"] for row in ok)
    assert any("count is 0" in row["error"] for row in failed)
    assert any("cuda:99" in row["error"] for row in failed)
    for row in failed:
        record = json.loads((out / "points" / row["point"] / "failed.json").read_text())
        assert record["error"] == row["error"]
    assert "FAILED" in captured.err
    assert "2 of 8 points ok" in captured.out and "6 failed" in captured.out
    assert (out / "summary.png").exists()
    # run again: the finished points are skipped, the failed ones are tried again
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1"]) == 1
    assert "(0 ran, 0 resumed, 2 done before), 6 failed" in capsys.readouterr().out


def test_command_line_sweep_and_rerun(tmp_path, capsys):
    path = write_sweep(tmp_path, SWEEP.replace("seeds = 2", "seeds = [3]"))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "4 of 4 points ok (4 ran, 0 resumed, 0 done before), 0 failed" in captured.out
    assert captured.err.count("sweep [") == 4
    assert main(["sweep", str(path), "--out", str(out), "--dry-run"]) == 0
    assert "4 points (4 settings x 1 seeds)" in capsys.readouterr().out
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    assert "(0 ran, 0 resumed, 4 done before)" in capsys.readouterr().out


BAD_SWEEPS = [
    ("seed = 3\n" + SWEEP, ["unknown key 'seed'", "did you mean 'seeds'?"]),
    (SWEEP.replace('"rules.self_train.steps"', '"rules.self_train.stesp"'), ["stesp", "'steps'"]),
    (SWEEP.replace('"rules.0.chance"', '"rules.7.chance"'), ["rules.7.chance", "out of range"]),
    (SWEEP.replace('"rules.0.chance"', '"rules.learn.chance"'), ["no [[rules]] table", "learn"]),
    (SWEEP.replace('"rules.0.chance"', '"seed"'), ['"seed"', "seeds"]),
    (SWEEP.replace('"rules.0.chance"', '"epoch"'), ["unknown key 'epoch'", "'epochs'"]),
    (SWEEP.replace("[0.1, 0.5]", "0.1"), ['"rules.0.chance" = 0.1', "non-empty array"]),
    (SWEEP.replace("[0.1, 0.5]", "[0.1, 0.1]"), ["rules.0.chance", "repeats"]),
    (SWEEP.replace("seeds = 2", "seeds = 0"), ["seeds = 0", "out of range"]),
    (SWEEP.replace("seeds = 2", 'seeds = "2"'), ['seeds = "2"', "a string"]),
    (SWEEP.replace('metric = "fixpoint"', 'metric = "fixpionts"'), ["fixpionts", '"fixpoint"']),
    (SWEEP.replace('metric = "fixpoint"', "metric = 3"), ["metric = 3", "a string"]),
    (SWEEP.replace('parameter = "rules.self_train.steps"', 'parameter = "epochs"'), ["epochs"]),
    (SWEEP + 'reduce = "median"\n', ['reduce = "median"', '"final"']),
    (SWEEP.replace("[base.record]", "[base.recrod]"), ["[base]", "'recrod'", "'record'"]),
    ("base = 3\n", ["base = 3 is an integer", "file name", "[base] table"]),
    ('base = "missing.toml"\n', ["missing.toml", "does not exist"]),
    ("[[grid]]\n", ["grid", "must be a [grid] table"]),
    ("seeds = 1\n[points]\nepochs = 2\n", ["[[points]]"]),
    ("[grid\n", ["not valid TOML"]),
]


@pytest.mark.parametrize(("text", "fragments"), BAD_SWEEPS)
def test_bad_sweep_files_exit_2_naming_the_key(tmp_path, capsys, text, fragments):
    path = write_sweep(tmp_path, text)
    code = main(["sweep", str(path), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2, captured
    message = captured.err.strip()
    assert message.startswith("chemistry sweep: error: sweep file "), message
    assert "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--workers", "0"], "--workers 0"),
        (["--address", "auto"], "needs --backend ray"),
    ],
)
def test_bad_options_exit_2(tmp_path, capsys, options, fragment):
    path = write_sweep(tmp_path)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), *options]) == 2
    assert fragment in capsys.readouterr().err


def test_an_unrelated_folder_is_not_used(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    path = write_sweep(tmp_path)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "is not a sweep directory" in capsys.readouterr().err
    with pytest.raises(SweepError, match="backend"):
        run_sweep(load_sweep(path), tmp_path / "other", backend="dask")


# ----------------------------------------------------------------------------------------------
# One writer: a sweep directory and each point directory are locked while written


def test_a_second_sweep_into_a_live_sweep_directory_exits_2(local_sweep, tmp_path, capsys):
    from tests.chemistry.test_run_integrity import hold_in_child

    sweep, report = local_sweep
    out = tmp_path / "out"
    shutil.copytree(report.out, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    child = hold_in_child(out)
    try:
        path = write_sweep(tmp_path)
        assert main(["sweep", str(path), "--out", str(out), "--workers", "1"]) == 2
        assert f"process {child.pid}" in capsys.readouterr().err
    finally:
        child.kill()
        child.wait()
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before


def test_a_point_written_by_another_process_fails_and_is_not_mixed(local_sweep, tmp_path):
    from tests.chemistry.test_run_integrity import hold_in_child

    sweep, report = local_sweep
    out = tmp_path / "out"
    shutil.copytree(report.out, out)
    busy = out / "points" / report.points[2].id
    shutil.rmtree(busy)  # not done: this sweep would run it, but another process writes it
    busy.mkdir()
    (busy / "theirs.txt").write_text("another writer's file")
    child = hold_in_child(busy)
    try:
        again = run_sweep(sweep, out, workers=1)
    finally:
        child.kill()
        child.wait()
    failed = {result["id"]: result["error"] for result in again.failed}
    assert list(failed) == [report.points[2].id]
    assert f"process {child.pid}" in failed[report.points[2].id]
    assert (busy / "theirs.txt").read_text() == "another writer's file"
    assert again.count("skipped") == 7
    third = run_sweep(sweep, out, workers=1)  # the writer is gone: the point runs now
    assert third.results_path.read_bytes() == report.results_path.read_bytes()
