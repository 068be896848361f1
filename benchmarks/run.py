"""`make bench`: every benchmark, each printing its figures and writing benchmarks/results/.

Run on a quiet machine: every figure is compared with a reference tool (dcmtk storescp,
Orthanc) measured in the same run, so the ratios, not the absolute rates, are what count.
"""

from __future__ import annotations

from benchmarks import ai_bench, ingest, overlay, stow, turnaround


def main() -> None:
    ingest.main()
    stow.main()
    ai_bench.main()
    overlay.main()
    turnaround.main()


if __name__ == "__main__":
    main()
