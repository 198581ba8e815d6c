"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a real
stack: numbers, charts, history windows, alerts, reconnection and the SSE fallback."""

import re
import subprocess
import time

from conftest import JWT_SECRET, OUT, Sender, free_port, jwt, wait_for

TICK_S = 0.5


def card(page, field):
    """The raw value a card shows (its `data-raw`), as a number; None before the first stats."""
    raw = page.locator(f'.card[data-field="{field}"] .value').get_attribute("data-raw")
    return None if raw in (None, "") else float(raw)


def wait_state(page, state, timeout=20):
    page.wait_for_selector(f'#conn[data-state="{state}"]', timeout=timeout * 1000)


def test_cards_follow_redis_while_messages_flow(stack, page):
    page.goto(stack.gateway("/"))
    wait_state(page, "live")
    sender = Sender(stack)
    try:
        time.sleep(3)
        for _ in range(5):
            before = {k: stack.counter(k) for k in ("total_messages", "accepted_total")}
            time.sleep(TICK_S * 2)
            shown = {k: card(page, k) for k in ("total_messages", "accepted_per_second")}
            after = stack.counter("total_messages")
            # What the page shows was Redis's value at most a tick ago.
            assert before["total_messages"] <= shown["total_messages"] <= after, (before, shown, after)
            assert shown["accepted_per_second"] > 0
    finally:
        sender.stop()
    wait_for(lambda: stack.stats()["queue_depth"] == 0 and stack.stats()["in_flight"] == 0, 20, "drain")
    time.sleep(TICK_S * 3)
    expected = {
        "total_messages": stack.counter("total_messages"),
        "total_batches": stack.counter("total_batches"),
        "workers_alive": 2,
        "queue_depth": 0,
        "dead_letters": 0,
    }
    shown = {k: card(page, k) for k in expected}
    assert shown == expected
    assert stack.counter("accepted_total") == stack.counter("total_messages")
    assert card(page, "commit_latency_ms.p99") > 0
    assert page.locator("#workers tr[data-worker]").count() == 2
    assert page.locator("#batches li").count() > 0
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / "dashboard.png"), full_page=True)


def test_charts_have_points_and_the_window_selector_loads_history(stack, page):
    page.goto(stack.gateway("/"))
    wait_state(page, "live")
    chart = page.locator("#chart-throughput")
    wait_for(lambda: int(chart.get_attribute("data-points") or 0) > 1, 10, "chart points")
    assert page.locator("#chart-throughput canvas").count() == 1
    for window, resolution in (("1m", 1), ("1h", 60), ("24h", 60), ("5m", 1)):
        with page.expect_response(re.compile(rf"/stats/history\?window={window}")) as answer:
            page.click(f'#windows button[data-window="{window}"]')
        history = answer.value.json()
        assert history["window"] == window and history["resolution_secs"] == resolution
        assert len(history["t"]) >= 1, "a page is never empty"
        assert page.locator(f'#windows button[data-window="{window}"]').get_attribute("aria-pressed") == "true"
        wait_for(lambda: int(chart.get_attribute("data-points") or 0) >= len(history["t"]), 5, "points drawn")


def test_an_alert_appears_when_workers_stop_and_clears_when_they_return(stack, page):
    page.goto(stack.gateway("/"))
    wait_state(page, "live")
    stack.stop_workers()
    sender = Sender(stack, per_second=10)
    try:
        page.wait_for_selector('#alerts-active .alert[data-rule="no_live_workers"]', timeout=20_000)
        assert page.locator('#alerts-active .alert[data-rule="no_live_workers"] .state').inner_text() == "firing"
        # The cards whose figure the alert is about take its severity's colour.
        severity = page.locator('#alerts-active .alert[data-rule="no_live_workers"] .severity').text_content()
        workers_card = page.locator('.card[data-field="workers_alive"]')
        assert workers_card.get_attribute("data-severity") == severity
        assert page.locator('.card[data-field="total_messages"]').get_attribute("data-severity") is None
        colour = workers_card.evaluate("(n) => getComputedStyle(n.querySelector('.value')).color")
        plain = page.locator('.card[data-field="total_messages"] .value').evaluate("(n) => getComputedStyle(n).color")
        assert colour != plain
        page.screenshot(path=str(OUT / "dashboard-alert.png"), full_page=True)
    finally:
        sender.stop()
        stack.start_workers()
    page.wait_for_selector('#alerts-active .alert[data-rule="no_live_workers"]', state="detached", timeout=30_000)
    # One entry for the alert, resolved, with how long it lasted; not a firing and a resolved.
    entries = page.locator('#alerts-recent .alert[data-rule="no_live_workers"]')
    first = entries.first
    assert "resolved" in first.get_attribute("class")
    assert re.search(r"\d\d:\d\d:\d\d → \d\d:\d\d:\d\d · lasted \d", first.locator(".when").inner_text())
    starts = page.eval_on_selector_all(
        '#alerts-recent .alert[data-rule="no_live_workers"] .when', "(ns) => ns.map((n) => n.textContent.slice(0, 8))"
    )
    assert len(starts) == len(set(starts)), f"one entry per alert: {starts}"
    assert page.locator('.card[data-field="workers_alive"]').get_attribute("data-severity") is None
    wait_for(lambda: stack.stats()["workers_alive"] == 2, 20, "workers back")


def test_the_page_reconnects_after_the_gateway_restarts(stack, page):
    page.network_errors_expected = True
    page.goto(stack.gateway("/"))
    wait_state(page, "live")
    stack.stop("gateway")
    wait_state(page, "reconnecting")
    stack.start_gateway()
    wait_state(page, "live", timeout=30)
    before = card(page, "total_messages")
    stack.post(5)
    wait_for(lambda: card(page, "total_messages") >= before + 5, 15, "new numbers after the restart")


def test_with_websocket_blocked_the_page_shows_live_numbers_over_sse(stack, page):
    page.network_errors_expected = True
    blocked = {"on": True}

    def proxy(ws):
        # While blocked, like a proxy that accepts the upgrade and forwards nothing: the
        # socket opens and stays silent. Then it lets WebSocket through again.
        if not blocked["on"]:
            ws.connect_to_server()

    page.route_web_socket(re.compile(r"/ws/stats"), proxy)
    page.goto(stack.gateway("/?ws_retry_ms=2000"))
    wait_state(page, "sse", timeout=30)
    before = card(page, "total_messages") or 0
    stack.post(5)
    wait_for(lambda: (card(page, "total_messages") or 0) >= before + 5, 15, "numbers over SSE")
    blocked["on"] = False
    wait_state(page, "live", timeout=30)
    before = card(page, "total_messages")
    stack.post(3)
    wait_for(lambda: card(page, "total_messages") >= before + 3, 15, "numbers over WebSocket again")


def test_with_websocket_and_sse_blocked_the_page_polls(stack, page):
    page.network_errors_expected = True
    page.route_web_socket(re.compile(r"/ws/stats"), lambda ws: None)
    page.route(re.compile(r"/stats/stream"), lambda route: route.abort())
    page.goto(stack.gateway("/"))
    wait_state(page, "polling", timeout=40)
    before = card(page, "total_messages") or 0
    stack.post(4)
    wait_for(lambda: (card(page, "total_messages") or 0) >= before + 4, 15, "numbers by polling")


def test_with_auth_on_the_page_uses_its_token(stack, browser):
    context = browser.new_context()
    page = context.new_page()
    base = f"http://127.0.0.1:{stack.auth_port}/"
    page.goto(f"{base}?token={jwt(JWT_SECRET)}")
    wait_state(page, "live")
    wait_for(lambda: card(page, "total_messages") is not None, 10, "stats with a token")
    refused = context.new_page()
    refused.goto(base)
    wait_state(refused, "unauthorized", timeout=40)
    context.close()


def test_over_https_the_page_is_live_through_wss(stack, browser, tmp_path):
    certificate, key = self_signed(tmp_path)
    port = free_port()
    stack.start(
        "tls-gateway",
        "sluice-gateway",
        SLUICE__GATEWAY__LISTEN=f"127.0.0.1:{port}",
        SLUICE__GATEWAY__TLS__CERT_FILE=str(certificate),
        SLUICE__GATEWAY__TLS__KEY_FILE=str(key),
    )
    # The browser does not know the test CA; what is checked here is the page over HTTPS.
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    wait_for(lambda: page.goto(f"https://localhost:{port}/").ok, 20, "the page over HTTPS")
    wait_state(page, "live")
    before = card(page, "total_messages") or 0
    stack.post(3)
    wait_for(lambda: (card(page, "total_messages") or 0) >= before + 3, 15, "live numbers")
    assert sockets and all(url.startswith("wss://") for url in sockets), sockets
    context.close()
    stack.stop("tls-gateway")


def self_signed(directory):
    """A certificate for localhost and its key, made by openssl."""
    certificate, key = directory / "gateway.crt", directory / "gateway.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext",
         "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True,
    )
    return certificate, key


def test_a_phone_sees_the_page_without_sideways_scrolling_in_its_colour_scheme(stack, browser):
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme=scheme)
        page = context.new_page()
        page.goto(stack.gateway("/"))
        wait_state(page, "live")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{scheme}: the page is {width}px wide"
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        dark = sum(int(c) for c in re.findall(r"\d+", background)[:3]) < 200
        assert dark == (scheme == "dark"), f"{scheme}: background {background}"
        page.screenshot(path=str(OUT / f"dashboard-phone-{scheme}.png"), full_page=True)
        context.close()


# Every word of the workers table that the browser laid out on more than one line.
SPLIT_WORDS = """() => {
  const split = [];
  for (const cell of document.querySelectorAll('.workers th, .workers td')) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const word of node.textContent.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, word.index);
        range.setEnd(node, word.index + word[0].length);
        const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (lines.size > 1) split.push(word[0]);
      }
    }
  }
  return split;
}"""


def test_the_workers_table_never_splits_a_word_even_on_a_phone(stack, browser):
    for width in (390, 1280):
        context = browser.new_context(viewport={"width": width, "height": 844})
        page = context.new_page()
        page.goto(stack.gateway("/"))
        wait_state(page, "live")
        wait_for(lambda: page.locator("#workers tr td").count() >= 14, 10, "two workers listed")
        assert page.evaluate(SPLIT_WORDS) == [], f"{width}px: words split across lines"
        width_now = page.evaluate("document.documentElement.scrollWidth")
        assert width_now <= width, f"the page is {width_now}px wide at {width}px"
        context.close()


def test_the_page_and_its_assets_carry_a_strict_policy(stack, page):
    response = page.goto(stack.gateway("/"))
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    for asset in ("/assets/app.js", "/assets/vendor/uplot-1.6.32/uPlot.iife.min.js"):
        answer = page.request.get(stack.gateway(asset))
        assert answer.ok and answer.headers["etag"]
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in page.request.get(stack.gateway("/assets/vendor/uplot-1.6.32/uPlot.min.css")).headers["cache-control"]


def test_while_the_gateway_cannot_read_redis_the_page_says_stale_not_live(stack, page):
    """The gateway's `status` messages: connected but unable to read Redis is not live."""
    routed = {}

    def proxy(ws):
        ws.connect_to_server()
        routed["ws"] = ws

    page.route_web_socket(re.compile(r"/ws/stats"), proxy)
    page.goto(stack.gateway("/"))
    wait_state(page, "live")
    routed["ws"].send('{"type": "status", "redis": "down"}')
    wait_state(page, "stale", timeout=5)
    assert page.inner_text("#conn") == "stale · Redis unreadable"
    page.screenshot(path=str(OUT / "dashboard-stale.png"), clip={"x": 0, "y": 0, "width": 1280, "height": 300})
    routed["ws"].send('{"type": "status", "redis": "up"}')
    wait_state(page, "live", timeout=5)


