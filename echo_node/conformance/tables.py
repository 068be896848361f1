"""The tables of the conformance statement, each read from the code that does the thing.

Presentation contexts come from echo_node.dimse.contexts and the SCUs, statuses from the
modules that answer them (their public upper-case constants), codes from
echo_node.results.codes, settings from config/default.toml, the DICOMweb resources from the
FastAPI application itself. A change in any of them changes the statement, and the test that
compares it with docs/conformance.md fails until the file is rendered again.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pynetdicom
from pydicom.sr.coding import Code
from pydicom.uid import UID
from pynetdicom.presentation import (  # type: ignore[attr-defined]
    DEFAULT_TRANSFER_SYNTAXES as DEFAULT_SYNTAXES,
)
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from echo_node.dimse import commitment, commitment_report, contexts, peers, space, store
from echo_node.export.dimse import UNCOMPRESSED
from echo_node.results import catalogue, codes
from echo_node.results.coding import CODING_5200, CODING_5300
from echo_node.results.sc import MULTIFRAME_TRUE_COLOR_SC
from echo_node.results.sr import COMPREHENSIVE_SR
from echo_node.retrieve import dimse as retrieve_dimse
from echo_node.settings import Settings, load_settings
from storage import commitments

Table = tuple[tuple[str, ...], Sequence[tuple[str, ...]]]  # header, rows

# What the node writes and sends (echo_node.results).
CREATED_SOP_CLASSES = (COMPREHENSIVE_SR, MULTIFRAME_TRUE_COLOR_SC)


def defaults() -> Settings:
    """The shipped defaults (config/default.toml), whatever this machine's environment says."""
    return load_settings(environ={})


def _name(uid: str) -> str:
    return UID(uid).name


def _syntaxes(uids: Iterable[str]) -> str:
    return "<br>".join(f"{_name(uid)} `{uid}`" for uid in uids)


def _accepted() -> list[tuple[str, list[str]]]:
    return [
        (str(context.abstract_syntax), [str(ts) for ts in context.transfer_syntax])
        for context in contexts.supported_contexts()
    ]


def network_services() -> Table:
    storage = len(_accepted()) - 2
    return (
        ("SOP class", "user of service (SCU)", "provider of service (SCP)"),
        [
            ("Verification", "no", "yes"),
            (
                f"Storage: {storage} storage SOP classes (section 8.4)",
                "yes, the node's own results (section 4.2.3)",
                "yes",
            ),
            ("Storage Commitment Push Model", "no", "yes"),
            (
                "Study Root Query/Retrieve: FIND, GET, MOVE",
                "yes, `reprocess --from` (section 4.2.3)",
                "no",
            ),
        ],
    )


def scp_contexts() -> Table:
    """One row per kind of context: the storage classes share their transfer syntaxes."""
    rows = []
    storage: dict[tuple[str, ...], int] = {}
    for uid, syntaxes in _accepted():
        if uid in (Verification, StorageCommitmentPushModel):
            rows.append((f"{_name(uid)} `{uid}`", _syntaxes(syntaxes), "SCP"))
        else:
            storage[tuple(syntaxes)] = storage.get(tuple(syntaxes), 0) + 1
    for group, count in storage.items():
        name = f"each of the {count} storage SOP classes (section 8.4)"
        rows.append((name, _syntaxes(group), "SCP"))
    return (("abstract syntax", "transfer syntaxes accepted", "role"), rows)


def storage_sop_classes() -> Table:
    rows = [
        (_name(uid), f"`{uid}`")
        for uid, _ in _accepted()
        if uid not in (Verification, StorageCommitmentPushModel)
    ]
    return (("storage SOP class", "UID"), sorted(rows))


def scu_contexts() -> Table:
    uncompressed = _syntaxes(UNCOMPRESSED)
    rows = [
        (
            f"{_name(uid)} `{uid}`",
            f"the file's own transfer syntax alone, and {uncompressed}",
            "SCU",
        )
        for uid in CREATED_SOP_CLASSES
    ]
    rows.append(
        (
            f"{_name(StorageCommitmentPushModel)} `{StorageCommitmentPushModel}`",
            _syntaxes(commitment_report.REPORT_TRANSFER_SYNTAXES),
            "SCP (SCP/SCU role selection)",
        )
    )
    for query in (
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelMove,
    ):
        rows.append((f"{_name(query)} `{query}`", _syntaxes(DEFAULT_SYNTAXES), "SCU"))
    contexts = retrieve_dimse.storage_contexts(retrieve_dimse.MAX_STORAGE_CONTEXTS)
    listed = "; ".join(_syntaxes(group).replace("<br>", ", ") for group in contexts)
    rows.append(
        (
            "each storage SOP class the source lists in SOP Classes in Study, else "
            + ", ".join(_name(uid) for uid in retrieve_dimse.ECHO_SOP_CLASSES)
            + " (C-GET)",
            f"one context per group: {listed}",
            "SCP (SCP/SCU role selection)",
        )
    )
    return (("abstract syntax", "transfer syntaxes proposed", "role"), rows)


