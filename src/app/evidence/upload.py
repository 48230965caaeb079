"""Receiving a multipart upload as a stream: the file part goes to a staging file while
it is hashed and counted; the other parts are small text fields kept in memory. Nothing
is ever held whole in memory, and every way out but success removes the staging file."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from src.app.core.errors import ApiError
from src.app.evidence.signatures import SNIFF_BYTES

FILE_FIELD = "file"
MAX_FIELD_BYTES = 80 * 1024  # metadata is at most 64 KiB of JSON
MAX_FIELDS_BYTES = 256 * 1024
MAX_PARTS = 16
# What a request may carry besides the file: boundaries, part headers, fields.
FORM_OVERHEAD_BYTES = MAX_FIELDS_BYTES + 64 * 1024
STAGED_SUFFIX = ".part"


class _TooLarge(Exception):
    pass


class _BadForm(Exception):
    pass


@dataclass
class ReceivedUpload:
    """A fully received upload: its fields and the staged file (hash and size known)."""

    fields: dict[str, str]
    staged: Path
    filename: str | None
    size: int
    sha256: str
    head: bytes

    def discard(self) -> None:
        self.staged.unlink(missing_ok=True)


@dataclass
class _Receiver:
    staging_dir: Path
    max_file_bytes: int
    fields: dict[str, str] = field(default_factory=dict)
    staged: Path | None = None
    filename: str | None = None
    size: int = 0
    head: bytes = b""
    complete: bool = False
    _digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    _handle: BinaryIO | None = None
    _headers: dict[str, str] = field(default_factory=dict)
    _header_name: bytes = b""
    _header_value: bytes = b""
    _part_name: str | None = None
    _part_is_file: bool = False
    _field_value: bytearray = field(default_factory=bytearray)
    _fields_bytes: int = 0
    _parts: int = 0

    # python-multipart callbacks (synchronous; exceptions propagate out of write()).
    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise _BadForm(f"The form has more than {MAX_PARTS} parts")
        self._headers = {}
        self._part_name = None
        self._part_is_file = False
        self._field_value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        name = self._header_name.decode("latin-1").strip().lower()
        # latin-1 round-trips the raw bytes; names are decoded as UTF-8 where used.
        self._headers[name] = self._header_value.decode("latin-1")
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition", ""))
        if disposition != b"form-data" or b"name" not in options:
            raise _BadForm("Every part needs Content-Disposition: form-data; name=...")
        name = options[b"name"].decode("utf-8", "replace")
        self._part_name = name
        if name == FILE_FIELD:
            if self.staged is not None:
                raise _BadForm("Send exactly one 'file' part")
            self._part_is_file = True
            raw_filename = options.get(b"filename")
            self.filename = raw_filename.decode("utf-8", "replace") if raw_filename else None
            self.staging_dir.mkdir(parents=True, exist_ok=True)
            self.staged = self.staging_dir / f"{uuid.uuid4().hex}{STAGED_SUFFIX}"
            self._handle = self.staged.open("xb")
        elif name in self.fields:
            raise _BadForm(f"The field '{name}' is sent more than once")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._part_is_file:
            self.size += len(chunk)
            if self.size > self.max_file_bytes:
                raise _TooLarge
            if len(self.head) < SNIFF_BYTES:
                self.head += chunk[: SNIFF_BYTES - len(self.head)]
            self._digest.update(chunk)
            assert self._handle is not None
            self._handle.write(chunk)
            return
        self._fields_bytes += len(chunk)
        if len(self._field_value) + len(chunk) > MAX_FIELD_BYTES:
            raise _BadForm(f"The field '{self._part_name}' exceeds {MAX_FIELD_BYTES} bytes")
        if self._fields_bytes > MAX_FIELDS_BYTES:
            raise _BadForm(f"The form fields exceed {MAX_FIELDS_BYTES} bytes in total")
        self._field_value += chunk

    def on_part_end(self) -> None:
        if self._part_is_file:
            return  # the handle is fsynced and closed once the body has ended
        assert self._part_name is not None
        try:
            self.fields[self._part_name] = self._field_value.decode("utf-8")
        except UnicodeDecodeError:
            raise _BadForm(f"The field '{self._part_name}' is not UTF-8 text") from None

    def on_end(self) -> None:
        self.complete = True

    async def finish_file(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.flush()
            await asyncio.to_thread(os.fsync, handle.fileno())
            handle.close()

    def abandon(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self.staged is not None:
            self.staged.unlink(missing_ok=True)

    def result(self) -> ReceivedUpload:
        if not self.complete:
            raise _BadForm("The multipart body ended before its closing boundary")
        if self.staged is None:
            raise _BadForm("The form has no 'file' part")
        return ReceivedUpload(
            fields=self.fields,
            staged=self.staged,
            filename=self.filename,
            size=self.size,
            sha256=self._digest.hexdigest(),
            head=self.head,
        )


def _too_large(max_file_bytes: int) -> ApiError:
    return ApiError(413, f"The file exceeds the upload limit of {max_file_bytes} bytes")


def _boundary(request: Request) -> bytes:
    media, options = parse_options_header(request.headers.get("content-type", ""))
    if media != b"multipart/form-data":
        raise ApiError(415, "Uploads must be multipart/form-data")
    boundary = options.get(b"boundary")
    if not boundary:
        raise ApiError(400, "The multipart Content-Type has no boundary")
    return boundary


async def receive_upload(
    request: Request, *, staging_dir: Path, max_file_bytes: int
) -> ReceivedUpload:
    """Read the request body once, streaming the file part into ``staging_dir``.

    413 as soon as the file crosses ``max_file_bytes`` (or at once when Content-Length
    already says so); 400 for a malformed form; 415 when it is not multipart.
    """
    boundary = _boundary(request)
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and declared.isdigit()
        and int(declared) > max_file_bytes + (FORM_OVERHEAD_BYTES)
    ):
        raise _too_large(max_file_bytes)
    receiver = _Receiver(staging_dir, max_file_bytes)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": receiver.on_part_begin,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
            "on_end": receiver.on_end,
        },
    )
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_file_bytes + FORM_OVERHEAD_BYTES:
                raise _TooLarge  # parts, preamble or epilogue beyond any honest form
            if chunk:
                parser.write(chunk)
        parser.finalize()
        await receiver.finish_file()
        return receiver.result()
    except _TooLarge:
        receiver.abandon()
        raise _too_large(max_file_bytes) from None
    except _BadForm as exc:
        receiver.abandon()
        raise ApiError(400, str(exc)) from None
    except BaseException as exc:
        receiver.abandon()
        if _is_multipart_error(exc):
            raise ApiError(400, "The multipart body is malformed") from None
        raise


def _is_multipart_error(exc: BaseException) -> bool:
    from python_multipart.exceptions import FormParserError

    return isinstance(exc, FormParserError)
