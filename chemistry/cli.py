"""The ``chemistry`` command line: run, resume, sweep, plot, lineage and info.

``chemistry run [CONFIG.toml]`` runs a soup (the default soup without a config file), shows a
progress bar with live class counts, and writes a run directory; ``chemistry resume RUN_DIR``
continues an interrupted run from its latest checkpoint; ``chemistry plot``, ``lineage`` and
``info`` read a run directory without re-running it. Bad input (a config error, a missing or
damaged file, an existing run directory) ends with a one-paragraph message on stderr and exit
code 2, and never damages an existing file.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import pickle
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from chemistry import __version__
from chemistry.lock import hold, holder, release_held
from chemistry.progress import ProgressBar
from chemistry.storage import stale_temporaries

# torch, Mesa, matplotlib and the configuration are imported by the commands that use them, so
# that `chemistry --help`, `--version` and most argument errors answer at once.
if TYPE_CHECKING:
    from chemistry.config import RunConfig
    from chemistry.soup import Soup

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


# ----------------------------------------------------------------------------------------------
# run


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    from chemistry.config import DTYPES, TOPOLOGIES, RunConfig
    from chemistry.soup import SCHEDULES
    from particles import ARCHITECTURES, PRESETS

    default = RunConfig.default()
    rules = {rule.type: rule.params for rule in default.rules}
    parser.add_argument(
        "config",
        nargs="?",
        type=Path,
        metavar="CONFIG.toml",
        help="configuration file (see README, 'Configuration files'); default: the default soup",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="run directory (default: runs/<config name>, or runs/soup without a config)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run directory (only once the new soup has been built)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the configuration, print it resolved as TOML and stop; writes nothing",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="import a module (or .py file) of rules of your own before reading the "
        "configuration; added to its plugins list (repeatable)",
    )
    settings = parser.add_argument_group(
        "settings", "override the configuration file (or the default soup)"
    )
    settings.add_argument(
        "--set",
        action="append",
        default=[],
        dest="settings",
        metavar="PATH=VALUE",
        help="set any key by its path, as in sweeps: epochs=50, rules.attack.chance=0.2, "
        "rules.0.pairing=single, population.0.width=3, topology.kind=ring (repeatable; "
        "applied after the other options)",
    )
    settings.add_argument(
        "--population",
        type=int,
        metavar="N",
        help=f"particles of a one-architecture soup (default {default.population[0].count})",
    )
    settings.add_argument(
        "--architecture",
        choices=sorted(ARCHITECTURES),
        help="architecture of a one-architecture soup "
        f"(default {default.population[0].architecture})",
    )
    settings.add_argument("--epochs", type=int, help=f"default {default.epochs}")
    settings.add_argument(
        "--attack",
        type=float,
        metavar="CHANCE",
        help=f"attack chance; 0 removes the rule (default {rules['attack']['chance']})",
    )
    settings.add_argument(
        "--learn", type=float, metavar="CHANCE", help="learn chance; 0 removes the rule (default 0)"
    )
    settings.add_argument("--severity", type=int, help="learn steps per learning event (default 1)")
    settings.add_argument(
        "--self-train",
        type=int,
        metavar="STEPS",
        help="self-training steps per epoch; 0 removes the rule "
        f"(default {rules['self_train']['steps']})",
    )
    settings.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help=f"training preset: lr, mode and eps of every rule (default {default.preset})",
    )
    settings.add_argument(
        "--no-respawn",
        dest="respawn",
        action="store_const",
        const=False,
        help="remove the respawn rule (keep zero and divergent particles)",
    )
    settings.add_argument(
        "--topology",
        choices=[kind for kind in TOPOLOGIES if kind not in ("disjoint_cliques", "graphml")],
        help="partner topology with default parameters (default complete)",
    )
    settings.add_argument("--seed", type=int, help=f"default {default.seed}")
    settings.add_argument("--device", help=f"torch device (default {default.device})")
    settings.add_argument("--dtype", choices=sorted(DTYPES), help=f"default {default.dtype}")
    settings.add_argument("--schedule", choices=SCHEDULES, help=f"default {default.schedule}")
    settings.add_argument(
        "--record-every",
        dest="trajectories_every",
        type=int,
        metavar="K",
        help="record weights every K epochs, 0: never (default 1)",
    )
    settings.add_argument(
        "--metrics-every", type=int, metavar="K", help="collect metrics every K epochs (default 1)"
    )
    settings.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="K",
        help=f"checkpoint every K epochs, 0: never (default {default.record.checkpoint_every})",
    )
    settings.add_argument(
        "--no-figures",
        dest="figures",
        action="store_const",
        const=False,
        help="do not draw figures (draw them later with `chemistry plot`)",
    )


OVERRIDES = (
    "population",
    "architecture",
    "epochs",
    "attack",
    "learn",
    "severity",
    "self_train",
    "preset",
    "respawn",
    "topology",
    "seed",
    "device",
    "dtype",
    "schedule",
    "trajectories_every",
    "metrics_every",
    "checkpoint_every",
    "figures",
)


def resolve_run_config(arguments: argparse.Namespace) -> RunConfig:
    """The configuration file (or the default soup) with the command-line settings applied."""
    from chemistry.config import (
        apply_overrides,
        apply_settings,
        parse_config,
        parse_setting,
        read_config_file,
    )
    from chemistry.config.plugins import import_plugin, resolve_plugin

    flags = {name: getattr(arguments, name) for name in OVERRIDES}
    source = None
    raw: dict = {}
    base = None
    if arguments.config is not None:
        raw = read_config_file(arguments.config)
        base = arguments.config.parent
        source = str(arguments.config)
        if any(value is not None for value in flags.values()):
            source += " (with the command-line settings)"
    if arguments.plugin:
        plugins = raw.get("plugins", []) if isinstance(raw.get("plugins", []), list) else []
        raw = raw | {"plugins": plugins + [resolve_plugin(p, Path.cwd()) for p in arguments.plugin]}
        if source is not None:
            source += " (with --plugin)"
    if arguments.settings and source is not None:
        source += " (with --set)"
    data = apply_overrides(raw, **flags)
    if arguments.settings:
        for plugin in data.get("plugins", []) if isinstance(data.get("plugins"), list) else []:
            import_plugin(resolve_plugin(plugin, base))  # a plugin's rules are settable paths
        data = apply_settings(data, dict(parse_setting(text) for text in arguments.settings))
    return parse_config(data, source=source, base=base)


def _print_census(soup: Soup, config: RunConfig, out: Path, written: dict[str, Path]) -> None:
    counts = soup.status_counts()
    kinds = " + ".join(f"{e.count} {e.architecture}" for e in config.population)
    print(f"soup of {len(soup)} particles ({kinds} at the start) after {soup.epoch} epochs:")
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        print(f"  {name.ljust(width)}  {count:6d}")
    print(f"self-replicators (non-zero fixpoints): {counts['FIXPOINT']}")
    from chemistry.census import turnover

    last = turnover(soup, counts)
    print(f"last epoch: {last['respawned']} respawned, {last['diverged']} diverged")
    print(f"run directory: {out}")
    for key in ("config", "metrics", "genealogy_json", "counts_figure", "lineage_figure"):
        if key in written:
            print(f"  {written[key]}")


def _advance(soup: Soup, config: RunConfig, out: Path, command: str) -> int | None:
    """Run to the configured epoch with a progress bar; returns an exit code if interrupted."""
    from chemistry.census import DivergenceWatch, turnover
    from chemistry.runs import RunDirectory, run_soup

    progress = ProgressBar(config.epochs, start=soup.epoch)
    watch = DivergenceWatch()

    def on_epoch(soup: Soup) -> None:
        counts = soup.status_counts()
        last = turnover(soup, counts)
        progress.update(soup.epoch, counts | last)
        if warning := watch.update(soup, last["diverged"]):
            progress.interrupt(f"chemistry {command}: {warning}")

    try:
        run_soup(soup, config, out, on_epoch=on_epoch)
    except KeyboardInterrupt:
        progress.close()
        entries = []
        try:
            entries = RunDirectory(out).checkpoints()
        except ValueError:
            pass
        latest = [e["epoch"] for e in entries if e["state"] == "ok"]
        hint = (
            f"; the latest checkpoint is epoch {latest[-1]}: continue with `chemistry resume {out}`"
            if latest
            else "; no checkpoint was written"
        )
        print(
            f"chemistry {command}: interrupted at epoch {soup.epoch}{hint}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    progress.close()
    return None


def run_command(arguments: argparse.Namespace) -> int:
    """Run a soup from a configuration file and/or settings, write its run directory."""
    from chemistry.runs import prepare_directory, write_config, write_run

    config = resolve_run_config(arguments)
    if arguments.dry_run:
        config.build()  # also checks what only the soup can (rules against architectures)
        print(config.to_toml(header="Resolved configuration (chemistry run --dry-run)"), end="")
        return 0
    out: Path = arguments.out
    if out is None:
        out = Path("runs") / (arguments.config.stem if arguments.config is not None else "soup")
    clear = prepare_directory(out, overwrite=arguments.overwrite)
    soup = config.build()
    clear()  # only now, with the new soup built, is an old run directory replaced
    out.mkdir(parents=True, exist_ok=True)
    write_config(config, out)
    interrupted = _advance(soup, config, out, "run")
    if interrupted is not None:
        return interrupted
    written = write_run(soup, config, out)
    _print_census(soup, config, out, written)
    return 0


# ----------------------------------------------------------------------------------------------
# resume


def _intact(directory: Path) -> bool:
    """True if the run directory has its manifest and every data file matches it."""
    from chemistry.runs import DATA_FILES, RunDirectory, RunFileError

    try:
        run = RunDirectory(directory)
        if run.manifest is None:
            return False
        for name in DATA_FILES:
            run.verify(name)
    except RunFileError:
        return False
    return True


def resume_command(arguments: argparse.Namespace) -> int:
    """Continue a run from its latest checkpoint and write its run directory."""
    from chemistry.runs import (
        MANIFEST_NAME,
        RunFileError,
        claim_run,
        resume_run,
        write_config,
        write_run,
    )

    out: Path = arguments.run_dir
    claim_run(out)  # one writer: refuses a live run; removes a killed writer's temporary files
    soup, config = resume_run(out, epoch=arguments.checkpoint, epochs=arguments.epochs)
    manifest = out / MANIFEST_NAME
    if arguments.epochs is not None:
        if arguments.epochs < soup.epoch:
            raise RunFileError(
                f"--epochs {arguments.epochs} is before the checkpoint's epoch {soup.epoch}; "
                "a run cannot go back"
            )
        config = dataclasses.replace(config, epochs=arguments.epochs)
    if soup.epoch >= config.epochs and _intact(out):
        print(
            f"run {out} is complete at epoch {soup.epoch} of {config.epochs}; nothing to do "
            "(pass --epochs N to run it further)"
        )
        return 0
    print(f"resuming {out} at epoch {soup.epoch} of {config.epochs}", file=sys.stderr)
    manifest.unlink(missing_ok=True)  # the run is in progress again
    write_config(config, out)
    interrupted = _advance(soup, config, out, "resume")
    if interrupted is not None:
        return interrupted
    written = write_run(soup, config, out)
    _print_census(soup, config, out, written)
    return 0


# ----------------------------------------------------------------------------------------------
# sweep


def sweep_command(arguments: argparse.Namespace) -> int:
    """Run every point of a sweep file not yet done, then write results.csv and summary.png.

    Returns 0 when every point is ok, 1 when some failed (each named with its error).
    """
    from chemistry.sweep import SweepError, load_sweep, run_sweep

    sweep = load_sweep(arguments.sweep)
    if arguments.workers is not None and arguments.workers < 1:
        raise SweepError(f"--workers {arguments.workers} is not allowed; it must be >= 1")
    if arguments.address is not None and arguments.backend != "ray":
        raise SweepError("--address names a Ray cluster; it needs --backend ray")
    points = sweep.expand()
    if arguments.dry_run:
        print(
            f"{len(points)} points ({len(sweep.combinations())} settings x {len(sweep.seeds)} "
            "seeds):"
        )
        for point in points:
            state = f"  INVALID: {point.error}" if point.error else ""
            print(f"  points/{point.id}{state}")
        return 0
    out: Path = arguments.out or Path("sweeps") / arguments.sweep.stem
    width = len(str(len(points)))

    def progress(result: dict, finished: int, total: int) -> None:
        if result["status"] == "ok":
            line = f"ok      {result['id']} ({result['action']}, {result['seconds']:.1f} s)"
        else:
            line = f"FAILED  {result['id']}: {result['error']}"
        print(f"sweep [{finished:{width}d}/{total}] {line}", file=sys.stderr, flush=True)

    where = arguments.backend + (f" at {arguments.address}" if arguments.address else "")
    print(f"sweep of {len(points)} points into {out} ({where})", file=sys.stderr)
    try:
        report = run_sweep(
            sweep,
            out,
            backend=arguments.backend,
            workers=arguments.workers,
            address=arguments.address,
            threads=arguments.threads,
            progress=progress,
        )
    except KeyboardInterrupt:
        print(
            f"\nchemistry sweep: interrupted; finished points are kept: run the same command "
            f"again to continue (`chemistry sweep {arguments.sweep} --out {out}`)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    ok = len(report.results) - len(report.failed)
    print(
        f"{ok} of {len(report.results)} points ok ({report.count('ran')} ran, "
        f"{report.count('resumed')} resumed, {report.count('skipped')} done before), "
        f"{len(report.failed)} failed"
    )
    for result in report.failed:
        print(f"  failed: points/{result['id']}: {result['error']}")
    print(f"results: {report.results_path}")
    if report.summary_path is not None:
        print(f"summary: {report.summary_path}")
    return 1 if report.failed else 0


# ----------------------------------------------------------------------------------------------
# plot, lineage, info


def plot_command(arguments: argparse.Namespace) -> int:
    """Re-draw the figures of a run directory from its files."""
    from chemistry.runs import RunDirectory, draw_figures

    run = RunDirectory(arguments.run_dir)
    hold(run.path, advice="draw its figures once it has finished")  # figures/ is written
    columns = run.metrics()
    trajectories = run.trajectories()
    genealogy = run.genealogy()
    written = draw_figures(run.path, columns, trajectories, genealogy.graph)
    for path in written.values():
        print(path)
    return 0


def lineage_command(arguments: argparse.Namespace) -> int:
    """Print a particle's lineage and draw it."""
    from chemistry.plots import plot_lineage
    from chemistry.runs import RunDirectory, RunFileError, default_particle, describe_lineage

    run = RunDirectory(arguments.run_dir)
    hold(run.path, advice="draw the lineage once it has finished")
    genealogy = run.genealogy()
    if arguments.particle is None:
        uid, reason = default_particle(genealogy)
        print(f"particle {uid}: {reason}")
    else:
        uid = arguments.particle
    print(describe_lineage(genealogy, uid))
    epoch = arguments.epoch
    try:
        part = genealogy.lineage_graph(uid, epoch)
    except ValueError as error:
        raise RunFileError(f"--epoch {epoch}: {error}") from None
    when = "" if epoch is None else f" as of epoch {epoch}"
    path = plot_lineage(
        part,
        run.path / "figures" / f"lineage_{uid}.png",
        title=f"Particle {uid}{when}: what shaped it and what it shaped "
        f"({part.number_of_nodes()} particles)",
        highlight=uid,
    )
    print(f"figure: {path}")
    return 0


