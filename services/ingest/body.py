"""Request bodies as clients send them: `Content-Encoding` decoding under a size limit, and a
UTF-8 byte order mark dropped. Pure: no HTTP framework here; app.py feeds it the chunks.

Guarantees:
- `identity`, `gzip` (and its alias `x-gzip`) and `deflate` are decoded; any other coding, a
  stack of more than one coding, or a value that is not a coding token is refused (415). A
  known coding token may be named in the message; anything else in the header never is.
- `deflate` is the zlib format (RFC 9110 section 8.4.1.2). Raw deflate streams, which some
  clients send instead, are accepted too: a zlib stream starts with a byte whose low four bits
  are 8, which the first byte of a raw deflate stream never has (its low three bits are the
  block header, and the only header with all three zero, a stored non-final block, is padded
  to the byte boundary with zeros by every encoder).
- A gzip body may hold several members one after another (RFC 1952), as `cat a.gz b.gz` makes.
- The limit holds for the bytes received and for the decoded bytes, and decoding stops as soon
  as the decoded size passes it: a small body that inflates to gigabytes never holds more than
  `limit` plus one chunk (DECODE_CHUNK bytes) of output in memory.
- Corrupt, truncated or trailing data in an encoded body is refused (400) naming the problem.
- One UTF-8 byte order mark at the start of the decoded body is removed (RFC 8259 section 8.1
  lets a parser ignore it); other byte order marks are left for the JSON decoder to refuse.
"""

from __future__ import annotations

import zlib
from typing import Literal

UTF8_BOM = b"\xef\xbb\xbf"
DECODE_CHUNK = 64 * 1024  # most output one decompress call may produce

Coding = Literal["identity", "gzip", "deflate"]

# Codings this service decodes, by the header token (RFC 9110 8.4.1.3: x-gzip is gzip).
SUPPORTED: dict[str, Coding] = {
    "identity": "identity",
    "gzip": "gzip",
    "x-gzip": "gzip",
    "deflate": "deflate",
}
# Registered codings (IANA HTTP Content Coding Registry) we do not decode: these tokens are safe
# to repeat in a message; nothing else from the header is.
KNOWN_UNSUPPORTED = frozenset(
    {"br", "compress", "x-compress", "zstd", "dcb", "dcz", "exi", "pack200-gzip", "aes128gcm"}
)


class BodyRejected(Exception):
    """The body can not be read. `detail` names the problem, never the client's bytes or
    header text other than a registered coding token; `reason` is a metrics label."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


def _unsupported(detail: str) -> BodyRejected:
    return BodyRejected(415, "unsupported_encoding", detail)


def parse_content_encoding(header: str | None) -> Coding:
    """The coding to undo for a `Content-Encoding` header value (None: header absent).
    `identity` entries are ignored. Raises BodyRejected (415) for an unsupported or unknown
    coding or more than one coding."""
    if header is None:
        return "identity"
    tokens = [t.strip().lower() for t in header.split(",")]
    tokens = [t for t in tokens if t and t != "identity"]
    if not tokens:
        return "identity"
    unknown = [t for t in tokens if t not in SUPPORTED and t not in KNOWN_UNSUPPORTED]
    if unknown:
        raise _unsupported("unsupported Content-Encoding; send gzip, deflate or identity")
    if len(tokens) > 1:
        raise _unsupported(
            f"Content-Encoding {', '.join(tokens)}: only one coding is supported;"
            " send gzip, deflate or identity"
        )
    token = tokens[0]
    if token in KNOWN_UNSUPPORTED:
        raise _unsupported(
            f"Content-Encoding {token} is not supported; send gzip, deflate or identity"
        )
    return SUPPORTED[token]


def _too_large(limit: int) -> BodyRejected:
    return BodyRejected(413, "too_large", f"body is larger than {limit} bytes")


def _corrupt(coding: str, problem: str) -> BodyRejected:
    return BodyRejected(400, "corrupt_encoding", f"{coding} body is corrupt: {problem}")


def _zlib_problem(exc: zlib.error) -> str:
    # zlib's messages are fixed strings ("invalid block type"), never the data.
    text = str(exc)
    _, sep, problem = text.partition(": ")
    return problem if sep and problem else "not valid compressed data"


class BodyReader:
    """Collects a request body chunk by chunk, decoding `coding`, under `limit` bytes.

    `feed` each chunk as it arrives, then `finish` for the decoded body. Both raise
    BodyRejected: 413 as soon as the received or the decoded size passes `limit`, 400 for
    corrupt, truncated or trailing encoded data."""

    def __init__(self, coding: Coding, limit: int) -> None:
        self.coding = coding
        self.limit = limit
        self.received = 0
        self._size = 0
        self._out: list[bytes] = []
        self._head = b""  # deflate: the first byte decides zlib or raw
        self._d: zlib._Decompress | None = None
        self._ended = False  # the current compressed stream has ended

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.limit:
            raise _too_large(self.limit)
        if self.coding == "identity":
            self._keep(chunk)
            return
        if self._d is None:
            self._head += chunk
            if not self._head:
                return
            chunk, self._head = self._head, b""
            self._d = self._new_decompressor(chunk)
        self._inflate(chunk)

    def finish(self) -> bytes:
        if self.coding != "identity":
            if self._d is None or not self._ended:
                raise _corrupt(self.coding, "truncated (the compressed stream does not end)")
        body = b"".join(self._out)
        return body[len(UTF8_BOM) :] if body.startswith(UTF8_BOM) else body

    def _new_decompressor(self, first: bytes) -> zlib._Decompress:
        if self.coding == "gzip":
            return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        zlib_format = (first[0] & 0x0F) == 8
        return zlib.decompressobj(wbits=zlib.MAX_WBITS if zlib_format else -zlib.MAX_WBITS)

    def _inflate(self, data: bytes) -> None:
        assert self._d is not None
        while data:
            if self._ended:
                # Only gzip may go on, with another member; anything else is trailing data.
                if self.coding != "gzip":
                    raise _corrupt(self.coding, "data after the end of the compressed stream")
                self._d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                self._ended = False
            budget = min(DECODE_CHUNK, self.limit - self._size + 1)
            try:
                out = self._d.decompress(data, budget)
            except zlib.error as exc:
                raise _corrupt(self.coding, _zlib_problem(exc)) from None
            self._keep(out)
            if self._d.eof:
                self._ended = True
                data = self._d.unused_data
                continue
            tail = self._d.unconsumed_tail
            if not out and len(tail) == len(data):
                # No progress: zlib never does this with room for output, but a loop that
                # could spin must not.
                raise _corrupt(self.coding, "not valid compressed data")
            data = tail

    def _keep(self, out: bytes) -> None:
        self._size += len(out)
        if self._size > self.limit:
            raise _too_large(self.limit)
        if out:
            self._out.append(out)
