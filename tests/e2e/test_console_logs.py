"""The log explorer on the real desktop app, against a gateway of its own
whose data plane served known traffic (the simulated provider, a test
fixture, answering): successes, 401s with a bad key, 402s from an empty
wallet, and a few thousand model-list calls so that the table has to load
page after page as it scrolls (virtualised: the DOM keeps only what is in
view). Filters, full-text search, the detail drawer, a saved filter that
survives a reload, a CSV export without secrets, the cache tab — then the
gateway is stopped and the explorer, filters, search and export still work
from the cache, under a banner that says since when it is offline."""

import concurrent.futures
import csv
import json
import pathlib
import re
import tempfile
import time
import urllib.error
import urllib.request
import uuid

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.file_detector import UselessFileDetector
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from conftest import Gateway
from test_console import add_instance, shot, tid, wait
from test_console_billing import retype

NAME = "Logbook"
BAD_KEY = "tg_notakey1234_secret0000"
SERVED = 6
UNAUTHORIZED = 3
PAYMENT_REQUIRED = 2
BULK = 2500
CHAT = SERVED + UNAUTHORIZED + PAYMENT_REQUIRED
TOTAL = CHAT + BULK
PAGE = 200


def admin(gw, method: str, path: str, body=None):
    request = urllib.request.Request(
        gw.base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {gw.token}", "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read() or "null")


def consumer(gw, team: str, name: str, top_up: str) -> tuple:
    """A consumer on a plan for `chat` whose overage is charged to its wallet; answers (id, key)."""
    c = admin(gw, "POST", "/admin/v1/consumers", {"team_id": team, "name": name})
    key = admin(gw, "POST", f"/admin/v1/consumers/{c['id']}/keys", {"name": "k"})["secret"]
    plan = admin(gw, "POST", "/admin/v1/plans", {
        "name": f"Plan {name}", "currency": "USD", "price": "0", "period": "month",
        "overage": "charge_wallet", "apis": ["chat"]})
    admin(gw, "POST", "/admin/v1/subscriptions", {"consumer_id": c["id"], "plan_id": plan["id"]})
    if top_up != "0":
        admin(gw, "POST", f"/admin/v1/consumers/{c['id']}/wallets/USD/entries", {"kind": "top_up", "amount": top_up})
    return c["id"], key


