"""Settings: read once at start from config/default.toml, a --config file and ECHO_NODE_* env.

Defaults live only in config/default.toml; the model below has none, so a key missing from
every source is an error rather than a silent second default.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from storage.uids import checked_uid

ENV_PREFIX = "ECHO_NODE_"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the key and where it came from."""


class PeerRule(BaseModel):
    """One allowed-peer entry: an AE title, a network, or both."""

    model_config = ConfigDict(frozen=True)

    ae_title: str | None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None

    @classmethod
    def parse(cls, text: str) -> PeerRule:
        ae, _, net = text.partition("@") if "@" in text else ("", "", text)
        if not net or not _looks_like_address(net):
            ae, net = text, ""
        network = ipaddress.ip_network(net, strict=False) if net else None
        return cls(ae_title=_check_ae_title(ae) if ae else None, network=network)

    def matches(self, ae_title: str, address: str) -> bool:
        if self.ae_title is not None and self.ae_title != ae_title.strip():
            return False
        if self.network is not None:
            try:
                return ipaddress.ip_address(address) in self.network
            except ValueError:
                return False
        return True


def _looks_like_address(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _check_origin(value: str) -> str:
    """A web origin as browsers send it: scheme, host and optional port, nothing else. No "*":
    with anonymous_loopback_read, any page a local browser opens could then read the node."""
    parsed = urlsplit(value)
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or parsed.path
        or parsed.query
        or parsed.fragment
        or parsed.username is not None
    ):
        raise ValueError(f"{value!r} is not an origin like https://viewer.example.org[:port]")
    return value


def _check_ae_title(value: str) -> str:
    # PS3.5 AE VR: up to 16 characters of the default repertoire, no backslash or control chars.
    value = value.strip()
    if not 1 <= len(value) <= 16 or "\\" in value or not value.isprintable():
        raise ValueError(f"{value!r} is not a valid AE title (1-16 printable characters)")
    return value


class CommitmentPeer(BaseModel):
    """Where a Storage Commitment requester takes its N-EVENT-REPORT: ``AE@host:port``."""

    model_config = ConfigDict(frozen=True)

    ae_title: str
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)

    @classmethod
    def parse(cls, text: str) -> CommitmentPeer:
        ae, at, address = text.strip().rpartition("@")
        host, colon, port = address.rpartition(":")
        if not (at and colon and host and port.isdigit()):
            raise ValueError(f"{text!r} is not AE@host:port")
        return cls(ae_title=_check_ae_title(ae), host=host.strip("[]"), port=int(port))