def implementation() -> Table:
    return (
        ("", ""),
        [
            ("Implementation Class UID", f"`{pynetdicom.PYNETDICOM_IMPLEMENTATION_UID}`"),
            ("Implementation Version Name", f"`{pynetdicom.PYNETDICOM_IMPLEMENTATION_VERSION}`"),
            ("Application Context Name", "`1.2.840.10008.3.1.1.1` (DICOM Application Context)"),
        ],
    )


def association_settings() -> Table:
    settings = defaults()
    rows = [
        ("ae_title", settings.ae_title, "the AE title the node answers to"),
        ("dimse_port", str(settings.dimse_port), "DIMSE in the clear (0: none)"),
        ("dimse_tls_port", str(settings.dimse_tls_port), "DICOM TLS (0: off; 2762 registered)"),
        ("max_associations", str(settings.max_associations), "associations served at once"),
        ("max_pdu_size", str(settings.max_pdu_size), "largest PDU received, bytes"),
        (
            "network_timeout_s",
            f"{settings.network_timeout_s:g}",
            "idle, ACSE and DIMSE timeouts, seconds",
        ),
        ("allowed_peers", "(empty: everyone)", "calling AE titles and addresses let in"),
        (
            "disk_min_free_percent / _gb",
            f"{settings.disk_min_free_percent:g} % / {settings.disk_min_free_gb:g} GB",
            "free space below which new associations are refused",
        ),
    ]
    return (("setting", "default", "what it sets"), rows)


# PS3.8 Table 9-21: A-ASSOCIATE-RJ result, source and reason (by source).
_RESULTS = {1: "rejected-permanent", 2: "rejected-transient"}
_SOURCES = {
    1: "service-user",
    2: "service-provider (ACSE)",
    3: "service-provider (presentation)",
}
_REASONS = {
    (1, 1): "no-reason-given",
    (1, 2): "application-context-name-not-supported",
    (1, 3): "calling-AE-title-not-recognized",
    (1, 7): "called-AE-title-not-recognized",
    (3, 1): "temporary-congestion",
    (3, 2): "local-limit-exceeded",
}


def rejections() -> Table:
    def row(triple: tuple[int, int, int], when: str) -> tuple[str, ...]:
        result, source, reason = triple
        return (
            f"{result} {_RESULTS[result]}",
            f"{source} {_SOURCES[source]}",
            f"{reason} {_REASONS[(source, reason)]}",
            when,
        )

    return (
        ("result", "source", "reason", "when"),
        [
            row(
                peers.REJECT_UNKNOWN_CALLING_AE,
                "no allowed_peers entry matches the calling AE title and address",
            ),
            row(space.REJECT_DISK_LOW, "free disk space is below the watermark"),
            row(
                peers.REJECT_LOCAL_LIMIT,
                "max_associations are open, or max_associations_per_address from that address",
            ),
        ],
    )


# Upper-case int constants of those modules that are no status.
_NOT_STATUSES = {"REQUEST_STORAGE_COMMITMENT"}


def statuses(module: ModuleType, meanings: dict[str, str]) -> Table:
    """Every public upper-case int constant of a module that answers with them: a status the
    code gains shows here even before its meaning is written down."""
    rows = []
    for name, value in vars(module).items():
        is_int = isinstance(value, int) and not isinstance(value, bool)
        public = name.isupper() and not name.startswith("_")
        if is_int and public and name not in _NOT_STATUSES:
            when = meanings.get(name, f"see {module.__name__}")
            rows.append((f"0x{value:04X}", name.replace("_", " ").lower(), when))
    return (("status", "meaning", "when the node returns it"), sorted(rows))


STORE_MEANINGS = {
    "SUCCESS": "the instance is on disk (fsynced, renamed) and indexed",
    "OUT_OF_RESOURCES": "the node could not store it (storage or database error): send again",
    "CANNOT_UNDERSTAND": "not a usable dataset (unparsable, truncated, bad UIDs): quarantined",
}
ACTION_MEANINGS = {
    "SUCCESS": "the request is recorded; the result follows in N-EVENT-REPORT",
    "PROCESSING_FAILURE": "the request could not be recorded",
    "NO_SUCH_SOP_INSTANCE": "not the well-known Storage Commitment instance",
    "INVALID_ARGUMENT_VALUE": "no Transaction UID or Referenced SOP Sequence, or invalid UIDs",
    "NO_SUCH_ACTION": "an Action Type ID other than 1",
}
FAILURE_MEANINGS = {
    "PROCESSING_FAILURE": "the file differs from what was received, or cannot be read",
    "NO_SUCH_OBJECT_INSTANCE": "not held, or its file is gone",
    "CLASS_INSTANCE_CONFLICT": "held under another SOP class",
}


