"""What an operator keeps open all day: the dead-letters page, late workers, the batch feed,
charts that span their window, at desktop and phone widths, light and dark."""

import hashlib
import json
import re
import secrets
import signal
import subprocess
import time
import urllib.parse

from conftest import ADMIN_TOKEN, OUT, POSTGRES_URL, REDIS_URL, Sender, free_port, http_json, wait_for

TIME = re.compile(r"^\d\d:\d\d:\d\d$")


def wait_live(page):
    page.wait_for_selector('#conn[data-state="live"]', timeout=20_000)


def dead_letter(stack, payload, reason="row rejected by PostgreSQL", hex_bytes=None):
    letter = {"payload": payload, "reason": reason, "failed_at": "2026-12-02T10:00:00Z", "worker_id": "w-test"}
    if hex_bytes is not None:
        letter["payload_hex"] = hex_bytes
    raw = json.dumps(letter)
    stack.redis("LPUSH", stack.prefix + "dead_messages", raw)
    return hashlib.sha1(raw.encode()).hexdigest()


def open_dead_letters(page, stack, token=ADMIN_TOKEN):
    page.goto(stack.gateway("/dead-letters.html"))
    page.fill("#token", token)
    page.click("#token-form button[type=submit]")


def test_the_dead_letters_page_pages_inspects_requeues_and_purges(stack, page):
    page.network_errors_expected = True  # the wrong token's 401, on purpose
    stack.redis("DEL", stack.prefix + "dead_messages")
    for i in range(28):
        dead_letter(stack, f"poison {i:02}")
    odd = dead_letter(stack, "\ufffd{}", hex_bytes="ff7b7d")
    stack.redis("LPUSH", stack.prefix + "dead_messages", "written by hand")

    open_dead_letters(page, stack, token="wrong-token-wrong-token")
    page.wait_for_selector('#status[data-kind="error"]')
    assert "refused" in page.inner_text("#status")
    assert page.locator("#letters-panel").is_hidden()

    open_dead_letters(page, stack)
    page.wait_for_selector("#letters tr")
    assert page.inner_text("#total") == "(30)"
    assert page.locator("#letters tr").count() == 25
    assert "newest first" in page.inner_text("#range")
    first = page.locator("#letters tr").first
    assert "written by hand" in first.inner_text() and "unreadable entry" in first.inner_text()
    page.click("#older")
    wait_for(lambda: page.locator("#letters tr").count() == 5, 5, "the older page")
    assert page.inner_text("#range").startswith("26–30 of 30")
    page.click("#newer")
    wait_for(lambda: page.locator("#letters tr").count() == 25, 5, "the newer page")

    # Inspect the one that was not UTF-8: its text, and its exact bytes in hex.
    page.locator(f'#letters tr[data-id="{odd}"] button').click()
    assert page.locator("#inspect").is_visible()
    assert page.inner_text("#inspect-hex") == "ff 7b 7d"
    assert "w-test" in page.inner_text("#inspect-meta") and "row rejected" in page.inner_text("#inspect-meta")
    page.screenshot(path=str(OUT / "dead-letters-inspect.png"), full_page=True)
    ever = stack.counter("dead_letters")
    # A requeue asks first: the letter goes back unchanged, so unless its cause was fixed it
    # comes straight back. Dismissed, nothing happens.
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#inspect-requeue")
    wait_for(lambda: asked, 5, "the confirmation")
    assert "row rejected by PostgreSQL" in asked[0] and "come straight back" in asked[0], asked
    assert stack.counter("dead_letters") == ever and page.locator("#inspect").is_visible()
    page.once("dialog", lambda d: d.accept())
    page.click("#inspect-requeue")
    page.wait_for_selector('#status[data-kind="done"]')
    assert page.inner_text("#status") == "Requeued one dead letter."
    # Back in the queue, the workers took it and (still poison) dead-lettered it again.
    wait_for(lambda: stack.counter("dead_letters") == ever + 1, 20, "the requeued letter to come back")
    assert odd not in [hashlib.sha1(e.encode()).hexdigest() for e in stack.redis("LRANGE", stack.prefix + "dead_messages", "0", "-1").splitlines()]

    # The hand-written entry cannot be requeued; it can be deleted.
    page.click("#refresh")
    page.wait_for_selector("#letters tr")
    hand = page.locator("#letters tr", has_text="written by hand")
    hand.locator("button").click()
    assert page.locator("#inspect-requeue").is_disabled()
    page.once("dialog", lambda d: d.accept())
    page.click("#inspect-delete")
    page.wait_for_selector('#status[data-kind="done"]')
    wait_for(lambda: "written by hand" not in page.inner_text("#letters"), 5, "the deleted row to go")
    # Both actions are in the audit trail below the letters, newest first, by the admin token.
    wait_for(lambda: "dead_letters.delete_one" in page.inner_text("#audit"), 5, "the audit trail")
    audit = page.locator("#audit tr")
    assert "dead_letters.delete_one" in audit.nth(0).inner_text()
    assert "dead_letters.requeue_one" in audit.nth(1).inner_text() and odd in audit.nth(1).inner_text()
    assert "admin token" in audit.nth(0).inner_text()
    page.screenshot(path=str(OUT / "dead-letters.png"), full_page=True)

    # A filter lists the letters whose reason holds it (the whole reason, wrapped), and the
    # bulk actions then act on those only.
    dead_letter(stack, "long one", reason="value too long for type character varying(4000) " * 3)
    page.fill("#filter", "VALUE TOO LONG")
    page.click("#filter-form button[type=submit]")
    wait_for(lambda: page.locator("#letters tr").count() == 1, 5, "the filtered list")
    assert "1 matching among entries" in page.inner_text("#range")
    reason_cell = page.locator("#letters tr .reason")
    assert reason_cell.inner_text().count("value too long") == 3, "the whole reason"
    box = reason_cell.bounding_box()
    assert box["height"] > 30, f"wrapped, not cut: {box}"
    assert page.inner_text("#purge") == "Delete matching"
    page.screenshot(path=str(OUT / "dead-letters-filtered.png"), full_page=True)
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.click("#purge")
    wait_for(lambda: page.inner_text("#status").startswith("Deleted 1"), 5, "the matching one deleted")
    assert "value too long" in asked[0].lower(), asked
    assert int(stack.redis("LLEN", stack.prefix + "dead_messages")) > 1, "the others are kept"
    page.click("#clear-filter")
    wait_for(lambda: page.locator("#letters tr").count() > 1, 5, "every letter again")

    page.once("dialog", lambda d: d.accept())
    page.click("#purge")
    page.wait_for_selector("#letters-panel")
    wait_for(lambda: page.inner_text("#total") == "(0)", 5, "an empty list")
    assert page.inner_text("#status").startswith("Deleted ")
    assert stack.redis("LLEN", stack.prefix + "dead_messages") == "0"