def info_command(arguments: argparse.Namespace) -> int:
    """Describe a run directory: configuration, progress, final counts, files, checkpoints."""
    from chemistry.runs import (
        DATA_FILES,
        MANIFEST_NAME,
        RunDirectory,
        RunFileError,
        final_counts,
        format_bytes,
    )
    from particles.classification import Status

    run = RunDirectory(arguments.run_dir)
    config = run.config()
    manifest = run.manifest
    checkpoints = run.checkpoints()
    good = [entry["epoch"] for entry in checkpoints if entry["state"] == "ok"]
    running = holder(run.path)
    problems = []
    for name in DATA_FILES if running is None else ():  # a live writer replaces files
        if (run.path / name).exists():
            try:
                run.verify(name)
            except RunFileError as error:
                problems.append(str(error))
    columns = {}
    if (run.path / "metrics.csv").exists() and not any("metrics.csv" in p for p in problems):
        columns = run.metrics()
    if running is not None:
        state = f"running (process {running or '?'} holds its lock); files may change"
    elif manifest is not None:
        state = f"finished, {manifest.get('epoch')} of {config.epochs} epochs"
        if not problems:
            state += f" (data files match {MANIFEST_NAME})"
    elif good:
        state = (
            f"not finished: latest checkpoint at epoch {good[-1]} of {config.epochs}; "
            f"continue with `chemistry resume {run.path}`"
        )
    else:
        state = "not finished, no checkpoint"
    print(f"run directory {run.path}: {state}")
    for line in config.summary():
        print(f"  {line}")
    counts = final_counts(columns)
    if counts:
        print(f"final counts (epoch {int(counts['epoch'])}):")
        # "particles": the living particles ("population" in run directories before 0.2)
        living = "particles" if "particles" in counts else "population"
        names = [living] + [status.name.lower() for status in Status]
        width = max(len(name) for name in names)
        for name in names:
            label = name if name == living else name.upper()
            print(f"  {label.ljust(width)}  {int(counts[name]):6d}")
        print(f"  self-replicators (non-zero fixpoints): {int(counts['fixpoint'])}")
    print("files:")
    for name, size in run.files():
        if not name.startswith("checkpoints/"):
            print(f"  {name.ljust(32)} {format_bytes(size):>9}")
    if checkpoints:
        bad = [f"epoch {e['epoch']} {e['state']}" for e in checkpoints if e["state"] != "ok"]
        epochs = ", ".join(str(entry["epoch"]) for entry in checkpoints)
        print(
            f"checkpoints: {len(checkpoints)} (epochs {epochs}); "
            + ("all verified" if not bad else "PROBLEMS: " + ", ".join(bad))
        )
    else:
        print("checkpoints: none")
    if running is None and (stale := stale_temporaries(run.path)):
        names = ", ".join(str(p.relative_to(run.path)) for p in stale)
        print(
            f"stale temporary files of a killed writer: {names} (`chemistry resume` removes them)"
        )
    if problems:
        raise RunFileError(" ".join(problems))
    return 0


