"""The page and the verifiable log, in the system Chromium: the latest signed checkpoint is
shown, and every listed event is proved to be in it by the page's own script (Web Crypto),
against the root in the signed note, so a proof that does not lead there is shown as such."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route

from tests.conftest import READER, WRITER
from tests.test_page import blocked_by_policy, give_token, redrawn, seeded

pytestmark = pytest.mark.e2e  # a served app in Chromium (each test also marked browser)

POTASH = "/?country=BY&commodity=potash"
SETTLED = "() => !document.querySelector('#events .proof[data-proof=checking]')"


@pytest.fixture
def site(live_server: Callable[..., str], make_services: Callable[..., Any]) -> str:
    return seeded(live_server(), make_services)


@dataclass(frozen=True)
class Checkpoint:
    note: str
    signed_at: str
    size: int
    root: bytes


def checkpoint(base: str, headers: dict[str, str] | None = None) -> Checkpoint:
    answer = httpx.get(f"{base}/v1/audit/checkpoint", headers=headers)
    assert answer.status_code == 200, answer.text
    origin, size, root, blank, *_ = answer.text.split("\n")
    assert origin and blank == ""
    return Checkpoint(
        answer.text, answer.headers["checkpoint-signed-at"], int(size), base64.b64decode(root)
    )


def listed_events(base: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/v1/events", params={"country": "BY", "commodity": "potash"})
    events: list[dict[str, Any]] = answer.json()["events"]
    assert answer.json()["next_after"] is None and events
    return events


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def root_from_inclusion(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2, written again here to check the service's proofs and to forge
    self-consistent bad ones."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, sha256(b"\x00" + leaf)
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha256(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def flip(hex_text: str, at: int = 0) -> str:
    """One hex character changed."""
    return hex_text[:at] + ("0" if hex_text[at] != "0" else "1") + hex_text[at + 1 :]


def open_page(browser: Browser, url: str, prepare: Callable[[Page], None] | None = None) -> Page:
    """As tests/test_page.py opens it (no script errors, nothing refused by the policy),
    with routes set up by `prepare` before the page loads."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    refused = blocked_by_policy(page)
    if prepare:
        prepare(page)
    page.goto(url)
    page.wait_for_selector("#app[data-ready]")
    page.wait_for_selector("#checkpoint[data-size]:not([data-size=''])")
    page.wait_for_function(SETTLED)
    assert errors == []
    assert refused == [], "the page works within its Content-Security-Policy"
    return page


class Shown(tuple[str, str]):
    """(state, text shown) of an event's proof, equal to such a pair; its repr also
    gives the page's explanation (the badge's title), for a failing assertion."""

    why: str

    def __new__(cls, state: str, text: str, why: str) -> Shown:
        made = super().__new__(cls, (state, text))
        made.why = why
        return made

    def __repr__(self) -> str:
        return f"{tuple(self)!r} ({self.why})"


def proof_states(page: Page) -> dict[str, Shown]:
    """event id → (state, text shown) of every listed event's proof."""
    found: dict[str, list[str]] = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#events li[data-event-id]')]"
        ".map(li => { const b = li.querySelector('.proof');"
        " return [li.dataset.eventId, [b.dataset.proof, b.textContent, b.title]]; }))"
    )
    return {event_id: Shown(*shown) for event_id, shown in found.items()}


def shows_checkpoint(page: Page, expected: Checkpoint) -> None:
    assert page.is_visible("#checkpoint")
    assert page.inner_text("#checkpoint-size") == str(expected.size)
    root = page.locator("#checkpoint-root")
    assert root.get_attribute("title") == expected.root.hex()
    assert root.get_attribute("data-base64") == base64.b64encode(expected.root).decode()
    assert expected.root.hex().startswith(root.inner_text().rstrip("…"))
    assert page.inner_text("#checkpoint-signed-at") == expected.signed_at
    assert page.is_hidden("#checkpoint-error")


def test_the_checkpoint_is_shown_and_every_event_verified(browser: Browser, site: str) -> None:
    asked: list[str] = []
    page = open_page(
        browser,
        f"{site}{POTASH}",
        lambda page: page.on(
            "request", lambda r: asked.append(r.url) if "/proof/inclusion" in r.url else None
        ),
    )
    expected = checkpoint(site)
    shows_checkpoint(page, expected)

    events = listed_events(site)
    assert proof_states(page) == {e["event_id"]: ("verified", "verified") for e in events}
    assert len(asked) == len(events)
    assert all(f"size={expected.size}" in url for url in asked)
    # The service's proofs do lead there: checked here too, independently of the page.
    for event in events:
        proof = httpx.get(
            f"{site}/v1/audit/proof/inclusion",
            params={"event_id": event["event_id"], "size": expected.size},
        ).json()
        path = [bytes.fromhex(h) for h in proof["hashes"]]
        leaf = bytes.fromhex(event["hash"])
        assert root_from_inclusion(proof["leaf_index"], expected.size, leaf, path) == expected.root

    # Redrawn for another date: the same events, still verified, without asking again.
    redrawn(page, lambda: page.fill("#as_of", "2023-06-01"))
    page.wait_for_function(SETTLED)
    assert {state for state, _ in proof_states(page).values()} == {"verified"}
    assert len(asked) == len(events)


