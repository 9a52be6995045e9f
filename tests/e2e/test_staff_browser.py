"""The staff pages in a real browser: headless Chromium from Debian's packages, driven by Playwright (pointed
at that executable; Playwright's own browser downloads are never used), against the router running as its
own process (`python -m caseway_router`) on the real broker and database.

The router is configured the way a council runs it behind its sign-on proxy: CASEWAY_ROUTER_TRUSTED_PROXIES
names the proxy's address (loopback here) and the browser's requests carry the proxy's header
(X-Caseway-Staff) naming the person. Reports go in through reports.received.v1, exactly as intake sends
them. Each test clicks through the pages as a person would (no JavaScript on the pages: forms post and
redirect back), then checks what the page shows and what was written (history, case events on cases.v1).

Screenshots go to test-artefacts/browser/ (CASEWAY_TEST_ARTEFACTS to move it; gitignored). The board's
screenshot is the one in docs/board.png: `cp test-artefacts/browser/board.png docs/board.png` to refresh it.

Without Chromium the tests are skipped on a developer's machine and FAIL under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from factories import METRE, report_received
from tests.integration.router.test_router_pipeline import producer, publish, wait_routed
from tests.integration.router.test_staff_actions import published

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from playwright.async_api import Browser

pytestmark = [pytest.mark.infra, pytest.mark.timeout(300)]

# A neighbourhood no other test uses, so the cases these tests leave (closed ones still take reports for a
# while; an overdue one heads its board) never meet another test's reports or boards.
HOOD = "N08 Kensington, Edge Hill & Smithdown"
HEADER = "X-Caseway-Staff"
ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("CASEWAY_TEST_ARTEFACTS", ROOT / "test-artefacts")) / "browser"
# Ward centroids of N08 (wards_2023_centroids.csv); reports are placed in steps of metres from them.
N08_WARDS = {
    "Kensington & Fairfield": (53.41408, -2.94438),
    "Edge Hill": (53.40288, -2.94638),
    "Smithdown": (53.39688, -2.93275),
}


def near(ward: str, north_m: float = 0, east_m: float = 0) -> dict[str, float]:
    lat, lon = N08_WARDS[ward]
    return {"lat": lat + north_m * METRE, "lon": lon + east_m * METRE / 0.6}  # cos(53.4 degrees) ~ 0.6


def chromium_path() -> str:
    """Debian's Chromium: on PATH or at /usr/bin/chromium. Missing: a skip locally, a failure in CI."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.access("/usr/bin/chromium", os.X_OK):
        found = "/usr/bin/chromium"
    if found:
        return found
    reason = (
        "Chromium is not installed: `make setup` (deploy/bootstrap.sh) installs Debian's chromium package, "
        "or `apt-get install chromium`. Never `playwright install`: the tests drive the system browser."
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox cannot start as root (CI runs as root); the pages are our own.
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="module")
async def router_url(infra) -> AsyncIterator[str]:
    """The router as its own process behind a 'sign-on proxy' on loopback; yields its base URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **infra.env(),
        "CASEWAY_ROUTER_HTTP_PORT": str(port),
        "CASEWAY_ROUTER_INSTANCE_ID": f"router-browser-{uuid.uuid4().hex[:6]}",
        "CASEWAY_ROUTER_TRUSTED_PROXIES": '["127.0.0.1"]',
        "CASEWAY_STAFF_BASE_URL": base,
        "CASEWAY_LOG_FORMAT": "json",
    }
    log_path = Path(os.environ.get("CASEWAY_TEST_LOGS", "/tmp")) / "e2e-router-browser.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, reaped below
            [sys.executable, "-m", "caseway_router"], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            async with httpx.AsyncClient() as client:
                deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
                while True:
                    assert process.poll() is None, f"the router exited; see {log_path}"
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"{base}/readyz")).status_code == 200:
                            break
                    assert time.monotonic() < deadline, f"the router did not become ready; see {log_path}"
                    await asyncio.sleep(0.3)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.asynccontextmanager
async def signed_in(browser: Browser, staff: str | None) -> AsyncIterator[Page]:
    """A fresh browser profile whose requests carry the proxy's header naming `staff`."""
    context = await browser.new_context(
        extra_http_headers={HEADER: staff} if staff else {},
        viewport={"width": 1280, "height": 900},
        java_script_enabled=False,  # every action must work without JavaScript
    )
    try:
        page = await context.new_page()
        page.set_default_timeout(15_000)
        yield page
    finally:
        await context.close()


