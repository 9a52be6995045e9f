"""Photos sent in a multipart request (pure): accepted by what their bytes are, never by what the client
says they are, and within a size; nothing is ever fetched from a URL by the server.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

MEDIA_URN = "urn:caseway:intake-media:"
MAX_PHOTOS = 5
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True, slots=True)
class Photo:
    """A photo as intake stores it (intake.media) and names it in the report's attachments."""

    media_id: uuid.UUID
    part_name: str
    filename: str | None
    content_type: str
    data: bytes

    @property
    def ref(self) -> str:
        return f"{MEDIA_URN}{self.media_id}"


def image_type(data: bytes) -> str | None:
    """The image type of `data` by its first bytes: JPEG, PNG, GIF or WebP; None for anything else."""
    for signature, content_type in _SIGNATURES:
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def read_photo(part_name: str, filename: str | None, data: bytes, *, max_bytes: int) -> Photo | str:
    """The photo in a file part, or why it is refused (naming the part, never echoing its content)."""
    if not data:
        return f"{part_name}: an empty file"
    if len(data) > max_bytes:
        return f"{part_name}: larger than {max_bytes} bytes"
    content_type = image_type(data)
    if content_type is None:
        return f"{part_name}: not a JPEG, PNG, GIF or WebP image"
    return Photo(
        media_id=uuid.uuid4(),
        part_name=part_name[:64],
        filename=filename[:200] if filename else None,
        content_type=content_type,
        data=data,
    )
