"""A PNG of one frame of a written phantom instance, for documentation and quick looks.

docs/images/phantom-<clip>.png are `echo-node phantom --out DIR --seed 1 --png` (frame 0,
480 pixels wide) copied from DIR/phantom-1/<clip>.png.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from PIL import Image


def write_preview(dicom_path: Path, png_path: Path, width: int = 480, frame: int = 0) -> Path:
    """Decode `frame` of the instance and write it as an RGB PNG `width` pixels wide."""
    ds = pydicom.dcmread(dicom_path)
    pixels = np.asarray(ds.pixel_array)  # pydicom converts YBR_FULL_422 to RGB
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[frame]
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    if width and image.width > width:
        height = round(image.height * width / image.width)
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    image.save(png_path, optimize=True)
    return png_path
