"""The experiments of the paper (SPEC §7), each runnable with ``chemistry reproduce NAME``."""

from chemistry.experiments import (
    cloning,
    mixed,
    quine,
    self_application,
    self_training,
    soups,
)
from chemistry.experiments.base import Claim, Context, Experiment, Outcome, run_experiment

EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment
    for module in (self_application, self_training, cloning, mixed, soups, quine)
    for experiment in module.EXPERIMENTS
}

__all__ = ["EXPERIMENTS", "Claim", "Context", "Experiment", "Outcome", "run_experiment"]
