"""Live view of a soup in the browser: a Mesa ``SolaraViz`` page.

The page (``solara run examples/app.py``, or :func:`main`) shows, for a soup of weightwise
particles that attack, self-train and respawn (the paper's Fig 12 soup):

* controls: population, attack chance, self-train steps, topology, seed (Mesa's "Model
  Parameters" card; press Reset to rebuild the soup with them) and Step / Play / Reset;
* a live 2-D PCA scatter of the current particle weights, coloured by class, with short trails;
* the class counts over epochs, read from the soup's Mesa DataCollector;
* the genealogy: one lifeline per particle on its topology node, attacks drawn between them.

Any soup can be shown: ``make_page(my_soup)`` (a soup with rules of your own too) or
``chemistry viz CONFIG.toml``; Reset then rebuilds that same soup from the arguments it was
built with. Every browser session gets its own soup. The drawing functions (:func:`draw_particles`,
:func:`draw_counts`, :func:`draw_genealogy`) take any soup and a matplotlib ``Axes``, so they
also work outside the page.

Needs the ``viz`` extra (``pip install -e '.[viz]'``: Mesa's ``mesa[viz]``, i.e. Solara).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from chemistry.plots import STATUS_COLOURS, kind_colour
from chemistry.soup import Soup
from chemistry.topology import Topology
from interactions import Attack, Respawn, SelfTrain
from particles.classification import Status

MISSING_EXTRA = (
    "the live view needs the viz extra (Mesa's SolaraViz and Solara), which is not installed "
    "here: pip install 'self-replicating-chemistry[viz]' (in a clone: pip install -e '.[viz]')"
)

try:
    import solara
    from mesa.visualization import Slider, SolaraViz
    from mesa.visualization.utils import update_counter
except ImportError as error:
    raise ImportError(f"{MISSING_EXTRA} ({error})") from error

__all__ = [
    "COMPONENTS",
    "MODEL_PARAMS",
    "TOPOLOGIES",
    "CountsView",
    "GenealogyView",
    "LiveSoup",
    "Page",
    "ParticlesView",
    "draw_counts",
    "draw_genealogy",
    "draw_particles",
    "fetch_assets",
    "main",
    "make_page",
    "make_soup",
    "page_soup",
    "page_assets",
    "particle_projection",
    "prepare_assets",
    "server_environment",
    "topology_for",
]

TOPOLOGIES = ("complete", "ring", "grid", "small_world")
PRESET = "keras2019"
EPS = 1e-4
UNCLASSIFIED = "UNCLASSIFIED"
UNCLASSIFIED_COLOUR = "#cccccc"
RESPAWN_COLOUR = "#555555"
FIGURE_SIZE = (6.0, 4.2)
FIGURE_DPI = 90


def topology_for(name: str, population: int, seed: int = 0) -> Topology:
    """The partner graph of the page's soup: complete, ring, grid (torus) or small world.

    A grid is the smallest ``rows x cols`` torus (sides >= 3) with at least ``population`` slots;
    the particles take the first slots. Ring needs 3 particles, small world 5.
    """
    if name == "complete":
        return Topology.complete(population)
    if name == "ring":
        return Topology.ring(population)
    if name == "grid":
        cols = max(3, math.ceil(math.sqrt(population)))
        rows = max(3, math.ceil(population / cols))
        return Topology.grid(rows, cols)
    if name == "small_world":
        return Topology.small_world(population, seed=seed)
    raise ValueError(f"topology={name!r} is not allowed; choose one of {', '.join(TOPOLOGIES)}")


def _as_seed(seed: int | str) -> int:
    try:
        value = int(str(seed).strip())
    except ValueError:
        raise ValueError(f"seed={seed!r} is not allowed; give a whole number >= 0") from None
    if value < 0:
        raise ValueError(f"seed={seed!r} is not allowed; give a whole number >= 0")
    return value


class LiveSoup(Soup):
    """The page's soup: Attack → SelfTrain (keras2019) → Respawn, weightwise particles.

    Its constructor takes exactly the page's controls as keywords, so Mesa's Reset button can
    rebuild it with ``LiveSoup(**parameters)``.

    Args:
        population: number of particles.
        attack: attack chance per particle and epoch.
        self_train: self-training steps per epoch.
        topology: "complete", "ring", "grid" or "small_world" (see :func:`topology_for`).
        seed: seed of every random draw (an int, or its text from the page's input box).
    """

    def __init__(
        self,
        population: int = 20,
        attack: float = 0.1,
        self_train: int = 30,
        topology: str = "complete",
        seed: int | str = 0,
    ) -> None:
        seed = _as_seed(seed)
        population = int(population)
        self.settings = {
            "population": population,
            "attack": float(attack),
            "self_train": int(self_train),
            "topology": topology,
            "seed": seed,
        }
        super().__init__(
            [
                Attack(float(attack)),
                SelfTrain(int(self_train)),
                Respawn(eps=EPS),
            ],
            population=population,
            topology=topology_for(topology, population, seed),
            rng=seed,
            preset=PRESET,
            eps=EPS,
        )


def make_soup(
    population: int = 20,
    attack: float = 0.1,
    self_train: int = 30,
    topology: str = "complete",
    seed: int | str = 0,
) -> LiveSoup:
    """A fresh soup for the page (a :class:`chemistry.Soup`); see :class:`LiveSoup`."""
    return LiveSoup(
        population=population,
        attack=attack,
        self_train=self_train,
        topology=topology,
        seed=seed,
    )


# --------------------------------------------------------------------------------------------
# Drawing into a given matplotlib Axes


def _status_name(code: int) -> str:
    return Status(code).name if code >= 0 else UNCLASSIFIED


def _pca_basis(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean [r], components [2, r], explained variance ratio [2]) of rows ``weights`` [n, r].

    Each component's sign is fixed (its largest loading is positive) so that the picture does not
    flip from one epoch to the next.
    """
    mean = weights.mean(axis=0)
    centred = weights - mean
    components = np.zeros((2, weights.shape[1]))
    ratio = np.zeros(2)
    if len(weights) > 1:
        _, singular, vectors = np.linalg.svd(centred, full_matrices=False)
        k = min(2, len(vectors))
        components[:k] = vectors[:k]
        variance = singular**2
        if variance.sum() > 0:
            ratio[:k] = variance[:k] / variance.sum()
    for row in components:
        if row[np.argmax(np.abs(row))] < 0:
            row *= -1
    return mean, components, ratio


def particle_projection(soup: Soup) -> dict[str, np.ndarray]:
    """The current weights of the soup's particles, projected on their own 2-D PCA.

    Architectures are projected jointly when they share one weight count; otherwise the most
    numerous weight count is shown. Particles with a non-finite weight are left out.

    Returns:
        {"points" [n, 2], "uids" [n], "status" [n] (class names), "mean" [r],
        "components" [2, r], "ratio" [2], "hidden" (int: particles left out)}.
    """
    nodes = soup.occupied_nodes()
    parts = []
    for bank, positions, rows in soup.groups(nodes):
        weights = bank.read(rows).detach().double().cpu().numpy()
        picked = nodes[positions]
        statuses = [_status_name(int(s)) for s in soup.node_status[picked].tolist()]
        parts.append((weights, soup.node_uid[picked].numpy(), np.array(statuses, dtype=object)))
    widths = Counter()
    for weights, _, _ in parts:
        widths[weights.shape[1]] += len(weights)
    width = widths.most_common(1)[0][0] if widths else 0
    kept = [part for part in parts if part[0].shape[1] == width]
    weights = np.concatenate([p[0] for p in kept]) if kept else np.zeros((0, width))
    uids = np.concatenate([p[1] for p in kept]) if kept else np.zeros(0, dtype=np.int64)
    status = np.concatenate([p[2] for p in kept]) if kept else np.zeros(0, dtype=object)
    finite = np.isfinite(weights).all(axis=1)
    hidden = len(nodes) - int(finite.sum())
    weights, uids, status = weights[finite], uids[finite], status[finite]
    if len(weights) == 0:
        mean, components, ratio = np.zeros(width), np.zeros((2, width)), np.zeros(2)
        points = np.zeros((0, 2))
    else:
        mean, components, ratio = _pca_basis(weights)
        points = (weights - mean) @ components.T
    return {
        "points": points,
        "uids": uids,
        "status": status,
        "mean": mean,
        "components": components,
        "ratio": ratio,
        "hidden": hidden,
    }


def draw_particles(soup: Soup, axes, *, trail: int = 5) -> dict[str, np.ndarray]:
    """Scatter the particles in the PCA plane of their current weights, coloured by class.

    Each particle also gets a faint trail through its last ``trail`` recorded epochs, projected
    on the same plane (0: no trails). Returns :func:`particle_projection`'s result.
    """
    projection = particle_projection(soup)
    points, uids, status = projection["points"], projection["uids"], projection["status"]
    if trail > 0 and len(uids):
        segments = []
        alive = set(uids.tolist())
        width = projection["mean"].shape[0]
        for name in soup.trajectories.names:
            epochs, track_uids, weights = soup.trajectories.arrays(name)
            if weights.shape[1] != width:
                continue
            recent = (epochs >= soup.epoch - trail) & np.isin(track_uids, list(alive))
            recent &= np.isfinite(weights).all(axis=1)
            projected = (weights[recent] - projection["mean"]) @ projection["components"].T
            for uid in np.unique(track_uids[recent]):
                mask = track_uids[recent] == uid
                order = np.argsort(epochs[recent][mask], kind="stable")
                if mask.sum() > 1:
                    segments.append(projected[mask][order])
        if segments:
            axes.add_collection(
                LineCollection(segments, colors="#999999", linewidths=0.8, alpha=0.5, zorder=1)
            )
    names = [s.name for s in Status] + [UNCLASSIFIED]
    for name in names:
        mask = status == name
        if mask.any():
            axes.scatter(
                points[mask, 0],
                points[mask, 1],
                s=36,
                color=STATUS_COLOURS.get(name, UNCLASSIFIED_COLOUR),
                edgecolors="black",
                linewidths=0.4,
                label=f"{name} ({int(mask.sum())})",
                zorder=2,
            )
    ratio = projection["ratio"]
    axes.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}%)")
    axes.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}%)")
    hidden = projection["hidden"]
    note = f", {hidden} not shown (non-finite)" if hidden else ""
    axes.set_title(f"Particles at epoch {soup.epoch} (PCA of current weights{note})", fontsize=10)
    axes.grid(alpha=0.3)
    axes.autoscale_view()
    if len(points):
        axes.legend(fontsize=7, loc="best", title="class", title_fontsize=7)
    return projection


