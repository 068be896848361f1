"""Item 5 of issue 16: no patient data in any log line, whatever the input. The bad-input
corpus carries a marked name, ID and birth date; it goes over raw DIMSE and STOW-RS to a node
logging at DEBUG, and every line the node wrote so far (this suite's other probes included,
stderr too) is searched for them."""

from __future__ import annotations

from tests.reliability import probes
from tests.reliability.conftest import HostileNode


def test_no_log_line_carries_the_patient_data_of_bad_input(hostile_node: HostileNode) -> None:
    quarantine = hostile_node.data_dir / "quarantine"
    before = len(list(quarantine.glob("*.json")))
    probes.push_bad_inputs(hostile_node.port, hostile_node.http_port, hostile_node.token)
    # The corpus did reach the node and was refused there (so its values were read): at
    # least the four hand-made kinds of damage, over each transport.
    assert len(list(quarantine.glob("*.json"))) - before >= 8
    log = hostile_node.process.log()
    assert "instance refused and quarantined" in log
    assert probes.phi_lines(log) == []
