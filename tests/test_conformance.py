"""docs/conformance.md is what `echo-node conformance` renders from the code: when the code
changes what the node accepts, sends, answers or writes, this fails until it is rendered again
(`echo-node conformance --out docs/conformance.md`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AllStoragePresentationContexts
from typer.testing import CliRunner

from echo_node.cli import app
from echo_node.conformance.render import render
from echo_node.dimse import contexts, store
from echo_node.results import codes
from tests.conftest import REPO, production_defaults

STATEMENT = REPO / "docs" / "conformance.md"


@pytest.fixture(scope="module", autouse=True)
def _stated_defaults() -> Iterator[None]:
    # The statement gives config/default.toml's values, not the disk floor tests run with.
    with production_defaults():
        yield


@pytest.fixture(scope="module")
def rendered() -> str:
    return render()


def test_the_committed_statement_is_what_the_code_says(rendered: str) -> None:
    assert STATEMENT.read_text(encoding="utf-8") == rendered, (
        "docs/conformance.md is out of date: run `echo-node conformance --out docs/conformance.md`"
    )


def test_its_tables_come_from_the_code(rendered: str) -> None:
    for uid in contexts.TRANSFER_SYNTAXES:
        assert f"`{uid}`" in rendered
    for context in AllStoragePresentationContexts:
        assert f"| `{context.abstract_syntax}` |" in rendered
    assert f"each of the {len(AllStoragePresentationContexts)} storage SOP classes" in rendered
    assert f"| 0x{store.OUT_OF_RESOURCES:04X} | out of resources |" in rendered
    for code in (codes.LVEF, codes.TR_VMAX, codes.ALGORITHM_NAME):
        assert f"| {code.scheme_designator} | `{code.value}` | {code.meaning} |" in rendered
    assert "{{" not in rendered


def test_a_change_in_the_code_changes_the_statement(
    rendered: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contexts, "TRANSFER_SYNTAXES", contexts.TRANSFER_SYNTAXES[1:])
    assert render() != rendered


def test_the_command_checks_a_file(tmp_path: Path, rendered: str) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["conformance", "--check", str(STATEMENT)])
    assert result.exit_code == 0, result.output
    stale = tmp_path / "conformance.md"
    stale.write_text(rendered.replace("Echo Node", "Another Node", 1), encoding="utf-8")
    result = runner.invoke(app, ["conformance", "--check", str(stale)])
    assert result.exit_code == 1 and "differs from the code" in result.output
    result = runner.invoke(app, ["conformance", "--out", str(stale)])
    assert result.exit_code == 0 and stale.read_text(encoding="utf-8") == rendered