def draw_counts(soup: Soup, axes) -> dict[str, list[float]]:
    """Draw the particles of each class over epochs, from the soup's DataCollector columns.

    Classes that never had a particle are left out. Returns the columns drawn.
    """
    columns = soup.datacollector.model_vars
    epochs = np.asarray(columns.get("epoch", []), dtype=float)
    drawn: dict[str, list[float]] = {}
    for status in Status:
        values = np.asarray(columns.get(status.name.lower(), []), dtype=float)
        if len(values) and values.any():
            axes.plot(
                epochs,
                values,
                label=status.name,
                color=STATUS_COLOURS[status.name],
                linewidth=1.8,
                marker="o" if len(values) < 30 else None,
                markersize=3,
            )
            drawn[status.name] = values.tolist()
    axes.set_xlabel("epoch")
    axes.set_ylabel("particles")
    axes.set_title("Particles per class over epochs", fontsize=10)
    axes.set_xlim(left=0, right=max(1.0, float(epochs.max()) if len(epochs) else 1.0))
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    if drawn:
        axes.legend(fontsize=7, loc="best")
    return drawn


def draw_genealogy(soup: Soup, axes, *, window: int = 100) -> dict[str, int]:
    """Draw the genealogy of the last ``window`` epochs: epoch (x) against topology node (y).

    Every particle is a horizontal lifeline on its node, from its birth (a dot) to its death (or
    now), coloured by its last class; each attack / learn / clone / melt is a line at its epoch
    from the actor's node to the target's, ending in a dot; respawns are crosses. Returns the
    number of lifelines and of interactions of each kind drawn.
    """
    graph = soup.genealogy.graph
    now = soup.epoch
    start = max(0, now - window)
    lifelines, colours, births = [], [], []
    for _, data in graph.nodes(data=True):
        if "node" not in data or "birth" not in data:
            continue
        end = data.get("death", now)
        if end < start:
            continue
        y, birth = data["node"], data["birth"]
        colour = STATUS_COLOURS.get(data.get("status", ""), UNCLASSIFIED_COLOUR)
        lifelines.append([(max(birth, start), y), (max(end, birth), y)])
        colours.append(colour)
        if birth >= start:
            births.append((birth, y, colour))
    if lifelines:
        axes.add_collection(LineCollection(lifelines, colors=colours, linewidths=2.5, zorder=1))
    if births:
        x, y, colour = zip(*births, strict=True)
        axes.scatter(x, y, s=14, c=list(colour), edgecolors="black", linewidths=0.4, zorder=2)
    edges: dict[str, list] = {}
    for actor, target, data in graph.edges(data=True):
        epoch = data.get("epoch", 0)
        kind = data.get("kind", "")
        if epoch < start or not kind:
            continue
        target_node = graph.nodes[target].get("node")
        actor_node = graph.nodes[actor].get("node")
        if target_node is None or actor_node is None:
            continue
        edges.setdefault(kind, []).append([(epoch, actor_node), (epoch, target_node)])
    handles = []
    for kind, segments in sorted(edges.items()):
        if not segments:
            continue
        ends = np.array([segment[1] for segment in segments], dtype=float)
        if kind == "respawn":
            colour = RESPAWN_COLOUR
            axes.scatter(ends[:, 0], ends[:, 1], marker="x", s=22, color=colour, zorder=3)
            handles.append(axes.scatter([], [], marker="x", color=colour, label=kind))
        else:
            colour = kind_colour(kind)
            axes.add_collection(
                LineCollection(segments, colors=colour, linewidths=0.9, alpha=0.8, zorder=2)
            )
            axes.scatter(ends[:, 0], ends[:, 1], s=8, color=colour, zorder=3)
            handles.append(axes.plot([], [], color=colour, label=kind, linewidth=1.2)[0])
    axes.set_xlim(start - 0.5, max(now, start + 1) + 0.5)
    axes.set_ylim(-1, soup.topology.num_nodes)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel("topology node")
    axes.set_title("Genealogy: lifelines coloured by class", fontsize=10)
    axes.grid(alpha=0.2)
    if handles:
        axes.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return {"lifelines": len(lifelines), **{k: len(v) for k, v in edges.items()}}


