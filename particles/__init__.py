"""Particles: small neural networks as rows of batched weight tensors, and the pure math on them.

Everything here is batched over a leading particle axis (``w: [batch, num_weights]``) and runs on
any device and dtype. The ``Particle`` Mesa agent is a thin handle on one row of a ``WeightBank``.
"""

from particles.agent import Particle
from particles.architectures import (
    ACTIVATIONS,
    ARCHITECTURES,
    Aggregating,
    Architecture,
    FeedForward,
    Fourier,
    Recurrent,
    Weightwise,
    position_features,
)
from particles.bank import WeightBank
from particles.classification import (
    Status,
    classify,
    classify_with_error,
    count_statuses,
    fixpoint_error,
    self_apply,
    self_prediction_loss,
)
from particles.measures import add_noise, distance
from particles.presets import PRESETS, Preset, preset
from particles.quine import Quine
from particles.quine_training import (
    QUINE_OPTIMIZERS,
    QuineRun,
    TaskData,
    load_task,
    regenerate_quine,
    schedule,
    train_quine,
)
from particles.training import MODES, TrainResult, gradient, learn, loss, self_train, train

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "MODES",
    "PRESETS",
    "QUINE_OPTIMIZERS",
    "Aggregating",
    "Architecture",
    "FeedForward",
    "Fourier",
    "Particle",
    "Preset",
    "Quine",
    "QuineRun",
    "Recurrent",
    "Status",
    "TaskData",
    "TrainResult",
    "WeightBank",
    "Weightwise",
    "add_noise",
    "classify",
    "classify_with_error",
    "count_statuses",
    "distance",
    "fixpoint_error",
    "gradient",
    "learn",
    "load_task",
    "loss",
    "position_features",
    "preset",
    "regenerate_quine",
    "schedule",
    "self_apply",
    "self_prediction_loss",
    "self_train",
    "train",
    "train_quine",
]
