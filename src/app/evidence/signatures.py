"""Which file a blob is, decided by its first bytes (magic numbers), never by the client's
Content-Type or file name. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

SNIFF_BYTES = 64
"""How many leading bytes ``sniff`` needs at most."""


@dataclass(frozen=True, slots=True)
class MediaType:
    mime: str
    extension: str

    @property
    def is_image(self) -> bool:
        return self.mime.startswith("image/")

    @property
    def is_video(self) -> bool:
        return self.mime.startswith("video/")


JPEG = MediaType("image/jpeg", "jpg")
PNG = MediaType("image/png", "png")
WEBP = MediaType("image/webp", "webp")
HEIC = MediaType("image/heic", "heic")
HEIF = MediaType("image/heif", "heif")
PDF = MediaType("application/pdf", "pdf")
MP4 = MediaType("video/mp4", "mp4")
QUICKTIME = MediaType("video/quicktime", "mov")
ALLOWED = (JPEG, PNG, WEBP, HEIC, HEIF, PDF, MP4, QUICKTIME)

# ISO base media file format brands (the "ftyp" box): HEIF stills, then video.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})  # AVIF (major brand avif) is not allowed
_MP4_BRANDS = frozenset(
    {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash"}
)
_QT_BRAND = b"qt  "
# QuickTime files written without an ftyp box start with one of these atoms.
_QT_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def _iso_bmff(head: bytes) -> MediaType | None:
    box_size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    compatible = [
        head[i : i + 4]
        for i in range(16, min(len(head), max(box_size, 16)), 4)
        if i + 4 <= len(head)
    ]
    brands = [major, *compatible]
    if major in _HEIC_BRANDS:
        return HEIC
    if major in _HEIF_BRANDS:
        return HEIC if any(b in _HEIC_BRANDS for b in compatible) else HEIF
    if major == _QT_BRAND:
        return QUICKTIME
    if any(b in _MP4_BRANDS for b in brands):
        return MP4
    return None


def sniff(head: bytes) -> MediaType | None:
    """The allowed media type ``head`` (the file's first bytes) starts, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"%PDF-"):
        return PDF
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _iso_bmff(head)
    if len(head) >= 8 and head[4:8] in _QT_ATOMS and int.from_bytes(head[0:4], "big") >= 8:
        return QUICKTIME
    return None
