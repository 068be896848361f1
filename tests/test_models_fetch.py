"""`echo-node models fetch` against a local HTTP server standing in for the publishers
(tests/publisher.py: real HTTP on loopback): redirects, a 404, a connection cut and resumed, a
proxy taken from HTTP_PROXY, a wrong digest refused with nothing installed, a zip member
extracted, the size limit; then the command itself on config/models.toml's own URLs through
``models_mirror``.

The checkpoints are EchoNet-Dynamic's EF network with seeded random weights, saved the way the
publisher saves it ({"state_dict": ...}, keys prefixed module.), so installing loads it for real.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ai.models import default_registry
from ai.models.loader import sha256_file
from ai.models.registry import ModelSpec
from echo_node.cli import app
from echo_node.fetch.download import DownloadError, client, download
from echo_node.fetch.models import LEDGER, PARTIAL_DIR, FetchError, fetch_model
from tests.publisher import Publisher
from tests.test_models import random_state, save_checkpoint

pytestmark = pytest.mark.model  # install checks each checkpoint by loading it

EF = "echonet-dynamic-ef"
MEMBER = "model_data/weights/ef.pt"
LIMIT = 10**9


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    server = Publisher().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The EF network's checkpoint as the publisher releases it (about 126 MB)."""
    spec = default_registry().get(EF)
    path = tmp_path_factory.mktemp("checkpoint") / "ef.pt"
    save_checkpoint(path, random_state(spec), "module.", wrapped=True)
    return path.read_bytes()


