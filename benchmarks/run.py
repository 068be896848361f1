"""`make bench`: every benchmark, each printing its figures and writing benchmarks/results/.

Run on a quiet machine: every figure is compared with a reference measured in the same run
(dcmtk storescp, Orthanc, torch eager beside OpenVINO), so the ratios, not the absolute rates,
are what count. `python -m benchmarks.run --only study --fast` checks the study benchmark
end to end in a few minutes.
"""

from __future__ import annotations

import argparse

from benchmarks import ai_bench, ingest, overlay, stow, study, turnaround

BENCHMARKS = ("ingest", "stow", "ai", "overlay", "turnaround", "study")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    parser.add_argument("--fast", action="store_true", help="the study benchmark's fast mode")
    args = parser.parse_args(argv)
    chosen = [name for name in args.only.split(",") if name]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    if "ingest" in chosen:
        ingest.main()
    if "stow" in chosen:
        stow.main()
    if "ai" in chosen:
        ai_bench.main([])
    if "overlay" in chosen:
        overlay.main()
    if "turnaround" in chosen:
        turnaround.main()
    if "study" in chosen:
        study.main(["--fast"] if args.fast else [])


if __name__ == "__main__":
    main()
