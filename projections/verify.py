"""Verification: recompute every hash chain and rebuild every read model from the log.

The store is read as it is, trusting nothing: an event that will not decode, a
version missing from a stream, a hash that does not match the event's contents, a
broken link to the previous hash, an event the write-time index does not know (or
an indexed event that is gone), and any read-model row that differs from a fresh
replay are each reported as a problem, with the stream and version. Streams are
checked one at a time, so memory stays bounded whatever the size of the log.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any
from uuid import UUID

from domain import checkpoints
from domain.application import SanctionsLog
from domain.hashing import GENESIS_HASH, format_timestamp
from domain.keys import StreamKey
from domain.recorded import Undecodable
from domain.store.records import IndexRow
from domain.stream import SanctionsStream
from projections.model import IntervalRow, replay_stream, sorted_rows
from projections.rows import current_params
from projections.tables import TRACKED_APPLICATION
from projections.verify_log import LOG_KINDS, check_log
from projections.view import StatusView


@dataclass(frozen=True)
class Problem:
    """One thing found wrong, in the user's terms."""

    kind: str
    stream: str | None
    version: int | None
    detail: str


@dataclass
class VerifyReport:
    events_checked: int = 0
    streams_checked: int = 0
    chain_ok: bool = True
    projections_ok: bool = True
    log_ok: bool = True
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


CHAIN_KINDS = {
    "undecodable",
    "missing_event",
    "unindexed_event",
    "hash_mismatch",
    "index_mismatch",
    "broken_link",
    "wrong_stream",
    "out_of_order",
    "unreadable",
}


class Verifier:
    """Checks the log and the read models of one store."""

    def __init__(
        self,
        log: SanctionsLog,
        view: StatusView,
        key: checkpoints.Verifier | Sequence[checkpoints.Verifier],
    ) -> None:
        self.log = log
        self.view = view
        self.key = key
        self.report = VerifyReport()

    def run(self) -> VerifyReport:
        projected_up_to = self.view.position(TRACKED_APPLICATION)
        seen: set[str] = set()
        for originator_id in self.log.store.stream_ids():
            try:
                name = self.check_stream(originator_id, projected_up_to)
            except Exception as error:  # never a crash: say what could not be checked
                self.add("unreadable", str(originator_id), None, f"could not be checked: {error}")
                continue
            if name is not None:
                seen.add(name)
        for stream in sorted(set(self.view.projected_streams()) - seen):
            self.add(
                "extra_read_model_rows", stream, None, "read models hold a stream the log has not"
            )
        for kind, detail in check_log(self.log, self.view, self.key):
            self.add(kind, None, None, detail)
        kinds = {p.kind for p in self.report.problems}
        self.report.chain_ok = not kinds & CHAIN_KINDS
        self.report.log_ok = not kinds & LOG_KINDS
        self.report.projections_ok = not kinds - CHAIN_KINDS - LOG_KINDS
        return self.report

    def add(self, kind: str, stream: str | None, version: int | None, detail: str) -> None:
        self.report.problems.append(Problem(kind, stream, version, detail))

    def undecodable(self, stream: str | None, found: Undecodable) -> None:
        self.add(
            "undecodable", stream, found.version, f"cannot be decoded: {type(found.error).__name__}"
        )

    def check_stream(self, originator_id: UUID, projected_up_to: int) -> str | None:
        store = self.log.store
        stored = store.stored_stream(originator_id)
        indexed = {row.originator_version: row for row in store.indexed_stream(originator_id)}
        name = next(iter(indexed.values())).stream if indexed else None
        self.report.streams_checked += 1
        decoded: list[tuple[SanctionsStream.Event, int]] = []
        previous_hash, previous_position = GENESIS_HASH, 0
        expected_version = 1
        for positioned in stored:
            version = positioned.stored.originator_version
            self.report.events_checked += 1
            if version != expected_version:
                missing = ", ".join(str(v) for v in range(expected_version, version))
                self.add("missing_event", name, expected_version, f"version(s) {missing} missing")
            expected_version = version + 1
            if version not in indexed:
                self.add(
                    "unindexed_event", name, version, "stored but never recorded by the service"
                )
            event = self.log.decode_tolerantly(positioned.stored, partial(self.undecodable, name))
            if event is None:
                previous_hash = "(undecodable)"
                continue
            name = name or event.stream
            self.check_event(event, version, previous_hash, indexed.get(version), originator_id)
            if positioned.position <= previous_position:
                self.add(
                    "out_of_order",
                    name,
                    version,
                    "its position is not after the previous version's",
                )
            previous_hash, previous_position = event.hash, positioned.position
            decoded.append((event, positioned.position))
        for version in sorted(set(indexed) - {p.stored.originator_version for p in stored}):
            row = indexed[version]
            self.add(
                "missing_event",
                row.stream,
                version,
                f"event {row.event_id} ({row.type}) was recorded but is no longer in the store",
            )
        if name is not None:
            self.compare_read_models(name, decoded, projected_up_to)
        return name

    def check_event(
        self,
        event: SanctionsStream.Event,
        version: int,
        previous_hash: str,
        indexed: IndexRow | None,
        originator_id: UUID,
    ) -> None:
        stream = event.stream
        if event.prev_hash != previous_hash:
            self.add("broken_link", stream, version, "prev_hash is not the previous event's hash")
        if event.computed_hash() != event.hash:
            self.add("hash_mismatch", stream, version, "contents do not match the stored hash")
        if StreamKey.from_name(stream).aggregate_id != originator_id:
            self.add("wrong_stream", stream, version, "stored under another stream's id")
        if indexed is not None and (str(indexed.event_id), indexed.type) != (
            str(event.event_id),
            event.TYPE.value,
        ):
            self.add(
                "index_mismatch",
                stream,
                version,
                "event id or type differs from the index written with it",
            )

    def compare_read_models(
        self, stream: str, decoded: list[tuple[SanctionsStream.Event, int]], up_to: int
    ) -> None:
        record, rows = replay_stream(
            stream, [(event, position) for event, position in decoded if position <= up_to]
        )
        expected = sorted_rows(rows)
        actual = sorted_rows(self.view.stream_rows(stream))
        for row in [r for r in actual if r not in expected]:
            self.add(
                "read_model_row_differs",
                stream,
                None,
                f"stored row not in a fresh replay: {describe(row)}",
            )
        for row in [r for r in expected if r not in actual]:
            self.add(
                "read_model_row_missing", stream, None, f"replay row not stored: {describe(row)}"
            )
        stored_current = self.view.current_row(stream)
        if record.version == 0 and stored_current is None:
            return
        wanted = current_params(record)
        if stored_current != wanted:
            self.add(
                "current_status_differs",
                stream,
                record.version,
                f"stored {json.dumps(stored_current)}, replay {json.dumps(wanted)}",
            )


def describe(row: IntervalRow) -> str:
    interval = row.interval
    return (
        f"{interval.valid_from}..{interval.valid_to or 'open'} {interval.status} "
        f"[{', '.join(interval.measures)}] known {format_timestamp(row.tx_from)}"
        f"..{'now' if row.tx_to is None else format_timestamp(row.tx_to)}"
    )


def verify(
    log: SanctionsLog,
    view: StatusView,
    key: checkpoints.Verifier | Sequence[checkpoints.Verifier],
) -> VerifyReport:
    """Check every hash chain, the log's Merkle tree against every signed checkpoint
    (verified with `key`, or with whichever of the log's keys signed each), and every
    read model against a fresh replay of the log."""
    return Verifier(log, view, key).run()
