"""Load for a failover test, and the reckoning after it: four clients writing under
Idempotency-Keys to the API processes and one per API (the standby-reading one too) asking
saved `known_at` questions; afterwards every key sent is retried, the log counted on its
own and every saved question asked again. The checks: nothing acknowledged lost, nothing
recorded twice, no 503 said `not_recorded` of a key recorded by the time it was answered,
every saved `known_at` answer the same."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from tests.test_scaleout import WRITER, streams

BACK_WITHIN = 20.0
"""Seconds after the promotion by which writes must succeed again."""
WRITERS = 4

Answer = tuple[float, float, int, dict[str, Any]]
"""When a write was sent, when it was answered, its status and its body."""


@dataclass
class Load:
    bases: list[str]
    prefix: str = "failover"
    bodies: list[dict[str, Any]] = field(default_factory=lambda: streams(700))
    answers: dict[int, list[Answer]] = field(default_factory=dict)
    saved: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    acknowledged: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    reader: str | None = None
    """An API answering reads from a standby: every acknowledged write is read back there."""
    read_back: list[tuple[str, bool]] = field(default_factory=list)
    """Each read back: the write's event id, and whether the read broke read-your-writes
    (settled at or after the write's recorded_at, yet without it)."""

    def key(self, number: int) -> dict[str, str]:
        return {"Idempotency-Key": f"{self.prefix}-{number}"}

    def send(self, worker: int) -> None:
        base = self.bases[worker % len(self.bases)]
        with httpx.Client(base_url=base, headers=WRITER, timeout=30) as client:
            for number in range(worker, len(self.bodies), WRITERS):
                if self.stop.is_set():
                    return
                got = self.answers.setdefault(number, [])
                sent = time.time()
                try:
                    answer = client.post(
                        "/v1/events", json=self.bodies[number], headers=self.key(number)
                    )
                except httpx.TransportError:
                    continue  # no answer: this key's outcome is unknown, retried in settle
                got.append((sent, time.time(), answer.status_code, answer.json()))
                if answer.status_code in (200, 201):
                    self.acknowledged.release()
                    if self.reader is not None:
                        self.read_back_through_reader(answer.json())
                else:
                    assert answer.status_code == 503, answer.text
                    time.sleep(0.2)

    def read_back_through_reader(self, event: dict[str, Any]) -> None:
        """The write's stream as the standby-reading API answers right after."""
        authority, country, commodity = event["stream"].split("/")
        where = {"authority": authority, "country": country, "commodity": commodity}
        try:
            answer = httpx.get(f"{self.reader}/v1/status", params=where, timeout=30)
        except httpx.TransportError:
            return
        if answer.status_code != 200:
            return  # a 503 during the failover says nothing untrue
        body = answer.json()
        shown = any(event["event_id"] in row["event_ids"] for row in body["results"])
        settled_after = datetime.fromisoformat(body["known_at"]) >= datetime.fromisoformat(
            event["recorded_at"]
        )
        self.read_back.append((event["event_id"], settled_after and not shown))

    def ask(self, base: str) -> None:
        """Questions whose answers are saved, to ask again after the failover."""
        with httpx.Client(base_url=base, timeout=30) as client:
            while not self.stop.is_set():
                query = {"country": "BY"}
                try:
                    answer = client.get("/v1/status", params=query)
                except httpx.TransportError:
                    continue
                if answer.status_code == 200:
                    body = answer.json()
                    self.saved.append(({**query, "known_at": body["known_at"]}, body))
                time.sleep(0.3)

    def start(self) -> None:
        self.threads = [threading.Thread(target=self.send, args=(n,)) for n in range(WRITERS)]
        asked = self.bases + ([self.reader] if self.reader is not None else [])
        self.threads += [threading.Thread(target=self.ask, args=(base,)) for base in asked]
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def wait_for_acknowledged(self, count: int) -> None:
        """Until `count` more writes are acknowledged (each within 30 s of the last)."""
        for _ in range(count):
            assert self.acknowledged.acquire(timeout=30), "nothing was written"

    def acknowledged_after(self, moment: float, *, sent: bool = False) -> float | None:
        """When the first write answered (or, `sent`, sent and then answered) after
        `moment` was acknowledged; None if none was."""
        times = [
            answered
            for got in list(self.answers.values())
            for sent_at, answered, status, _ in list(got)
            if status in (200, 201) and (sent_at if sent else answered) > moment
        ]
        return min(times, default=None)

    def wait_for_acknowledged_after(self, moment: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while (back := self.acknowledged_after(moment)) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return back

    def settle(self) -> Reckoning:
        """Retry every key sent, read the whole log and ask every saved question again."""
        final: dict[int, dict[str, Any]] = {}
        with httpx.Client(base_url=self.bases[0], headers=WRITER, timeout=30) as client:
            for number in self.answers:
                for _ in range(5):  # a key fenced before the kill: once more, at most
                    again = client.post(
                        "/v1/events", json=self.bodies[number], headers=self.key(number)
                    )
                    if again.status_code in (200, 201):
                        final[number] = again.json()
                        break
                    assert again.status_code == 503, again.text
                    time.sleep(0.5)
                assert number in final, again.text
            log = client.get("/v1/events", params={"limit": 1000}).json()["events"]
            changed = []
            for query, before in self.saved:
                after = client.get("/v1/status", params=query)
                assert after.status_code == 200, after.text
                if after.json()["results"] != before["results"]:
                    changed.append(query)
        return Reckoning(self, final, log, changed)


@dataclass
class Reckoning:
    load: Load
    final: dict[int, dict[str, Any]]
    """Each key's event, as its last retry answered."""
    log: list[dict[str, Any]]
    changed: list[dict[str, str]]
    """The saved questions answered differently when asked again."""

    def lost(self) -> list[int]:
        """Keys acknowledged with an event that is not the key's event now."""
        return [
            number
            for number, got in self.load.answers.items()
            for _, _, status, answer in got
            if status in (200, 201) and answer["event_id"] != self.final[number]["event_id"]
        ]

    def untrue(self) -> list[int]:
        """Keys a 503 said were `not_recorded` when the key's event had been recorded by
        the time that answer came: by that very write, in flight when the primary died
        (its events are stamped inside the write lock, before the commit), or an earlier
        one. A key truly not recorded is recorded only by its retry, after the answer."""
        recorded_at = {event["event_id"]: event["recorded_at"] for event in self.log}
        return [
            number
            for number, got in self.load.answers.items()
            for _, answered, status, answer in got
            if status == 503
            and answer.get("outcome") == "not_recorded"
            and datetime.fromisoformat(recorded_at[self.final[number]["event_id"]]).timestamp()
            < answered
        ]

    def check(self) -> None:
        lost = self.lost()
        assert lost == [], f"{len(lost)} writes acknowledged, then gone after the failover"
        per_stream = Counter(event["stream"] for event in self.log)
        assert per_stream == Counter(self.final[number]["stream"] for number in self.load.answers)
        assert set(per_stream.values()) == {1}, "one event for each key, no more"
        untrue = self.untrue()
        assert untrue == [], f"{len(untrue)} 503s said not_recorded of a write recorded"
        assert self.load.saved and self.changed == [], (
            f"{len(self.changed)} saved known_at answers changed"
        )
        if self.load.reader is not None:
            misses = [event_id for event_id, missed in self.load.read_back if missed]
            assert len(self.load.read_back) > 100, "too few writes read back"
            assert misses == [], f"{len(misses)} reads through the standby missed a write"
