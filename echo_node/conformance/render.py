"""Rendering the conformance statement: statement.md with each ``{{name}}`` replaced by a
Markdown table from echo_node.conformance.tables (or the version)."""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources

from echo_node import __version__
from echo_node.conformance import tables

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

TABLES: dict[str, Callable[[], tables.Table]] = {
    "network_services": tables.network_services,
    "scp_contexts": tables.scp_contexts,
    "scu_contexts": tables.scu_contexts,
    "implementation": tables.implementation,
    "association_settings": tables.association_settings,
    "rejections": tables.rejections,
    "store_statuses": tables.store_statuses,
    "action_statuses": tables.action_statuses,
    "failure_reasons": tables.failure_reasons,
    "dicomweb_resources": tables.dicomweb_resources,
    "sr_templates": tables.sr_templates,
    "measurement_codes": tables.measurement_codes,
    "all_codes": tables.all_codes,
    "storage_sop_classes": tables.storage_sop_classes,
}


def markdown_table(table: tables.Table) -> str:
    header, rows = table

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(row) for row in rows)])


def render() -> str:
    template = resources.files("echo_node.conformance").joinpath("statement.md")
    text = template.read_text(encoding="utf-8")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "version":
            return __version__
        if name not in TABLES:
            raise KeyError(f"statement.md names an unknown table {{{{{name}}}}}")
        return markdown_table(TABLES[name]())

    return _PLACEHOLDER.sub(fill, text)