def store_statuses() -> Table:
    return statuses(store, STORE_MEANINGS)


def action_statuses() -> Table:
    return statuses(commitment, ACTION_MEANINGS)


def failure_reasons() -> Table:
    return statuses(commitments, FAILURE_MEANINGS)


def sr_templates() -> Table:
    return (
        ("sr_template", "template", "document title", "SOP class"),
        [
            (
                f"`{template}`",
                f"TID {template} {name}",
                f"{codes.ADULT_ECHO_REPORT.meaning} ({codes.ADULT_ECHO_REPORT.value}, "
                f"{codes.ADULT_ECHO_REPORT.scheme_designator})",
                f"{_name(COMPREHENSIVE_SR)} `{COMPREHENSIVE_SR}`",
            )
            for template, name in (
                (codes.TEMPLATE_ID_ECHO, "Adult Echocardiography Procedure Report"),
                (codes.TEMPLATE_ID_SIMPLIFIED_ECHO, "Simplified Echo Procedure Report"),
            )
        ],
    )


def _code(code: Code | None) -> str:
    if code is None:
        return "-"
    return f'({code.value}, {code.scheme_designator}, "{code.meaning}")'


def measurement_codes() -> Table:
    rows = []
    presentations = {
        **{key: m.presentation for key, m in catalogue.MEASURED.items()},
        **{key: d.presentation for key, d in catalogue.DERIVED.items()},
    }
    for name in sorted(set(CODING_5200) | set(CODING_5300)):
        old, new = CODING_5200.get(name), CODING_5300.get(name)
        presentation = presentations.get(name)
        rows.append(
            (
                f"`{name}`",
                _code(old.concept) if old else "(not written)",
                f"`{presentation.unit}`" if presentation is not None else "-",
                _code(new.concept) if new else "(not written)",
            )
        )
    return (("value", "TID 5200 concept", "unit (UCUM)", "TID 5300 concept"), rows)


def all_codes() -> Table:
    """Every Code bound to a module name, and every Code inside the finding mappings (a name
    can be bound twice in the module: the mapping keeps the code it saw then)."""
    found: dict[tuple[str, str], tuple[str, set[str]]] = {}

    def add(code: Code, name: str) -> None:
        found.setdefault((code.scheme_designator, code.value), (code.meaning, set()))[1].add(name)

    for name, value in vars(codes).items():
        if isinstance(value, Code) and name.isupper():
            add(value, name)
    named = set(found)
    mappings: dict[str, Mapping[str, Any]] = {
        "CODING_5200": CODING_5200,
        "CODING_5300": CODING_5300,
    }
    for mapping, table in mappings.items():
        for finding, coding in table.items():
            for field in dataclasses.fields(coding):
                value = getattr(coding, field.name)
                key = (value.scheme_designator, value.value) if isinstance(value, Code) else None
                if key is not None and key not in named:
                    add(value, f"{mapping}[{finding!r}].{field.name}")
    rows = [
        (scheme, f"`{value}`", meaning, ", ".join(sorted(names)))
        for (scheme, value), (meaning, names) in sorted(found.items())
    ]
    return (("scheme", "code value", "code meaning", "name in echo_node/results/codes.py"), rows)


def dicomweb_resources() -> Table:
    """The DICOMweb resources of the application's own OpenAPI schema (the app is built on a
    throw-away data directory)."""
    from echo_node.node import open_node
    from echo_node.web.app import PREFIX, create_app

    with tempfile.TemporaryDirectory(prefix="echo-node-conformance-") as directory:
        settings = defaults().model_copy(update={"data_dir": Path(directory)})
        node = open_node(settings)
        try:
            schema = create_app(node).openapi()
        finally:
            node.engine.dispose()
    rows = [
        (method.upper(), f"`{path.removeprefix(PREFIX)}`", _web_service(method, path))
        for path, operations in schema["paths"].items()
        if path.startswith(PREFIX)
        for method in operations
    ]
    header = ("method", f"resource under `{PREFIX}`", "service")
    return (header, sorted(rows, key=lambda row: (row[2], row[1], row[0])))


def _web_service(method: str, path: str) -> str:
    if method.upper() == "POST":
        return "STOW-RS"
    if path.endswith(("/metadata", "/rendered", "/thumbnail")) or "/frames/" in path:
        return "WADO-RS"
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return "QIDO-RS" if last in ("studies", "series", "instances") else "WADO-RS"