def _figure() -> tuple[Figure, object]:
    figure = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI, layout="constrained")
    return figure, figure.add_subplot()


# --------------------------------------------------------------------------------------------
# Solara components (Mesa calls each with the current model; update_counter ticks every step)


def _caption(soup: Soup) -> str:
    counts = ", ".join(f"{name} {n}" for name, n in soup.status_counts().items() if n)
    return f"epoch {soup.epoch} · {len(soup)} particles · {counts}"


@solara.component
def ParticlesView(model: Soup):
    """The live PCA scatter of the current particle weights, coloured by class."""
    update_counter.get()
    key = [id(model), model.epoch, update_counter.value]

    def draw() -> Figure:
        figure, axes = _figure()
        draw_particles(model, axes)
        return figure

    figure = solara.use_memo(draw, key)
    solara.FigureMatplotlib(figure, format="png", dependencies=key)


@solara.component
def CountsView(model: Soup):
    """The class counts over epochs, with a one-line census under the plot."""
    update_counter.get()
    key = [id(model), model.epoch, update_counter.value]

    def draw() -> Figure:
        figure, axes = _figure()
        draw_counts(model, axes)
        return figure

    figure = solara.use_memo(draw, key)
    with solara.Column():
        solara.FigureMatplotlib(figure, format="png", dependencies=key)
        solara.Text(_caption(model)).meta(ref="counts-caption")


