"""Bad input raises ValueError naming the argument and the value, and never modifies the inputs."""

from __future__ import annotations

import math

import pytest
import torch

import particles as pt

WW, AGG, RNN, FFT = pt.Weightwise(), pt.Aggregating(), pt.Recurrent(), pt.Fourier()
AGG16 = pt.Aggregating(aggregates=16)  # needs targets with >= 16 weights; ww has 14
FFT15 = pt.Fourier(aggregates=15)


@pytest.fixture
def data():
    gen = torch.Generator().manual_seed(100)

    def rows(n, r):
        return torch.randn((n, r), generator=gen, dtype=torch.float64)

    d = {
        "ww": rows(3, 14),
        "ww2": rows(2, 14),
        "agg": rows(3, 20),
        "rnn": rows(3, 17),
        "fft": rows(3, 20),
        "agg16": rows(3, AGG16.num_weights),
        "fft15": rows(3, FFT15.num_weights),
        "bad": rows(3, 13),
        "x": rows(15, 4).reshape(3, 5, 4),
        "y": rows(15, 1).reshape(3, 5, 1),
        "flag": torch.zeros(2, dtype=torch.bool),
        "ints": torch.zeros(3, 14, dtype=torch.long),
    }
    d["ww"][1, 3] = math.nan  # failing calls must not touch NaN rows either
    return d


TRAIN = {"steps": 1, "lr": 0.1}

