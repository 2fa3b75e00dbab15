"""The analytics screen on the real desktop app against two dedicated gateways
whose data planes carried known traffic (successes through the simulated
provider — a test fixture —, 401s with a bad key, 402 insufficient-funds with
an empty wallet): the summary tiles equal the known counts, hovering a chart
shows the count of that minute, the 402-by-reason chart has the
`insufficient-funds` series, the fleet scope adds both instances, a
drag-select zooms in; then both gateways are stopped and the charts and tiles
still render from the cache with an offline note. The gateways are this
test's own, so stopping them disturbs no other test."""

import collections
import datetime
import json
import time
import urllib.error
import urllib.request
import uuid

from selenium.webdriver.common.action_chains import ActionChains
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from conftest import Gateway
from test_console import add_instance, shot, tid, wait

BAD_KEY = "tg_notakey1234_secret0000"


def admin(gw, method: str, path: str, body=None):
    request = urllib.request.Request(
        gw.base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {gw.token}", "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read() or "null")


def setup(gw, sim_provider: str, consumers: list) -> dict:
    """A provider of the simulator, a metered plan and consumers with their
    wallets topped up as given; answers each consumer's key by name."""
    provider = admin(gw, "POST", "/admin/v1/providers", {
        "name": "Sim", "kind": "openai-compatible", "base_url": f"{sim_provider}/v1", "currency": "USD",
        "models": [{"name": "sim-small", "input_price": "1000", "output_price": "2000"}]})
    admin(gw, "POST", f"/admin/v1/providers/{provider['id']}/keys", {"label": "k", "secret": "sim-key-analytics-0001"})
    team = admin(gw, "POST", "/admin/v1/teams", {"name": "Analytics"})
    plan = admin(gw, "POST", "/admin/v1/plans", {
        "name": "Metered", "currency": "USD", "price": "0", "period": "month",
        "overage": "charge_wallet", "apis": ["chat"]})
    keys = {}
    for name, top_up in consumers:
        consumer = admin(gw, "POST", "/admin/v1/consumers", {"team_id": team["id"], "name": name})
        keys[name] = admin(gw, "POST", f"/admin/v1/consumers/{consumer['id']}/keys", {"name": "k"})["secret"]
        admin(gw, "POST", "/admin/v1/subscriptions", {"consumer_id": consumer["id"], "plan_id": plan["id"]})
        if top_up != "0":
            admin(gw, "POST", f"/admin/v1/consumers/{consumer['id']}/wallets/USD/entries", {"kind": "top_up", "amount": top_up})
    return keys


