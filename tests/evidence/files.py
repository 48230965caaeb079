"""Real files for the evidence tests, generated on the fly."""

from __future__ import annotations

import hashlib
import io

from PIL import ExifTags, Image
from pillow_heif import register_heif_opener
from reportlab.pdfgen import canvas

register_heif_opener()

# Sydney Opera House, 12.5 m above sea level, photographed at 10:15 local time (+10:00).
LATITUDE, LONGITUDE, ALTITUDE = -33.8677778, 151.21, 12.5


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "FireCam"
    exif[0x0110] = "FC-1\x00"  # NUL padding, as real cameras write it
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[0x9003] = "2026:11:30 10:15:00"
    sub[0x9011] = "+10:00"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[1], gps[2] = "S", (33.0, 52.0, 4.0)
    gps[3], gps[4] = "E", (151.0, 12.0, 36.0)
    gps[5], gps[6] = b"\x00", 12.5
    return exif


def _image(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    image = Image.new("RGB", (width, height), (200, 30 + seed % 200, 30))
    image.putpixel((seed % width, 0), (seed % 256, 0, 0))  # distinct bytes per seed
    return image


def jpeg_with_exif(seed: int = 0) -> bytes:
    out = io.BytesIO()
    _image(seed=seed).save(out, "JPEG", exif=_exif(), quality=90)
    return out.getvalue()


def png(seed: int = 0) -> bytes:
    out = io.BytesIO()
    _image(320, 200, seed).save(out, "PNG")
    return out.getvalue()


def heic(seed: int = 0) -> bytes:
    out = io.BytesIO()
    _image(seed=seed).save(out, format="HEIF", exif=_exif().tobytes())
    return out.getvalue()


def pdf(text: str = "Sign-off sheet") -> bytes:
    out = io.BytesIO()
    document = canvas.Canvas(out)
    document.drawString(72, 720, text)
    document.save()
    return out.getvalue()


def windows_exe() -> bytes:
    """The start of a PE executable (MZ header), as a renamed .exe would arrive."""
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(4096)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