async def shot(page: Page, name: str) -> Path:
    path = ARTEFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def open_cases(infra, db, *events) -> list[str]:
    """Publish reports to reports.received.v1 (in order, one at a time, so a later one can be judged a
    duplicate of an earlier one); returns their cases' references."""
    references = []
    async with producer(infra) as kafka:
        for event in events:
            await (await publish(infra, kafka, event))
            await wait_routed(db, [event.report_id])
            references.append(
                await db.fetchval(
                    "SELECT c.reference FROM router.cases c JOIN router.reports r USING (case_id)"
                    " WHERE r.report_id = $1",
                    event.report_id,
                )
            )
    return references


async def staff_actions(db, reference: str) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT h.actor, h.action FROM router.case_history h JOIN router.cases c USING (case_id)"
        " WHERE c.reference = $1 AND h.actor <> 'caseway-router' ORDER BY h.id",
        reference,
    )
    return [(row["actor"], row["action"]) for row in rows]


async def accessibility_problems(page: Page) -> list[str]:
    """What a screen reader or keyboard user would trip over on this page (a small, strict subset of
    WCAG checks run in the page): controls without a label, buttons without a name, headings that skip a
    level, images without a name, more or fewer than one h1."""
    return list(
        await page.evaluate(
            """() => {
              const problems = [];
              for (const el of document.querySelectorAll('input, select, textarea')) {
                if (el.type === 'hidden') continue;
                const named = (el.labels && el.labels.length) || el.getAttribute('aria-label');
                if (!named) problems.push('control without a label: ' + (el.name || el.id));
              }
              for (const el of document.querySelectorAll('button')) {
                if (!el.textContent.trim() && !el.getAttribute('aria-label')) problems.push('unnamed button');
              }
              for (const el of document.querySelectorAll('svg[role=img], img')) {
                const named = el.getAttribute('aria-label') || el.getAttribute('alt') ||
                  el.getAttribute('aria-labelledby') || (el.querySelector && el.querySelector('title'));
                if (!named) problems.push('image without a name');
              }
              const levels = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1]);
              if (levels.filter(l => l === 1).length !== 1) problems.push('not exactly one h1');
              levels.reduce((prev, level) => {
                if (level > prev + 1) problems.push('heading skips from h' + prev + ' to h' + level);
                return level;
              }, 1);
              return problems;
            }"""
        )
    )


async def test_without_the_proxys_header_the_pages_ask_for_sign_in(infra, db, browser, router_url):
    [reference] = await open_cases(infra, db, report_received(**near("Kensington & Fairfield", 350, -250)))
    async with signed_in(browser, None) as page:
        answer = await page.goto(f"{router_url}/cases/{reference}")
        assert answer is not None
        assert answer.status == 401
        await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in needed")
    async with signed_in(browser, "streetscene-n02") as page:  # another neighbourhood's team
        answer = await page.goto(f"{router_url}/cases/{reference}")
        assert answer is not None
        assert answer.status == 403
        assert reference not in await page.locator("main").inner_text() or "may not see" in (
            await page.locator("main").inner_text()
        )
        await shot(page, "refused")


