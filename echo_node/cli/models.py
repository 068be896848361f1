"""`echo-node models list|fetch|import|verify|normalise`: the checkpoints the node may load.

No weights ship with Echo Node (academic-only licences); a site entitled to use them fetches
the published ones from their publishers (echo_node.fetch) or imports a copy it holds. Both
install through ai.models.store.install_checkpoint: its sha256 against the registry when the
registry knows it (otherwise the digest is recorded in NAME.json beside the file, so verify can
later tell whether it changed), and a strict load into the registry's architecture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from echo_node.cli.context import state

app = typer.Typer(
    help="Model checkpoints: list, fetch, import, verify (no weights ship with Echo Node).",
    no_args_is_help=True,
)


def _models_dir(ctx: typer.Context) -> Path:
    return state(ctx).settings().resolved_models_dir


@app.command("list")
def list_models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every model in the registry: installed or not, file, digest source, licence."""
    from ai.models.normalisation import with_site_statistics
    from ai.models.registry import default_registry
    from ai.models.verify import expected_sha256

    directory = _models_dir(ctx)
    rows = []
    for spec in default_registry():
        path = directory / spec.file
        _, source = expected_sha256(spec, path)
        rows.append(
            {
                "name": spec.name,
                "task": spec.task,
                "architecture": spec.architecture,
                "installed": path.is_file(),
                "optional": spec.optional,
                "file": str(path),
                "sha256_source": source,
                "normalisation": with_site_statistics(spec, directory).normalisation,
                "licence": spec.licence,
                "install": spec.install_command(),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"models in {directory}")
    for column in ("name", "task", "installed", "sha256", "licence"):
        table.add_column(column)
    for row in rows:
        installed = "yes" if row["installed"] else ("no (optional)" if row["optional"] else "no")
        cells = (row["name"], row["task"], installed, row["sha256_source"], row["licence"])
        table.add_row(*(str(cell) for cell in cells))
    Console(width=160).print(table)
    if not all(row["installed"] or row["optional"] for row in rows):
        typer.echo(
            "install the published models with: echo-node models fetch --all; "
            "others with: echo-node models import PATH --name NAME"
        )


@app.command("verify")
def verify(
    ctx: typer.Context,
    load: Annotated[
        bool, typer.Option("--load", help="Also load each file strictly into its network.")
    ] = False,
) -> None:
    """Re-hash every installed file against the registry or its recorded digest."""
    from ai.models.loader import CheckpointError, load_model
    from ai.models.registry import default_registry
    from ai.models.verify import check_files

    directory = _models_dir(ctx)
    checks = [
        check for check in check_files(default_registry(), directory) if check.verdict != "missing"
    ]
    failures = sum(check.verdict == "changed" for check in checks)
    for check in checks:
        verdict = check.describe()
        if load and check.verdict == "ok":
            try:
                load_model(check.path, check.spec)
            except CheckpointError as exc:
                failures += 1
                verdict = f"DOES NOT LOAD: {exc}"
        typer.echo(f"{check.spec.name}: {verdict}")
    if not checks:
        typer.echo(f"no model installed in {directory}")
    raise typer.Exit(1 if failures else 0)


@app.command("import")
def import_model(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Checkpoint file.")],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Registry name (default: found by sha256 or file name)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an installed file that differs.")
    ] = False,
) -> None:
    """Check a checkpoint and copy it into the model directory."""
    from ai.models.loader import sha256_file
    from ai.models.registry import default_registry
    from ai.models.store import InstallError, install_checkpoint

    registry = default_registry()
    if name is not None and name not in registry:
        known = ", ".join(spec.name for spec in registry)
        typer.echo(f"no model named {name!r}; known: {known}", err=True)
        raise typer.Exit(2)
    spec = (
        registry.get(name)
        if name is not None
        else registry.by_sha256(sha256_file(path)) or registry.by_file(path.name)
    )
    if spec is None:
        typer.echo(f"cannot tell which model {path.name} is: pass --name NAME", err=True)
        raise typer.Exit(2)
    try:
        installed = install_checkpoint(
            path, spec, _models_dir(ctx), force=force, provenance={"source_file": path.name}
        )
    except InstallError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"installed {spec.name} at {installed.path} (sha256 {installed.sha256}, {installed.origin})"
    )
    _convert(ctx, spec.name)


