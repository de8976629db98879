"""Tests of the live view (chemistry.viz, examples/app.py).

Without a browser, Solara renders the page into widgets (``solara.render``) and the tests click
its buttons from Python. Once, ``solara run examples/app.py`` serves the page on loopback and
Debian's Chromium, driven by Playwright, loads it, runs a step and takes a screenshot; that test
is skipped where /usr/bin/chromium is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

solara = pytest.importorskip("solara", reason="the live view needs the viz extra (.[viz])")

import ipyvuetify as v  # noqa: E402
import ipywidgets  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from chemistry import Soup, viz  # noqa: E402
from interactions import Attack, Interaction, Respawn, SelfTrain  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# ------------------------------------------------------------------------------ the soup


def test_make_soup_builds_the_fig12_soup():
    soup = viz.make_soup(population=12, attack=0.25, self_train=7, seed=3)
    assert isinstance(soup, Soup)
    assert [type(rule) for rule in soup.rules] == [Attack, SelfTrain, Respawn]
    attack, self_train, respawn = soup.rules
    assert attack.chance == 0.25
    assert self_train.steps == 7 and self_train.lr is None  # lr and mode: the soup's preset's
    assert (soup.preset.name, soup.preset.mode, soup.preset.lr) == ("keras2019", "per_sample", 0.01)
    assert respawn.eps == 1e-4 and soup.eps == 1e-4
    assert len(soup) == 12
    assert soup.settings == {
        "population": 12,
        "attack": 0.25,
        "self_train": 7,
        "topology": "complete",
        "seed": 3,
    }


def test_same_seed_same_soup_and_seed_text_is_accepted():
    first, second = viz.make_soup(seed=5), viz.make_soup(seed=" 5 ")
    first.run_for(2)
    second.run_for(2)
    for a, b in zip(first.bank_list, second.bank_list, strict=True):
        assert (a.weights == b.weights).all()


@pytest.mark.parametrize("topology", viz.TOPOLOGIES)
def test_every_topology_of_the_page_runs(topology):
    soup = viz.make_soup(population=7, self_train=2, topology=topology)
    soup.run_for(2)
    assert len(soup) == 7
    assert soup.topology.num_nodes >= 7


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"seed": "abc"}, "seed='abc' is not allowed"),
        ({"seed": -1}, "seed=-1 is not allowed"),
        ({"topology": "torus"}, "topology='torus' is not allowed"),
    ],
)
def test_bad_settings_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        viz.make_soup(**arguments)


# ------------------------------------------------------------------------------ drawing


def test_drawings_fill_the_given_axes():
    soup = viz.make_soup(population=10, attack=0.5, self_train=3, seed=1)
    soup.run_for(4)
    figure = Figure()
    particles, counts, genealogy = figure.subplots(1, 3)

    projection = viz.draw_particles(soup, particles)
    assert projection["points"].shape == (10, 2)
    assert sorted(projection["uids"].tolist()) == sorted(soup.particles)
    assert set(projection["status"]) <= {"DIVERGENT", "ZERO", "FIXPOINT", "SECOND_ORDER", "OTHER"}
    assert particles.collections, "no scatter drawn"

    drawn = viz.draw_counts(soup, counts)
    assert sum(len(values) for values in drawn.values()) >= 5
    assert all(len(values) == 5 for values in drawn.values())  # epochs 0..4
    assert counts.lines

    summary = viz.draw_genealogy(soup, genealogy)
    assert summary["lifelines"] >= 10
    assert summary["attack"] > 0
    assert genealogy.collections


def test_pca_keeps_its_orientation_between_calls():
    soup = viz.make_soup(population=8, self_train=2)
    first = viz.particle_projection(soup)["components"]
    second = viz.particle_projection(soup)["components"]
    assert (first == second).all()
    for row in first:
        assert row[abs(row).argmax()] > 0


# ------------------------------------------------------------------------- the page, no browser


def _render(soup):
    # Mesa's SolaraViz puts its controls in the sidebar of Solara's AppLayout.
    return solara.render(solara.AppLayout(children=[viz.make_page(soup)]), handle_error=False)


def _caption(rc) -> str:
    (text,) = rc.find(meta_ref="counts-caption").widget.children
    return text


def _images(rc) -> list[bytes]:
    return [bytes(image.value) for image in rc.find(ipywidgets.Image).widgets]


def test_page_renders_controls_and_three_views():
    soup = viz.make_soup()
    _, rc = _render(soup)
    for label in ("Reset", "Step"):
        rc.find(v.Btn, children=[label]).assert_single()
    sliders = {slider.label for slider in rc.find(v.Slider).widgets}
    assert {"population", "attack chance", "self-train steps"} <= sliders
    (topology,) = rc.find(v.Select, label="topology").widgets
    assert topology.items == list(viz.TOPOLOGIES) and topology.v_model == "complete"
    rc.find(v.TextField, label="seed").assert_single()
    images = _images(rc)
    assert len(images) == 3
    assert all(image.startswith(b"\x89PNG") for image in images)
    assert _caption(rc) == "epoch 0 · 20 particles · OTHER 20"


def test_step_button_runs_an_epoch_and_updates_the_counts():
    soup = viz.make_soup()
    _, rc = _render(soup)
    before = _images(rc)
    rc.find(v.Btn, children=["Step"]).widget.click()
    assert soup.epoch == 1
    assert soup.datacollector.model_vars["epoch"] == [0.0, 1.0]
    assert _caption(rc).startswith("epoch 1 · 20 particles")
    after = _images(rc)
    assert all(new != old for new, old in zip(after, before, strict=True)), "a view did not redraw"
    rc.find(v.Btn, children=["Step"]).widget.click()
    assert soup.epoch == 2 and _caption(rc).startswith("epoch 2 ·")


def test_reset_rebuilds_the_soup_from_the_controls():
    _, rc = _render(viz.make_soup())
    rc.find(v.Btn, children=["Step"]).widget.click()
    rc.find(v.Slider, label="population").widget.v_model = 9
    rc.find(v.Select, label="topology").widget.v_model = "grid"
    rc.find(v.Btn, children=["Reset"]).widget.click()
    assert _caption(rc).startswith("epoch 0 · 9 particles")
    rc.find(v.Btn, children=["Step"]).widget.click()
    assert _caption(rc).startswith("epoch 1 · 9 particles")


def test_app_exposes_a_page_with_a_soup_per_session(monkeypatch):
    monkeypatch.setattr(viz, "fetch_assets", lambda: [])
    namespace: dict = {}
    exec(compile(APP.read_text(), str(APP), "exec"), namespace)
    assert "page" in namespace
    _, rc = solara.render(solara.AppLayout(children=[namespace["page"]]), handle_error=False)
    assert _caption(rc) == "epoch 0 · 20 particles · OTHER 20"


# ------------------------------------------------------------------------------ assets and main


def test_page_assets_name_pinned_npm_packages():
    assets = viz.page_assets()
    assert any("solara-vuetify" in name for name in assets)
    assert "requirejs@2.3.6" in assets
    for name in assets:
        package, version = name.rsplit("@", 1)
        assert package and version[0].isdigit()


def test_fetch_assets_skips_what_the_cache_holds(tmp_path):
    for name in viz.page_assets():
        (tmp_path / name).mkdir(parents=True)
    assert viz.fetch_assets(tmp_path, npm="no-such-npm") == []


def test_fetch_assets_says_when_npm_is_missing(tmp_path):
    with pytest.raises(RuntimeError, match="npm is not installed"):
        viz.fetch_assets(tmp_path, npm="no-such-npm-command")


def test_prepare_assets_warns_instead_of_failing(monkeypatch):
    def fail():
        raise RuntimeError("npm is not installed")

    monkeypatch.setattr(viz, "fetch_assets", fail)
    with pytest.warns(UserWarning, match="npm is not installed"):
        assert viz.prepare_assets() == []


def test_main_serves_the_page_with_solara_on_loopback(monkeypatch):
    calls = []
    monkeypatch.setattr(viz, "fetch_assets", lambda: [])
    monkeypatch.setattr(viz, "serve", lambda command, env: calls.append((command, env)) or 0)
    assert viz.main(["--port", "8899", "--no-open"]) == 0
    ((command, env),) = calls
    assert command[:5] == [sys.executable, "-m", "solara", "run", "chemistry.viz:Page"]
    assert command[5:] == ["--host", "127.0.0.1", "--port", "8899", "--no-open"]
    assert viz.CONFIG_VARIABLE not in env


def test_main_with_a_config_file_passes_it_to_every_page(monkeypatch, tmp_path):
    config = tmp_path / "ring.toml"
    config.write_text('seed = 4\n[topology]\nkind = "ring"\n[[population]]\ncount = 7\n')
    calls = []
    monkeypatch.setattr(viz, "fetch_assets", lambda: [])
    monkeypatch.setattr(viz, "serve", lambda command, env: calls.append(env) or 0)
    assert viz.main([str(config), "--no-open"]) == 0
    (env,) = calls
    assert env[viz.CONFIG_VARIABLE] == str(config.resolve())
    monkeypatch.setenv(viz.CONFIG_VARIABLE, env[viz.CONFIG_VARIABLE])
    soup = viz.page_soup()
    assert len(soup) == 7 and soup.topology.num_nodes == 7
    _, rc = _render(soup)
    assert _caption(rc) == "epoch 0 · 7 particles · OTHER 7"


def test_a_bad_config_file_is_refused_before_serving(monkeypatch, tmp_path, capsys):
    from chemistry import cli

    config = tmp_path / "bad.toml"
    config.write_text("epochs = -1\n")
    monkeypatch.setattr(viz, "serve", lambda command, env: pytest.fail("served a bad config"))
    assert cli.main(["viz", str(config), "--no-open"]) == 2
    err = capsys.readouterr().err
    assert "epochs" in err and "Traceback" not in err


def test_viz_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    from chemistry import cli

    monkeypatch.setitem(sys.modules, "solara", None)  # import solara now fails
    monkeypatch.delitem(sys.modules, "chemistry.viz")
    assert cli.main(["viz", "--no-open"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "needs the viz extra" in err and "pip install" in err


@pytest.mark.slow
def test_sigterm_to_chemistry_viz_stops_the_server(tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "viz.log"
    with open(log, "wb") as output:
        viz_process = subprocess.Popen(
            [sys.executable, "-m", "chemistry.cli", "viz", "--no-open", "--port", str(port)],
            cwd=ROOT,
            env={**viz.server_environment(), "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_served(url, viz_process, log, timeout=90)
        viz_process.send_signal(signal.SIGTERM)
        assert viz_process.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) != 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail(f"the server still answers on port {port} after SIGTERM")
    finally:
        if viz_process.poll() is None:
            viz_process.kill()
            viz_process.wait()


# ------------------------------------------------------------------------------ any soup


class Flatten(Interaction):
    """A user rule: every particle's weights shrink tenfold (a soup that dies out)."""

    def __call__(self, soup, participants=None):
        for bank, _, rows in soup.groups(soup.occupied_nodes()):
            bank.write(rows, bank.read(rows) * 0.1)
        return []