def chat(gw, key: str, text: str, agent: str) -> tuple:
    request = urllib.request.Request(
        f"{gw.base}/v1/chat/completions",
        method="POST",
        data=json.dumps({"model": "sim-small", "max_tokens": 8, "messages": [{"role": "user", "content": text}]}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", "User-Agent": agent},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            resp.read()
            return resp.status, resp.headers["x-request-id"]
    except urllib.error.HTTPError as e:
        e.read()
        return e.code, e.headers["x-request-id"]


def models(gw, key: str) -> int:
    request = urllib.request.Request(f"{gw.base}/v1/models", headers={"Authorization": f"Bearer {key}", "User-Agent": "explorer-e2e/bulk"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        resp.read()
        return resp.status


def traffic(gw, sim_provider: str) -> dict:
    """The known traffic; answers the consumers' ids and keys and one served call's request id."""
    provider = admin(gw, "POST", "/admin/v1/providers", {
        "name": "Sim", "kind": "openai-compatible", "base_url": f"{sim_provider}/v1", "currency": "USD",
        "models": [{"name": "sim-small", "input_price": "1000", "output_price": "2000"}]})
    admin(gw, "POST", f"/admin/v1/providers/{provider['id']}/keys", {"label": "k", "secret": "sim-key-good-0042"})
    team = admin(gw, "POST", "/admin/v1/teams", {"name": "Explorer"})["id"]
    alice, alice_key = consumer(gw, team, "Alice", "100")
    broke, broke_key = consumer(gw, team, "Broke", "0")
    served = [chat(gw, alice_key, f"hello number {i}", "explorer-e2e/ok") for i in range(SERVED)]
    assert [s for s, _ in served] == [200] * SERVED, served
    refused = [chat(gw, BAD_KEY, "who am i", "explorer-e2e/badkey") for _ in range(UNAUTHORIZED)]
    assert [s for s, _ in refused] == [401] * UNAUTHORIZED, refused
    broke_calls = [chat(gw, broke_key, "on credit", "explorer-e2e/broke") for _ in range(PAYMENT_REQUIRED)]
    assert [s for s, _ in broke_calls] == [402] * PAYMENT_REQUIRED, broke_calls
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: models(gw, alice_key), range(BULK)))
    assert statuses == [200] * BULK
    # The gateway writes its log every 50 ms; make sure the last window is in.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        head = admin(gw, "GET", "/admin/v1/logs?limit=1")
        if head.get("head_seq", 0) >= TOTAL:
            break
        time.sleep(0.2)
    return {"alice": alice, "alice_key": alice_key, "broke_key": broke_key, "request_id": served[2][1]}


def number(shown: str) -> int:
    """A count as shown, in any locale ("2,511", "2 511", "2511")."""
    return int(re.sub(r"\D", "", shown) or "-1")


def loaded(driver) -> tuple:
    el = driver.find_element(*tid("logs-count"))
    return int(el.get_attribute("data-loaded")), el.get_attribute("data-complete") == "true", el.text


def wait_count(driver, n: int, complete: bool = True, seconds: float = 20) -> None:
    wait(driver, seconds).until(lambda d: loaded(d)[:2] == (n, complete), f"expected {n} records (complete={complete})")


def wait_unfiltered(driver) -> None:
    """Every record again: the first page, or all of them when they are still loaded from before."""
    wait(driver).until(lambda d: loaded(d)[0] >= PAGE and d.find_element(*tid("logs-filter-clear")).get_attribute("disabled") is not None)
    assert loaded(driver)[:2] in [(PAGE, False), (TOTAL, True)], loaded(driver)


def rows(driver) -> list:
    return driver.find_elements(*tid("log-row"))


def row_data(driver) -> list:
    """The rendered rows' index, status, request id and text, read in one
    script: a re-render between two reads can neither mix rows nor leave a
    stale element."""
    return driver.execute_script(
        "return [...document.querySelectorAll('[data-testid=log-row]')].map(r => ({"
        "index: r.dataset.index, status: r.dataset.status,"
        "requestId: r.dataset.requestId, text: r.textContent}));"
    )


def last_row(driver) -> dict:
    rendered = row_data(driver)
    return rendered[-1] if rendered else {}


def choose(driver, testid: str, value: str) -> None:
    """Picks an option as the native popup does (value set, `change` fired):
    WebKitGTK's driver may open the popup and show an option chosen before
    the page has heard of it, so its clicks on options are not used."""
    element = driver.find_element(*tid(testid))
    assert value in [o.get_attribute("value") for o in Select(element).options], value
    driver.execute_script(
        "const s = arguments[0];"
        "Object.getOwnPropertyDescriptor(HTMLSelectElement.prototype, 'value').set.call(s, arguments[1]);"
        "s.dispatchEvent(new Event('change', { bubbles: true }));",
        element,
        value,
    )
    time.sleep(0.1)
    assert Select(driver.find_element(*tid(testid))).first_selected_option.get_attribute("value") == value


def select_status(driver, value: str) -> None:
    choose(driver, "logs-filter-status", value)


def clear_filters(driver) -> None:
    button = driver.find_element(*tid("logs-filter-clear"))
    if button.is_enabled():
        button.click()


def export(driver, path: pathlib.Path, fmt: str) -> int:
    """Exports the filter in force to `path`; answers the records the summary counts."""
    driver.find_element(*tid("logs-export")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("export-path-input")))
    # The default path is prefilled (downloads or home folder, instance, time).
    default = driver.find_element(*tid("export-path-input")).get_attribute("value")
    assert default.startswith("/") and "tollgate-logs-logbook-" in default and default.endswith(".csv"), default
    driver.find_element(*tid(f"export-format-{fmt}")).click()
    retype(driver, "export-path-input", str(path))
    driver.find_element(*tid("export-start")).click()
    summary = wait(driver, 60).until(EC.presence_of_element_located(tid("export-summary")))
    records = number(summary.find_element(*tid("export-records")).text)
    assert summary.find_element(*tid("export-path")).text == str(path)
    return records


def close_export(driver) -> None:
    driver.find_element(*tid("export-close")).click()
    wait(driver).until(EC.invisibility_of_element_located(tid("export-summary")))


def test_log_explorer(driver, sim_provider):
    gw = Gateway("logbook")
    # Paths typed into the export form name existing files: they are text, not uploads.
    detector = driver.file_detector
    driver.file_detector = UselessFileDetector()
    try:
        run_explorer(driver, gw, sim_provider)
    except Exception:
        shot(driver, "logs-failure")
        raise
    finally:
        driver.file_detector = detector
        if gw.proc.poll() is None:
            gw.stop()


def run_explorer(driver, gw, sim_provider):
    known = traffic(gw, sim_provider)
    out = pathlib.Path(tempfile.mkdtemp(prefix="tollgate-e2e-export-"))
    secrets = [known["alice_key"], known["broke_key"], BAD_KEY, gw.token]

    wait(driver, 60).until(EC.presence_of_element_located(tid("nav-fleet")))
    add_instance(driver, NAME, gw, "dev")
    driver.find_element(
        By.XPATH, f'//nav[@data-testid="instance-switcher"]//button[.//span[@class="switch-name" and text()="{NAME}"]]'
    ).click()
    wait(driver).until(EC.text_to_be_present_in_element(tid("current-instance-name"), NAME))
    driver.find_element(*tid("nav-logs")).click()

    # Synced (the background sync starts on its own; "Sync now" makes sure), then the newest page.
    wait(driver).until(EC.element_to_be_clickable(tid("logs-sync-now"))).click()
    wait(driver, 60).until(lambda d: number(d.find_element(*tid("logs-cached-records")).text) == TOTAL)
    driver.find_element(*tid("logs-reload")).click()
    wait_count(driver, PAGE, complete=False)
    assert "Synced" in driver.find_element(*tid("logs-sync-status")).text
    assert not driver.find_elements(*tid("logs-offline-banner"))
    shot(driver, "logs-explorer")
    first = row_data(driver)
    assert 0 < len(first) < 80, len(first)
    # Newest first: the bulk model-list calls came last.
    assert "models" in first[0]["text"], first[0]

    # Infinite loading: scrolling to the end loads page after page, while the
    # DOM holds only about a screenful of rows.
    scroller = driver.find_element(*tid("logs-table-scroll"))
    seen = PAGE
    for _ in range(TOTAL // PAGE + 5):
        driver.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", scroller)
        wait(driver, 20).until(lambda d: loaded(d)[0] > seen or loaded(d)[1])
        seen, complete, _ = loaded(driver)
        assert len(rows(driver)) < 80, len(rows(driver))
        if complete:
            break
    assert loaded(driver)[:2] == (TOTAL, True), loaded(driver)
    shown = driver.find_element(*tid("logs-count")).text
    assert shown.endswith(" matching records") and number(shown) == TOTAL, shown
    # At the very end: the oldest record, the first call made (a served chat).
    driver.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", scroller)
    wait(driver).until(lambda d: last_row(d).get("index") == str(TOTAL - 1))
    assert last_row(driver)["status"] == "200"
    assert len(rows(driver)) < 80

    # The API filter: exactly the chat calls.
    retype(driver, "logs-filter-api", "chat")
    wait_count(driver, CHAT)
    assert len(rows(driver)) == CHAT

    # Status class 4xx: exactly the refused ones, and their count.
    retype(driver, "logs-filter-api", "")
    select_status(driver, "4")
    wait_count(driver, UNAUTHORIZED + PAYMENT_REQUIRED)
    statuses = sorted(r["status"] for r in row_data(driver))
    assert statuses == ["401"] * UNAUTHORIZED + ["402"] * PAYMENT_REQUIRED, statuses
    assert driver.find_element(*tid("logs-count")).text == f"{UNAUTHORIZED + PAYMENT_REQUIRED} matching records"
    shot(driver, "logs-filtered")

    # The reason filter: the empty wallet's 402s.
    retype(driver, "logs-filter-reason", "insufficient-funds")
    wait_count(driver, PAYMENT_REQUIRED)
    assert all("insufficient-funds" in r["text"] for r in row_data(driver))

    # Inline validation: a bad latency bound is marked and the last good filter stays.
    retype(driver, "logs-filter-latencyMin", "abc")
    bad = driver.find_element(*tid("logs-filter-latencyMin"))
    wait(driver).until(lambda d: bad.get_attribute("aria-invalid") == "true")
    assert loaded(driver)[0] == PAYMENT_REQUIRED
    retype(driver, "logs-filter-latencyMin", "5")
    retype(driver, "logs-filter-latencyMax", "1")
    maxi = driver.find_element(*tid("logs-filter-latencyMax"))
    wait(driver).until(lambda d: maxi.get_attribute("aria-invalid") == "true")
    clear_filters(driver)
    wait_unfiltered(driver)

    # Full-text search for one request id finds exactly that call.
    retype(driver, "logs-filter-text", known["request_id"])
    wait_count(driver, 1)
    row = rows(driver)[0]
    assert row.get_attribute("data-request-id") == known["request_id"]

    # Its detail drawer, opened with the keyboard too; Esc closes it.
    row.click()
    drawer = wait(driver).until(EC.visibility_of_element_located(tid("logs-drawer")))
    assert drawer.find_element(*tid("drawer-request-id")).text == known["request_id"]
    assert drawer.find_element(*tid("drawer-status")).text == "200"
    assert drawer.find_element(*tid("drawer-model")).text == "sim-small"
    assert drawer.find_element(*tid("drawer-consumer")).text == known["alice"]
    assert drawer.find_element(*tid("drawer-user-agent")).text == "explorer-e2e/ok"
    assert drawer.find_element(*tid("drawer-api")).text == "chat"
    tokens = drawer.find_element(*tid("drawer-tokens")).text
    assert tokens.endswith(" out") and not tokens.startswith("0 in"), tokens
    assert drawer.find_element(*tid("drawer-cost")).text.endswith("USD")
    shot(driver, "logs-drawer")
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    wait(driver).until(EC.invisibility_of_element_located(tid("logs-drawer")))
    rows(driver)[0].send_keys(Keys.ENTER)
    wait(driver).until(EC.visibility_of_element_located(tid("logs-drawer")))
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    wait(driver).until(EC.invisibility_of_element_located(tid("logs-drawer")))
    retype(driver, "logs-filter-text", "")

    # A saved filter: 4xx of the last 24 h. A taken name is refused inline.
    select_status(driver, "4")
    choose(driver, "logs-filter-range", "86400")
    wait_count(driver, UNAUTHORIZED + PAYMENT_REQUIRED)
    for name, refused in [("Refused calls", False), ("refused CALLS", True)]:
        driver.find_element(*tid("saved-filter-save")).click()
        retype(driver, "saved-filter-name", name)
        driver.find_element(*tid("saved-filter-confirm")).click()
        if refused:
            field = wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".dialog .field-error")))
            assert "exists already" in field.text, field.text
            ActionChains(driver).send_keys(Keys.ESCAPE).perform()
        wait(driver).until(EC.invisibility_of_element_located(tid("saved-filter-name")))

    # It survives a reload of the page and applies again.
    driver.refresh()
    wait(driver, 60).until(EC.presence_of_element_located(tid("logs-count")))
    wait_count(driver, PAGE, complete=False)
    saved = Select(wait(driver).until(EC.element_to_be_clickable(tid("saved-filter-select"))))
    wait(driver).until(lambda d: any(o.text == "Refused calls" for o in saved.options))
    value = next(o.get_attribute("value") for o in saved.options if o.text == "Refused calls")
    choose(driver, "saved-filter-select", value)
    wait_count(driver, UNAUTHORIZED + PAYMENT_REQUIRED)
    assert Select(driver.find_element(*tid("logs-filter-status"))).first_selected_option.get_attribute("value") == "4"
    assert Select(driver.find_element(*tid("logs-filter-range"))).first_selected_option.get_attribute("value") == "86400"

    # Export of the filter to CSV: as many rows as the filter counts, no secret inside.
    target = out / "refused.csv"
    assert export(driver, target, "csv") == UNAUTHORIZED + PAYMENT_REQUIRED
    close_export(driver)
    with target.open(newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == UNAUTHORIZED + PAYMENT_REQUIRED
    assert sorted(r["status"] for r in table) == ["401"] * UNAUTHORIZED + ["402"] * PAYMENT_REQUIRED, table[0].keys()
    data = target.read_text()
    for secret in secrets:
        assert secret not in data, "a secret was exported"
    # Exporting to the same file again asks before replacing it.
    driver.find_element(*tid("logs-export")).click()
    retype(driver, "export-path-input", str(target))
    driver.find_element(*tid("export-start")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("export-overwrite"))).click()
    wait(driver, 60).until(EC.presence_of_element_located(tid("export-summary")))
    close_export(driver)

    # The cache tab: records and size of this instance.
    driver.find_element(*tid("logs-tab-cache")).click()
    row = wait(driver).until(EC.presence_of_element_located(tid(f"cache-row-{NAME}")))
    wait(driver).until(lambda d: number(row.find_element(*tid("cache-records")).text) == TOTAL)
    size = row.find_element(*tid("cache-size")).text
    assert size.endswith("KB") or size.endswith("MB"), size
    driver.find_element(*tid(f"cache-check-{NAME}")).click()
    result = wait(driver).until(EC.presence_of_element_located(tid("cache-check-result")))
    assert "ok" in result.text, result.text
    shot(driver, "logs-cache")
    driver.find_element(*tid("logs-tab-explorer")).click()

    # Offline: the gateway stops. The next sync fails and the banner says
    # since when the cache is as it is; everything else still works.
    gw.stop()
    driver.find_element(*tid("logs-sync-now")).click()
    banner = wait(driver, 30).until(EC.visibility_of_element_located(tid("logs-offline-banner")))
    assert "Offline — showing the cache as of" in banner.text, banner.text
    assert banner.find_element(*tid("logs-offline-as-of")).text.strip()
    clear_filters(driver)
    wait_unfiltered(driver)
    select_status(driver, "4")
    wait_count(driver, UNAUTHORIZED + PAYMENT_REQUIRED)
    clear_filters(driver)
    retype(driver, "logs-filter-text", known["request_id"])
    wait_count(driver, 1)
    assert row_data(driver)[0]["requestId"] == known["request_id"]
    shot(driver, "logs-offline")
    offline = out / "offline.json"
    assert export(driver, offline, "json") == 1
    close_export(driver)
    records = json.loads(offline.read_text())
    assert [r["id"] for r in records] == [known["request_id"]]
    for secret in secrets:
        assert secret not in offline.read_text()