class RemoteNode(BaseModel):
    """A peer the node opens associations or HTTP requests to: a DIMSE AE or a DICOMweb base
    URL. ``Destination`` and ``Source`` differ only in what is done with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    role: ClassVar[str] = "peer"

    name: str = Field(min_length=1, max_length=64)
    kind: Literal["dimse", "dicomweb"]
    ae_title: str | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    url: str | None = None
    token: str | None = None
    # DICOM TLS (PS3.15 B.1) for dimse: the peer's certificate is checked against tls_ca_file
    # (PEM; empty = the system's trust store) and its host name; tls_certificate and
    # tls_private_key (PEM) are the node's own, for peers that require a client certificate.
    tls: bool = False
    tls_ca_file: str | None = None
    tls_certificate: str | None = None
    tls_private_key: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> RemoteNode:
        what = f"{self.role} {self.name!r}"
        if self.kind == "dimse" and not (self.ae_title and self.host and self.port):
            raise ValueError(f"{what}: dimse needs ae_title, host and port")
        if self.kind == "dicomweb" and not self.url:
            raise ValueError(f"{what}: dicomweb needs url")
        tls_files = (self.tls_ca_file, self.tls_certificate, self.tls_private_key)
        if (self.kind != "dimse" or not self.tls) and any(tls_files):
            raise ValueError(
                f"{what}: tls_* files need kind dimse and tls = true "
                "(dicomweb takes an https:// url)"
            )
        if bool(self.tls_certificate) != bool(self.tls_private_key):
            raise ValueError(f"{what}: tls_certificate and tls_private_key go together")
        if self.ae_title is not None:
            _check_ae_title(self.ae_title)
        return self


class Destination(RemoteNode):
    """Where results are sent: a DIMSE storage SCP or a DICOMweb (STOW-RS) base URL."""

    role: ClassVar[str] = "destination"


class Source(RemoteNode):
    """Where `echo-node reprocess --from` retrieves a study the node no longer holds: a DIMSE
    Query/Retrieve SCP (C-GET, or C-MOVE to the node's own AE title) or a DICOMweb base URL
    (QIDO-RS to count, WADO-RS to retrieve)."""

    role: ClassVar[str] = "source"

    retrieve: Literal["c-get", "c-move"] | None = None

    @model_validator(mode="after")
    def _method(self) -> Source:
        if self.kind == "dimse" and self.retrieve is None:
            raise ValueError(f'source {self.name!r}: dimse needs retrieve = "c-get" or "c-move"')
        if self.kind == "dicomweb" and self.retrieve is not None:
            raise ValueError(f"source {self.name!r}: retrieve is for dimse sources only")
        return self


class Settings(BaseModel):
    """Every setting the node reads; see config/default.toml for what each means."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ae_title: str
    device_uid: str
    bind: str
    dimse_port: int = Field(ge=0, le=65535)
    http_port: int = Field(ge=1, le=65535)
    dimse_enabled: bool
    http_enabled: bool
    tls_certificate: str
    tls_private_key: str
    # DICOM TLS (PS3.15 B.1): declared after the files they need, so their validators see them.
    dimse_tls_certificate: str
    dimse_tls_private_key: str
    dimse_tls_ca_file: str
    dimse_tls_require_client_cert: bool
    dimse_tls_port: int = Field(ge=0, le=65535)
    anonymous_loopback_read: bool
    viewer_dir: str
    cors_origins: tuple[str, ...]
    thumbnail_cache_mb: int = Field(ge=0)
    data_dir: Path
    database_url: str
    allowed_peers: tuple[PeerRule, ...]
    max_associations: int = Field(ge=1)
    max_associations_per_address: int = Field(ge=1)
    max_pending_per_address: int = Field(ge=1)
    # What a peer may send in one PDU is bounded by it, so it bounds memory per connection.
    max_pdu_size: int = Field(ge=4096, le=16 * 1024 * 1024)
    network_timeout_s: float = Field(gt=0)
    artim_timeout_s: float = Field(gt=0)
    http_header_timeout_s: float = Field(gt=0)
    http_body_timeout_s: float = Field(gt=0)
    http_max_connections: int = Field(ge=1)
    stable_after_s: float = Field(ge=0)
    ingest_processes: int = Field(ge=0)  # 0: one per core (resolved_ingest_processes)
    log_format: Literal["text", "json"]
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    metrics_enabled: bool
    metrics_require_token: bool
    doctor_disk_free_warn_gb: float = Field(ge=0)
    disk_min_free_percent: float = Field(ge=0, lt=100)
    disk_min_free_gb: float = Field(ge=0)
    doctor_in_flight_s: float = Field(ge=0)
    process_enabled: bool
    sweep_interval_s: float = Field(gt=0)
    process_modalities: tuple[str, ...]
    process_calling_aes: tuple[str, ...]
    process_sop_classes: tuple[str, ...]
    worker_threads: int = Field(ge=1)
    job_lease_s: float = Field(gt=0)
    job_max_attempts: int = Field(ge=1)
    retry_backoff_s: float = Field(ge=0)
    models_dir: str
    models_mirror: str
    models_fetch_max_gb: float = Field(gt=0)
    torch_threads: int = Field(ge=0)
    inference_device: Literal["cpu", "cuda", "auto"]
    inference_backend: Literal["torch", "openvino", "auto"]
    min_view_confidence: float = Field(ge=0, le=1)
    overlay_jpeg: bool
    sr_template: Literal["5200", "5300"]
    measurement_report: bool
    pdf_report: bool
    pdf_max_bytes: int = Field(ge=10_000)
    destinations: tuple[Destination, ...]
    sources: tuple[Source, ...]
    delivery_max_attempts: int = Field(ge=1)
    commitment_peers: tuple[CommitmentPeer, ...]
    commitment_report_attempts: int = Field(ge=1)
    retention_days: int = Field(ge=0)
    retention_results_days: int = Field(ge=0)
    retention_sweep_interval_s: float = Field(gt=0)
    selftest_time: str
    selftest_timeout_s: float = Field(gt=0)

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        return _check_ae_title(value)

    @field_validator("dimse_tls_private_key")
    @classmethod
    def _dimse_tls_pair(cls, value: str, info: ValidationInfo) -> str:
        if bool(value) != bool(info.data.get("dimse_tls_certificate")):
            raise ValueError("dimse_tls_certificate and dimse_tls_private_key go together")
        return value

    @field_validator("dimse_tls_require_client_cert")
    @classmethod
    def _client_cert_ca(cls, value: bool, info: ValidationInfo) -> bool:
        # Without a CA of the site's own, any certificate a public CA signed would get in.
        if value and not info.data.get("dimse_tls_ca_file"):
            raise ValueError("needs dimse_tls_ca_file, the CA that signs the peers' certificates")
        return value

    @field_validator("dimse_tls_port")
    @classmethod
    def _dimse_tls_port(cls, value: int, info: ValidationInfo) -> int:
        if not value:
            if info.data.get("dimse_port") == 0:
                raise ValueError(
                    "dimse_port = 0 (no clear listener) needs a dimse_tls_port; "
                    "dimse_enabled = false turns DIMSE off"
                )
            return value
        # One port cannot be both the clear and the TLS listener (nor the HTTP one).
        if value in (info.data.get("dimse_port"), info.data.get("http_port")):
            raise ValueError("must differ from dimse_port and http_port")
        own = info.data.get("dimse_tls_certificate")
        if not (own or (info.data.get("tls_certificate") and info.data.get("tls_private_key"))):
            raise ValueError(
                "DICOM TLS needs a certificate and private key: set dimse_tls_certificate and "
                "dimse_tls_private_key (or tls_certificate and tls_private_key, shared with HTTPS)"
            )
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _cors_origins(cls, value: Any) -> Any:
        return _parsed_items(value, _check_origin)

    @field_validator("selftest_time")
    @classmethod
    def _selftest_time(cls, value: str) -> str:
        value = value.strip()
        if value and selftest_clock(value) is None:
            raise ValueError('must be a time of day "HH:MM" (24 h, the host\'s time), or ""')
        return value

    @field_validator("models_mirror")
    @classmethod
    def _mirror(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL, or empty")
        return value

    @field_validator("device_uid")
    @classmethod
    def _device_uid(cls, value: str) -> str:
        return checked_uid(value, "device_uid") if value else value

    @field_validator("bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value

    @field_validator(
        "process_modalities", "process_calling_aes", "process_sop_classes", mode="before"
    )
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("sr_template", mode="before")
    @classmethod
    def _template_number(cls, value: Any) -> Any:
        # `sr_template = 5300` in a TOML file means the template number as much as "5300".
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("destinations", "sources", mode="before")
    @classmethod
    def _destinations(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: a JSON list
            return json.loads(value) if value.strip() else []
        return value

    @model_validator(mode="after")
    def _backend_on_device(self) -> Settings:
        if self.inference_backend == "openvino" and self.inference_device == "cuda":
            raise ValueError(
                'inference_backend "openvino" runs on the CPU: use "torch" or "auto" with cuda'
            )
        return self

    @model_validator(mode="after")
    def _unique_destinations(self) -> Settings:
        names = [destination.name for destination in self.destinations]
        if len(names) != len(set(names)):
            raise ValueError("destination names must be unique")
        names = [source.name for source in self.sources]
        if len(names) != len(set(names)):
            raise ValueError("source names must be unique")
        return self

    def source(self, name: str) -> Source | None:
        return next((source for source in self.sources if source.name == name), None)

    @model_validator(mode="after")
    def _retention(self) -> Settings:
        results = self.retention_results_days
        if results and not self.retention_days:
            raise ValueError(
                "retention_results_days needs retention_days: results go after the images"
            )
        if results and results < self.retention_days:
            raise ValueError("retention_results_days must be 0 (for ever) or >= retention_days")
        return self

    @field_validator("commitment_peers", mode="before")
    @classmethod
    def _commitment_peers(cls, value: Any) -> Any:
        return _parsed_items(value, CommitmentPeer.parse)

    def commitment_target(self, ae_title: str) -> CommitmentPeer | Destination | None:
        """Where a requester's N-EVENT-REPORT goes: its commitment_peers entry, else a dimse
        destination with that AE title (a PACS is usually both; its TLS settings then apply
        to the report too), else unknown."""
        for peer in self.commitment_peers:
            if peer.ae_title == ae_title:
                return peer
        for destination in self.destinations:
            if destination.kind == "dimse" and destination.ae_title == ae_title:
                return destination
        return None

    @property
    def dimse_tls_files(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """(key, path) of the DICOM TLS certificate and of its private key: the dimse_tls_*
        pair when set, else the HTTPS pair (one certificate for the host is the usual case)."""
        if self.dimse_tls_certificate:
            return (
                ("dimse_tls_certificate", self.dimse_tls_certificate),
                ("dimse_tls_private_key", self.dimse_tls_private_key),
            )
        return (
            ("tls_certificate", self.tls_certificate),
            ("tls_private_key", self.tls_private_key),
        )

    @property
    def resolved_models_dir(self) -> Path:
        return Path(self.models_dir) if self.models_dir else self.data_dir / "models"

    @field_validator("allowed_peers", mode="before")
    @classmethod
    def _peers(cls, value: Any) -> Any:
        return _parsed_items(value, PeerRule.parse)

    @property
    def resolved_ingest_processes(self) -> int:
        """``ingest_processes``, or with 0 the cores this process may run on."""
        if self.ingest_processes:
            return self.ingest_processes
        return (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else (os.cpu_count() or 1)
        )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'echo-node.db').resolve()}"


def selftest_clock(text: str) -> tuple[int, int] | None:
    """(hour, minute) of a "HH:MM" time of day, or None if it is not one."""
    hour, colon, minute = text.strip().partition(":")
    if not (colon and hour.isdigit() and minute.isdigit() and len(minute) == 2):
        return None
    if not (0 <= int(hour) <= 23 and 0 <= int(minute) <= 59):
        return None
    return int(hour), int(minute)


def _parsed_items(value: Any, parse: Callable[[str], Any]) -> Any:
    """A comma-separated string (the environment) or a list (TOML) of entries, each text one
    parsed; anything else is left to the model's own validation."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return tuple(parse(item.strip()) if isinstance(item, str) else item for item in value)
    return value


def default_values() -> dict[str, Any]:
    text = resources.files("config").joinpath("default.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_settings(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge defaults, the optional config file and ECHO_NODE_* variables, then validate."""
    environ = os.environ if environ is None else environ
    values = default_values()
    origin = dict.fromkeys(values, "config/default.toml")
    if config_file is not None:
        try:
            overrides = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
        values.update(overrides)
        origin.update(dict.fromkeys(overrides, str(config_file)))
    for name, raw in environ.items():
        if name.startswith(ENV_PREFIX):
            key = name[len(ENV_PREFIX) :].lower()
            values[key] = raw
            origin[key] = name
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            source = origin.get(key, "?")
            problems.append(f"config key '{key}' (from {source}): {error['msg']}")
        raise ConfigError("; ".join(problems)) from None
