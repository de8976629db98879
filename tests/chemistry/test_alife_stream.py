"""The ALife phylogeny CSV computed a block at a time equals the reference output.

``tests/data/phylogeny_reference.csv`` was written by the previous, whole-log implementation
(every column read into memory, one Python row at a time) from ``synthetic_log()``; the
streamed writer must reproduce it byte for byte, whatever the block sizes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chemistry.alife import read_alife, write_alife
from chemistry.event_log import EventLog
from chemistry.genealogy import Genealogy
from chemistry.lineage import particle_table
from tests.chemistry.alife_log import synthetic_log

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "phylogeny_reference.csv"


@pytest.mark.parametrize(("block_rows", "event_rows"), [(65536, 1 << 20), (1, 1), (7, 13)])
def test_streamed_csv_equals_reference_in_memory(tmp_path, block_rows, event_rows):
    path = write_alife(
        synthetic_log(), tmp_path / "p.csv", block_rows=block_rows, event_rows=event_rows
    )
    assert path.read_bytes() == REFERENCE.read_bytes()


def test_streamed_csv_equals_reference_from_chunks_on_disk(tmp_path):
    log = synthetic_log(directory=tmp_path / "events")
    assert len(log.tables["events"]._chunks) > 20  # read back from many chunk files
    genealogy = Genealogy()
    genealogy.log = log
    path = genealogy.write_alife(tmp_path / "p.csv")
    assert path.read_bytes() == REFERENCE.read_bytes()
    again = write_alife(log, tmp_path / "q.csv", block_rows=3, event_rows=2)
    assert again.read_bytes() == REFERENCE.read_bytes()


def test_reopened_log_keeps_kinds_and_statuses(tmp_path):
    log = synthetic_log()
    log.attach(tmp_path / "events")  # attached after recording: the index carries the names
    reopened = EventLog.open(tmp_path / "events")
    assert reopened.status_names == log.status_names
    assert reopened.kind_names == log.kind_names


def test_particle_table_parents_in_recording_order_once():
    table = particle_table(synthetic_log())
    assert table.parents
    for parents in table.parents.values():
        assert len(parents) == len(set(parents))
    tree = read_alife(REFERENCE)
    for row, parents in table.parents.items():
        assert tree.nodes[int(table.uid[row])]["ancestor_list"] == parents