def push_raw(stack, entry):
    """LPUSHes `entry` (bytes) onto dead_messages as it is, as a hand with Redis access might."""
    key = stack.prefix + "dead_messages"
    subprocess.run(["redis-cli", "-u", REDIS_URL, "-x", "LPUSH", key], input=entry, check=True, capture_output=True)


def test_every_entry_is_listed_whatever_its_shape(stack, page):
    stack.redis("DEL", stack.prefix + "dead_messages")
    dead_letter(stack, "an ordinary one")
    push_raw(stack, json.dumps({"payload": {"an": "object"}, "reason": "by hand"}).encode())
    push_raw(stack, b"\xc3\x28\xff raw bytes")
    push_raw(stack, json.dumps({"payload": "odd fields", "reason": 7, "failed_at": None}).encode())
    cut = {"payload": "x" * 100, "payload_bytes": 10485760, "reason": "too long", "failed_at": "2026-12-02T10:00:00Z", "worker_id": "w-test"}
    push_raw(stack, json.dumps(cut).encode())

    open_dead_letters(page, stack)
    page.wait_for_selector("#letters tr")
    wait_for(lambda: page.locator("#letters tr").count() == 5, 5, "every entry listed")
    assert page.inner_text("#total") == "(5)"
    rows = page.locator("#letters tr")
    assert "too long (first bytes only)" in rows.nth(0).inner_text()
    assert "unreadable" not in rows.nth(1).inner_text()
    # Newest first: the letter that kept only its first bytes can be inspected, not requeued.
    rows.nth(0).locator("button").click()
    assert page.locator("#inspect-requeue").is_disabled()
    assert "10,485,760-byte entry" in page.inner_text("#inspect-meta")
    page.click("#inspect-close")
    rows.nth(1).locator("button").click()
    assert page.inner_text("#inspect-text") == "odd fields"
    assert not page.locator("#inspect-requeue").is_disabled()
    page.click("#inspect-close")
    # Bytes that are not UTF-8 and an object payload: unreadable entries, shown with their bytes.
    rows.nth(2).locator("button").click()
    assert page.inner_text("#inspect-hex").startswith("c3 28 ff 20 72 61 77")
    assert page.locator("#inspect-requeue").is_disabled()
    page.click("#inspect-close")
    assert "object" in rows.nth(3).inner_text() and "unreadable entry" in rows.nth(3).inner_text()
    assert "an ordinary one" in rows.nth(4).inner_text()
    page.screenshot(path=str(OUT / "dead-letters-shapes.png"), full_page=True)