CASES = {
    # shapes and batch sizes
    "apply_w_shape": (lambda d: WW.apply(d["bad"], WW, d["ww"]), ("w", "[3, 13]")),
    "apply_target_shape": (lambda d: WW.apply(d["ww"], WW, d["bad"]), ("target_w", "[3, 13]")),
    "apply_batch": (lambda d: WW.apply(d["ww"], WW, d["ww2"]), ("target_w", "2", "3")),
    "apply_rnn_batch": (lambda d: RNN.apply(d["rnn"], WW, d["ww2"]), ("target_w", "2", "3")),
    "apply_agg_batch": (lambda d: AGG.apply(d["agg"], WW, d["ww2"]), ("target_w", "2", "3")),
    "apply_fft_wrong_target": (lambda d: FFT.apply(d["fft"], RNN, d["agg"]), ("target_w", "20")),
    "apply_w_not_tensor": (lambda d: WW.apply(d["ww"].tolist(), WW, d["ww"]), ("w", "list")),
    "apply_w_integer": (lambda d: WW.apply(d["ints"], WW, d["ww"]), ("w", "int64")),
    "apply_target_not_arch": (lambda d: WW.apply(d["ww"], "ww", d["ww"]), ("target", "str")),
    "forward_x_shape": (lambda d: WW.forward(d["ww"], d["x"][..., :3]), ("x", "[3, 5, 3]")),
    "fixpoint_error_shape": (lambda d: pt.fixpoint_error(WW, d["bad"]), ("w", "[3, 13]")),
    "self_prediction_shape": (lambda d: pt.self_prediction_loss(AGG, d["bad"]), ("w", "[3, 13]")),
    "self_apply_shape": (lambda d: pt.self_apply(RNN, d["ww"]), ("w", "[3, 14]")),
    "classify_shape": (lambda d: pt.classify(FFT, d["ww"]), ("w", "[3, 14]")),
    "self_train_shape": (lambda d: pt.self_train(AGG, d["ww"], **TRAIN), ("w", "[3, 14]")),
    "learn_shape": (lambda d: pt.learn(WW, d["agg"], AGG, d["agg"], **TRAIN), ("w", "[3, 20]")),
    "learn_teacher_shape": (lambda d: pt.learn(WW, d["ww"], AGG, d["ww"], **TRAIN), ("[3, 14]",)),
    "learn_batch": (lambda d: pt.learn(WW, d["ww"], WW, d["ww2"], **TRAIN), ("2", "3")),
    "train_xy": (lambda d: pt.train(WW, d["ww"], d["x"], d["y"][:, :4], **TRAIN), ("[3, 4, 1]",)),
    "train_x_batch": (
        lambda d: pt.train(WW, d["ww2"], d["x"][:2], d["y"], **TRAIN),
        ("x", "y", "[3, 5, 1]"),
    ),
    "distance_shapes": (lambda d: pt.distance(d["ww"], d["ww2"]), ("[3, 14]", "[2, 14]")),
    "classify_flag_shape": (
        lambda d: pt.classify(WW, d["ww"], divergent=d["flag"]),
        ("divergent", "[2]"),
    ),
    "classify_flag_dtype": (
        lambda d: pt.classify(WW, d["ww"], divergent=d["ww"][:, 0]),
        ("divergent", "float64"),
    ),
    "momentum_velocity_shape": (
        lambda d: pt.self_train(
            WW, d["ww"], momentum=0.5, momentum_reset="never", velocity=d["ww2"], **TRAIN
        ),
        ("velocity", "2"),
    ),
    # targets too small for b
    "agg_target_too_small": (lambda d: AGG16.apply(d["agg16"], WW, d["ww"]), ("14", "16")),
    "fft_target_too_small": (lambda d: FFT15.apply(d["fft15"], WW, d["ww"]), ("14", "15")),
    "agg_samples_too_small": (lambda d: AGG16.samples(WW, d["ww"]), ("14", "16")),
    "fft_samples_too_small": (lambda d: FFT15.samples(WW, d["ww"]), ("14", "15")),
    "agg_learn_too_small": (
        lambda d: pt.learn(AGG16, d["agg16"], WW, d["ww"], **TRAIN),
        ("14", "16"),
    ),
    # numbers and choices
    "steps_negative": (lambda d: pt.self_train(WW, d["ww"], steps=-1, lr=0.1), ("steps", "-1")),
    "steps_float": (lambda d: pt.self_train(AGG, d["agg"], steps=1.5, lr=0.1), ("steps", "1.5")),
    "lr_zero": (lambda d: pt.self_train(WW, d["ww"], steps=1, lr=0.0), ("lr", "0.0")),
    "lr_negative": (lambda d: pt.self_train(RNN, d["rnn"], steps=1, lr=-0.5), ("lr", "-0.5")),
    "lr_nan": (lambda d: pt.self_train(WW, d["ww"], steps=1, lr=math.nan), ("lr", "nan")),
    "lr_inf": (lambda d: pt.self_train(WW, d["ww"], steps=1, lr=math.inf), ("lr", "inf")),
    "learn_lr_zero": (lambda d: pt.learn(AGG, d["agg"], WW, d["ww"], steps=1, lr=0), ("lr", "0")),
    "train_steps_negative": (
        lambda d: pt.train(WW, d["ww"], d["x"], d["y"], steps=-2, lr=0.1),
        ("steps", "-2"),
    ),
    "mode_unknown": (
        lambda d: pt.self_train(WW, d["ww"], mode="adam", **TRAIN),
        ("mode", "'adam'"),
    ),
    "learn_mode_unknown": (
        lambda d: pt.learn(WW, d["ww"], AGG, d["agg"], mode="batch", **TRAIN),
        ("mode", "'batch'"),
    ),
    "momentum_one": (lambda d: pt.self_train(WW, d["ww"], momentum=1.0, **TRAIN), ("momentum",)),
    "momentum_reset_unknown": (
        lambda d: pt.self_train(WW, d["ww"], momentum_reset="sometimes", **TRAIN),
        ("momentum_reset", "'sometimes'"),
    ),
    "eps_zero": (lambda d: pt.classify(WW, d["ww"], eps=0.0), ("eps", "0.0")),
    "eps_negative": (lambda d: pt.classify(AGG, d["agg"], eps=-1e-5), ("eps", "-1e-05")),
    "eps_nan": (lambda d: pt.classify(WW, d["ww"], eps=math.nan), ("eps", "nan")),
    "times_negative": (lambda d: pt.self_apply(WW, d["ww"], times=-1), ("times", "-1")),
    "metric_unknown": (lambda d: pt.distance(d["ww"], d["ww"], "euclid"), ("metric", "'euclid'")),
    "noise_unknown": (lambda d: pt.add_noise(d["ww"], 0.1, noise="gauss"), ("noise", "'gauss'")),
    "noise_scale_negative": (lambda d: pt.add_noise(d["ww"], -0.1), ("scale", "-0.1")),
    "shuffle_without_generator": (
        lambda d: pt.Aggregating(shuffle=True).apply(d["agg"], WW, d["ww"]),
        ("generator",),
    ),
    "init_n_negative": (lambda d: WW.init(-1), ("n", "-1")),
}

