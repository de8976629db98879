"""EventBatch keeps its columns as given (a private copy), EventBatches record as one step, and
the event log encodes data columns as json.dumps of their scalars would, value by value."""

from __future__ import annotations

import json

import numpy as np
import torch

from chemistry.event_log import EventLog, _encoded_column, scalar
from interactions import Event, EventBatch, EventBatches, EventKind
from particles import Weightwise
from particles.bank import WeightBank


def test_event_batch_copies_its_columns():
    uids = torch.tensor([5, 6, -1])
    flags = np.array([None, True, None], dtype=object)
    batch = EventBatch(3, EventKind.ATTACK, uids, torch.tensor([1, 2, 3]), columns={"o": flags})
    uids[0], flags[0] = 99, False  # the caller reuses its buffers
    assert list(batch) == [
        Event(3, EventKind.ATTACK, 5, 1),
        Event(3, EventKind.ATTACK, 6, 2, data={"o": True}),
        Event(3, EventKind.ATTACK, None, 3),
    ]


def test_event_batches_are_one_step_with_each_batch_keeping_its_data():
    deaths = EventBatch(2, EventKind.DEATH, targets=[4, 7])
    births = EventBatch(
        2, EventKind.BIRTH, children=[8, 9], data={"architecture": "ww"}, columns={"node": [0, 1]}
    )
    log = EventLog()
    log.record(EventBatches([deaths, EventBatches([births])]))
    log.record(EventBatch(3, EventKind.DEATH, targets=[8]))
    assert log.columns()["step"].tolist() == [0, 0, 0, 0, 1]
    assert list(log) == [
        Event(2, EventKind.DEATH, None, 4),
        Event(2, EventKind.DEATH, None, 7),
        Event(2, EventKind.BIRTH, None, None, 8, {"architecture": "ww", "node": 0}),
        Event(2, EventKind.BIRTH, None, None, 9, {"architecture": "ww", "node": 1}),
        Event(3, EventKind.DEATH, None, 8),
    ]
    assert EventBatches([deaths]) == list(deaths)
    assert len(EventBatches([deaths, births])) == 4


def test_data_columns_are_encoded_as_json_dumps_of_each_value_would():
    for values in (
        [None, True, False, None],
        np.array([3, -1, 12]),
        torch.tensor([True, False]),
        [1, "a", 2.5, None, [1, 2]],
        [None, None],
    ):
        rows, texts = _encoded_column(values)
        listed = values.tolist() if hasattr(values, "tolist") else list(values)
        expected = [(i, json.dumps(scalar(v))) for i, v in enumerate(listed) if v is not None]
        assert list(zip(rows.tolist(), list(texts), strict=True)) == expected


def test_bank_hands_out_rows_last_freed_first():
    """The free rows are a stack: worked by hand for capacity 3 and a growth to 6."""
    bank = WeightBank(Weightwise(), capacity=3)
    weights = torch.zeros(2, Weightwise().num_weights)
    assert bank.allocate(weights, [10, 11]).tolist() == [0, 1]
    bank.release(torch.tensor([1, 0]))
    assert bank.allocate(weights, [12, 13]).tolist() == [0, 1]  # 0 was freed last
    assert bank.allocate(weights, [14, 15]).tolist() == [2, 3]  # grows to 6: 3, 4, 5 new
    assert bank.free_rows().tolist() == [5, 4]
    assert bank.state_dict()["free"].tolist() == [5, 4]
    assert len(bank) == 4