def test_a_late_worker_is_marked_with_its_age_before_it_is_presumed_dead(stack, page):
    page.goto(stack.gateway("/"))
    wait_live(page)
    sender = Sender(stack, per_second=50)
    try:
        wait_for(
            lambda: page.evaluate(
                "[...document.querySelectorAll('#workers tr[data-state=up] td:nth-child(6)')].some((td) => Number(td.textContent.replace(/,/g, '')) > 0)"
            ),
            20,
            "a worker's batches",
        )
        rates = page.eval_on_selector_all("#workers tr[data-state=up] td:nth-child(5)", "(ns) => ns.map((n) => n.textContent)")
        assert all(re.match(r"^[\d,.]+$", r) for r in rates), rates
        # Each worker names the PostgreSQL server it writes to, and since when.
        port = urllib.parse.urlsplit(POSTGRES_URL).port or 5432
        servers = page.eval_on_selector_all("#workers tr[data-state=up] td:nth-child(7)", "(ns) => ns.map((n) => n.textContent)")
        assert servers and all(re.match(rf"^up · \S+:{port} since \d\d:\d\d:\d\d$", s) for s in servers), servers
        worker = stack.processes["worker-1"]
        worker.send_signal(signal.SIGSTOP)
        try:
            # With dead_after 2 s a worker is late for one second only (1 to 2 s after its last
            # heartbeat, which comes every 250 ms), and the page reads the list every 2 s: the
            # next periodic read can fall past that second, and on a fast machine it did every
            # time (the stop follows a read within 0.1 s). Loading the page once the worker
            # must be late reads the list then.
            time.sleep(1.1)
            page.reload()
            row = page.locator(f'#workers tr[data-worker="{stack.prefix}worker-1"]')
            page.wait_for_selector(f'#workers tr[data-worker="{stack.prefix}worker-1"][data-state="late"]', timeout=10_000)
            assert row.locator(".status").inner_text() == "late"
            assert re.match(r"^\d+\.\d s ago$", row.locator("td:nth-child(3)").inner_text())
            page.screenshot(path=str(OUT / "workers-late.png"), full_page=True)
            # A late worker's rate is unknown, not its last figure.
            assert row.locator("td:nth-child(5)").inner_text() == "unknown"
            # Past dead_after: presumed dead, then taken over by its peer: listed as gone,
            # saying by whom (the server's state machine; the page only shows it).
            page.wait_for_selector(
                f'#workers tr[data-worker="{stack.prefix}worker-1"][data-state="gone"]',
                timeout=15_000,
            )
            status = row.locator(".status").inner_text()
            assert status == f"gone · reclaimed by {stack.prefix}worker-2", status
            page.screenshot(path=str(OUT / "workers-gone.png"), full_page=True)
        finally:
            worker.send_signal(signal.SIGCONT)
        page.wait_for_selector(f'#workers tr[data-worker="{stack.prefix}worker-1"][data-state="up"]', timeout=20_000)
    finally:
        sender.stop()


def publish_batches(stack, n, second="2026-12-02T10:00:00"):
    for i in range(n):
        event = {
            "batch_id": f"01900000-0000-7000-8000-{i:012d}",
            "worker_id": "w-burst",
            "size": 100,
            "inserted": 100,
            "committed_at": f"{second}.{i:03d}Z",
            "message_ids": [],
        }
        stack.redis("PUBLISH", stack.prefix + "batch_events", json.dumps(event))


def test_recent_batches_are_there_on_load_and_summarised_when_many(stack, page):
    stack.post(3)
    wait_for(lambda: stack.stats()["queue_depth"] == 0 and stack.stats()["in_flight"] == 0, 20, "drain")
    page.goto(stack.gateway("/"))
    # Filled from GET /batches/recent before any new batch.
    page.wait_for_selector("#batches li:not(.empty)", timeout=5_000)
    for clock in page.eval_on_selector_all("#batches li span:first-child", "(ns) => ns.map((n) => n.textContent)"):
        assert TIME.match(clock), clock
    wait_live(page)
    publish_batches(stack, 12)
    summary = page.locator("#batches li.summary").first
    summary.wait_for(timeout=5_000)
    wait_for(lambda: "12 batches in this second" in summary.inner_text(), 5, "the burst summarised")
    assert "1,200 rows · 100.0 per batch" in summary.inner_text()
    assert page.locator("#batches li", has_text="w-burst").count() == 0, "no line per batch"


