"""Settings: defaults from config/default.toml, overrides, and errors that name the key."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from echo_node.processing.outputs import device_info
from echo_node.settings import ConfigError, load_settings


def test_defaults_and_the_interface_later_work_relies_on() -> None:
    settings = load_settings(environ={})
    assert (settings.ae_title, settings.dimse_port, settings.http_port) == ("ECHONODE", 11112, 8080)
    assert settings.allowed_peers == ()
    assert settings.inference_device == "cpu"


def test_one_ingest_process_per_core_unless_set() -> None:
    assert load_settings(environ={}).ingest_processes == 0
    cores = len(os.sched_getaffinity(0))
    assert load_settings(environ={}).resolved_ingest_processes == cores
    three = load_settings(environ={"ECHO_NODE_INGEST_PROCESSES": "3"})
    assert three.resolved_ingest_processes == 3


def test_file_then_environment_override(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('ae_title = "FROMFILE"\ndimse_port = 104\nstable_after_s = 5\n')
    settings = load_settings(config, environ={"ECHO_NODE_DIMSE_PORT": "4242"})
    assert (settings.ae_title, settings.dimse_port, settings.stable_after_s) == (
        "FROMFILE",
        4242,
        5,
    )


def test_allowed_peers_match_ae_title_network_or_both() -> None:
    settings = load_settings(environ={"ECHO_NODE_ALLOWED_PEERS": "US1, 10.1.0.0/16, PACS@10.2.0.9"})
    rules = settings.allowed_peers
    assert any(rule.matches("US1", "192.0.2.1") for rule in rules)
    assert any(rule.matches("ANY", "10.1.200.3") for rule in rules)
    assert any(rule.matches("PACS", "10.2.0.9") for rule in rules)
    assert not any(rule.matches("PACS", "10.2.0.10") for rule in rules)
    assert not any(rule.matches("OTHER", "192.0.2.1") for rule in rules)


def test_destinations_from_the_environment_as_json() -> None:
    settings = load_settings(
        environ={
            "ECHO_NODE_DESTINATIONS": '[{"name": "pacs", "kind": "dimse", "ae_title": "PACS",'
            ' "host": "127.0.0.1", "port": 104}, {"name": "web", "kind": "dicomweb",'
            ' "url": "http://127.0.0.1/dicom-web"}]'
        }
    )
    assert [d.name for d in settings.destinations] == ["pacs", "web"]


def test_commitment_report_address_from_commitment_peers_then_destinations() -> None:
    settings = load_settings(
        environ={
            "ECHO_NODE_COMMITMENT_PEERS": "US_ROOM1@10.1.2.3:104, PACS@[::1]:4242",
            "ECHO_NODE_DESTINATIONS": '[{"name": "archive", "kind": "dimse", "ae_title":'
            ' "ARCHIVE", "host": "10.0.0.7", "port": 11112}]',
        }
    )
    addresses = {
        ae: (target.host, target.port) if (target := settings.commitment_target(ae)) else None
        for ae in ("US_ROOM1", "PACS", "ARCHIVE", "US_ROOM2")
    }
    assert addresses == {
        "US_ROOM1": ("10.1.2.3", 104),
        "PACS": ("::1", 4242),
        "ARCHIVE": ("10.0.0.7", 11112),
        "US_ROOM2": None,
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ECHO_NODE_AE_TITLE", "A_TITLE_LONGER_THAN_16"),
        ("ECHO_NODE_DIMSE_PORT", "70000"),
        ("ECHO_NODE_BIND", "not-an-address"),
        ("ECHO_NODE_INFERENCE_DEVICE", "tpu"),
        ("ECHO_NODE_LOG_FORMAT", "xml"),
        ("ECHO_NODE_INGEST_PROCESSES", "-1"),
        ("ECHO_NODE_DESTINATIONS", '[{"name": "pacs", "kind": "dimse"}]'),
        ("ECHO_NODE_NO_SUCH_KEY", "1"),
        ("ECHO_NODE_DEVICE_UID", "1.2.03"),
        ("ECHO_NODE_SR_TEMPLATE", "1500"),
        ("ECHO_NODE_COMMITMENT_PEERS", "US_ROOM1@10.1.2.3"),
        ("ECHO_NODE_COMMITMENT_REPORT_ATTEMPTS", "0"),
        ("ECHO_NODE_DIMSE_TLS_PORT", "2762"),  # no certificate and key
        ("ECHO_NODE_DIMSE_TLS_PORT", "11112"),  # the clear port's
        ("ECHO_NODE_DIMSE_TLS_REQUIRE_CLIENT_CERT", "true"),  # no CA file
        ("ECHO_NODE_DIMSE_TLS_PRIVATE_KEY", "node.key"),  # no certificate
    ],
)
def test_bad_values_stop_with_the_key_named(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(environ={key: value})
    name = key.removeprefix("ECHO_NODE_").lower()
    assert f"'{name}'" in str(error.value) and key in str(error.value)


def test_device_observer_uid_is_the_setting_or_stable_per_installation(tmp_path: Path) -> None:
    derived = device_info(load_settings(environ={"ECHO_NODE_DATA_DIR": str(tmp_path)}))
    assert derived == device_info(load_settings(environ={"ECHO_NODE_DATA_DIR": str(tmp_path)}))
    other = device_info(load_settings(environ={"ECHO_NODE_DATA_DIR": str(tmp_path / "b")}))
    assert other.device_uid != derived.device_uid
    chosen = load_settings(environ={"ECHO_NODE_DEVICE_UID": "1.2.826.0.1.3680043.10.1"})
    assert device_info(chosen).device_uid == "1.2.826.0.1.3680043.10.1"


def test_sr_template_defaults_to_5200_and_takes_5300(tmp_path: Path) -> None:
    assert load_settings(environ={}).sr_template == "5200"
    assert load_settings(environ={"ECHO_NODE_SR_TEMPLATE": "5300"}).sr_template == "5300"
    config = tmp_path / "node.toml"
    config.write_text("sr_template = 5300\n")  # a bare number in TOML means the same
    assert load_settings(config, environ={}).sr_template == "5300"
    config.write_text('sr_template = "5201"\n')
    with pytest.raises(ConfigError, match=re.escape(f"'sr_template' (from {config})")):
        load_settings(config, environ={})