async def test_a_team_acknowledges_reassigns_notes_and_closes_a_case(infra, db, browser, router_url):
    [reference] = await open_cases(
        infra,
        db,
        report_received(
            **near("Kensington & Fairfield", -350, 0),
            description="Sofa and bags dumped by the back entry. Ring me on 07700 900123",
        ),
    )
    async with signed_in(browser, "streetscene-n08") as page:
        await page.goto(f"{router_url}/cases/{reference}")
        await expect(page.get_by_role("heading", level=1)).to_have_text(f"Case {reference}: Fly-tipping")
        main = page.locator("main")
        await expect(main).to_contain_text("Ring me on [phone hidden]")
        assert "07700" not in await page.content()
        await expect(main).to_contain_text(HOOD)
        await expect(page.locator("svg.map")).to_be_visible()
        assert await accessibility_problems(page) == []
        await shot(page, "case-opened")

        # Acknowledge Streetscene's part.
        await page.get_by_label("For department").select_option("streetscene")
        await page.get_by_role("button", name="Acknowledge", exact=True).click()
        await page.wait_for_url(f"**/cases/{reference}?done=acknowledge")
        await expect(page.get_by_role("status")).to_have_text("Acknowledged.")
        await expect(page.locator(".status")).to_have_text("acknowledged")
        departments = page.get_by_role("table", name="Departments on this case and their states")
        streetscene = departments.get_by_role("row").filter(has_text="Streetscene")
        await expect(streetscene).to_contain_text("acknowledged by streetscene-n08")
        await shot(page, "case-acknowledged")

        # Hand City Watch's part over to Housing.
        await page.get_by_label("Part to hand over").select_option("city-watch")
        await page.get_by_label("To department").select_option("housing")
        await page.get_by_role("button", name="Reassign", exact=True).click()
        await page.wait_for_url(f"**/cases/{reference}?done=reassign")
        await expect(page.get_by_role("status")).to_have_text("Reassigned.")
        await expect(departments.get_by_role("row").filter(has_text="Housing")).to_contain_text("contributor")
        await expect(departments).not_to_contain_text("City Watch CCTV")
        await shot(page, "case-reassigned")

        # A public note; the number in it is masked before it is stored or sent.
        await page.get_by_label("Note", exact=True).fill(
            "Crew booked for Thursday; resident on 0151 233 3000"
        )
        await page.get_by_label("Public: the residents who reported it").check()
        await page.get_by_role("button", name="Add the note").click()
        await page.wait_for_url(f"**/cases/{reference}?done=note")
        notes = page.locator("section").filter(has=page.get_by_role("heading", name="Notes"))
        await expect(notes).to_contain_text("Crew booked for Thursday; resident on [phone hidden]")
        await expect(notes).to_contain_text("public")

        # Close it as fixed.
        await page.get_by_label("Resolution").select_option("fixed")
        await page.get_by_label("Note for the resident (optional)").fill("Cleared this morning")
        await page.get_by_role("button", name="Close the case").click()
        await page.wait_for_url(f"**/cases/{reference}?done=close")
        await expect(page.get_by_role("status")).to_have_text("Closed.")
        await expect(page.locator(".status")).to_have_text("closed")
        await expect(page.get_by_role("heading", name="Act on this case")).to_have_count(0)
        history = page.locator("table.history")
        await expect(history).to_contain_text("resolution: fixed")
        assert await accessibility_problems(page) == []
        await shot(page, "case-closed")

    assert await staff_actions(db, reference) == [
        ("streetscene-n08", "acknowledged"),
        ("streetscene-n08", "reassigned"),
        ("streetscene-n08", "note-added"),
        ("streetscene-n08", "closed"),
    ]
    case = await db.fetchrow("SELECT status, resolution FROM router.cases WHERE reference = $1", reference)
    assert (case["status"], case["resolution"]) == ("closed", "fixed")
    # Opening (one CaseOpened: departments and flags in it) and then the five staff changes' six events.
    events = await published(infra, reference, want=1 + 6)
    staff_events = [(e["event_type"], e.get("actor")) for e in events if e.get("actor")]
    assert staff_events == [
        ("CaseStatusChanged", "streetscene-n08"),
        ("CaseUnassigned", "streetscene-n08"),
        ("CaseAssigned", "streetscene-n08"),
        ("CaseNoteAdded", "streetscene-n08"),
        ("CaseStatusChanged", "streetscene-n08"),
        ("CaseClosed", "streetscene-n08"),
    ]
    note = next(e for e in events if e["event_type"] == "CaseNoteAdded")
    assert (note["visibility"], note["text"]) == (
        "public",
        "Crew booked for Thursday; resident on [phone hidden]",
    )
    closed = next(e for e in events if e["event_type"] == "CaseClosed")
    assert (closed["resolution"], closed["note"]) == ("fixed", "Cleared this morning")
    assert "07700" not in json.dumps(events)
    assert "0151 233" not in json.dumps(events)


def two_doors(tag: str, place: dict[str, float]):
    """Two reports of fly-tipping at one point from two different addresses: the router opens the second
    as a case of its own flagged as a possible duplicate of the first (two doors of one street: a person
    should look), which is what duplicate review is for."""
    lat, lon = place["lat"], place["lon"]
    first = report_received(
        lat=lat,
        lon=lon,
        address=f"12 {tag} Street",
        description="Mattress and black bags dumped in the entry",
    )
    second = report_received(
        lat=lat + 3 * METRE,
        lon=lon,
        address=f"18 {tag} Street",
        description="Mattress dumped in the back entry",
    )
    return first, second


