"""What an image says about itself (EXIF capture time, GPS, camera) and its thumbnail.
Pillow opens HEIC/HEIF through pillow-heif. Blocking: call these in a thread."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

register_heif_opener()

logger = logging.getLogger("firemode.evidence")

THUMBNAIL_PIXELS = 320
THUMBNAIL_QUALITY = 80
# Pillow refuses (DecompressionBombError) images over twice this many pixels.
Image.MAX_IMAGE_PIXELS = 120_000_000
_IMAGE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)

_MAKE, _MODEL = 0x010F, 0x0110
_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_ALT_REF, _GPS_ALT = 1, 2, 3, 4, 5, 6


class NotAnImage(Exception):
    """The blob cannot be decoded as an image."""


def _text(value: Any, limit: int = 200) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    # Neither database stores U+0000 in JSON text; EXIF strings are often NUL-padded.
    cleaned = value.replace("\x00", "").strip()
    cleaned = cleaned.encode("utf-8", "replace").decode("utf-8")
    return cleaned[:limit] or None


def _number(value: Any) -> float:
    return float(Fraction(value)) if not isinstance(value, float) else value


def gps_degrees(dms: Sequence[Any], ref: str | None) -> float | None:
    """Degrees, minutes, seconds (EXIF rationals) and a hemisphere as signed decimal
    degrees; None when they are not a valid coordinate."""
    try:
        degrees, minutes, seconds = (_number(part) for part in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = degrees + minutes / 60 + seconds / 3600
    if ref in ("S", "W"):
        value = -value
    limit = 90 if ref in ("N", "S") else 180
    if not -limit <= value <= limit or value != value:
        return None
    return round(value, 7)


def exif_datetime(raw: str | None) -> str | None:
    """``YYYY:MM:DD HH:MM:SS`` (EXIF) as ISO 8601 ``YYYY-MM-DDTHH:MM:SS``; None if malformed."""
    if raw is None or len(raw) < 19:
        return None
    date, _, time = raw[:19].partition(" ")
    parts = date.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or len(time) != 8:
        return None
    return f"{'-'.join(parts)}T{time}"


def _gps(gps: dict[int, Any]) -> dict[str, float] | None:
    if _GPS_LAT not in gps or _GPS_LON not in gps:
        return None
    latitude = gps_degrees(gps[_GPS_LAT], _text(gps.get(_GPS_LAT_REF)) or "N")
    longitude = gps_degrees(gps[_GPS_LON], _text(gps.get(_GPS_LON_REF)) or "E")
    if latitude is None or longitude is None:
        return None
    found = {"latitude": latitude, "longitude": longitude}
    if _GPS_ALT in gps:
        try:
            altitude = _number(gps[_GPS_ALT])
        except (TypeError, ValueError, ZeroDivisionError):
            return found
        below_sea = gps.get(_GPS_ALT_REF) in (1, b"\x01")
        found["altitude_m"] = round(-altitude if below_sea else altitude, 2)
    return found


def read_embedded(path: Path) -> dict[str, Any]:
    """Width, height, and when the file has them: the EXIF capture time (local time as
    written, plus its UTC offset when recorded), GPS position and camera make/model."""
    try:
        with Image.open(path) as image:
            found: dict[str, Any] = {"width": image.width, "height": image.height}
            exif = image.getexif()
            sub = exif.get_ifd(ExifTags.IFD.Exif)
            gps = _gps(dict(exif.get_ifd(ExifTags.IFD.GPSInfo)))
    except _IMAGE_ERRORS as exc:
        logger.info("image metadata unreadable", extra={"error": type(exc).__name__})
        return {"image_readable": False}
    taken = exif_datetime(_text(sub.get(_DATETIME_ORIGINAL)))
    if taken is not None:
        found["captured_at_local"] = taken
        offset = _text(sub.get(_OFFSET_TIME_ORIGINAL), 6)
        if offset is not None:
            found["utc_offset"] = offset
    for name, tag in (("camera_make", _MAKE), ("camera_model", _MODEL)):
        text = _text(exif.get(tag))
        if text is not None:
            found[name] = text
    if gps is not None:
        found["gps"] = gps
    return found


def make_thumbnail(path: Path) -> bytes:
    """A JPEG at most ``THUMBNAIL_PIXELS`` on its longer side, upright per EXIF."""
    try:
        with Image.open(path) as image:
            # JPEG decodes at a reduced scale: a 12 MP photo never becomes 36 MB of pixels.
            image.draft("RGB", (THUMBNAIL_PIXELS * 2, THUMBNAIL_PIXELS * 2))
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            output = io.BytesIO()
            upright.convert("RGB").save(output, "JPEG", quality=THUMBNAIL_QUALITY)
    except _IMAGE_ERRORS as exc:
        raise NotAnImage(str(exc)) from exc
    return output.getvalue()