def chat(gw, key: str, n: int) -> list:
    """`n` chat completions through the data plane; answers the statuses."""
    statuses = []
    for i in range(n):
        request = urllib.request.Request(
            f"{gw.base}/v1/chat/completions",
            method="POST",
            data=json.dumps({"model": "sim-small", "max_tokens": 5 + i,
                             "messages": [{"role": "user", "content": f"count to {i}"}]}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                resp.read()
                statuses.append(resp.status)
        except urllib.error.HTTPError as e:
            e.read()
            statuses.append(e.code)
    return statuses


def records(gw) -> list:
    """Every record of the gateway's call log."""
    request = urllib.request.Request(
        f"{gw.base}/admin/v1/logs/export?after=0&limit=5000",
        headers={"Authorization": f"Bearer {gw.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]


def per_minute(recs: list) -> collections.Counter:
    """Requests per minute bucket (unix seconds of its start), as the charts count them."""
    out = collections.Counter()
    for r in recs:
        at = datetime.datetime.fromisoformat(r["at"].replace("Z", "+00:00"))
        out[int(at.timestamp()) // 60 * 60] += 1
    return out


def text_of(driver, testid: str) -> str:
    found = driver.find_elements(*tid(testid))
    return found[0].text if found else ""


def tile_number(driver, testid: str) -> str:
    """The big figure of a tile."""
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"] .tile-value').text


def to_top(driver) -> None:
    driver.execute_script("document.querySelector('main.content').scrollTo(0, 0)")


def switch_to(driver, name: str) -> None:
    """Selects an instance in the sidebar's switcher; clicks again if the
    switcher was being drawn anew (an instance just added) when clicked."""
    button = (
        By.XPATH,
        f'//nav[@data-testid="instance-switcher"]//button[.//span[@class="switch-name" and text()="{name}"]]',
    )

    def switched(d) -> bool:
        if name in text_of(d, "current-instance-name"):
            return True
        try:
            d.find_element(*button).click()
        except WebDriverException:
            pass
        return False

    wait(driver, 20).until(switched)


def chart_x(driver, chart: str, t: int) -> tuple:
    """The overlay of a chart and the x offset (from its centre, as
    ActionChains counts) of time `t` (unix seconds)."""
    box = driver.find_element(*tid(chart))
    lo, hi = float(box.get_attribute("data-x-min")), float(box.get_attribute("data-x-max"))
    over = box.find_element(By.CSS_SELECTOR, ".u-over")
    width = over.size["width"]
    return over, (t - lo) / (hi - lo) * width - width / 2


def legend_values(driver, chart: str) -> dict:
    """The legend's label → value at the cursor."""
    rows = driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{chart}"] .u-legend .u-series')
    out = {}
    for row in rows:
        label = row.find_element(By.CSS_SELECTOR, ".u-label").text
        out[label] = row.find_element(By.CSS_SELECTOR, ".u-value").text
    return out


def hover_minute(driver, chart: str, t: int) -> dict:
    over, x = chart_x(driver, chart, t)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", over)
    ActionChains(driver).move_to_element_with_offset(over, int(round(x)), 0).perform()
    time.sleep(0.2)
    return legend_values(driver, chart)


def drag(driver, over, x0: float, x1: float) -> None:
    """A drag-select across a chart's overlay from x0 to x1 (offsets from its
    centre): the pointer pressed, moved in steps, released."""
    chain = ActionChains(driver).move_to_element_with_offset(over, int(x0), 0).click_and_hold()
    for k in range(1, 11):
        chain = chain.move_to_element_with_offset(over, int(x0 + (x1 - x0) * k / 10), 5)
    chain.release().perform()
    if driver.find_elements(*tid("zoomed")):
        return
    # WebKitWebDriver may not deliver the moves of a held button to the
    # page; then the same gesture as the DOM mouse events uPlot listens to.
    print("drag: WebDriver pointer moves did not reach the page; dispatching mouse events")
    driver.execute_script(
        """const [over, x0, x1] = arguments;
           const r = over.getBoundingClientRect();
           const at = (x) => ({clientX: r.left + r.width / 2 + x, clientY: r.top + r.height / 2, bubbles: true, button: 0});
           over.dispatchEvent(new MouseEvent('mouseenter', at(x0)));
           over.dispatchEvent(new MouseEvent('mousemove', at(x0)));
           over.dispatchEvent(new MouseEvent('mousedown', at(x0)));
           for (let k = 1; k <= 10; k++) over.dispatchEvent(new MouseEvent('mousemove', at(x0 + (x1 - x0) * k / 10)));
           document.dispatchEvent(new MouseEvent('mouseup', at(x1)));""",
        over, x0, x1)


def test_analytics_per_instance_fleet_zoom_and_offline(driver, sim_provider):
    alpha, beta = Gateway("analytics-a"), Gateway("analytics-b")
    try:
        wait(driver, 60).until(EC.presence_of_element_located(tid("nav-fleet")))
        run(driver, sim_provider, alpha, beta)
    except Exception:
        shot(driver, "analytics-failure")
        raise
    finally:
        for gw in (alpha, beta):
            if gw.proc.poll() is None:
                gw.stop()


def run(driver, sim_provider, alpha, beta):
    # Known traffic, before the console ever syncs.
    keys = setup(alpha, sim_provider, [("Paying", "100"), ("Broke", "0")])
    statuses = chat(alpha, keys["Paying"], 6) + chat(alpha, keys["Broke"], 3) + chat(alpha, BAD_KEY, 2)
    assert sorted(statuses) == [200] * 6 + [401] * 2 + [402] * 3, statuses
    keys_b = setup(beta, sim_provider, [("Bee", "100")])
    statuses_b = chat(beta, keys_b["Bee"], 4) + chat(beta, BAD_KEY, 1)
    assert sorted(statuses_b) == [200] * 4 + [401], statuses_b
    alpha_records, beta_records = records(alpha), records(beta)
    assert (len(alpha_records), len(beta_records)) == (11, 5)

    add_instance(driver, "Analytics A", alpha, "dev")
    add_instance(driver, "Analytics B", beta, "dev")
    switch_to(driver, "Analytics A")

    # --- One instance ---------------------------------------------------
    driver.find_element(*tid("nav-analytics")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("scope-instance"))).click()
    wait(driver).until(EC.element_to_be_clickable(tid("analytics-sync"))).click()
    wait(driver, 30).until(lambda d: text_of(d, "tile-requests").endswith("11"))
    assert tile_number(driver, "tile-requests") == "11"
    assert tile_number(driver, "tile-402") == "3"
    assert text_of(driver, "tile-errors") == "5 errors"
    assert tile_number(driver, "tile-error-rate") == "45%"  # 5 of 11
    assert "USD" in text_of(driver, "tile-revenue")
    assert "ms" in tile_number(driver, "tile-p95")
    # Synced, and not offline.
    notes = text_of(driver, "sync-notes")
    assert "Analytics A" in notes and "synced" in notes, notes
    assert not driver.find_elements(*tid("offline-note"))

    # The charts are drawn (a canvas each); hovering each minute with calls
    # shows that minute's count in the legend.
    for chart in ("chart-traffic", "chart-reasons", "chart-latency", "chart-usage"):
        wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, f'[data-testid="{chart}"] canvas')))
    minutes = per_minute(alpha_records)
    refusals = per_minute([r for r in alpha_records if r["status"] == 402])
    for t, n in minutes.items():
        values = hover_minute(driver, "chart-traffic", t)
        assert values["Requests"] == str(n), (t, values)
        reasons = hover_minute(driver, "chart-reasons", t)
        assert reasons["insufficient-funds"] == str(refusals[t]), (t, reasons)
    # The 402-by-reason chart has the insufficient-funds series (and only 402 reasons).
    labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="chart-reasons"] .u-legend .u-series .u-label')]
    assert labels == ["Time", "insufficient-funds"], labels
    # The breakdown by consumer: the paying consumer's six calls, the broke one's three.
    driver.find_element(*tid("breakdown-tab-consumer")).click()
    table = wait(driver).until(EC.presence_of_element_located(tid("breakdown-consumer"))).text
    assert "no consumer" in table
    top = text_of(driver, "top-requests")
    assert "6" in top and "3" in top, top
    assert text_of(driver, "top-revenue-USD")
    to_top(driver)
    shot(driver, "analytics-instance")

    # --- A bucket that does not fit is refused inline ---------------------
    driver.find_element(*tid("range-30d")).click()
    Select(driver.find_element(*tid("bucket"))).select_by_value("minute")
    assert "pick a coarser one" in wait(driver).until(EC.presence_of_element_located(tid("bucket-error"))).text
    Select(driver.find_element(*tid("bucket"))).select_by_value("auto")
    assert not driver.find_elements(*tid("bucket-error"))
    # A custom range ending before it starts is refused at the form.
    driver.find_element(*tid("range-custom")).click()
    driver.execute_script(
        """const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
           for (const [id, v] of [['range-from', '2026-03-02T10:00'], ['range-to', '2026-03-01T10:00']]) {
             const el = document.querySelector(`[data-testid="${id}"]`);
             set.call(el, v); el.dispatchEvent(new Event('input', {bubbles: true}));
           }""")
    driver.find_element(*tid("range-apply")).click()
    assert "after the start" in wait(driver).until(EC.presence_of_element_located(tid("range-to-error"))).text
    driver.find_element(*tid("range-1h")).click()
    wait(driver).until(EC.invisibility_of_element_located(tid("custom-range")))

    # --- Drag-select zooms ----------------------------------------------
    wait(driver).until(lambda d: text_of(d, "tile-requests").endswith("11"))
    first, last = min(minutes), max(minutes)
    over, x0 = chart_x(driver, "chart-traffic", first - 300)
    _, x1 = chart_x(driver, "chart-traffic", last + 120)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", over)
    before = text_of(driver, "window-label")
    drag(driver, over, x0, x1)
    wait(driver).until(EC.presence_of_element_located(tid("zoomed")))
    assert text_of(driver, "window-label") != before
    box = driver.find_element(*tid("chart-traffic"))
    span = float(box.get_attribute("data-x-max")) - float(box.get_attribute("data-x-min"))
    assert 240 <= span <= 1200, span  # from 1 hour to the few minutes selected
    wait(driver).until(lambda d: text_of(d, "tile-requests").endswith("11"))
    values = hover_minute(driver, "chart-traffic", first)
    assert values["Requests"] == str(minutes[first]), values
    to_top(driver)
    shot(driver, "analytics-zoomed")
    driver.find_element(*tid("reset-zoom")).click()
    wait(driver).until(EC.invisibility_of_element_located(tid("zoomed")))

    # --- The fleet: both instances (and any other the console has) ---------
    driver.find_element(*tid("scope-fleet")).click()
    driver.find_element(*tid("analytics-sync")).click()
    row_a = wait(driver, 30).until(EC.presence_of_element_located(tid("member-row-Analytics A")))
    wait(driver, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, '[data-testid="member-row-Analytics B"] [data-testid="member-requests"]').text == "5")
    member = lambda name, cell: driver.find_element(By.CSS_SELECTOR, f'[data-testid="member-row-{name}"] [data-testid="{cell}"]').text
    assert (member("Analytics A", "member-requests"), member("Analytics A", "member-402")) == ("11", "3")
    assert (member("Analytics B", "member-requests"), member("Analytics B", "member-errors")) == ("5", "1")
    assert row_a.is_displayed()
    all_requests = sum(int(e.text.replace(",", "")) for e in driver.find_elements(*tid("member-requests")))
    all_402 = sum(int(e.text.replace(",", "")) for e in driver.find_elements(*tid("member-402")))
    assert all_requests >= 16
    assert tile_number(driver, "tile-requests") == f"{all_requests:,}"
    assert tile_number(driver, "tile-402") == f"{all_402:,}"
    # Consumers are per instance: the fleet's table names the instance.
    table = wait(driver).until(EC.presence_of_element_located(tid("breakdown-consumer"))).text
    assert "Analytics A" in table and "Analytics B" in table, table
    wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, '[data-testid="chart-traffic"] canvas')))
    if all_requests == 16:
        # Only this test's instances carry traffic: each minute is the sum of both.
        both = per_minute(alpha_records + beta_records)
        for t, n in both.items():
            values = hover_minute(driver, "chart-traffic", t)
            assert values["Requests"] == str(n), (t, values)
    to_top(driver)
    shot(driver, "analytics-fleet")
    driver.execute_script("document.querySelector('[data-testid=\"top-requests\"]').scrollIntoView({block: 'start'})")
    shot(driver, "analytics-breakdowns")

    # --- Offline: both gateways stopped ---------------------------------
    alpha.stop()
    beta.stop()
    driver.find_element(*tid("analytics-sync")).click()
    wait(driver, 30).until(lambda d: len(d.find_elements(*tid("offline-note"))) >= 2)
    notes = text_of(driver, "sync-notes")
    assert notes.count("offline — from cache as of") >= 2, notes
    assert tile_number(driver, "tile-requests") == f"{all_requests:,}"
    assert (member("Analytics A", "member-requests"), member("Analytics B", "member-requests")) == ("11", "5")
    for chart in ("chart-traffic", "chart-reasons", "chart-latency", "chart-usage"):
        assert driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{chart}"] canvas'), chart
    # And one instance's scope, offline, still charts from its cache.
    driver.find_element(*tid("scope-instance")).click()
    wait(driver).until(lambda d: "offline — from cache as of" in text_of(d, "sync-notes"))
    assert "Analytics A" in text_of(driver, "sync-notes")
    assert tile_number(driver, "tile-requests") == "11"
    for t, n in minutes.items():
        values = hover_minute(driver, "chart-traffic", t)
        assert values["Requests"] == str(n), (t, values)
    to_top(driver)
    shot(driver, "analytics-offline")
