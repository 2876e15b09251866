"""Width and height of an encoded image, read from its header without decoding it.

`read_image` checks an image's pixel count against a limit *before* decoding it, so that a small file claiming
huge dimensions (a "decompression bomb") is refused without spending gigabytes and seconds on it. Each parser reads
the same header fields the decoder uses:

- PNG: the IHDR chunk, which must come first;
- JPEG: the first start-of-frame marker (SOF0-SOF15 but DHT/JPG/DAC), reached by the marker walk libjpeg does;
- BMP: the DIB header (BITMAPCOREHEADER or later);
- WebP: the VP8 / VP8L / VP8X chunk;
- TIFF and BigTIFF: ImageWidth / ImageLength of the first image directory (a tag listed twice counts with its
  larger value);
- PBM / PGM / PPM (P1-P6): the text header.

Anything else (or a header too damaged to parse) gives None: the caller refuses what it cannot measure. The header
is a claim, not a proof: `read_image` also checks the decoded size against the same limit.
"""
from __future__ import annotations

import re
import struct
from typing import Callable, Dict, Optional, Tuple

Size = Tuple[int, int]  # (width, height)

#: Largest image (width x height) `g2d_edge.io.read_image` decodes by default: 50 megapixels (a 48 MP phone photo
#: passes; decoded as BGR it takes 150 MB). Raise it with `read_image(..., max_pixels=...)`,
#: `RecognizerOptions.max_image_pixels`, `CaptureOptions.max_image_pixels` or `g2d ... --max-pixels`.
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
#: The one rule for a pixel limit (`max_pixels`, `max_image_pixels`): a whole number from 1 to 2**40.
PIXEL_LIMIT = {"low": 1, "high": 2 ** 40}

#: Formats `image_size` understands, for messages.
SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "WebP", "TIFF", "PBM/PGM/PPM")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers: 0xC0-0xCF except 0xC4 (DHT), 0xC8 (JPG) and 0xCC (DAC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})
_PNM_RE = re.compile(rb"P[1-6](?:\s+|#[^\r\n]*[\r\n])+(\d+)(?:\s+|#[^\r\n]*[\r\n])+(\d+)")


def image_size(data: bytes) -> Optional[Size]:
    """(width, height) of the encoded image in `data`, read from its header; None for an unknown format or a
    header that cannot be parsed."""
    for signature_ok, parse in _PARSERS:
        if signature_ok(data):
            try:
                size = parse(data)
            except (struct.error, IndexError, ValueError):
                return None
            return size if size is not None and size[0] > 0 and size[1] > 0 else None
    return None


def _png(data: bytes) -> Optional[Size]:
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg(data: bytes) -> Optional[Size]:
    i = 2
    while i < len(data):
        if data[i] != 0xFF:  # garbage between segments: libjpeg skips to the next 0xFF
            i += 1
            continue
        while i < len(data) and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= len(data):
            return None
        marker = data[i]
        i += 1
        if marker in _JPEG_STANDALONE or marker == 0x00:
            continue
        if marker == 0xDA:  # start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[i:i + 2])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 3:i + 7])
            return width, height
        if length < 2:
            return None
        i += length
    return None


def _bmp(data: bytes) -> Optional[Size]:
    (dib_size,) = struct.unpack("<I", data[14:18])
    if dib_size == 12:  # BITMAPCOREHEADER: 16-bit unsigned
        width, height = struct.unpack("<HH", data[18:22])
        return width, height
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _webp(data: bytes) -> Optional[Size]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        b = data[21:25]
        if len(b) < 4:
            return None
        width = 1 + (((b[1] & 0x3F) << 8) | b[0])
        height = 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        return width, height
    if chunk == b"VP8X":
        if len(data) < 30:
            return None
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    return None


def _tiff(data: bytes) -> Optional[Size]:
    order = "<" if data[:2] == b"II" else ">"
    (version,) = struct.unpack(order + "H", data[2:4])
    big = version == 43
    if big:  # BigTIFF: 8-byte offsets and counts, 20-byte entries
        (ifd,) = struct.unpack(order + "Q", data[8:16])
        (count,) = struct.unpack(order + "Q", data[ifd:ifd + 8])
        start, entry_size = ifd + 8, 20
    else:
        (ifd,) = struct.unpack(order + "I", data[4:8])
        (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
        start, entry_size = ifd + 2, 12
    found: Dict[int, int] = {}  # a tag listed twice counts with its largest value: decoders differ on which wins
    for k in range(min(count, 4096)):
        entry = data[start + k * entry_size:start + (k + 1) * entry_size]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag not in (256, 257):
            continue
        value = entry[12:] if big else entry[8:]
        formats = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8
        if kind not in formats:
            return None
        fmt = formats[kind]
        found[tag] = max(found.get(tag, 0), struct.unpack(order + fmt, value[:struct.calcsize(fmt)])[0])
    if 256 not in found or 257 not in found:
        return None
    return found[256], found[257]


def _pnm(data: bytes) -> Optional[Size]:
    match = _PNM_RE.match(data[:4096])
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


_PARSERS: Tuple[Tuple[Callable[[bytes], bool], Callable[[bytes], Optional[Size]]], ...] = (
    (lambda d: d.startswith(_PNG_SIGNATURE), _png),
    (lambda d: d.startswith(b"\xff\xd8"), _jpeg),
    (lambda d: d.startswith(b"BM"), _bmp),
    (lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", _webp),
    (lambda d: d[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), _tiff),
    (lambda d: len(d) > 2 and d[:1] == b"P" and d[1:2] in b"123456" and d[2:3].isspace(), _pnm),
)
