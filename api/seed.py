"""The bundled real timeline (`api/data/timeline.jsonl`, installed with the package),
recorded as an import of that file."""

from __future__ import annotations

from pathlib import Path

from api.schemas import EventIn
from api.service import Service
from api.transfer import ImportReport, import_events, read_import_file

TIMELINE_FILE = Path(__file__).resolve().parent / "data" / "timeline.jsonl"
SEED_CALLER = "seed"


def bundled_events(path: Path = TIMELINE_FILE) -> list[EventIn]:
    """The bundled events, validated exactly as the API validates a POST."""
    return [line.event for line in read_import_file(path)]


def seed(svc: Service, path: Path = TIMELINE_FILE) -> ImportReport:
    """Record every bundled event not yet recorded; running it again records nothing."""
    return import_events(svc, path, caller=SEED_CALLER)