CONSTRUCTORS = {
    "activation": (lambda: pt.Weightwise(activation="swish"), ("activation", "'swish'")),
    "output_activation": (
        lambda: pt.Aggregating(output_activation="gelu"),
        ("output_activation", "'gelu'"),
    ),
    "rnn_activation": (lambda: pt.Recurrent(activation="swish"), ("activation", "'swish'")),
    "encoding": (lambda: pt.Weightwise(encoding="tf"), ("encoding", "'tf'")),
    "aggregation": (lambda: pt.Aggregating(aggregation="median"), ("aggregation", "'median'")),
    "fixpoint_test": (lambda: pt.Aggregating(fixpoint_test="loose"), ("fixpoint_test", "'loose'")),
    "init_scheme": (lambda: pt.Fourier(init_scheme="he"), ("init_scheme", "'he'")),
    "rnn_init_scheme": (lambda: pt.Recurrent(init_scheme="he"), ("init_scheme", "'he'")),
    "width": (lambda: pt.Weightwise(width=0), ("width", "0")),
    "depth": (lambda: pt.Recurrent(depth=-1), ("depth", "-1")),
    "aggregates": (lambda: pt.Aggregating(aggregates=0), ("aggregates", "0")),
    "fft_aggregates": (lambda: pt.Fourier(aggregates=-2), ("aggregates", "-2")),
    "bias": (lambda: pt.Weightwise(bias=1), ("bias", "1")),
    "preset": (lambda: pt.preset("keras"), ("preset", "'keras'")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_call_raises_naming_argument_and_value(case, data, unchanged, value_error):
    call, fragments = CASES[case]
    with unchanged(*data.values()), value_error(*fragments):
        call(data)


@pytest.mark.parametrize("case", list(CONSTRUCTORS))
def test_bad_option_raises_naming_option_and_value(case, value_error):
    call, fragments = CONSTRUCTORS[case]
    with value_error(*fragments):
        call()


def test_learn_errors_name_the_teacher_arguments(data, value_error):
    with value_error("teacher_w"):
        pt.learn(WW, data["ww"], WW, data["ww2"], **TRAIN)
    with value_error("teacher"):
        pt.learn(WW, data["ww"], "ww", data["ww"], **TRAIN)


def test_successful_calls_leave_inputs_unchanged(data, unchanged, generator):
    """Every public operation on the same tensors, none of them modified."""
    shuffled = pt.Aggregating(shuffle=True)
    with unchanged(*data.values()):
        for arch, key in ((WW, "ww"), (AGG, "agg"), (RNN, "rnn"), (FFT, "fft")):
            w = data[key]
            arch.apply(w, WW, data["ww"])
            arch.samples(RNN, data["rnn"])
            pt.self_apply(arch, w, times=2)
            pt.classify(arch, w)
            pt.fixpoint_error(arch, w)
            pt.self_prediction_loss(arch, w)
            for mode in ("full_batch", "per_sample"):
                pt.self_train(arch, w, steps=2, lr=0.01, mode=mode, generator=generator(1))
                pt.learn(arch, w, WW, data["ww"], steps=2, lr=0.01, mode=mode)
                pt.self_train(arch, w, steps=2, lr=0.01, mode=mode, momentum=0.5)
        shuffled.apply(data["agg"], WW, data["ww"], generator=generator(2))
        pt.train(WW, data["ww"], data["x"], data["y"], steps=2, lr=0.01, mode="per_sample")
        pt.gradient(WW, data["ww"], data["x"], data["y"])
        pt.add_noise(data["ww"], 0.1, generator=generator(3))
        pt.distance(data["ww"], data["ww"], "mim")
        pt.classify(WW, data["ww"][:2], divergent=data["flag"])


@pytest.mark.parametrize("name", ["ww", "agg", "rnn", "fft"])
def test_results_never_alias_the_inputs(name, data):
    arch = {"ww": WW, "agg": AGG, "rnn": RNN, "fft": FFT}[name]
    w = data[name]
    outputs = [
        arch.apply(w, arch, w),
        pt.self_apply(arch, w, times=0),
        pt.self_apply(arch, w, times=1),
        pt.self_train(arch, w, steps=0, lr=0.1).weights,
        pt.self_train(arch, w, steps=1, lr=0.1).weights,
        pt.learn(arch, w, arch, w, steps=1, lr=0.1).weights,
    ]
    before = w.clone()
    for out in outputs:
        out.fill_(7.0)
    assert torch.equal(w.nan_to_num(123.0), before.nan_to_num(123.0))