# ----------------------------------------------------------------------------------------------
# The parser and main


def rules_command(arguments: argparse.Namespace) -> int:
    """List every rule a configuration can name, with its keys, defaults and meaning."""
    from chemistry.config import known_rules, rule_parameters, toml_value
    from chemistry.config.plugins import import_plugin, resolve_plugin

    for plugin in arguments.plugin:
        import_plugin(resolve_plugin(plugin, Path.cwd()))
    for name, cls in known_rules().items():
        where = "" if cls.__module__.startswith("interactions.") else f"  ({cls.__module__})"
        print(f"{name}: {cls.__qualname__}{where}")
        kinds = ", ".join(f"{k} ({v})" for k, v in cls.event_kinds.items())
        if kinds:
            print(f"  event kinds: {kinds}")
        for parameter in rule_parameters(cls):
            if parameter.required:
                default = "required"
            elif parameter.default is None:
                default = "default: the soup's"
            else:
                default = f"default {toml_value(parameter.default)}"
            print(f"  {parameter.name} ({parameter.allowed()}; {default}): {parameter.doc}")
    return 0


def _viz_command(arguments: argparse.Namespace) -> int:
    """Serve the live view; imported lazily so the other commands need no Solara."""
    try:
        from chemistry.viz import main as viz_main
    except ImportError as error:  # the viz extra is missing: say so in one paragraph
        print(f"chemistry viz: error: {_one_paragraph(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return viz_main(arguments.viz_args)


REPRODUCE_HELP = "reproduce experiments of the paper (results.csv, figures, REPORT.md)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``chemistry`` command.

    With ``command``, only that command's arguments are built in full; ``run`` and
    ``reproduce``, whose arguments need the configuration and the experiments (and so torch),
    are otherwise just named with their help. None: every command in full.
    """

    def full(name: str) -> bool:
        return command is None or command == name

    parser = argparse.ArgumentParser(
        prog="chemistry",
        description="An artificial chemistry of self-replicating neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: one; particles are tiny, and more threads stall on a "
        "shared CPU; results are bit-reproducible at a fixed thread count)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run a soup and write its run directory",
        description="Run a soup (from CONFIG.toml, or the default soup) and write its run "
        "directory. Settings given as options override the configuration file.",
    )
    if full("run"):
        _add_run_arguments(run)
    run.set_defaults(handler=run_command)

    resume = commands.add_parser(
        "resume",
        help="continue a run from its latest checkpoint",
        description="Continue a run from its latest valid checkpoint to its configured epochs "
        "and write its run directory as an uninterrupted run would.",
    )
    resume.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    resume.add_argument(
        "--epochs", type=int, help="run until this epoch instead of the configured one"
    )
    resume.add_argument(
        "--checkpoint",
        type=int,
        metavar="EPOCH",
        help="start from the checkpoint of this epoch (default: the latest)",
    )
    resume.set_defaults(handler=resume_command)

    plot = commands.add_parser(
        "plot",
        help="re-draw the figures of a run directory",
        description="Re-draw figures/ from metrics.csv, trajectories.npz and genealogy.json.",
    )
    plot.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    plot.set_defaults(handler=plot_command)

    lineage = commands.add_parser(
        "lineage",
        help="summarise a particle's lineage and draw it",
        description="Print a particle's birth and death, parents, children, attackers, attack "
        "chain and self-replicating descendants, and draw figures/lineage_<ID>.png.",
    )
    lineage.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    lineage.add_argument(
        "--particle",
        type=int,
        metavar="ID",
        help="particle id (default: the root of the most successful lineage)",
    )
    lineage.add_argument(
        "--epoch",
        type=int,
        metavar="E",
        help="draw its ancestry and descendants as of epoch E (default: its last version)",
    )
    lineage.set_defaults(handler=lineage_command)

    sweep = commands.add_parser(
        "sweep",
        help="run a parameter sweep: many runs of one base configuration",
        description="Run every point (a base configuration with overrides, and a seed) of a "
        "sweep file as a normal run directory under OUT/points/, then write OUT/results.csv and "
        "OUT/summary.png. Run it again to continue a sweep that stopped: finished points are "
        "not run again, interrupted ones continue from their checkpoints. Exit code 1 when some "
        "points failed (each is named with its error; the others still run).",
    )
    sweep.add_argument("sweep", type=Path, metavar="SWEEP.toml", help="the sweep file")
    sweep.add_argument(
        "--out", type=Path, metavar="DIR", help="sweep directory (default: sweeps/<sweep name>)"
    )
    sweep.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool on this machine (default); ray: Ray tasks",
    )
    sweep.add_argument(
        "--address",
        metavar="ADDRESS",
        help="Ray cluster to use: auto, HOST:PORT or ray://HOST:PORT (default: start a local "
        "Ray instance); only with --backend ray",
    )
    sweep.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="points run at once: processes of the pool or CPUs of a local Ray instance "
        f"(default: the machine's cores, {os.cpu_count()})",
    )
    sweep.add_argument(
        "--dry-run", action="store_true", help="check the sweep file, list its points and stop"
    )
    sweep.set_defaults(handler=sweep_command)

    if full("reproduce"):
        from chemistry.experiments.command import add_reproduce_parser

        add_reproduce_parser(commands, help=REPRODUCE_HELP)
    else:
        commands.add_parser("reproduce", help=REPRODUCE_HELP)

    viz = commands.add_parser(
        "viz",
        help="serve the live view in the browser (chemistry viz --help)",
        add_help=False,
        prefix_chars="\0",  # every argument goes to chemistry.viz.main untouched
    )
    viz.add_argument("viz_args", nargs="*")
    viz.set_defaults(handler=_viz_command)

    rules = commands.add_parser(
        "rules",
        help="list the rules a configuration can name, with their keys",
        description="List every rule (built in, from --plugin, from installed packages' "
        "chemistry.rules entry points) with its keys: type, default and meaning, read off the "
        "rule's constructor.",
    )
    rules.add_argument(
        "--plugin", action="append", default=[], metavar="MODULE_OR_FILE", help="import first"
    )
    rules.set_defaults(handler=rules_command)

    info = commands.add_parser(
        "info",
        help="describe a run directory",
        description="Show a run's configuration, progress, final counts, files and checkpoints.",
    )
    info.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    info.set_defaults(handler=info_command)
    return parser


def _one_paragraph(message: str) -> str:
    return " ".join(message.split())


def _command_word(argv: list[str]) -> str:
    """The command word of ``argv`` ("" without one): the first word that is neither an option
    of the ``chemistry`` parser itself nor its value."""
    words = iter(argv)
    for word in words:
        if word == "--threads":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return ""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``chemistry`` console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_word(argv))
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    command = arguments.command
    from chemistry.threads import DEFAULT_THREADS, torch_threads

    if arguments.threads is None:
        arguments.threads = DEFAULT_THREADS
    try:
        with torch_threads(arguments.threads):
            return arguments.handler(arguments)
    except (ValueError, pickle.UnpicklingError, zipfile.BadZipFile, csv.Error, EOFError) as error:
        message = str(error) or type(error).__name__
    except BrokenPipeError:  # e.g. `chemistry info RUN | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        message = f"{error.strerror or error}{where}"
    except KeyboardInterrupt:
        print(f"\nchemistry {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        release_held()
    print(f"chemistry {command}: error: {_one_paragraph(message)}", file=sys.stderr)
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
