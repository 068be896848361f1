"""ai.analyze and `echo-node analyze`: decode → view → pipelines, on the phantom and real files."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from click.testing import Result
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from ai.analyze import analyze
from ai.clip import Clip
from ai.findings import PipelineStatus, View, ViewDecision
from ai.pipelines import pipelines_for

ECHO_NODE = Path(sys.executable).parent / "echo-node"


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ai.phantom import generate_study

    out = tmp_path_factory.mktemp("phantom")
    generate_study(out, 7, rows=240, columns=320, cycles=1, frame_rate=20, heart_rate_bpm=60)
    return out


@pytest.mark.peer
def test_every_view_has_its_pipelines_in_order_whatever_ran_before() -> None:
    """The registry imports every pipeline module itself: no call has to come first."""
    modules = {
        view: [function.__module__.rsplit(".", 1)[-1] for function in pipelines_for(view)]
        for view in ("doppler", "plax", "a4c")
    }
    assert modules == {
        "doppler": ["doppler", "doppler_neural"],
        "plax": ["plax", "measurements_2d"],
        "a4c": ["a4c", "a4c", "a4c", "measurements_2d"],
    }


def test_the_order_holds_whichever_pipeline_module_was_imported_first() -> None:
    """A test (or a notebook) that imports measurements_2d before the others must not put it
    first (a fresh interpreter: this process has imported them all already)."""
    probe = (
        "import ai.pipelines.measurements_2d, ai.pipelines.doppler_neural; "
        "from ai.pipelines import pipelines_for; "
        "print(' '.join(f.__name__ for v in ('doppler', 'a4c') for f in pipelines_for(v)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == [
        "doppler_pipeline",
        "run_doppler_neural",
        "run_a4c",
        "run_a4c_amyloid",
        "run_a4c_hcm",
        "run_measurements_2d_a4c",
    ]


def test_every_module_with_a_pipeline_is_imported_by_name() -> None:
    """ai.pipelines.all names its modules (a renamed one fails at import); a new module
    with a `@pipeline` that all.py does not name would never run."""
    from ai.pipelines.all import PIPELINE_MODULES

    package = Path(PIPELINE_MODULES[0].__file__ or "").parent
    with_pipelines = {
        path.stem for path in package.glob("*.py") if "\n@pipeline(" in path.read_text()
    }
    assert with_pipelines == {module.__name__.rsplit(".", 1)[-1] for module in PIPELINE_MODULES}


def phantom_free_clip() -> Path:
    path = get_testdata_file("US1_UNCR.dcm")
    assert path is not None
    return Path(path)


@pytest.mark.parametrize("as_dataset", [False, True])
def test_phantom_tr_end_to_end(phantom: Path, as_dataset: bool) -> None:
    path = phantom / "tr_cw.dcm"
    truth = json.loads((phantom / "tr_cw.json").read_text())
    result = analyze(pydicom.dcmread(path) if as_dataset else path)
    assert result.sop_instance_uid == truth["sop_instance_uid"]
    assert result.view.view == View.DOPPLER and result.view.doppler_mode == "CW"
    doppler, neural = result.pipelines  # the classical engine, then the models (none here)
    assert doppler.pipeline == "doppler" and doppler.status == PipelineStatus.OK
    assert neural.pipeline == "doppler_neural" and not neural.findings
    assert neural.status == PipelineStatus.MODEL_NOT_INSTALLED
    (finding,) = doppler.findings
    expected_m_s = truth["expected"]["TR_Vmax"]["value"]
    assert finding.name == "TR_Vmax"
    assert abs(abs(finding.value) / 100 - expected_m_s) <= 0.08 * expected_m_s


def test_unknown_view_is_recorded_not_processed() -> None:
    result = analyze(phantom_free_clip())
    assert result.view.view == View.UNKNOWN
    assert not result.pipelines
    assert result.message.startswith("not processed: view unknown")
    assert result.frame_count == 1


def test_a_view_without_a_pipeline_says_so() -> None:
    def a2c(clip: Clip) -> ViewDecision:
        return ViewDecision(View.OTHER, "test-classifier", 0.9, label="A2C")

    result = analyze(phantom_free_clip(), classifier=a2c)
    assert result.view.label == "A2C" and not result.pipelines
    assert "no pipeline for view 'A2C'" in result.message


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_NODE_")}
    env["ECHO_NODE_DATA_DIR"] = str(data_dir)
    return env


def _invoke(data_dir: Path, *args: str) -> Result:
    """The command in this process (the subprocess start-up with torch costs ~10 s here)."""
    from echo_node.cli import app

    # Rich wraps to COLUMNS; wide enough that names stay whole.
    env = {"ECHO_NODE_DATA_DIR": str(data_dir), "COLUMNS": "160"}
    return CliRunner().invoke(app, ["analyze", *args], env=env)


def test_cli_table(phantom: Path, tmp_path: Path) -> None:
    out = _invoke(tmp_path, str(phantom / "mv_pw.dcm"))
    assert out.exit_code == 0, out.output
    assert "view doppler (PW)" in out.output and "region:spectral" in out.output
    for name in ("MV_E", "MV_A", "MV_E_A", "cm/s", "range over beats"):
        assert name in out.output


def test_cli_unknown_view(tmp_path: Path) -> None:
    out = _invoke(tmp_path, str(phantom_free_clip()))
    assert out.exit_code == 0, out.output
    assert "view unknown" in out.output and "not processed" in out.output


@pytest.mark.peer
def test_cli_json_from_the_installed_command(phantom: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ECHO_NODE), "analyze", "--json", str(phantom / "tr_cw.dcm")],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["view"]["view"] == "doppler" and data["view"]["doppler_mode"] == "CW"
    pipeline, neural = data["pipelines"]
    assert neural["pipeline"] == "doppler_neural" and neural["status"] == "model_not_installed"
    assert pipeline["status"] == "ok"
    (finding,) = pipeline["findings"]
    assert finding["name"] == "TR_Vmax" and finding["unit"] == "cm/s" and finding["value"] < 0
    assert finding["provenance"]["name"] == "classical-doppler"
    assert len(finding["points"]) >= 2


@pytest.mark.peer
@pytest.mark.parametrize("view", ["plax", "a4c"])
def test_2d_views_reach_their_pipelines_without_weights(tmp_path: Path, view: str) -> None:
    """Phantom PLAX/A4C with View Code Sequence: routed by the code, their (neural) pipelines
    report model_not_installed with the install command, and give no value."""
    if importlib.util.find_spec(f"ai.pipelines.{view}") is None:
        pytest.skip(f"ai.pipelines.{view} not in this tree")
    from ai.phantom import generate_study

    generate_study(tmp_path, 3, rows=160, columns=200, cycles=1, frame_rate=10, view_codes=True)
    result = analyze(tmp_path / f"{view}.dcm")
    assert result.view.view == View(view) and result.view.decided_by == "ViewCodeSequence"
    assert result.pipelines and result.pipelines[0].pipeline == view
    for pipeline in result.pipelines:
        assert pipeline.status == PipelineStatus.MODEL_NOT_INSTALLED
        assert "echo-node models import" in pipeline.message and not pipeline.findings