def custom_soup() -> Soup:
    return Soup([Flatten()], population=9, rng=3, eps=1e-3)


def test_a_custom_soup_with_a_user_rule_renders_and_reset_keeps_it():
    soup = custom_soup()
    _, rc = _render(soup)
    assert _caption(rc) == "epoch 0 · 9 particles · OTHER 9"
    for _ in range(3):
        rc.find(v.Btn, children=["Step"]).widget.click()
    assert soup.epoch == 3
    after_steps = _caption(rc)
    assert after_steps.startswith("epoch 3 · 9 particles") and "ZERO" in after_steps
    rc.find(v.Btn, children=["Reset"]).widget.click()
    assert _caption(rc) == "epoch 0 · 9 particles · OTHER 9"
    for _ in range(3):
        rc.find(v.Btn, children=["Step"]).widget.click()
    assert _caption(rc) == after_steps  # the same soup again: same rule, same seed


def test_reset_rebuilds_a_soup_from_rule_names_and_settings():
    soup = Soup("attack self_train", population=6, rng=2, attack_chance=0.5, self_train_steps=1)
    assert soup.parameters == {
        "rules": "attack self_train",
        "population": 6,
        "rng": 2,
        "attack_chance": 0.5,
        "self_train_steps": 1,
    }
    _, rc = _render(soup)
    rc.find(v.Btn, children=["Step"]).widget.click()
    first = _caption(rc)
    rc.find(v.Btn, children=["Reset"]).widget.click()
    rc.find(v.Btn, children=["Step"]).widget.click()
    assert _caption(rc) == first and first.startswith("epoch 1 · 6 particles")


