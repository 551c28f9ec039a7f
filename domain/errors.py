"""Domain exceptions. The API maps each family to one HTTP status in one place."""

from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    """Base class: something the caller asked for cannot be done."""

    index: int | None = None
    """In a batch, the zero-based index of the event that could not be recorded."""
    stream: str | None = None

    def at(self, index: int, stream: str) -> DomainError:
        """This error, located at event `index` (of `stream`) of a batch."""
        self.index, self.stream = index, stream
        return self


class InvalidInput(DomainError):
    """A value is malformed or unknown (HTTP 422); `every` lists it with any others
    found in the same input, so a caller learns of all of them at once."""

    def __init__(self, field: str, message: str, *, more: Sequence[InvalidInput] = ()) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.every: list[InvalidInput] = [self, *(e for m in more for e in m.every)]

    @staticmethod
    def raise_all(errors: Sequence[InvalidInput]) -> None:
        """Raise one error carrying all of `errors`, if there are any."""
        if errors:
            first, *rest = errors
            raise InvalidInput(first.field, first.message, more=[*first.every[1:], *rest])


class RuleViolation(DomainError):
    """Recording the event would break a rule of the timeline (HTTP 409)."""

    def __init__(self, message: str, *, breaks_event_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.breaks_event_id = breaks_event_id


class VersionConflict(DomainError):
    """The stream's version is not the one the caller expected (HTTP 409)."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        message = f"{stream} is at version {actual}, not at the expected version {expected}"
        super().__init__(message)
        self.message = message
        self.stream = stream
        self.expected = expected
        self.actual = actual


class IdempotencyConflict(DomainError):
    """An Idempotency-Key was reused with a different request body (HTTP 409)."""

    def __init__(self, key: str) -> None:
        message = f"Idempotency-Key {key!r} was already used with a different request body"
        super().__init__(message)
        self.message = message


class NotInTree(DomainError):
    """The log's Merkle tree has no such size, or the event is not in a tree that small
    (HTTP 404)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EventNotFound(DomainError):
    """No event has the given id (HTTP 404)."""

    def __init__(self, event_id: str) -> None:
        message = f"no event has id {event_id}"
        super().__init__(message)
        self.message = message


class WriteContention(DomainError):
    """Other writers kept changing the streams while this write was decided (HTTP 503:
    nothing was recorded, and a retry is safe)."""

    def __init__(self, stream: str, attempts: int) -> None:
        message = (
            f"{stream} changed under concurrent writers {attempts} times while this write "
            "was being decided; nothing was recorded, retry"
        )
        super().__init__(message)
        self.message = message


class StreamDamaged(DomainError):
    """A stream's stored events were altered outside the service, so it cannot be
    written to (HTTP 409): verify says what changed."""

    def __init__(self, stream: str, reason: str) -> None:
        message = (
            f"{stream} cannot be read back from the store ({reason}): its stored events "
            "were altered outside the service. Nothing was recorded; `sanctions verify` "
            "(GET /v1/audit/verify) reports what changed."
        )
        super().__init__(message)
        self.message = message
        self.stream = stream
        self.reason = reason


class NotRecorded(DomainError):
    """The database failed during a write, and the write was certainly not recorded
    (HTTP 503, outcome `not_recorded`): retrying is safe."""

    def __init__(self, reason: str) -> None:
        message = f"the database failed ({reason}); the write was not recorded, retry it"
        super().__init__(message)
        self.message = message


class OutcomeUnknown(DomainError):
    """The database failed during a write and could not be asked whether it was
    recorded (HTTP 503, outcome `unknown`): retry with the same Idempotency-Key."""

    def __init__(self, reason: str, *, message: str | None = None) -> None:
        message = message or (
            f"the database failed ({reason}) and whether the write was recorded is "
            "unknown; retry with the same Idempotency-Key, which records it at most once"
        )
        super().__init__(message)
        self.message = message

    @classmethod
    def superseded(cls, key: str) -> OutcomeUnknown:
        """This attempt began before another attempt with its Idempotency-Key was
        answered "not recorded": it records nothing, and whether a retry under way
        records the key is not known here."""
        return cls(
            "superseded",
            message=(
                f"another attempt with Idempotency-Key {key!r} was answered that nothing "
                "was recorded while this one was under way, so this one recorded nothing; "
                "whether a retry already under way records it is unknown: retry with the "
                "same Idempotency-Key, which records it at most once"
            ),
        )


class TreeMismatch(DomainError):
    """The log's Merkle tree holds a leaf that does not match the stored event it stands
    for (HTTP 503): the events were changed behind the service's back, and the service
    signs no checkpoint over such a tree."""

    def __init__(self, detail: str) -> None:
        message = (
            f"the log's Merkle tree does not match its stored events ({detail}): no "
            "checkpoint is signed over it. `sanctions verify` (GET /v1/audit/verify) "
            "reports what differs"
        )
        super().__init__(message)
        self.message = message
