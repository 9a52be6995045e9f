"""Residents' data, the pure part (issue 13 item 6): contact details sealed before a record leaves intake
on a shared topic, keyed public request ids, the fingerprint of an Open311 body, coarse locations.

Sealing: a contact-centre record intake rejects or dead-letters keeps every field readable but its
`reporter`, which becomes `{"sealed": "<Fernet token>"}`, encrypted with a key only intake holds
(`CASEWAY_INTAKE_CONTACT_KEYS`). A value that is not a JSON object is sealed whole (`SEALED_PREFIX` and
a token). Replaying a dead letter sends these bytes back to intake, which unseals them before it reads
the record (`unseal`), so a replayed report keeps its reporter.

Public ids: a contact-centre report's id is a name-based UUID of its source system and source id, both
guessable; GET requests shows it as `AES-256(key, report id)` instead, one block, so that the public id
can be turned back into the report id without a table and cannot be made without the key. An Open311
request's id is random (or, with an Idempotency-Key, an HMAC of the key under the same secret) and is
shown as it is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

SEALED_PREFIX = b"caseway-sealed:v1:"
SEALED_FIELD = "sealed"
# Fields of a contact-centre record that are the resident's contact details.
CONTACT_FIELDS = ("reporter",)
# Development defaults: the production profile refuses them (caseway_shared.settings).
DEVELOPMENT_CONTACT_KEY = base64.urlsafe_b64encode(b"caseway-development-contact-key!").decode()
DEVELOPMENT_PUBLIC_ID_KEY = "caseway-development-public-id-key-not-a-secret"
# About 110 m north-south, 70 m east-west at Liverpool's latitude.
COARSE_DECIMALS = 3


class IdempotencyConflict(Exception):
    """An Idempotency-Key already used for a request with another body."""


class UnsealError(Exception):
    """A sealed record this intake cannot open (another key, or damaged)."""


class Sealer:
    """Seals contact details with the first key and opens them with any (keys rotate by prepending)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one contact key")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def seal(self, value: bytes) -> bytes:
        """`value` with its contact fields sealed; a value that is not a JSON object is sealed whole."""
        document = _json_object(value)
        if document is None:
            return SEALED_PREFIX + self._fernet.encrypt(value)
        changed = False
        for name in CONTACT_FIELDS:
            field = document.get(name)
            if field is None or _is_sealed(field):
                continue
            token = self._fernet.encrypt(json.dumps(field).encode()).decode()
            document[name] = {SEALED_FIELD: token}
            changed = True
        return json.dumps(document).encode() if changed else value

    def unseal(self, value: bytes) -> bytes:
        """The record as it was sent, from what `seal` made of it; other values come back unchanged."""
        try:
            if value.startswith(SEALED_PREFIX):
                return self._fernet.decrypt(value[len(SEALED_PREFIX) :])
            document = _json_object(value)
            if document is None or not any(_is_sealed(document.get(name)) for name in CONTACT_FIELDS):
                return value
            for name in CONTACT_FIELDS:
                field = document.get(name)
                if isinstance(field, dict) and _is_sealed(field):
                    document[name] = json.loads(self._fernet.decrypt(field[SEALED_FIELD].encode()))
        except (InvalidToken, ValueError) as error:
            raise UnsealError("sealed contact details: not sealed with a key this intake holds") from error
        return json.dumps(document).encode()


def _json_object(value: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: JSON nested deeper than Python's parser goes (a fuzzer's 20,000 brackets). Left
        # to escape, it failed every dead-lettering of that record, and the consumer paused its partition
        # again and again instead of setting the record aside.
        return None
    return document if isinstance(document, dict) else None


def _is_sealed(field: object) -> bool:
    return isinstance(field, dict) and set(field) == {SEALED_FIELD} and isinstance(field[SEALED_FIELD], str)


class PublicIds:
    """Public service_request_ids and the keyed ids of Open311 requests, under one secret."""

    def __init__(self, key: str) -> None:
        secret = key.encode()
        self._cipher = Cipher(algorithms.AES(_derive(secret, b"public-id")), modes.ECB())  # noqa: S305 - one block: a keyed permutation of 128-bit ids
        self._id_key = _derive(secret, b"open311-id")
        self._digest_key = _derive(secret, b"request-digest")

    def public_id(self, report_id: uuid.UUID, source_system: str, *, shown_as_is: str = "open311") -> str:
        """What residents and clients see: an Open311 request's own id, any other report's id enciphered."""
        if source_system == shown_as_is:
            return str(report_id)
        encryptor = self._cipher.encryptor()
        return str(uuid.UUID(bytes=encryptor.update(report_id.bytes) + encryptor.finalize()))

    def candidates(self, public: str) -> list[uuid.UUID]:
        """The report ids `public` may name (the caller keeps the one whose `public_id` is `public`)."""
        try:
            as_uuid = uuid.UUID(public)
        except ValueError:
            return []
        decryptor = self._cipher.decryptor()
        return [as_uuid, uuid.UUID(bytes=decryptor.update(as_uuid.bytes) + decryptor.finalize())]

    def request_id(self, source_system: str, source_id: str) -> uuid.UUID:
        """The report id of an Open311 request: the same source id, the same id, for whoever holds the key."""
        digest = hmac.new(self._id_key, f"{source_system}\x1f{source_id}".encode(), hashlib.sha256).digest()
        return uuid.UUID(bytes=digest[:16], version=4)

    def body_digest(self, fields: Mapping[str, Sequence[str]], photos: Iterable[bytes] = ()) -> bytes:
        """A keyed fingerprint of what a POST sent (the API key and jurisdiction aside): the same body,
        the same digest. Keyed, so that the stored digest says nothing about the contact details in it."""
        kept = {name: list(values) for name, values in sorted(fields.items()) if name not in _NOT_BODY}
        canonical = json.dumps(
            {"fields": kept, "photos": [hashlib.sha256(photo).hexdigest() for photo in photos]},
            sort_keys=True,
        )
        return hmac.new(self._digest_key, canonical.encode(), hashlib.sha256).digest()


_NOT_BODY = frozenset({"api_key", "jurisdiction_id"})


def _derive(secret: bytes, label: bytes) -> bytes:
    return hmac.new(secret, b"caseway-intake/" + label, hashlib.sha256).digest()


def coarse(value: float | None) -> float | None:
    """A coordinate rounded to about 100 m."""
    return None if value is None else round(value, COARSE_DECIMALS)
