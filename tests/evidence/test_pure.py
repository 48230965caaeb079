"""The pure parts: ranges, signatures, EXIF GPS conversion, file names, fingerprints."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.app.evidence.images import exif_datetime, gps_degrees
from src.app.evidence.models import EvidenceKind
from src.app.evidence.ranges import ByteRange, Unsatisfiable, parse_range
from src.app.evidence.rules import clean_filename, kind_refusal, record_fingerprint
from src.app.evidence.signatures import HEIC, JPEG, MP4, PDF, PNG, QUICKTIME, WEBP, sniff
from tests.evidence import files


@given(size=st.integers(1, 10_000), a=st.integers(0, 20_000), b=st.integers(0, 20_000))
def test_a_served_range_is_always_inside_the_content(size: int, a: int, b: int):
    for header in (f"bytes={a}-{b}", f"bytes={a}-", f"bytes=-{b}"):
        try:
            wanted = parse_range(header, size)
        except Unsatisfiable:
            assert a >= size or header == "bytes=-0"
            continue
        if wanted is None:
            assert header == f"bytes={a}-{b}" and b < a
            continue
        assert 0 <= wanted.start <= wanted.end < size
        data = bytes(range(256)) * (size // 256 + 1)
        expected = data[:size]
        if header.startswith("bytes=-"):
            assert expected[wanted.start : wanted.end + 1] == expected[-b:]
        else:
            assert wanted.start == a


@pytest.mark.parametrize(
    "header", [None, "items=0-1", "bytes=0-1,3-4", "bytes=x-1", "bytes=5-2", "bytes=-", "bytes"]
)
def test_ranges_we_ignore(header: str | None):
    assert parse_range(header, 100) is None


def test_range_examples():
    assert parse_range("bytes=0-0", 10) == ByteRange(0, 0)
    assert parse_range("bytes=-3", 10) == ByteRange(7, 9)
    assert parse_range("bytes=-30", 10) == ByteRange(0, 9)
    assert parse_range("bytes=8-30", 10).content_range(10) == "bytes 8-9/10"  # type: ignore[union-attr]
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=10-", 10)


def test_sniffing_real_files_and_signatures():
    assert sniff(files.jpeg_with_exif()[:64]) == JPEG
    assert sniff(files.png()[:64]) == PNG
    assert sniff(files.heic()[:64]) == HEIC
    assert sniff(files.pdf()[:64]) == PDF
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == WEBP
    assert sniff(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom") == MP4
    assert sniff(b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ") == QUICKTIME
    assert sniff(b"\x00\x00\x00\x08wide\x00\x00") == QUICKTIME
    assert sniff(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1") is None
    assert sniff(files.windows_exe()[:64]) is None
    assert sniff(b"GIF89a") is None
    assert sniff(b"") is None


def test_gps_and_exif_time():
    assert gps_degrees((33, 52, 4), "S") == -33.8677778
    assert gps_degrees((151, 12, 36), "E") == 151.21
    assert gps_degrees((200, 0, 0), "N") is None
    assert gps_degrees(("x", 0, 0), "N") is None
    assert exif_datetime("2026:11:30 10:15:00") == "2026-11-30T10:15:00"
    assert exif_datetime("0000:00:00") is None


def test_file_names_and_kinds():
    assert clean_filename("C:\\Users\\tech\\IMG 1.jpg", "jpg") == "IMG 1.jpg"
    assert clean_filename('../../etc/pa"ss\x00wd', "pdf") == "pa_ss_wd"
    assert clean_filename("", "png") == "evidence.png"
    assert clean_filename(None, "png") == "evidence.png"
    assert kind_refusal(EvidenceKind.signature, PDF) is None
    assert kind_refusal(EvidenceKind.video, JPEG) is not None
    assert kind_refusal(EvidenceKind.photo, MP4) is not None
    assert kind_refusal(EvidenceKind.other, MP4) is None


def test_fingerprint_ignores_key_order_only():
    a = record_fingerprint({"kind": "photo", "metadata": {"a": 1, "b": 2}})
    b = record_fingerprint({"metadata": {"b": 2, "a": 1}, "kind": "photo"})
    c = record_fingerprint({"kind": "photo", "metadata": {"a": 1, "b": 3}})
    assert a == b != c