def forge_route(target: str, forge: Callable[[dict[str, Any]], None]) -> Callable[[Page], None]:
    """Routes the inclusion proof of event `target` through `forge`; others pass untouched."""

    def handle(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        if body.get("event_id") == target:
            forge(body)
        route.fulfill(response=answer, body=json.dumps(body))

    return lambda page: page.route("**/v1/audit/proof/inclusion?*", handle)


def test_a_proof_that_does_not_lead_to_the_signed_root_is_not_verified(
    browser: Browser, site: str
) -> None:
    events = listed_events(site)
    signed = checkpoint(site)
    target = events[len(events) // 2]

    def forge(proof: dict[str, Any]) -> None:
        # One hex character of one audit-path hash changed, and the answer's own `root`
        # made to match the forged path: only the root in the signed note can catch it.
        proof["hashes"][0] = flip(proof["hashes"][0], 5)
        path = [bytes.fromhex(h) for h in proof["hashes"]]
        leaf = bytes.fromhex(target["hash"])
        forged_root = root_from_inclusion(proof["leaf_index"], proof["size"], leaf, path)
        assert forged_root is not None and forged_root != signed.root
        proof["root"] = forged_root.hex()

    page = open_page(browser, f"{site}{POTASH}", forge_route(target["event_id"], forge))
    found = proof_states(page)
    assert found.pop(target["event_id"]) == ("failed", "not verified")
    assert set(found.values()) == {("verified", "verified")}
    badge = page.locator(f'#events li[data-event-id="{target["event_id"]}"] .proof')
    assert "proof-failed" in (badge.get_attribute("class") or "")
    assert "not the checkpoint's" in (badge.get_attribute("title") or "")
    colours = page.evaluate(
        "ids => ids.map(id => getComputedStyle(document.querySelector("
        '`#events li[data-event-id="${id}"] .proof`)).color)',
        [target["event_id"], next(iter(found))],
    )
    assert colours[0] != colours[1], "a failed proof looks different from a verified one"


@pytest.mark.parametrize(
    ("forge", "shown"),
    [
        pytest.param(lambda p: p.update(hashes=p["hashes"][:-1]), "not verified", id="short-path"),
        pytest.param(lambda p: p.update(leaf_index=p["leaf_index"] ^ 1), "not verified", id="leaf"),
        pytest.param(lambda p: p.update(size=p["size"] + 1), "not verified", id="size"),
        # The answer's own root is never what the page trusts: only the signed note's.
        pytest.param(lambda p: p.update(root="00" * 32), "verified", id="answer-root-ignored"),
    ],
)
def test_other_forgeries(
    browser: Browser, site: str, forge: Callable[[dict[str, Any]], None], shown: str
) -> None:
    target = listed_events(site)[0]
    page = open_page(browser, f"{site}{POTASH}", forge_route(target["event_id"], forge))
    assert proof_states(page)[target["event_id"]][1] == shown


def test_an_event_whose_listed_hash_differs_is_not_verified(browser: Browser, site: str) -> None:
    target = listed_events(site)[-1]

    def tamper(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        for event in body["events"]:
            if event["event_id"] == target["event_id"]:
                event["hash"] = flip(event["hash"], 63)
        route.fulfill(response=answer, body=json.dumps(body))

    page = open_page(browser, f"{site}{POTASH}", lambda page: page.route("**/v1/events?*", tamper))
    found = proof_states(page)
    assert found.pop(target["event_id"]) == ("failed", "not verified")
    assert set(found.values()) == {("verified", "verified")}


def test_an_event_newer_than_the_checkpoint_is_said_so_then_proved_in_the_next(
    browser: Browser, site: str
) -> None:
    older = checkpoint(site)
    with httpx.Client(base_url=site, headers=WRITER) as client:
        newer = client.post(
            "/v1/events",
            json={
                "authority": "JP",
                "country": "BY",
                "commodity": "potash",
                "type": "imposed",
                "effective_date": "2026-02-01",
                "measures": ["transit_ban"],
            },
        )
        assert newer.status_code == 201, newer.text
    event_id = newer.json()["event_id"]
    served: list[int] = []

    def stale_once(route: Route) -> None:
        served.append(len(served))
        if len(served) == 1:  # the checkpoint signed before the event was recorded
            headers = {"Checkpoint-Signed-At": older.signed_at}
            route.fulfill(status=200, content_type="text/plain", body=older.note, headers=headers)
        else:
            route.continue_()

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route("**/v1/audit/checkpoint", stale_once)
    page.goto(f"{site}{POTASH}")
    item = f'#events li[data-event-id="{event_id}"] .proof'
    page.wait_for_selector(f"{item}[data-proof=pending]")
    assert page.inner_text(item) == "not yet in checkpoint"
    assert page.inner_text("#checkpoint-size") == str(older.size)
    page.wait_for_selector(f"{item}[data-proof=verified]", timeout=15_000)
    page.wait_for_function(SETTLED)
    shows_checkpoint(page, checkpoint(site))
    assert checkpoint(site).size == older.size + 1 and len(served) == 2
    assert {state for state, _ in proof_states(page).values()} == {"verified"}
    assert errors == []


def test_a_server_that_needs_tokens_for_reads_proves_once_given_one(
    browser: Browser, live_server: Callable[..., str], make_services: Callable[..., Any]
) -> None:
    base = seeded(live_server(reads_require_token=True), make_services)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}{POTASH}")
    page.wait_for_selector("#checkpoint-error:not([hidden])")
    redrawn(page, lambda: give_token(page, "reader-token"))
    page.wait_for_selector("#checkpoint[data-size]:not([data-size=''])")
    page.wait_for_function(SETTLED)
    shows_checkpoint(page, checkpoint(base, READER))
    states = proof_states(page)
    assert states and set(states.values()) == {("verified", "verified")}
    assert errors == []