@solara.component
def GenealogyView(model: Soup):
    """The genealogy of the last epochs: lifelines per topology node and interactions."""
    update_counter.get()
    key = [id(model), model.epoch, update_counter.value]

    def draw() -> Figure:
        figure, axes = _figure()
        draw_genealogy(model, axes)
        return figure

    figure = solara.use_memo(draw, key)
    solara.FigureMatplotlib(figure, format="png", dependencies=key)


COMPONENTS = [(ParticlesView, 0), (CountsView, 0), (GenealogyView, 0)]

MODEL_PARAMS = {
    "population": Slider("population", value=20, min=5, max=100, step=1),
    "attack": Slider("attack chance", value=0.1, min=0.0, max=1.0, step=0.05),
    "self_train": Slider("self-train steps", value=30, min=0, max=100, step=5),
    "topology": {
        "type": "Select",
        "value": "complete",
        "values": list(TOPOLOGIES),
        "label": "topology",
    },
    "seed": {"type": "InputText", "value": 0, "label": "seed"},
}


CONFIG_VARIABLE = "CHEMISTRY_VIZ_CONFIG"


def page_soup(config: str | Path | None = None) -> Soup:
    """The soup of a new page: built from the TOML ``config`` (default: the file named by the
    environment variable ``CHEMISTRY_VIZ_CONFIG``, as ``chemistry viz CONFIG.toml`` sets it), or
    the page's own :func:`make_soup` without one."""
    config = config if config is not None else os.environ.get(CONFIG_VARIABLE) or None
    if config is None:
        return make_soup()
    from chemistry.config import load_config

    return load_config(config).build()


