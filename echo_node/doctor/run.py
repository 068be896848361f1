"""Running every doctor check in order; later checks are skipped when what they read is broken."""

from __future__ import annotations

import os
from pathlib import Path

from echo_node.doctor.database import check_deliveries, check_jobs, check_schema
from echo_node.doctor.files import (
    check_indexed,
    check_orphans,
    check_quarantine,
    check_tmp,
    indexed_files,
)
from echo_node.doctor.report import Check
from echo_node.doctor.selftest import check_selftest
from echo_node.doctor.system import (
    check_data_dir,
    check_decoders,
    check_inference,
    check_models,
    check_tls_files,
)
from echo_node.settings import ENV_PREFIX, ConfigError, Settings, load_settings
from storage.db import make_engine, session_factory
from storage.files import FileStore


def run_checks(config_file: Path | None, *, verify_files: bool, fix: bool) -> list[Check]:
    try:
        settings = load_settings(config_file)
    except ConfigError as exc:
        return [Check("settings", "FAIL", str(exc))]
    checks = [Check("settings", "OK", _sources(config_file))]
    store = FileStore(settings.data_dir)  # not prepare(): the doctor creates nothing
    data_checks = check_data_dir(store, settings)
    checks += data_checks
    data_ok = all(check.status != "FAIL" for check in data_checks)
    checks += _database_checks(settings, store, data_ok, verify_files=verify_files, fix=fix)
    if data_ok:
        checks += [check_tmp(store, settings.doctor_in_flight_s, fix), check_quarantine(store)]
    checks += [
        check_models(settings),
        check_decoders(),
        check_inference(settings),
        check_tls_files(settings),
    ]
    return checks


def _sources(config_file: Path | None) -> str:
    sources = ["config/default.toml"]
    if config_file is not None:
        sources.append(str(config_file))
    variables = sum(name.startswith(ENV_PREFIX) for name in os.environ)
    if variables:
        sources.append(f"{variables} {ENV_PREFIX}* variable(s)")
    return "valid, from " + ", ".join(sources)


def _database_checks(
    settings: Settings, store: FileStore, data_ok: bool, *, verify_files: bool, fix: bool
) -> list[Check]:
    if not settings.database_url:
        path = settings.data_dir / "echo-node.db"
        if not path.is_file():  # connecting would create an empty one
            return [
                Check("database", "FAIL", f"no database at {path}: the node never started here")
            ]
    engine = make_engine(settings.resolved_database_url)
    try:
        schema = check_schema(engine, verify_files)
        if schema.status == "FAIL":
            return [schema]
        sessions = session_factory(engine)
        checks = [schema]
        if data_ok:
            indexed = indexed_files(sessions)
            checks.append(check_orphans(store, indexed, sessions, settings.doctor_in_flight_s, fix))
            checks += check_indexed(store, indexed, verify_files)
        checks += [
            check_jobs(sessions),
            check_deliveries(sessions, settings),
            check_selftest(sessions, settings),
        ]
        return checks
    finally:
        engine.dispose()