# ------------------------------------------------------------------------------ a real browser


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_served(url: str, server: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"solara run exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    pytest.fail(f"solara run did not answer {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def _assert_not_blank(png: bytes, what: str, *, colours: int, top_share: float) -> None:
    """At least ``colours`` colours, and no colour covering ``top_share`` of the image."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    width, height = image.size
    assert width > 100 and height > 100, f"{what}: tiny image {image.size}"
    counts = image.getcolors(maxcolors=width * height)
    most = max(count for count, _ in counts)
    assert len(counts) >= colours, f"{what}: only {len(counts)} colours"
    assert most < top_share * width * height, f"{what}: {most / (width * height):.0%} is one colour"


needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"Debian's chromium is not installed at {CHROMIUM} "
    "(.ci/run installs it: apt-get install chromium)",
)


@contextlib.contextmanager
def _browser_page(app: Path, tmp_path: Path):
    """``solara run app`` on a free loopback port and a headless Chromium page on it, loaded
    up to the counts caption; yields (page, Playwright's sync_api)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (.[test])")
    try:
        viz.fetch_assets()  # offline machines: Solara's CDN files from the npm registry
        assets_note = ""
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        assets_note = f"\n(page assets not fetched: {error})"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "solara.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "solara", "run", str(app), "--host", "127.0.0.1"]
            + ["--port", str(port), "--no-open"],
            cwd=ROOT,
            env={**viz.server_environment(), "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_served(url, server, log, timeout=60)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, timeout=60_000
            )
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(30_000)
                page.goto(url, wait_until="domcontentloaded")
                try:
                    page.get_by_text("epoch 0 ·").wait_for(state="attached")
                except sync_api.Error as error:
                    page.screenshot(path=tmp_path / "not-loaded.png")
                    pytest.fail(f"the page did not load: {error}{assets_note}\n{log.read_text()}")
                yield page, sync_api
            finally:
                browser.close()
    finally:
        _stop(server)


def _wait_for_plots(page) -> None:
    page.wait_for_function(
        "() => { const plots = [...document.querySelectorAll('img.widget-image')];"
        " return plots.length >= 3"
        " && plots.every(p => p.complete && p.naturalWidth > 100); }"
    )
    page.wait_for_timeout(300)  # let the new images paint


@pytest.mark.slow
@needs_chromium
def test_page_in_headless_chromium(tmp_path):
    with _browser_page(APP, tmp_path) as (page, _):
        page.get_by_role("button", name="Step").click()
        page.get_by_text("epoch 1 ·").wait_for(state="attached")
        _wait_for_plots(page)
        screenshot = page.screenshot(full_page=True)
        (tmp_path / "live_view.png").write_bytes(screenshot)
        _assert_not_blank(screenshot, "the page", colours=50, top_share=0.9)
        plots = page.locator("img.widget-image")
        for index in range(3):
            plot = plots.nth(index).screenshot()
            _assert_not_blank(plot, f"plot {index}", colours=20, top_share=0.98)


CUSTOM_APP = """
import solara
import torch

from chemistry import Soup
from chemistry.viz import make_page
from interactions import Interaction


class Flatten(Interaction):
    def __call__(self, soup, participants=None):
        for bank, _, rows in soup.groups(soup.occupied_nodes()):
            bank.write(rows, bank.read(rows) * 0.1)
        return []


@solara.component
def Page():
    soup = solara.use_memo(lambda: Soup([Flatten()], population=9, rng=3, eps=1e-3), [])
    return make_page(soup)
"""


@pytest.mark.slow
@needs_chromium
def test_custom_soup_with_a_user_rule_in_headless_chromium_and_reset_keeps_it(tmp_path):
    app = tmp_path / "custom_app.py"
    app.write_text(CUSTOM_APP)

    def caption(page) -> str:
        return page.get_by_text("particles ·").first.inner_text().strip()

    with _browser_page(app, tmp_path) as (page, _):
        assert caption(page) == "epoch 0 · 9 particles · OTHER 9"
        step = page.get_by_role("button", name="Step")
        for epoch in (1, 2, 3):
            step.click()
            page.get_by_text(f"epoch {epoch} ·").wait_for(state="attached")
        stepped = caption(page)
        assert stepped.startswith("epoch 3 · 9 particles") and "ZERO" in stepped
        _wait_for_plots(page)
        _assert_not_blank(page.screenshot(full_page=True), "the page", colours=50, top_share=0.9)
        page.get_by_role("button", name="Reset").click()
        page.get_by_text("epoch 0 ·").wait_for(state="attached")
        assert caption(page) == "epoch 0 · 9 particles · OTHER 9"
        for epoch in (1, 2, 3):
            step.click()
            page.get_by_text(f"epoch {epoch} ·").wait_for(state="attached")
        assert caption(page) == stepped
