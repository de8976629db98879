"""A run directory cannot be silently corrupted: one writer (an OS lock), verified checkpoints,
refused edits of its configuration, and no stale temporary files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chemistry.cli import main
from chemistry.lock import LOCK_NAME, RunLock, RunLockedError, holder
from chemistry.storage import stale_temporaries
from tests.chemistry.test_cli import bad_input

REPOSITORY = Path(__file__).resolve().parents[2]
TINY = ["--population", "4", "--epochs", "4", "--self-train", "2", "--checkpoint-every", "2"]


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file's bytes but the lock file's (it names its latest holder)."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file() and p.name != LOCK_NAME
    }


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """A run stopped at epoch 2 of 4 (as if killed): its last checkpoint and manifest removed."""
    out = tmp_path_factory.mktemp("runs") / "interrupted"
    assert main(["run", "--out", str(out), "--no-figures", *TINY]) == 0
    index = out / "checkpoints" / "index.json"
    entries = json.loads(index.read_text())["checkpoints"]
    index.write_text(json.dumps({"checkpoints": [e for e in entries if e["epoch"] <= 2]}))
    (out / "checkpoints" / "epoch-000004.pt").unlink()
    (out / "manifest.json").unlink()
    return out


@pytest.fixture
def run(interrupted, tmp_path) -> Path:
    return Path(shutil.copytree(interrupted, tmp_path / "run"))


# ---------------------------------------------------------------------- the lock


def hold_in_child(directory: Path) -> subprocess.Popen:
    """A child process holding the lock of ``directory`` until killed."""
    code = (
        "import sys, time; from chemistry.lock import RunLock; "
        f"lock = RunLock({str(directory)!r}); print('held', flush=True); time.sleep(600)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    assert child.stdout.readline().strip() == "held"
    return child


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path):
    child = hold_in_child(tmp_path)
    try:
        assert holder(tmp_path) == child.pid
        with pytest.raises(RunLockedError, match=f"process {child.pid}"):
            RunLock(tmp_path)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert holder(tmp_path) is None  # the kernel released it with the process
    with RunLock(tmp_path) as lock:
        assert lock.held and holder(tmp_path) == os.getpid()
    assert holder(tmp_path) is None


def test_overwrite_and_resume_of_a_locked_run_exit_2_and_change_nothing(run, capsys):
    before = snapshot(run)
    child = hold_in_child(run)
    try:
        bad_input(capsys, ["run", "--out", str(run), "--overwrite", *TINY], f"process {child.pid}")
        bad_input(capsys, ["resume", str(run)], f"process {child.pid}")
        assert main(["info", str(run)]) == 0
        assert f"running (process {child.pid}" in capsys.readouterr().out
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert snapshot(run) == before
    assert main(["resume", str(run)]) == 0  # a killed holder never blocks the resume


# ---------------------------------------------------------------------- verified checkpoints


def rewrite_index(run: Path, change) -> None:
    index = run / "checkpoints" / "index.json"
    entries = json.loads(index.read_text())["checkpoints"]
    change(entries)
    index.write_text(json.dumps({"checkpoints": entries}))


def test_a_foreign_checkpoint_with_a_matching_checksum_is_refused(run, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["run", "--out", str(other), "--no-figures", *TINY, "--seed", "7"]) == 0
    capsys.readouterr()
    foreign = run / "checkpoints" / "epoch-000002.pt"
    shutil.copyfile(other / "checkpoints" / "epoch-000002.pt", foreign)
    digest = hashlib.sha256(foreign.read_bytes()).hexdigest()

    def forge(entries):
        entries[-1]["sha256"] = digest
        entries[-1].pop("config_hash")

    rewrite_index(run, forge)
    before = snapshot(run)
    bad_input(capsys, ["resume", str(run)], "belongs to another run", "seed")
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "name", ["../config.json", "/etc/passwd", "epoch-000002.pt/..", "sub/epoch-000002.pt"]
)
def test_an_index_entry_outside_checkpoints_is_refused(run, capsys, name):
    rewrite_index(run, lambda entries: entries[-1].update(file=name))
    before = snapshot(run)
    bad_input(capsys, ["resume", str(run)], "only plain names")
    assert snapshot(run) == before


def test_an_index_epoch_that_is_not_the_files_is_refused(run, capsys):
    rewrite_index(run, lambda entries: entries[-1].update(epoch=3))  # epoch-000002.pt as 3
    before = snapshot(run)
    bad_input(capsys, ["resume", str(run)], "holds epoch 2", "epoch 3")
    assert snapshot(run) == before


def test_an_edited_config_is_refused_with_how_to_continue(run, capsys):
    config = run / "config.toml"
    config.write_text(config.read_text().replace("epochs = 4", "epochs = 6"))
    before = snapshot(run)
    bad_input(capsys, ["resume", str(run)], "epochs 4 → 6", f"resume {run} --epochs 6")
    assert snapshot(run) == before
    config.write_text(config.read_text().replace("seed = 0", "seed = 3"))
    before = snapshot(run)
    bad_input(capsys, ["resume", str(run), "--epochs", "6"], "differs in: epochs, seed")
    assert snapshot(run) == before
    config.write_text(config.read_text().replace("seed = 3", "seed = 0"))
    assert main(["resume", str(run), "--epochs", "6"]) == 0
    assert "epochs = 6" in config.read_text()


@pytest.mark.parametrize(
    "index",
    [
        {"checkpoints": [{}]},
        {"checkpoints": [{"epoch": 2, "file": "epoch-000002.pt"}]},
        {"checkpoints": [{"epoch": "2", "file": "epoch-000002.pt", "sha256": "0" * 64}]},
        {"checkpoints": {}},
    ],
)
def test_a_damaged_index_is_a_clear_error_in_info_and_resume(run, capsys, index):
    (run / "checkpoints" / "index.json").write_text(json.dumps(index))
    bad_input(capsys, ["info", str(run)], "index.json is damaged")
    bad_input(capsys, ["resume", str(run)], "index.json is damaged")


def test_a_truncated_checkpoint_with_a_matching_checksum_names_its_file(run, capsys):
    latest = run / "checkpoints" / "epoch-000002.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    digest = hashlib.sha256(latest.read_bytes()).hexdigest()
    rewrite_index(run, lambda entries: entries[-1].update(sha256=digest))
    bad_input(capsys, ["resume", str(run)], f"{latest} is truncated or damaged")


# ---------------------------------------------------------------------- leftovers


def test_resume_removes_the_temporary_files_of_a_killed_writer(run, capsys):
    figures = run / "figures"
    figures.mkdir(exist_ok=True)
    # what SIGKILL during write_atomically leaves: the temporary, never renamed
    stale = [figures / ".lineage.png.k3j_x9a2.partial", run / ".metrics.csv.a1b2c3d4.partial"]
    for path in stale:
        path.write_bytes(b"half a file")
    keep = run / ".notes"
    keep.write_text("not ours")
    assert stale_temporaries(run) == sorted(stale)
    assert main(["info", str(run)]) == 0
    assert ".lineage.png.k3j_x9a2.partial" in capsys.readouterr().out
    assert main(["resume", str(run)]) == 0
    assert stale_temporaries(run) == [] and keep.exists()


def test_file_too_large_names_the_file_and_leaves_no_temporary(tmp_path):
    """A write beyond the file-size limit (EFBIG, an error without a file name) names it."""
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000)); "
        "from chemistry.storage import write_text_atomically; "
        "write_text_atomically(sys.argv[1], 'x' * 5000)"
    )
    target = tmp_path / "metrics.csv"
    result = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    assert result.returncode == 1
    assert f"[Errno 27] File too large: '{target}'" in result.stderr
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- TOML written reads back


def test_a_description_with_every_control_character_round_trips(tmp_path, capsys):
    from chemistry.config import RunConfig, load_config
    from chemistry.runs import write_config

    description = "".join(chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]) + 'a\\"b'
    config = RunConfig.from_dict({"description": description, "epochs": 1})
    write_config(config, tmp_path)
    assert load_config(tmp_path / "config.toml").description == description
    # the written configuration runs, and the run directory it makes reads back
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "config.toml"), "--out", str(out), *TINY[:2]]) == 0
    assert load_config(out / "config.toml").description == description
    assert main(["info", str(out)]) == 0
    assert main(["resume", str(out)]) == 0


# ---------------------------------------------------------------------- resource and range errors


@pytest.mark.parametrize(
    ("argv", "config", "fragments"),
    [
        (["--population", "1000000000000"], "", ["cannot fit in memory", "32.0 TB"]),
        (["--device", "meta"], "", ['device = "meta" is not supported']),
        (
            [],
            '[[population]]\narchitecture = "ww"\ncount = 4\nwidth = 1000000000\n',
            ["cannot fit in memory", "4 ww particles of 1000000005000000000 weights"],
        ),
        ([], '[topology]\nkind = "complete"\nnodes = 1000000000000\n', ["cannot fit in memory"]),
        ([], '[[rules]]\ntype = "self_apply"\ntimes = 100000000000\n', ["times", "<= 1000000"]),
        ([], '[[rules]]\ntype = "self_train"\nsteps = 100000000000\n', ["steps", "days"]),
        ([], "seed = 100000000000000000000\n", ["beyond TOML's 64-bit integer range"]),
        (["--seed", "-100000000000000000000"], "", ["beyond TOML's 64-bit integer range"]),
    ],
    ids=["population", "meta", "width", "nodes", "times", "steps", "int64", "int64-flag"],
)
def test_resource_and_range_errors_exit_2_before_allocating(
    tmp_path, capsys, argv, config, fragments
):
    if config:
        (tmp_path / "c.toml").write_text(config)
        argv = [str(tmp_path / "c.toml"), *argv]
    bad_input(capsys, ["run", *argv, "--out", str(tmp_path / "run")], *fragments)
    assert not (tmp_path / "run").exists()


def test_a_device_file_is_not_read_as_a_config(tmp_path, capsys):
    bad_input(capsys, ["run", "/dev/zero", "--out", str(tmp_path / "run")], "not a regular file")


@pytest.mark.parametrize(
    "argv",
    [["--seeds", "0"], ["--device", "meta"], ["--device", "cuda:99"]],
    ids=["seeds", "meta", "cuda"],
)
def test_a_refused_reproduce_leaves_nothing_behind(tmp_path, capsys, argv):
    out = tmp_path / "reproduction"
    bad_input(capsys, ["reproduce", "quine", "--scale", "quick", "--out", str(out), *argv])
    assert not out.exists()


# ---------------------------------------------------------------------- census


DIVERGING = 'seed = 2\n[[rules]]\ntype = "self_train"\nsteps = 5\nlr = 1000000.0\n'


@pytest.mark.parametrize(("respawn", "expected"), [(True, (6, 6)), (False, (0, 6))])
def test_the_census_shows_respawns_and_divergences_and_warns_once(
    tmp_path, capsys, respawn, expected
):
    config = tmp_path / "c.toml"
    config.write_text(DIVERGING + ('[[rules]]\ntype = "respawn"\n' if respawn else ""))
    argv = ["run", str(config), "--population", "6", "--epochs", "6", "--no-figures"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    respawned, diverged = expected
    assert f"last epoch: {respawned} respawned, {diverged} diverged" in captured.out
    divergent_class = int(captured.out.split("DIVERGENT")[1].split()[0])
    assert divergent_class == (0 if respawn else 6)  # respawn hides them from the classes
    assert captured.err.count("every particle diverged") == 1
    assert "diverged=6" in captured.err  # the progress line


def test_the_divergence_warning_needs_consecutive_epochs():
    from chemistry.census import DivergenceWatch

    class Soup:
        epoch = 0

        def __len__(self):
            return 4

    watch = DivergenceWatch(epochs=2)
    assert [watch.update(Soup(), d) for d in (4, 3, 4)] == [None, None, None]
    assert watch.update(Soup(), 4) is not None
    assert watch.update(Soup(), 4) is None and watch.update(Soup(), 4) is None


def test_plot_and_lineage_of_a_live_run_exit_2_and_change_nothing(tmp_path, capsys):
    out = tmp_path / "done"
    assert main(["run", "--out", str(out), "--no-figures", *TINY]) == 0
    capsys.readouterr()
    before = snapshot(out)
    child = hold_in_child(out)
    try:
        bad_input(capsys, ["plot", str(out)], f"process {child.pid}", "once it has finished")
        bad_input(capsys, ["lineage", str(out)], f"process {child.pid}", "once it has finished")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert snapshot(out) == before
    assert main(["plot", str(out)]) == 0
    assert (out / "figures").is_dir()
