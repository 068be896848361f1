"""Consumer images of stored instances: one frame decoded, made 8-bit, fitted to a viewport and
encoded as JPEG or PNG (PS3.18 §8.3.5.1 rendering parameters), and small icons for documents.

Only the requested frame is decoded: pydicom reads that frame's bytes from the file, so a
280 MB clip costs one frame of memory, not the clip. A video clip (MPEG-2, H.264, HEVC) is one
bitstream: it is read whole (its compressed size) and decoded up to the frame asked for.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut
from pydicom.pixels.utils import get_nr_frames, pixel_array

from ai.video import VideoFrames, bitstream, is_video
from echo_node.web.errors import WebError

RENDERED_TYPES = ("image/jpeg", "image/png")


@dataclass(frozen=True)
class Viewport:
    """PS3.18 §8.3.5.1.3: the output fits in ``width`` × ``height`` (aspect kept); ``region``
    (sx, sy, sw, sh) is the part of the source shown, negative sizes flip it."""

    width: int
    height: int
    region: tuple[int, int, int, int] | None = None


def parse_viewport(text: str | None, largest: int) -> Viewport | None:
    """``vw,vh`` or ``vw,vh,sx,sy,sw,sh``; WebError 400 otherwise."""
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (2, 6) or not all(1 <= v <= largest for v in values[:2]):
        raise WebError(400, f"viewport must be vw,vh[,sx,sy,sw,sh] with vw and vh 1-{largest}")
    if len(values) == 2:
        return Viewport(values[0], values[1])
    sx, sy, sw, sh = values[2:]
    if sx < 0 or sy < 0 or sw == 0 or sh == 0:
        raise WebError(400, "viewport: sx and sy from 0, sw and sh not 0")
    return Viewport(values[0], values[1], (sx, sy, sw, sh))


def parse_quality(text: str | None, default: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise WebError(400, "quality must be a whole number from 1 to 100")
    return int(text)


def frame_count(header: Dataset) -> int:
    return int(get_nr_frames(header, warn=False))


def representative_frame(header: Dataset) -> int:
    """Representative Frame Number (0028,6010) where set and valid, else the middle frame."""
    count = frame_count(header)
    chosen = header.get("RepresentativeFrameNumber")
    if isinstance(chosen, int) and 1 <= chosen <= count:
        return chosen
    return (count + 1) // 2


def read_header(path: Path) -> Dataset:
    return dcmread(path, stop_before_pixels=True)


def frame_image(path: Path, header: Dataset, number: int) -> Image.Image:
    """Frame ``number`` (1-based) as an 8-bit greyscale or RGB image."""
    count = frame_count(header)
    if not 1 <= number <= count:
        raise WebError(404, f"frame {number} does not exist (the instance has {count})")
    try:
        if is_video(str(header.file_meta.get("TransferSyntaxUID", ""))):
            return Image.fromarray(_video_frame(path, number))
        array = pixel_array(path, index=number - 1)
    except Exception as exc:  # missing decoder plugins and damaged data end the same way
        raise WebError(406, f"cannot decode this frame: {type(exc).__name__}") from None
    photometric = str(header.get("PhotometricInterpretation", ""))
    if photometric == "PALETTE COLOR":
        array = apply_color_lut(array, header)
        if array.dtype != np.uint8:  # 16-bit lookup tables span 0-65535
            array = (array // 257).astype(np.uint8)
    array = _eight_bit(array, header)
    if photometric == "MONOCHROME1":
        array = 255 - array
    return Image.fromarray(array)


def _video_frame(path: Path, number: int) -> np.ndarray:
    """Frame ``number`` of a video clip (MPEG-2, H.264, HEVC), RGB: its stream is decoded
    from the start up to that frame (ai/video.py)."""
    dataset = dcmread(path)
    frames = VideoFrames(
        bitstream(dataset.PixelData),
        str(dataset.file_meta.TransferSyntaxUID),
        frame_count(dataset),
        int(dataset.Rows),
        int(dataset.Columns),
    )
    try:
        return frames[number - 1]
    finally:
        frames.close()


def _eight_bit(array: np.ndarray, header: Dataset) -> np.ndarray:
    """8-bit display values: the first stored window where one is given (greyscale), else the
    range of the frame's own values."""
    if array.dtype == np.uint8:
        return array
    values = array.astype(np.float32)
    center, width = header.get("WindowCenter"), header.get("WindowWidth")
    if array.ndim == 2 and center is not None and width is not None:
        slope = float(header.get("RescaleSlope", 1) or 1)
        intercept = float(header.get("RescaleIntercept", 0) or 0)
        center, width = _first(center), max(_first(width), 1.0)
        low = (center - 0.5 - (width - 1) / 2 - intercept) / slope
        high = (center - 0.5 + (width - 1) / 2 - intercept) / slope
    else:
        low, high = float(values.min()), float(values.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    out: np.ndarray = np.clip((values - low) * scale, 0, 255).astype(np.uint8)
    return out


def _first(value: object) -> float:
    return float(value[0]) if isinstance(value, list | tuple) else float(str(value))


def imaging_area(image: Image.Image, header: Dataset) -> Image.Image:
    """The part of an ultrasound frame its regions cover (the union of the Sequence of
    Ultrasound Regions). Scanners burn the patient's name into the banner outside the
    regions, and PS3.18 wants thumbnails free of identifying information."""
    boxes = []
    for region in header.get("SequenceOfUltrasoundRegions", []):
        try:
            boxes.append(
                (
                    int(region.RegionLocationMinX0),
                    int(region.RegionLocationMinY0),
                    int(region.RegionLocationMaxX1) + 1,
                    int(region.RegionLocationMaxY1) + 1,
                )
            )
        except (AttributeError, TypeError, ValueError):
            continue
    if not boxes:
        return image
    left = max(0, min(box[0] for box in boxes))
    top = max(0, min(box[1] for box in boxes))
    right = min(image.width, max(box[2] for box in boxes))
    bottom = min(image.height, max(box[3] for box in boxes))
    if right - left < 2 or bottom - top < 2:
        return image
    return image.crop((left, top, right, bottom))


def fit(image: Image.Image, viewport: Viewport | None) -> Image.Image:
    if viewport is None:
        return image
    if viewport.region is not None:
        sx, sy, sw, sh = viewport.region
        right, bottom = min(image.width, sx + abs(sw)), min(image.height, sy + abs(sh))
        if sx >= image.width or sy >= image.height:
            raise WebError(400, "viewport: the source region lies outside the image")
        image = image.crop((sx, sy, right, bottom))
        if sw < 0:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if sh < 0:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    scale = min(viewport.width / image.width, viewport.height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS) if size != image.size else image


def encode(image: Image.Image, media_type: str, quality: int) -> bytes:
    out = io.BytesIO()
    if media_type == "image/png":
        image.save(out, format="PNG")
    else:
        image.convert("RGB" if image.mode == "RGB" else "L").save(
            out, format="JPEG", quality=quality
        )
    return out.getvalue()


def icon(label: str, width: int, height: int) -> Image.Image:
    """A page with a folded corner and ``label`` ("SR", "PDF"): what a document looks like in
    a study browser, drawn at the size asked for."""
    image = Image.new("RGB", (width, height), (18, 22, 48))
    draw = ImageDraw.Draw(image)
    side = min(width, height)
    page_w, page_h = side * 0.56, side * 0.72
    left, top = (width - page_w) / 2, (height - page_h) / 2
    fold = page_w * 0.3
    outline = [
        (left, top),
        (left + page_w - fold, top),
        (left + page_w, top + fold),
        (left + page_w, top + page_h),
        (left, top + page_h),
    ]
    draw.polygon(outline, fill=(226, 232, 240), outline=(90, 204, 230))
    corner = [(left + page_w - fold, top), (left + page_w - fold, top + fold)]
    draw.line([*corner, (left + page_w, top + fold)], fill=(90, 204, 230), width=max(1, side // 64))
    font = ImageFont.load_default(size=max(8, side // 6))
    draw.text((width / 2, top + page_h * 0.62), label, fill=(18, 22, 48), font=font, anchor="mm")
    return image
