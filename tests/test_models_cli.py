"""`echo-node models list|import|verify` on a data directory made in the test."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ai.models import default_registry
from ai.models.loader import sha256_file
from echo_node.cli import app
from tests.test_models import random_state, save_checkpoint

pytestmark = pytest.mark.model  # import checks each checkpoint by loading it

NAME = "echonet-lvh-amyloid"


def run(data_dir: Path, *args: str) -> tuple[int, str]:
    env = {"ECHO_NODE_DATA_DIR": str(data_dir), "ECHO_NODE_MODELS_DIR": ""}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def listed(data_dir: Path) -> dict[str, dict[str, object]]:
    code, output = run(data_dir, "models", "list", "--json")
    assert code == 0, output
    return {row["name"]: row for row in json.loads(output)}


def test_list_import_verify(tmp_path: Path) -> None:
    data = tmp_path / "data"
    before = listed(data)
    assert set(before) == {spec.name for spec in default_registry()}
    assert before[NAME]["installed"] is False
    assert before[NAME]["install"] == f"echo-node models import PATH --name {NAME}"
    code, output = run(data, "models", "list")
    assert code == 0 and NAME in output

    spec = default_registry().get(NAME)
    checkpoint = save_checkpoint(tmp_path / "downloaded.pt", random_state(spec), "model.")
    code, output = run(data, "models", "import", str(checkpoint), "--name", NAME)
    assert code == 0, output
    # Converted at import for the default backend (auto: OpenVINO on the CPU), so the first
    # study does not wait for it; the check against torch is recorded beside it.
    assert f"{NAME} converted for openvino" in output
    (record,) = (data / "models" / ".converted").glob("*.json")
    assert json.loads(record.read_text())["relative_difference"] <= 1e-4
    installed = data / "models" / spec.file
    digest = sha256_file(checkpoint)
    assert sha256_file(installed) == digest
    record = json.loads((data / "models" / f"{spec.file}.json").read_text())
    assert record["sha256"] == digest and record["name"] == NAME
    after = listed(data)
    assert after[NAME]["installed"] is True
    assert after[NAME]["sha256_source"] == "recorded at import"

    code, output = run(data, "models", "verify", "--load")
    assert code == 0, output
    assert f"{NAME}: ok" in output

    with installed.open("ab") as handle:  # the file changes after import
        handle.write(b"\0")
    code, output = run(data, "models", "verify")
    assert code == 1 and "CHANGED" in output


def test_import_refuses_a_wrong_head_and_an_unknown_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    spec = default_registry().get(NAME)
    two_logits = dataclasses.replace(spec, output_channels=2)
    wrong = save_checkpoint(tmp_path / "amyloid.pt", random_state(two_logits), "model.")
    code, output = run(data, "models", "import", str(wrong))  # name found from the file name
    assert code == 1
    assert "fc.weight is (2, 512) in the file, (1, 512) in r3d_18" in output
    assert not (data / "models" / spec.file).exists()
    unknown = save_checkpoint(tmp_path / "mystery.pt", random_state(spec))
    code, output = run(data, "models", "import", str(unknown))
    assert code == 2 and "--name" in output
    code, output = run(data, "models", "import", str(unknown), "--name", "nope")
    assert code == 2 and "no model named 'nope'" in output
    code, output = run(data, "models", "verify")
    assert code == 0 and "no model installed" in output