async def test_a_manager_reviews_possible_duplicates_merging_one_and_keeping_another(
    infra, db, browser, router_url
):
    tag = f"Review{uuid.uuid4().hex[:6]}"
    kept, repeat = await open_cases(infra, db, *two_doors(tag, near("Kensington & Fairfield", 0, 350)))
    other, different = await open_cases(infra, db, *two_doors(f"{tag}x", near("Edge Hill", 200, -200)))
    for reference in (repeat, different):
        flags = await db.fetchval("SELECT flags FROM router.cases WHERE reference = $1", reference)
        assert "possible-duplicate" in flags, f"{reference} was not flagged for review: {flags}"

    async with signed_in(browser, "manager-n08") as page:
        # Same problem: merged into the case that carries on, and closed as its duplicate.
        await page.goto(f"{router_url}/cases/{repeat}")
        review = page.locator("section").filter(
            has=page.get_by_role("heading", name="Possible duplicates awaiting review")
        )
        await expect(review).to_contain_text(f"May be the same problem as {kept}")
        assert await accessibility_problems(page) == []
        await shot(page, "duplicate-awaiting-review")
        await review.get_by_role(
            "button", name=f"Same problem: merge into {kept} and close this case"
        ).click()
        await page.wait_for_url(f"**/cases/{repeat}?done=duplicate")
        await expect(page.get_by_role("status")).to_have_text("Duplicate reviewed.")
        await expect(page.locator(".status")).to_have_text("closed")
        facts = page.locator("dl.facts").first
        await expect(facts).to_contain_text(f"duplicate of {kept}")
        await expect(page.get_by_role("heading", name="Possible duplicates awaiting review")).to_have_count(0)
        await shot(page, "duplicate-merged")
        await facts.get_by_role("link", name=kept).click()
        await page.wait_for_url(f"**/cases/{kept}")
        await expect(page.locator("ol.reports > li")).to_have_count(2)
        await shot(page, "duplicate-kept-case")

        # Different problem: both stay open and the flag goes.
        await page.goto(f"{router_url}/cases/{different}")
        await page.get_by_role("button", name="Different problem: keep both").click()
        await page.wait_for_url(f"**/cases/{different}?done=duplicate")
        await expect(page.get_by_role("status")).to_have_text("Duplicate reviewed.")
        await expect(page.locator(".status")).to_have_text("open")
        await expect(page.get_by_role("heading", name="Possible duplicates awaiting review")).to_have_count(0)
        await expect(page.get_by_role("heading", name="Act on this case")).to_be_visible()

    assert await staff_actions(db, repeat) == [
        ("manager-n08", "duplicate-confirmed"),
        ("manager-n08", "report-unlinked"),
        ("manager-n08", "closed"),
    ]
    assert await staff_actions(db, kept) == [("manager-n08", "report-linked")]
    assert await staff_actions(db, different) == [("manager-n08", "duplicate-rejected")]
    merged = await db.fetchrow(
        "SELECT c.status, c.resolution, d.reference AS duplicate_of FROM router.cases c"
        " JOIN router.cases d ON d.case_id = c.duplicate_of WHERE c.reference = $1",
        repeat,
    )
    assert (merged["status"], merged["resolution"], merged["duplicate_of"]) == ("closed", "duplicate", kept)
    assert await db.fetchval("SELECT reports_count FROM router.cases WHERE reference = $1", kept) == 2
    row = await db.fetchrow("SELECT status, flags FROM router.cases WHERE reference = $1", different)
    assert row["status"] == "open"
    assert "possible-duplicate" not in row["flags"]

    repeat_events = await published(infra, repeat, want=1 + 4)
    reviewed = [e for e in repeat_events if e["event_type"] == "DuplicateReviewed"]
    assert [(e["other_reference"], e["same_problem"], e["actor"]) for e in reviewed] == [
        (kept, True, "manager-n08")
    ]
    closed = next(e for e in repeat_events if e["event_type"] == "CaseClosed")
    assert (closed["resolution"], closed["duplicate_of"]) == ("duplicate", kept)
    kept_events = await published(infra, kept, want=1 + 1)
    assert [e["reports_count"] for e in kept_events if e["event_type"] == "ReportLinked"] == [2]
    different_events = await published(infra, different, want=1 + 1 + 1)
    assert [
        (e["other_reference"], e["same_problem"])
        for e in different_events
        if e["event_type"] == "DuplicateReviewed"
    ] == [(other, False)]