def test_charts_span_their_window_from_the_first_paint_with_latest_values_in_the_legend(stack, page):
    page.goto(stack.gateway("/"))
    chart = page.locator("#chart-throughput")
    # Both ends read in one evaluation: a redraw between two reads may move the window a second.
    span = lambda: chart.evaluate("(c) => Number(c.dataset.to) - Number(c.dataset.from)")  # noqa: E731
    assert span() == 300, "5m from the first paint, before any data"
    wait_live(page)
    page.click('#windows button[data-window="1m"]')
    assert span() == 60
    wait_for(lambda: int(chart.get_attribute("data-points") or 0) > 2, 10, "points")
    legend = page.eval_on_selector_all("#chart-throughput .u-legend .u-value", "(ns) => ns.map((n) => n.textContent)")
    assert len(legend) == 3 and "--" not in legend, legend
    assert TIME.match(legend[0]), legend
    assert page.inner_text("#chart-throughput + h3, h3") and "10-second averages" in page.inner_text(".panel h3")
    page.click('#windows button[data-window="5m"]')
    assert span() == 300


def test_screenshots_desktop_and_phone_light_and_dark(stack, browser):
    sender = Sender(stack, per_second=30)
    try:
        for width, height, name in ((1280, 900, "desktop"), (390, 844, "phone")):
            for scheme in ("light", "dark"):
                context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
                page = context.new_page()
                page.goto(stack.gateway("/"))
                wait_live(page)
                chart = page.locator("#chart-throughput")
                wait_for(lambda: int(chart.get_attribute("data-points") or 0) > 5, 15, "points")
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                page.screenshot(path=str(OUT / f"operator-{name}-{scheme}.png"), full_page=True)
                page.goto(stack.gateway("/dead-letters.html"))
                page.fill("#token", ADMIN_TOKEN)
                page.click("#token-form button[type=submit]")
                page.wait_for_selector("#letters-panel:not([hidden])")
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                page.screenshot(path=str(OUT / f"dead-letters-{name}-{scheme}.png"), full_page=True)
                context.close()
    finally:
        sender.stop()
    time.sleep(0)


def test_with_keys_the_dashboard_takes_a_stats_key_and_the_dead_letters_page_an_admin_key(stack, browser):
    """auth.mode = keys: keys made on an ingest API, checked by a gateway that reads them from
    PostgreSQL; the page opened with `?token=<stats:read key>`, the dead-letters page with an
    `admin` key, and each refused the other's."""
    ingest_port, gateway_port = free_port(), free_port()
    keys = {"SLUICE__AUTH__MODE": "keys"}
    stack.start("keys-ingest", "sluice-ingest", SLUICE__INGEST__LISTEN=f"127.0.0.1:{ingest_port}",
                SLUICE__INGEST__ADMIN_TOKEN=ADMIN_TOKEN, SLUICE__INGEST__SERVE_STATS="false", **keys)
    stack.start("keys-gateway", "sluice-gateway", SLUICE__GATEWAY__LISTEN=f"127.0.0.1:{gateway_port}", **keys)
    base = f"http://127.0.0.1:{gateway_port}"
    wait_for(lambda: http_json(f"http://127.0.0.1:{ingest_port}/health")["status"] == "ok", 20, "the ingest API")

    def make(name, scope):
        new = {"name": f"{name}-{secrets.token_hex(3)}", "scopes": [scope]}
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return http_json(f"http://127.0.0.1:{ingest_port}/admin/keys", new, auth)["key"]

    dash, ops = make("dash", "stats:read"), make("ops", "admin")
    wait_for(lambda: http_json(f"{base}/ready")["status"] == "ready", 20, "the gateway's keys")
    # 401 (an OSError here) until the new key reached the gateway's keyring, within a second:
    # a page opened before would stop at "unauthorized".
    wait_for(lambda: http_json(f"{base}/stats?token={dash}") is not None, 10, "the gateway to know the key")
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/?token={dash}")
    page.wait_for_selector('#conn[data-state="live"]', timeout=20_000)
    before = int(page.inner_text('[data-field="total_messages"] .value').replace(",", "") or 0)
    stack.post(2)
    wait_for(lambda: int(page.inner_text('[data-field="total_messages"] .value').replace(",", "")) >= before + 2,
             15, "live numbers with a stats:read key")
    page.screenshot(path=str(OUT / "dashboard-with-key.png"))

    letters = context.new_page()
    letters.goto(f"{base}/dead-letters.html")
    letters.fill("#token", dash)
    letters.click("#token-form button[type=submit]")
    letters.wait_for_selector('#status[data-kind="error"]')
    assert "scope" in letters.inner_text("#status")
    letters.fill("#token", ops)
    letters.click("#token-form button[type=submit]")
    letters.wait_for_selector("#letters-panel:not([hidden])")
    letters.wait_for_selector("#audit-panel:not([hidden])")
    assert "keys.create" in letters.inner_text("#audit")
    context.close()
    stack.stop("keys-gateway")
    stack.stop("keys-ingest")
