"""The experiments of the paper (SPEC §7), each runnable with ``chemistry reproduce NAME``."""

from chemistry.experiments import (
    cloning,
    fig12,
    fig13,
    fig14,
    learn_soup,
    mixed,
    quine,
    self_application,
    self_training,
)
from chemistry.experiments.base import Claim, Context, Experiment, Outcome, Scaled

EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment
    for module in (
        self_application,
        self_training,
        cloning,
        mixed,
        fig12,
        fig13,
        fig14,
        learn_soup,
        quine,
    )
    for experiment in module.EXPERIMENTS
}

__all__ = ["EXPERIMENTS", "Claim", "Context", "Experiment", "Outcome", "Scaled"]
