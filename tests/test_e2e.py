"""End to end: storescu → `echo-node serve` → quiet period → processing → Orthanc (the PACS).

Orthanc holds the SR, its TID 1500 copy, the PDF report and the overlays in the phantom's
study, and the Doppler values in the SR read back from Orthanc match the phantom's ground truth
within 5 %.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pydicom
from pydicom.filebase import DicomBytesIO

from ai.phantom.study import generate_study
from tests.conftest import DCMTK_ENV, NodeProcess, free_port, require_tool
from tests.orthanc import Orthanc, orthanc_factory  # noqa: F401
from tests.test_processing import SR_CONCEPTS, dsr_numbers, truth

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
MULTIFRAME_TRUE_COLOR_SC = "1.2.840.10008.5.1.4.1.1.7.4"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
QUIET_S = 2
# Quiet period + sweep + processing (seconds on this CPU) + delivery, with room for a busy box.
DEADLINE_S = 120


def _wait_for_results(pacs: Orthanc, node: NodeProcess, want_sc: int) -> dict[str, str]:
    """SOP Instance UID → SOP Class UID of what Orthanc holds, once the SR, its TID 1500 copy
    (both Comprehensive SR), the PDF and the SCs are in."""
    deadline = time.monotonic() + DEADLINE_S
    sop_classes: dict[str, str] = {}  # Orthanc's instance ID → SOP Class UID
    while True:
        held = {}
        for item in pacs.instances():
            if item["ID"] not in sop_classes:
                tags = pacs_get(pacs, f"/instances/{item['ID']}/simplified-tags")
                sop_classes[item["ID"]] = str(tags["SOPClassUID"])
            held[item["MainDicomTags"]["SOPInstanceUID"]] = sop_classes[item["ID"]]
        classes = list(held.values())
        if (
            classes.count(COMPREHENSIVE_SR) == 2
            and classes.count(ENCAPSULATED_PDF) == 1
            and classes.count(MULTIFRAME_TRUE_COLOR_SC) >= want_sc
        ):
            return held
        if time.monotonic() > deadline:
            jobs = node.cli("jobs", "--json").stdout
            raise AssertionError(f"Orthanc holds {classes}; jobs: {jobs}\n{node.log()[-4000:]}")
        time.sleep(1)


def pacs_get(pacs: Orthanc, path: str) -> Any:
    response = httpx.get(f"{pacs.url}{path}", timeout=30)
    response.raise_for_status()
    return response.json()


def test_scanner_to_pacs(
    tmp_path: Path,
    orthanc_factory: Any,  # noqa: F811
    node_factory: type[NodeProcess],
) -> None:
    phantom = tmp_path / "phantom"
    paths = generate_study(phantom, 1, rows=480, columns=640, cycles=1, frame_rate=20.0)
    pacs: Orthanc = orthanc_factory().start()
    destination = pacs.dimse_destination("pacs").model_dump(exclude_none=True)
    node = node_factory(
        tmp_path / "data",
        free_port(),
        {
            "process_enabled": "true",
            "destinations": json.dumps([destination]),
            "stable_after_s": str(QUIET_S),
            "sweep_interval_s": "1",
            "torch_threads": "1",
        },
    ).start()

    started = time.monotonic()
    subprocess.run(
        [require_tool("storescu"), "-xy", "-aec", "ECHONODE", "127.0.0.1", str(node.port)]
        + [str(p) for p in paths],
        env=DCMTK_ENV,
        check=True,
        capture_output=True,
        timeout=120,
    )
    held = _wait_for_results(pacs, node, want_sc=2)
    elapsed = time.monotonic() - started
    assert elapsed >= QUIET_S  # the node waited for the study to go quiet

    study_uid = truth(phantom, "plax")["study_instance_uid"]
    reports = {
        pydicom.dcmread(DicomBytesIO(pacs.file(uid)))
        .ContentTemplateSequence[0]
        .TemplateIdentifier: uid
        for uid, cls in held.items()
        if cls == COMPREHENSIVE_SR
    }
    assert set(reports) == {"5200", "1500"}  # the echo SR and its copy for viewers
    sr_uid = reports["5200"]
    sr = pydicom.dcmread(DicomBytesIO(pacs.file(sr_uid)))
    assert sr.StudyInstanceUID == study_uid
    for uid, cls in held.items():
        if cls in (MULTIFRAME_TRUE_COLOR_SC, ENCAPSULATED_PDF, COMPREHENSIVE_SR):
            sc = pydicom.dcmread(DicomBytesIO(pacs.file(uid)), stop_before_pixels=True)
            assert sc.StudyInstanceUID == study_uid

    # The SR as Orthanc stores it, read with dsrdump.
    copy = tmp_path / "sr-from-orthanc.dcm"
    copy.write_bytes(pacs.file(sr_uid))
    numbers = dsr_numbers(copy)
    expected = {**truth(phantom, "tr_cw")["expected"], **truth(phantom, "mv_pw")["expected"]}
    for key, (concept, factor) in SR_CONCEPTS.items():
        value, _unit = numbers[concept]
        want = expected[key]["value"] * factor
        assert value > 0 and abs(value - abs(want)) <= 0.05 * abs(want), (key, value, want)

    # The node's record agrees: one done job, every delivery sent.
    jobs = json.loads(node.cli("jobs", "--json").stdout)
    assert [job["state"] for job in jobs] == ["done"], jobs
    detail = json.loads(node.cli("jobs", "show", str(jobs[0]["id"]), "--json").stdout)
    states = {d["state"] for o in detail["outputs"] for d in o["deliveries"]}
    assert states == {"sent"}, detail["outputs"]
    assert node.stop() == 0
