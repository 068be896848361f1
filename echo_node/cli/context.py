"""What every command shares: the settings (read once) and the opened node (read-only for the
commands that only read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

from echo_node.node import Node, ReadOnlyNode, open_node, open_read_only
from echo_node.settings import ConfigError, Settings, load_settings
from storage.db import NotMigrated


@dataclass
class CliState:
    config_file: Path | None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_file)
            except ConfigError as exc:
                typer.echo(f"configuration error: {exc}", err=True)
                raise typer.Exit(2) from None
        return self._settings

    def node(self) -> Node:
        return open_node(self.settings())

    def reader(self) -> ReadOnlyNode:
        """The node opened read-only: commands that only read never migrate or write."""
        try:
            return open_read_only(self.settings())
        except NotMigrated as exc:
            typer.echo(f"{exc}", err=True)
            raise typer.Exit(1) from None


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj
