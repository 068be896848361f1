"""`make bench`: every benchmark, each printing its figures and writing benchmarks/results/."""

from __future__ import annotations

from benchmarks import ingest


def main() -> None:
    ingest.main()


if __name__ == "__main__":
    main()
