"""Reading images by content and converting them to one canonical mode.

Every image LungScan sees (training, evaluation, the app, the CLI) goes through
`load_image`, which sniffs the bytes rather than trusting the file extension
(the public dataset has JPEGs named `.png`), refuses corrupt, truncated, empty and
oversized inputs with an `ImageError`, and returns an 8-bit greyscale PIL image.
Greyscale removes the RGB-vs-RGBA shortcut the `normal` class carries in the
public dataset.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageError

#: Largest upload accepted, in bytes. Matches `.streamlit/config.toml`'s upload limit.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Largest image accepted, in pixels; a bigger header is a decompression bomb to us.
MAX_PIXELS = 40_000_000
#: Smallest side we accept; anything smaller carries no diagnostic content.
MIN_SIDE = 32

_DICOM_MAGIC_OFFSET = 128


def is_dicom(data: bytes) -> bool:
    """True when the bytes carry the DICOM Part 10 preamble marker."""
    return len(data) >= _DICOM_MAGIC_OFFSET + 4 and data[_DICOM_MAGIC_OFFSET:_DICOM_MAGIC_OFFSET + 4] == b"DICM"


def read_bytes(source: str | Path | bytes | bytearray) -> bytes:
    """Bytes of a path or of a bytes-like object, with the size limits applied."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ImageError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{path.name} is {size / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB.")
        data = path.read_bytes()
    if not data:
        raise ImageError("The file is empty (0 bytes).")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB.")
    return data


def to_greyscale(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (RGBA, RGB, P, LA, I;16, I, F, CMYK, 1) to 8-bit 'L'."""
    mode = image.mode
    if mode == "L":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = np.zeros_like(array) if high <= low else (array - low) * (255.0 / (high - low))
        return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Composite onto black: CT backgrounds are black, so transparent pixels read as air.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("L")
    return image.convert("RGB").convert("L") if mode not in ("RGB",) else image.convert("L")


def decode_raster(data: bytes) -> Image.Image:
    """Decode PNG/JPEG/TIFF/BMP bytes into a fully loaded PIL image (any mode)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"The image is {width}x{height} pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels."
                )
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("The image is too large to decode safely (decompression bomb guard).") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("The file is not an image LungScan can read (PNG, JPEG or DICOM expected).") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"The image is corrupt or truncated: {exc}") from exc
    if min(image.size) < MIN_SIDE:
        raise ImageError(f"The image is {image.width}x{image.height} pixels; at least {MIN_SIDE} px per side is needed.")
    return image


def load_image(source: str | Path | bytes | bytearray) -> Image.Image:
    """Read a CT slice from a path or bytes and return it as an 8-bit greyscale image.

    DICOM files are rendered as the model expects by `lungscan.dicom` (`model_rendering`); raster files are
    decoded by content. Raises ImageError with a message fit for the user.
    """
    data = read_bytes(source)
    if is_dicom(data):
        from .dicom import read_dicom  # pydicom is only imported when a DICOM arrives

        return read_dicom(data).image
    return to_greyscale(decode_raster(data))