def make_page(
    soup: Soup | None = None, *, config: str | Path | None = None, play_interval: int = 150
):
    """A ``SolaraViz`` element showing any ``soup`` (or the soup of a TOML ``config``).

    Reset rebuilds the same soup: the page's own soup (:class:`LiveSoup`) from the controls,
    any other soup from the arguments it was built with (``soup.parameters``).
    """
    if soup is None:
        soup = page_soup(config)
    if isinstance(soup, LiveSoup):
        params = MODEL_PARAMS
    else:
        params = dict(soup.parameters)
    return SolaraViz(
        soup,
        components=list(COMPONENTS),
        model_params=params,
        name="Self-replicating soup",
        play_interval=play_interval,
    )


@solara.component
def Page():
    """The live view with a soup of its own for every browser session."""
    soup = solara.use_memo(page_soup, [])
    return make_page(soup)


# --------------------------------------------------------------------------------------------
# Offline assets and the command line

_CDN_PACKAGE = re.compile(
    r"(?:\{\{\s*cdn\s*\}\}|getCdn\(\)\})/?((?:@[\w.-]+/)?[\w.-]+@\d+\.\d+\.\d+(?:-[\w.]+)?)/"
)


def page_assets() -> list[str]:
    """The npm packages (``name@version``) the Solara page loads through Solara's CDN proxy.

    Read off the installed Solara: its page template (the Vue 2 or Vue 3 app, as Solara picks
    by the installed ipyvue), its draggable grid layout (Mesa's SolaraViz uses it) and the Font
    Awesome style sheet.
    """
    import ipyvue
    import solara.server.settings as server_settings

    root = Path(solara.__file__).parent
    files = [*(root / "server" / "templates").glob("*.j2")]
    files += [*(root / "widgets" / "vue").glob("gridlayout*.vue")]
    found = set()
    for file in files:
        found.update(_CDN_PACKAGE.findall(file.read_text(encoding="utf-8")))
    vue3 = ipyvue.__version__.startswith("3")
    unused = "@widgetti/solara-vuetify-app@" if vue3 else "@widgetti/solara-vuetify3-app@"
    found = {package for package in found if not package.startswith(unused)}
    fontawesome = server_settings.assets.fontawesome_path.strip("/").split("/")[0]
    if server_settings.assets.fontawesome_enabled and "@" in fontawesome:
        found.add(fontawesome)
    return sorted(found)


def _proxy_cache_dir() -> Path:
    import solara.server.settings as server_settings

    return Path(server_settings.assets.proxy_cache_dir)


