"""The one way Caseway words a validation error, wherever it is reported (a rejected report, an Open311
error answer, a dead letter): one `field: message` reason per problem, never the offending value (it may
be a resident's personal data, and it is in the original message for whoever may see that)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence


class HasErrors(Protocol):
    """pydantic's ValidationError, or a web framework's request validation error built on it."""

    def errors(self) -> Sequence[Any]: ...


def validation_reasons(error: HasErrors, *, skip: int = 0, whole: str = "body") -> tuple[str, ...]:
    """Each error as `where: message`; `skip` drops leading location parts (a web framework's "body" or
    "query"), and an error about the whole document is said to be about `whole`."""
    return tuple(
        f"{'.'.join(str(part) for part in item['loc'][skip:]) or whole}: {item['msg']}"
        for item in error.errors()
    )