@app.command("fetch")
def fetch(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Registry names (see `models list`).")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every model whose publisher gives a download.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Download again and replace installed files.")
    ] = False,
    accept_changed: Annotated[
        bool,
        typer.Option(
            "--accept-changed",
            help="Take a file whose sha256 differs from the one recorded at its first fetch.",
        ),
    ] = False,
) -> None:
    """Download the publishers' files (config/models.toml), check them and install them."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from ai.models.registry import default_registry
    from echo_node.fetch.download import client
    from echo_node.fetch.models import FetchError, fetch_model

    settings = state(ctx).settings()
    registry = default_registry()
    unknown = [name for name in names or () if name not in registry]
    if unknown or bool(names) == every:
        known = ", ".join(spec.name for spec in registry)
        problem = f"no model named {', '.join(unknown)}" if unknown else "name models or --all"
        typer.echo(f"{problem}; known: {known}", err=True)
        raise typer.Exit(2)
    specs = (
        [spec for spec in registry if spec.download_url]
        if every
        else [registry.get(name) for name in names or ()]
    )
    if every:
        unpublished = [spec.name for spec in registry if not spec.download_url]
        typer.echo("not published, install a copy with `models import`: " + ", ".join(unpublished))
    directory = _models_dir(ctx)
    max_bytes = int(settings.models_fetch_max_gb * 1e9)
    failed = 0
    installed: list[str] = []
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with client() as http, Progress(*columns, console=console, transient=True) as progress:
        for spec in specs:
            task = progress.add_task(spec.name, total=None)

            def advance(done: int, total: int | None, task: Any = task) -> None:
                progress.update(task, completed=done, total=total)

            try:
                fetched = fetch_model(
                    spec,
                    directory,
                    http,
                    max_bytes=max_bytes,
                    mirror=settings.models_mirror,
                    force=force,
                    accept_changed=accept_changed,
                    progress=advance,
                )
            except FetchError as exc:
                failed += 1
                progress.console.print(f"{spec.name}: NOT INSTALLED: {exc}", soft_wrap=True)
            else:
                progress.console.print(f"{spec.name}: {fetched.message}", soft_wrap=True)
                installed.append(spec.name)
            finally:
                progress.remove_task(task)
    for name in installed:
        _convert(ctx, name)
    if failed:
        typer.echo(f"{failed} of {len(specs)} models not installed", err=True)
    raise typer.Exit(1 if failed else 0)


def _convert(ctx: typer.Context, name: str) -> None:
    """Convert for the configured backend now, so the first study does not wait for it."""
    from ai.models.store import ModelStore

    settings = state(ctx).settings()
    store = ModelStore(
        settings.resolved_models_dir,
        device=settings.inference_device,
        threads=settings.torch_threads or None,
        backend=settings.inference_backend,
    )
    if store.backend == "torch":
        return
    loaded = store.get(name)
    backend = getattr(loaded, "backend", "torch")
    if backend == store.backend:
        typer.echo(f"{name} converted for {backend} (cached under {settings.resolved_models_dir})")
    else:
        typer.echo(f"{name} stays on torch: conversion for {store.backend} failed (see the log)")


@app.command("normalise")
def normalise(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Registry name, e.g. echonet-dynamic-ef.")],
    videos: Annotated[
        Path,
        typer.Argument(exists=True, file_okay=False, help="Training videos (.avi/.mp4/.dcm)."),
    ],
    samples: Annotated[int, typer.Option(help="Videos drawn at random, as the reference.")] = 128,
    seed: Annotated[int, typer.Option(help="Seed of the draw (reproducible).")] = 0,
) -> None:
    """Compute a model's per-channel mean/std from its training videos and use them."""
    from ai.models.normalisation import (
        channel_statistics,
        read_video,
        sample_videos,
        write_override,
    )
    from ai.models.registry import default_registry

    registry = default_registry()
    if name not in registry:
        typer.echo(f"no model named {name!r}", err=True)
        raise typer.Exit(2)
    spec = registry.get(name)
    chosen = sample_videos(videos, samples, seed)
    if not chosen:
        typer.echo(f"no .avi, .mp4 or .dcm file under {videos}", err=True)
        raise typer.Exit(1)
    try:
        stats = channel_statistics(read_video(path, spec.input_size) for path in chosen)
    except ValueError as exc:
        typer.echo(f"cannot read the videos: {exc}", err=True)
        raise typer.Exit(1) from None
    path = write_override(_models_dir(ctx), spec, stats, chosen)
    mean = ", ".join(f"{v:.4f}" for v in stats.mean)
    std = ", ".join(f"{v:.4f}" for v in stats.std)
    typer.echo(
        f"{spec.name}: mean [{mean}], std [{std}] over {stats.videos} videos "
        f"(0-255 scale); recorded in {path}, used from the next load"
    )
