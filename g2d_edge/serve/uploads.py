"""What a request may send and how big: the body-size limit (an ASGI middleware, so an oversized upload is refused
before it is read to the end) and the images of a request, decoded with the SDK's own checks
(`g2d_edge.io.decode_image`: header size read first, `max_image_pixels` refused before decoding).

An image arrives as a multipart upload (any field; the order of the form is kept), as JSON with base64 strings
(`{"image": ...}`, `{"images": [...]}`, `{"image_a": ..., "image_b": ...}`) or as the raw body with an `image/*`
content type. Nothing of a request is used as a path: uploads are decoded in memory.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import numpy as np
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ..errors import ImageReadError
from ..imagesize import image_size
from ..io import decode_image
from ..text import printable

#: Files one request may upload at most.
MAX_FILES = 32
#: Fields of a JSON body that hold one base64 image each, and the one that holds a list.
JSON_IMAGE_FIELDS = ("image", "image_a", "image_b")
JSON_LIST_FIELD = "images"

Upload = Tuple[str, bytes]  # (label for messages, encoded image)


class BodyLimit:
    """ASGI middleware: a request whose body exceeds `max_bytes` gets 413 (at once from its Content-Length, else as
    soon as the bytes read pass the limit)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    def _too_large(self) -> HTTPException:
        return HTTPException(413, f"the request body is larger than the server's limit of {self.max_bytes} bytes; "
                                  "send smaller or fewer images (the limit is g2d serve --max-upload-mb)")

    async def __call__(self, scope: Dict[str, Any], receive: Callable[[], Awaitable[Dict[str, Any]]],
                       send: Callable[[Dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _plain_error(send, 413 if declared.isdigit() else 400,
                               str(self._too_large().detail) if declared.isdigit() else "bad Content-Length header")
            return
        seen = 0

        async def limited() -> Dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited, send)


async def _plain_error(send: Callable[[Dict[str, Any]], Awaitable[None]], status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def request_uploads(request: Request) -> Tuple[List[Upload], Dict[str, str]]:
    """The images of a request, in order, and its other (text) fields."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return await _multipart(request)
    if kind == "application/json":
        return _json_images(await request.body())
    if kind.startswith("image/"):
        return [("image", await request.body())], {}
    raise HTTPException(415, f"unsupported content type {printable(kind or 'none', 60)!r}: upload the image as "
                             "multipart/form-data (curl -F image=@photo.jpg), as JSON with base64 "
                             "({\"image\": \"...\"}) or as the raw body with Content-Type: image/jpeg")


async def _multipart(request: Request) -> Tuple[List[Upload], Dict[str, str]]:
    form = await request.form(max_files=MAX_FILES, max_fields=MAX_FILES)
    try:
        uploads: List[Upload] = []
        fields: Dict[str, str] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                uploads.append((printable(value.filename or key, 80), await value.read()))
            else:
                fields[key] = str(value)
        return uploads, fields
    finally:
        await form.close()


def _json_images(body: bytes) -> Tuple[List[Upload], Dict[str, str]]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(422, "the JSON body must be an object such as {\"image\": \"<base64>\"}")
    uploads = [(key, _b64(data[key], key)) for key in JSON_IMAGE_FIELDS if key in data]
    listed = data.get(JSON_LIST_FIELD, [])
    if not isinstance(listed, list) or len(listed) > MAX_FILES:
        raise HTTPException(422, f"\"{JSON_LIST_FIELD}\" must be a list of at most {MAX_FILES} base64 images")
    uploads += [(f"{JSON_LIST_FIELD}[{i}]", _b64(item, f"{JSON_LIST_FIELD}[{i}]")) for i, item in enumerate(listed)]
    fields = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in data.items()
              if k not in JSON_IMAGE_FIELDS and k != JSON_LIST_FIELD and isinstance(v, (str, bool, int, float))}
    return uploads, fields


def _b64(value: Any, key: str) -> bytes:
    if not isinstance(value, str):
        raise HTTPException(422, f"\"{key}\" must be a base64 string")
    if value.startswith("data:") and "," in value:  # a data: URL, as a browser's canvas gives it
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, f"\"{key}\" is not valid base64") from None


def check_upload(upload: Upload, max_pixels: int) -> None:
    """413 for an image whose header claims more than `max_pixels` pixels (cheap: nothing is decoded, so the
    request handler checks this before the request waits in the queue)."""
    label, data = upload
    size = image_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise HTTPException(413, f"{label} is {size[0]}x{size[1]} pixels, above the server's limit of {max_pixels} "
                                 "pixels; downscale it (the limit is g2d serve --max-pixels)")


def decode_upload(upload: Upload, max_pixels: int) -> np.ndarray:
    """The BGR image of an upload: 413 above `max_pixels` (from the header, before decoding), 422 when it is not
    a decodable image. Decoding takes milliseconds of CPU: the API does it on a worker, off the event loop."""
    label, data = upload
    check_upload(upload, max_pixels)
    try:
        return decode_image(data, max_pixels, label)
    except ImageReadError as exc:
        raise HTTPException(422, str(exc)) from None


def one_flag(fields: Dict[str, str], name: str, default: bool = False) -> bool:
    """A yes/no form or JSON field ("true"/"false", "1"/"0", "on"), 422 for anything else."""
    value: Optional[str] = fields.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise HTTPException(422, f"\"{name}\" must be true or false, got {printable(value, 40)!r}")