def _zip(member: str, data: bytes, comment: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("model_data/README.txt", "other files of the archive")
        archive.writestr(member, data)
        archive.comment = comment
    return buffer.getvalue()


def _spec(url: str, **changes: str) -> ModelSpec:
    return dataclasses.replace(default_registry().get(EF), download_url=url, **changes)


# --- the download itself -----------------------------------------------------------------------


def test_a_redirect_is_followed_and_a_cut_connection_resumed(
    publisher: Publisher, tmp_path: Path
) -> None:
    data = os.urandom(3_000_000)
    publisher.files["/objects/asset"] = data
    publisher.redirects["/releases/download/v1/asset"] = "/objects/asset"
    publisher.cuts["/objects/asset"] = [1_000_000]
    with client() as http:
        got = download(
            http,
            f"{publisher.url}/releases/download/v1/asset",
            tmp_path / "asset.part",
            max_bytes=LIMIT,
            backoff_s=0,
        )
    assert got.sha256 == hashlib.sha256(data).hexdigest() and got.size == len(data)
    first, second = publisher.gets("/objects/asset")
    assert "Range" not in first.headers
    assert second.headers["Range"] == "bytes=1000000-"
    assert second.headers["If-Range"].startswith('"')  # only if the file is still the same
    assert (tmp_path / "asset.part").read_bytes() == data


def test_a_download_cut_in_one_run_resumes_in_the_next(
    publisher: Publisher, tmp_path: Path
) -> None:
    data = os.urandom(2_000_000)
    publisher.files["/asset"] = data
    publisher.cuts["/asset"] = [700_000]
    partial = tmp_path / "asset.part"
    with client() as http, pytest.raises(DownloadError, match="run the command again"):
        download(http, f"{publisher.url}/asset", partial, max_bytes=LIMIT, attempts=1)
    assert partial.stat().st_size == 700_000
    with client() as http:
        got = download(http, f"{publisher.url}/asset", partial, max_bytes=LIMIT)
    assert got.resumed_from == 700_000 and got.sha256 == hashlib.sha256(data).hexdigest()
    assert publisher.gets("/asset")[-1].headers["Range"] == "bytes=700000-"


def test_a_file_replaced_meanwhile_comes_back_whole_not_spliced(
    publisher: Publisher, tmp_path: Path
) -> None:
    publisher.files["/asset"] = os.urandom(1_000_000)
    publisher.cuts["/asset"] = [400_000]
    partial = tmp_path / "asset.part"
    with client() as http, pytest.raises(DownloadError):
        download(http, f"{publisher.url}/asset", partial, max_bytes=LIMIT, attempts=1)
    replaced = os.urandom(1_000_000)
    publisher.files["/asset"] = replaced
    with client() as http:
        got = download(http, f"{publisher.url}/asset", partial, max_bytes=LIMIT)
    assert got.sha256 == hashlib.sha256(replaced).hexdigest()


def test_a_404_says_so_and_leaves_nothing(publisher: Publisher, tmp_path: Path) -> None:
    partial = tmp_path / "asset.part"
    with client() as http, pytest.raises(DownloadError, match="HTTP 404 Not Found"):
        download(http, f"{publisher.url}/gone", partial, max_bytes=LIMIT)
    assert list(tmp_path.iterdir()) == []


def test_a_file_over_the_size_limit_is_refused(publisher: Publisher, tmp_path: Path) -> None:
    publisher.files["/big"] = os.urandom(2_000_000)
    with client() as http, pytest.raises(DownloadError, match="over the size limit"):
        download(http, f"{publisher.url}/big", tmp_path / "big.part", max_bytes=1_000_000)
    assert list(tmp_path.iterdir()) == []


def test_the_proxy_comes_from_the_standard_variables(
    publisher: Publisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publisher's host does not resolve: the file arrives only through the proxy."""
    publisher.files["/asset"] = data = os.urandom(100_000)
    monkeypatch.setenv("HTTP_PROXY", publisher.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with client() as http:
        got = download(http, "http://publisher.invalid/asset", tmp_path / "a", max_bytes=LIMIT)
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert [r.proxied_host for r in publisher.gets("/asset")] == ["publisher.invalid"]


# --- checked and installed ---------------------------------------------------------------------


def test_a_zip_member_is_installed_and_the_first_digest_recorded(
    publisher: Publisher, tmp_path: Path, checkpoint: bytes
) -> None:
    models = tmp_path / "models"
    archive = _zip(MEMBER, checkpoint)
    publisher.files["/model_data.zip"] = archive
    url = f"{publisher.url}/model_data.zip"
    spec = _spec(url, archive_member=MEMBER)
    with client() as http:
        fetched = fetch_model(spec, models, http, max_bytes=LIMIT)
    installed = models / spec.file
    assert installed.read_bytes() == checkpoint
    assert "trust on first use" in fetched.message
    ledger = json.loads((models / LEDGER).read_text())
    assert ledger[url]["sha256"] == hashlib.sha256(archive).hexdigest()
    sidecar = json.loads((models / f"{spec.file}.json").read_text())
    assert sidecar["sha256"] == sha256_file(installed) and sidecar["source_url"] == url
    assert list((models / PARTIAL_DIR).iterdir()) == []  # the download is not kept

    with client() as http:  # installed and unchanged: nothing downloaded again
        again = fetch_model(spec, models, http, max_bytes=LIMIT)
    assert again.message.startswith("already installed, ok") and len(publisher.requests) == 1

    # The publisher's archive changes: refused against the digest recorded at the first fetch.
    publisher.files["/model_data.zip"] = _zip(MEMBER, checkpoint, comment=b"rebuilt")
    with client() as http, pytest.raises(FetchError, match="recorded at its first fetch"):
        fetch_model(spec, models, http, max_bytes=LIMIT, force=True)
    assert installed.read_bytes() == checkpoint
    with client() as http:
        accepted = fetch_model(spec, models, http, max_bytes=LIMIT, force=True, accept_changed=True)
    assert "accepted and recorded" in accepted.message
    assert (
        json.loads((models / LEDGER).read_text())[url]["sha256"]
        == hashlib.sha256(publisher.files["/model_data.zip"]).hexdigest()
    )


def test_a_wrong_published_digest_is_refused_and_nothing_installed(
    publisher: Publisher, tmp_path: Path, checkpoint: bytes
) -> None:
    models = tmp_path / "models"
    publisher.files["/ef.pt"] = checkpoint
    spec = _spec(f"{publisher.url}/ef.pt", download_sha256="0" * 64)
    with client() as http, pytest.raises(FetchError, match="not the published 0000"):
        fetch_model(spec, models, http, max_bytes=LIMIT)
    assert sorted(p.name for p in models.rglob("*")) == [PARTIAL_DIR]

    right = _spec(spec.download_url, download_sha256=hashlib.sha256(checkpoint).hexdigest())
    with client() as http:
        fetched = fetch_model(right, models, http, max_bytes=LIMIT)
    assert "matches the published digest" in fetched.message
    assert not (models / LEDGER).exists()  # a published digest needs no record


def test_a_file_that_is_no_checkpoint_of_the_model_is_refused(
    publisher: Publisher, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    publisher.files["/model_data.zip"] = _zip(MEMBER, b"an HTML error page, not weights")
    spec = _spec(f"{publisher.url}/model_data.zip", archive_member=MEMBER)
    with client() as http, pytest.raises(FetchError, match="refused"):
        fetch_model(spec, models, http, max_bytes=LIMIT)
    missing = _spec(f"{publisher.url}/model_data.zip", archive_member="model_data/other.pt")
    with client() as http, pytest.raises(FetchError, match=r"has no model_data/other\.pt"):
        fetch_model(missing, models, http, max_bytes=LIMIT)
    assert not (models / missing.file).exists() and not (models / LEDGER).exists()


# --- the command on config/models.toml's own URLs ----------------------------------------------


def _cli(data_dir: Path, *args: str, **env: str) -> tuple[int, str]:
    environ = {"ECHO_NODE_DATA_DIR": str(data_dir), "ECHO_NODE_MODELS_DIR": "", **env}
    result = CliRunner().invoke(app, list(args), env=environ)
    return result.exit_code, result.output


def test_fetch_all_through_a_mirror_and_a_proxy(
    publisher: Publisher, tmp_path: Path, checkpoint: bytes
) -> None:
    """The site's mirror holds two of the publishers' files, reached through its proxy: the EF
    checkpoint (behind a redirect, like a GitHub release asset) installs; a TR Vmax file that
    is not the published Git LFS object is refused; every other model is a 404."""
    registry = default_registry()
    ef, tr = registry.get(EF), registry.get("echonet-measurements-trvmax")
    assert ef.download_url.startswith("https://github.com/")
    assert tr.download_url.startswith("https://media.githubusercontent.com/media/echonet/")
    mirror_path = "/" + ef.download_url.removeprefix("https://")
    publisher.redirects[mirror_path] = "/objects/ef-signed-url"
    publisher.files["/objects/ef-signed-url"] = checkpoint
    publisher.files["/" + tr.download_url.removeprefix("https://")] = b"not the LFS object"
    env = {
        "ECHO_NODE_MODELS_MIRROR": "http://mirror.invalid",
        "HTTP_PROXY": publisher.url,
        "NO_PROXY": "",
        "no_proxy": "",
    }
    data = tmp_path / "data"

    code, output = _cli(data, "models", "fetch", "--all", **env)

    assert code == 1, output
    lines = {line.split(":")[0]: line for line in output.splitlines() if line.startswith("echo")}
    assert "installed at" in lines[EF] and "trust on first use" in lines[EF]
    assert "NOT INSTALLED" in lines[tr.name] and "not the published" in lines[tr.name]
    assert "HTTP 404" in lines["echonet-dynamic-segmentation"]
    assert "not published" in output and "echonet-lvh-plax" in output
    assert (data / "models" / ef.file).read_bytes() == checkpoint
    assert not (data / "models" / tr.file).exists()
    assert {r.proxied_host for r in publisher.requests} == {"mirror.invalid"}
    fetchable = [spec for spec in registry if spec.download_url]
    assert len(publisher.requests) == len(fetchable) + 1  # one redirect followed

    code, output = _cli(data, "models", "verify", "--load")
    assert code == 0 and f"{EF}: ok" in output, output
    code, output = _cli(data, "models", "list", "--json")
    listed = {row["name"]: row for row in json.loads(output)}
    assert listed[EF]["installed"] is True
    assert (
        listed["echonet-lvh-plax"]["install"]
        == "echo-node models import PATH --name echonet-lvh-plax"
    )
    assert listed[tr.name]["install"].startswith(f"echo-node models fetch {tr.name}")

    code, output = _cli(data, "models", "fetch", **env)
    assert code == 2 and "name models or --all" in output
    code, output = _cli(data, "models", "fetch", "echonet-lvh-plax", **env)
    assert code == 1 and "publisher gives no download" in output