def y_ticks(page, chart):
    """The y-axis labels a chart drew (its canvas holds only pixels; it keeps them in data-y-ticks)."""
    return (page.get_attribute(f"#{chart}", "data-y-ticks") or "").split("|")


def test_numbers_sit_under_their_headers_and_charts_say_what_a_point_is(stack, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(stack.gateway("/"))
    wait_state(page, "live")
    wait_for(lambda: page.locator("#workers tr td").count() >= 14, 10, "two workers listed")
    # Numeric columns: headers aligned as their numbers are, to the right.
    aligned = page.evaluate(
        """() => [...document.querySelectorAll('.workers thead th')].map((th) =>
          [th.textContent, getComputedStyle(th).textAlign])"""
    )
    for header, align in aligned:
        expected = "right" if header in ("In hand", "Persisted/s", "Batches") else "left"
        assert align == expected, aligned
    # The queue counts messages: whole numbers on its axis, whatever the scale (an idle queue
    # once drew 0.0, 0.5, 1.0).
    counts = y_ticks(page, "chart-queue")
    assert len(counts) > 1 and all(re.fullmatch(r"[\d,]+", label) for label in counts), counts
    # One number format per axis.
    rates = y_ticks(page, "chart-throughput")
    assert len(rates) > 1 and len({len(label.partition(".")[2]) for label in rates}) == 1, rates
    # Each window's subtitle says what a point stands for.
    for window, words in (("1m", "a point per second"), ("1h", "a point per minute"), ("5m", "a point per second")):
        page.click(f'#windows button[data-window="{window}"]')
        wait_for(lambda: words in page.inner_text("#title-throughput"), 5, f"{window}'s subtitle")
        assert ("minute" in words) == ("highest" in page.inner_text("#title-queue")), page.inner_text("#title-queue")
    # Nothing wider than the phone: tables scroll inside their card, alert cards wrap.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(OUT / "dashboard-phone-charts.png"), full_page=True)
    context.close()