def fetch_assets(
    cache_dir: str | Path | None = None, *, npm: str = "npm", timeout: float = 300
) -> list[str]:
    """Put the page's browser assets into Solara's CDN proxy cache, so it loads offline.

    Solara's server serves the JavaScript and CSS of its page from a CDN, through a local
    cache (``<venv>/share/solara/cdn`` by default). On a machine that reaches package
    registries but not that CDN, this fills the cache with the same files from the npm registry
    (``npm pack``). Packages already in the cache are skipped.

    Args:
        cache_dir: the cache (default: Solara's ``proxy_cache_dir``).
        npm: the npm command.
        timeout: seconds allowed for ``npm pack``.

    Returns:
        The packages that were fetched (empty when all were there).

    Raises:
        RuntimeError: npm is missing or ``npm pack`` failed.
    """
    cache = Path(cache_dir) if cache_dir is not None else _proxy_cache_dir()
    missing = [package for package in page_assets() if not (cache / package).is_dir()]
    if not missing:
        return []
    command = shutil.which(npm)
    if command is None:
        raise RuntimeError(
            f"npm is not installed; cannot fetch the page's assets {missing} into {cache}"
        )
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [command, "pack", *missing, "--pack-destination", scratch, "--json", "--silent"],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=scratch,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm pack {' '.join(missing)} failed: {result.stderr.strip()}")
        names = {
            f"{entry['name']}@{entry['version']}": entry["filename"]
            for entry in json.loads(result.stdout)
        }
        for package in missing:
            target = cache / package
            unpacked = Path(scratch) / "unpacked" / package
            with tarfile.open(Path(scratch) / names[package]) as archive:
                archive.extractall(unpacked, filter="data")
            # npm tarballs hold the files under one top folder (usually "package/")
            (top,) = [p for p in unpacked.iterdir() if p.is_dir()]
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(f".{target.name}.tmp")
            shutil.rmtree(staged, ignore_errors=True)
            shutil.move(top, staged)
            os.replace(staged, target)
    return missing


def prepare_assets() -> list[str]:
    """:func:`fetch_assets`, with a failure reported as a warning (Solara then tries its CDN)."""
    try:
        fetched = fetch_assets()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        warnings.warn(f"page assets not fetched ({error}); Solara will use its CDN", stacklevel=2)
        return []
    if fetched:
        print(f"fetched the page's assets: {', '.join(fetched)}", file=sys.stderr)
    return fetched


def server_environment() -> dict[str, str]:
    """The environment for ``solara run``: this one, without Solara's usage telemetry.

    Torch gets one thread unless ``OMP_NUM_THREADS`` says otherwise: the page's soups are small,
    and a second spinning thread only takes a core from the browser.
    """
    return {
        "OMP_NUM_THREADS": "1",
        **os.environ,
        "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False",
    }


def serve(command: list[str], env: dict[str, str]) -> int:
    """Run the server ``command`` in a process group of its own until it ends; SIGTERM or
    SIGINT to this process ends the whole group (``solara run`` and anything it started).

    Returns the server's exit code, or 128 + the signal's number when a signal ended it.
    """
    server = subprocess.Popen(command, env=env, start_new_session=True)
    received: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            code = server.wait()
        finally:
            if server.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()
            with contextlib.suppress(ProcessLookupError):  # anything the server left behind
                os.killpg(server.pid, signal.SIGKILL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 + received[0] if received else code


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the live view with ``solara run`` (blocks until interrupted); returns its exit code.

    First makes sure the page's browser assets are in Solara's cache (:func:`fetch_assets`);
    if that fails, Solara falls back to its CDN. Unknown arguments go on to ``solara run``.
    With a configuration file, every page shows (and Reset rebuilds) the soup it describes.
    """
    parser = argparse.ArgumentParser(
        prog="chemistry viz", description="Serve the live view of a soup in the browser."
    )
    parser.add_argument(
        "config",
        nargs="?",
        type=Path,
        metavar="CONFIG.toml",
        help="show the soup of this configuration file (default: the page's Fig 12 soup)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    parser.add_argument(
        "--no-open", dest="open", action="store_false", help="do not open a browser"
    )
    arguments, rest = parser.parse_known_args(argv)
    env = server_environment()
    if arguments.config is not None:
        from chemistry.config import load_config

        load_config(arguments.config).build()  # a bad file fails here, with the config's message
        env[CONFIG_VARIABLE] = str(arguments.config.resolve())
    prepare_assets()
    command = [
        sys.executable, "-m", "solara", "run", "chemistry.viz:Page",
        "--host", arguments.host, "--port", str(arguments.port),
        "--open" if arguments.open else "--no-open", *rest,
    ]  # fmt: skip
    return serve(command, env)


if __name__ == "__main__":
    sys.exit(main())
