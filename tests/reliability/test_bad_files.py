"""Items 3 and 4 of issue 16: cut-off instances are refused whatever their size, an unknown VR
is a bad instance like any other (0xC000 / 409, quarantined), and fuzzed headers never crash
the association. The corpus is made here (tests/reliability/corpus.py)."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from echo_node.settings import load_settings
from storage.db import make_engine
from storage.models import Instance
from tests.reliability import corpus, probes
from tests.reliability.conftest import HostileNode

CANNOT_UNDERSTAND = 0xC000


def _indexed(node: HostileNode, sop_instance_uid: str) -> int:
    engine = make_engine(load_settings(environ=node.process.env).resolved_database_url)
    try:
        with engine.connect() as connection:
            query = select(func.count()).where(Instance.sop_instance_uid == sop_instance_uid)
            return int(connection.scalar(query) or 0)
    finally:
        engine.dispose()


def _sidecars(node: HostileNode, sop_instance_uid: str) -> list[dict[str, object]]:
    records = [
        json.loads(path.read_text()) for path in (node.data_dir / "quarantine").glob("*.json")
    ]
    return [r for r in records if r.get("sop_instance_uid_in_command") == sop_instance_uid]


def test_every_cut_is_refused_quarantined_and_never_indexed(hostile_node: HostileNode) -> None:
    instance = corpus.image()
    cuts = corpus.cuts(instance)
    statuses = [
        probes.store_raw(hostile_node.port, data, instance.sop_instance_uid) for _, data in cuts
    ]
    assert statuses == [CANNOT_UNDERSTAND] * len(cuts)
    assert _indexed(hostile_node, instance.sop_instance_uid) == 0
    sidecars = _sidecars(hostile_node, instance.sop_instance_uid)
    assert len(sidecars) == len(cuts)
    assert all(record["file"] for record in sidecars)
    # The whole instance is taken: the refusals were about the cuts.
    assert probes.store_raw(hostile_node.port, instance.dataset, instance.sop_instance_uid) == 0
    assert _indexed(hostile_node, instance.sop_instance_uid) == 1


def test_an_unknown_vr_is_refused_and_quarantined_over_dimse_and_stow(
    hostile_node: HostileNode,
) -> None:
    instance = corpus.image()
    damaged = corpus.unknown_vr(instance)
    assert probes.store_raw(hostile_node.port, damaged, instance.sop_instance_uid) == 0xC000
    (record,) = _sidecars(hostile_node, instance.sop_instance_uid)
    assert record["reason"] == "unknown VR ZZ in (0010,0010)"

    before = set((hostile_node.data_dir / "quarantine").glob("*.json"))
    answer = probes.stow(
        hostile_node.http_port, hostile_node.token, [probes.part10(instance, damaged)]
    )
    assert answer.status_code == 409
    failed = answer.json()["00081198"]["Value"][0]
    assert failed["00081197"]["Value"] == [CANNOT_UNDERSTAND]
    (new,) = set((hostile_node.data_dir / "quarantine").glob("*.json")) - before
    assert json.loads(new.read_text())["reason"] == "unknown VR ZZ in (0010,0010)"
    assert _indexed(hostile_node, instance.sop_instance_uid) == 0


def test_fuzzed_headers_get_a_status_never_an_abort(hostile_node: HostileNode) -> None:
    instance = corpus.image()
    statuses = {
        probes.store_raw(hostile_node.port, data, instance.sop_instance_uid)
        for data in corpus.fuzzed(instance, 30)
    }
    assert statuses <= {0x0000, CANNOT_UNDERSTAND}
