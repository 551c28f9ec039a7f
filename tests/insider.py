"""What an insider with write access to the database can do, and what the verifiable log
must catch: change a stored event and recompute the hash chain of its stream with the
documented canonical form, so that every chain still verifies.

    python -m tests.insider DATABASE_URL STREAM TYPE FIELD=VALUE

changes the stream's last event of that type (e.g. `US/BY/potash lifted
effective_date=2024-01-01`), then rewrites every later version's `prev_hash` and every
`hash` of the stream, straight in the events table. Used by tests/test_log_rewrite.py
and the README's demonstration; not part of the service.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import date
from typing import Any

from domain.application import SanctionsLog
from domain.keys import StreamKey
from tests.tamper import behind_the_back_of

FIELDS = {"effective_date": date.fromisoformat, "note": str, "legal_basis": str}


def rewrite(log: SanctionsLog, stream: str, type: str, changes: dict[str, Any]) -> int:
    """Change the stream's last event of `type` and recompute its chain; the version changed."""
    mapper = log.mapper
    stored = log.recorder.select_events(StreamKey.from_name(stream).aggregate_id)
    events = [mapper.to_domain_event(record) for record in stored]
    target = max(e.originator_version for e in events if e.TYPE.value == type)
    previous = None
    with behind_the_back_of(log) as execute:
        for record, event in zip(stored, events, strict=True):
            if event.originator_version == target:
                event = dataclasses.replace(event, **changes)
            if previous is not None:
                event = dataclasses.replace(event, prev_hash=previous)
            event = dataclasses.replace(event, hash=event.computed_hash())
            previous = event.hash
            execute(
                f"UPDATE {log.store.events_table_name} SET state = %s"
                " WHERE originator_id = %s AND originator_version = %s",
                (
                    bytes(mapper.to_stored_event(event).state),
                    log.store.id_param(record.originator_id),
                    record.originator_version,
                ),
            )
    return target


def main(argv: list[str]) -> int:
    url, stream, type, *assignments = argv
    changes = {}
    for assignment in assignments:
        name, value = assignment.split("=", 1)
        changes[name] = FIELDS[name](value)
    log = SanctionsLog(url)
    try:
        version = rewrite(log, stream, type, changes)
    finally:
        log.close()
    print(f"rewrote {stream} v{version} and recomputed the stream's hashes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
