"""`echo-node phantom`: synthetic echo studies with known ground truth (ai.phantom)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ai.phantom import DEFAULT_UID_ROOT, generate_study
from ai.phantom.exam import generate_exam
from ai.phantom.preview import write_preview


def phantom(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the studies into.")],
    seed: Annotated[int, typer.Option(help="Seed of the first study; study k uses seed+k.")] = 0,
    studies: Annotated[int, typer.Option(min=1, help="How many studies to write.")] = 1,
    heart_rate: Annotated[
        float | None, typer.Option("--heart-rate", help="Heart rate, 30–120 bpm (default: drawn).")
    ] = None,
    compressed: Annotated[
        bool,
        typer.Option("--compressed/--raw", help="JPEG baseline YBR_FULL_422, or raw RGB."),
    ] = True,
    rows: Annotated[int, typer.Option(min=120, help="Image rows.")] = 600,
    columns: Annotated[int, typer.Option(min=160, help="Image columns.")] = 800,
    view_codes: Annotated[
        bool, typer.Option("--view-codes", help="Add a ViewCodeSequence to the 2D clips.")
    ] = False,
    uid_root: Annotated[str, typer.Option(help="Root of the generated UIDs.")] = DEFAULT_UID_ROOT,
    cycles: Annotated[int, typer.Option(min=1, help="Cardiac cycles per 2D clip.")] = 2,
    frame_rate: Annotated[float, typer.Option(min=5.0, help="Target frames per second.")] = 50.0,
    png: Annotated[bool, typer.Option("--png", help="Also write NAME.png of frame 0.")] = False,
    exam: Annotated[
        int,
        typer.Option(
            min=0,
            help="Write whole exams of this many clips instead (60: 8 PLAX, 7 A4C, 5 TR CW, "
            "5 MV PW, 35 other views), each in exam-SEED/.",
        ),
    ] = 0,
) -> None:
    """Write phantom studies (PLAX, A4C, TR CW, mitral PW), each file with NAME.json truth."""
    # What every study and exam is rendered with (ai.phantom keyword arguments).
    render: dict[str, Any] = {
        "heart_rate_bpm": heart_rate,
        "compressed": compressed,
        "rows": rows,
        "columns": columns,
        "uid_root": uid_root,
        "cycles": cycles,
        "frame_rate": frame_rate,
    }
    for k in range(studies):
        study_seed = seed + k
        if exam:
            folder = out / f"exam-{study_seed}"
            paths = generate_exam(folder, study_seed, exam, **render)
            typer.echo(f"{folder}: {len(paths)} clips ({paths[0].name} … {paths[-1].name})")
            continue
        folder = out / f"phantom-{study_seed}"
        paths = generate_study(folder, study_seed, view_codes=view_codes, **render)
        if png:
            for path in paths:
                write_preview(path, path.with_suffix(".png"))
        typer.echo(f"{folder}: {', '.join(p.name for p in paths)}")