BOARD_REPORTS = (
    ("fly-tipping", "Edge Hill", (0, 0), "Fridge and sofa dumped by the bins"),
    ("fly-tipping", "Smithdown", (100, -100), "Builders' rubble tipped on the corner"),
    ("graffiti", "Kensington & Fairfield", (0, 0), "Graffiti sprayed across the shop shutters"),
    ("pothole", "Kensington & Fairfield", (150, 250), "Deep pothole on the bus lane"),
    ("street-lighting", "Smithdown", (-100, 100), "Street light out on the corner"),
    ("litter", "Edge Hill", (-150, 150), "Overflowing litter bin outside the school"),
    ("abandoned-vehicle", "Kensington & Fairfield", (-150, -300), "Car with no plates parked for weeks"),
    ("dog-fouling", "Edge Hill", (150, -250), "Dog fouling all along the path"),
)


async def test_the_neighbourhood_board_lists_cases_overdue_first_with_its_map(infra, db, browser, router_url):
    events = [
        report_received(category=category, **near(ward, north, east), description=text)
        for category, ward, (north, east), text in BOARD_REPORTS
    ]
    references = await open_cases(infra, db, *events)
    late = references[1]
    await db.execute("UPDATE router.cases SET due_at = now() - interval '2 days' WHERE reference = $1", late)

    async with signed_in(browser, "manager-n08") as page:
        await page.goto(f"{router_url}/")  # the home page takes a manager to their neighbourhood's board
        await page.wait_for_url("**/neighbourhoods/**")
        await expect(page.get_by_role("heading", level=1)).to_have_text(HOOD)
        figures = page.locator("ul.figures")
        await expect(figures).to_contain_text("overdue")
        assert int(await figures.locator("li").nth(0).locator(".figure").inner_text()) >= len(references)
        assert int(await figures.locator("li").nth(1).locator(".figure").inner_text()) >= 1
        # Overdue first: the first row under Streetscene is the late case, marked plainly.
        streetscene = page.get_by_role("table", name="Open cases led by Streetscene, overdue first")
        first_row = streetscene.locator("tbody tr").first
        await expect(first_row).to_contain_text(late)
        await expect(first_row).to_contain_text("OVERDUE")
        # The map: every case a mark that links to it; the overdue one a square.
        board_map = page.get_by_role("img", name=f"Open cases in {HOOD}")
        await expect(board_map).to_be_visible()
        for reference in references:
            await expect(board_map.locator(f'a[href="/cases/{reference}"]')).to_have_count(1)
        await expect(board_map.locator(f'a[href="/cases/{late}"] rect')).to_have_count(1)
        assert await accessibility_problems(page) == []
        # What a manager sees first, down to the map's caption (docs/board.png is this one), and the whole
        # board.
        caption = await page.locator("figure.map figcaption").bounding_box()
        assert caption is not None
        bottom = min(1400, max(900, round(caption["y"] + caption["height"] + 24)))
        await page.screenshot(
            path=str(ARTEFACTS / "board.png"),
            full_page=True,
            clip={"x": 0, "y": 0, "width": 1280, "height": bottom},
        )
        await shot(page, "board-full")
        # Keyboard: the first Tab reaches the skip link, which moves focus past the header.
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("link", name="Skip to the content")).to_be_focused()
        await page.keyboard.press("Enter")
        await page.wait_for_url("**#main")

        # A filter, as a GET form without JavaScript.
        await page.get_by_label("Category").select_option("graffiti")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url("**category=graffiti**")
        rows = page.locator("table tbody tr")
        await expect(rows.filter(has_text=references[2])).to_have_count(1)
        await expect(rows.filter(has_not_text="Graffiti")).to_have_count(0)
        await shot(page, "board-filtered")

        # A mark on the map opens its case.
        await page.goto(f"{router_url}/neighbourhoods/{HOOD}")
        await (
            page.get_by_role("img", name=f"Open cases in {HOOD}").locator(f'a[href="/cases/{late}"]').click()
        )
        await page.wait_for_url(f"**/cases/{late}")
        await expect(page.locator("strong.overdue")).to_contain_text("OVERDUE by")

    async with signed_in(browser, "highways-officer") as page:  # a department's board: its cases only
        await page.goto(f"{router_url}/neighbourhoods/{HOOD}")
        main = page.locator("main")
        await expect(main).to_contain_text(references[3])  # the pothole
        await expect(main).not_to_contain_text(late)
