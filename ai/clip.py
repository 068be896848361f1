"""A decoded ultrasound instance as ai/ sees it: frames, calibration regions and timing.

ai.decode builds it from a DICOM dataset; the pipelines read it. Tests build it from arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]  # (rows, columns, 3) RGB


class FrameSource(Protocol):
    """Frames decoded on demand so a long clip is never held whole in memory."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Frame: ...


@dataclass(frozen=True)
class UltrasoundRegion:
    """One item of the Sequence of Ultrasound Regions (PS3.3 C.8.5.5), bounds clamped.

    Reference pixel X0/Y0 are offsets from the region's top-left corner (min_x0, min_y0), not
    from the image's. Units codes (PS3.3 C.8.5.5.1.15): 3 cm, 4 seconds, 7 cm/s.
    """

    spatial_format: int  # 1 2D, 2 M-mode, 3 spectral, 4 waveform, ...
    data_type: int  # 1 tissue, 2 colour flow, 3 PW spectral, 4 CW spectral, ...
    flags: int
    min_x0: int
    min_y0: int
    max_x1: int
    max_y1: int
    physical_units_x: int
    physical_units_y: int
    physical_delta_x: float
    physical_delta_y: float
    reference_pixel_x0: int | None = None
    reference_pixel_y0: int | None = None
    reference_physical_value_x: float | None = None
    reference_physical_value_y: float | None = None

    @property
    def width(self) -> int:
        return self.max_x1 - self.min_x0 + 1

    @property
    def height(self) -> int:
        return self.max_y1 - self.min_y0 + 1


@dataclass(frozen=True)
class ArrayFrames:
    """Frames already in memory (tests, small clips)."""

    array: npt.NDArray[np.uint8]  # (frames, rows, columns, 3)

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __getitem__(self, index: int) -> Frame:
        frame: Frame = self.array[index]
        return frame


@dataclass(frozen=True)
class Clip:
    frames: FrameSource
    rows: int
    columns: int
    regions: tuple[UltrasoundRegion, ...] = ()
    frame_time_ms: float | None = None
    heart_rate_bpm: float | None = None
    r_wave_times_ms: tuple[float, ...] = ()
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    # Header text the view rules read (ViewCodeSequence codes, SeriesDescription, ...).
    metadata: dict[str, object] = field(default_factory=dict)
    # What decoded the pixel data, e.g. "pillow 13.0.0 (libjpeg-turbo 3.2.0)" (ai.decode).
    decoder: str = ""

    def __len__(self) -> int:
        return len(self.frames)

    def iter_frames(self, indices: Sequence[int] | None = None) -> Iterator[Frame]:
        for index in range(len(self.frames)) if indices is None else indices:
            yield self.frames[index]
