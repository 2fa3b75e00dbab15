"""The 402 doctor on the real desktop app, against a gateway of its own (the
simulated provider, a test fixture, answering its calls): a consumer's call is
refused with 402; the admin finds it in the log explorer, opens the doctor
from the log entry, reads the cause and its evidence (live from the gateway),
applies the one-step fix after confirming it, sees the re-check clear it — and
the consumer's next call is served. A pasted answer of another system is
classified on the same screen."""

import json
import subprocess
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from conftest import REPO, Gateway
from test_console import add_instance, shot, tid, wait
from test_console_billing import retype
from test_console_logs import admin, chat, consumer, rows

NAME = "Clinic"


def run_doctor(driver, gw, sim_provider):
    provider = admin(gw, "POST", "/admin/v1/providers", {
        "name": "Sim", "kind": "openai-compatible", "base_url": f"{sim_provider}/v1", "currency": "USD",
        "models": [{"name": "sim-small", "input_price": "1000", "output_price": "2000"}]})
    admin(gw, "POST", f"/admin/v1/providers/{provider['id']}/keys", {"label": "k", "secret": "sim-key-good-0042"})
    team = admin(gw, "POST", "/admin/v1/teams", {"name": "Patients"})["id"]
    _, key = consumer(gw, team, "Broke", "0")
    status, request_id = chat(gw, key, "on credit", "doctor-e2e")
    assert status == 402
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and admin(gw, "GET", "/admin/v1/logs?limit=1").get("head_seq", 0) < 1:
        time.sleep(0.2)

    wait(driver, 60).until(EC.presence_of_element_located(tid("nav-fleet")))
    add_instance(driver, NAME, gw, "dev")
    driver.find_element(
        By.XPATH, f'//nav[@data-testid="instance-switcher"]//button[.//span[@class="switch-name" and text()="{NAME}"]]'
    ).click()
    wait(driver).until(EC.text_to_be_present_in_element(tid("current-instance-name"), NAME))

    # The refused call, found in the log explorer.
    driver.find_element(*tid("nav-logs")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("logs-sync-now"))).click()
    wait(driver, 60).until(lambda d: d.find_element(*tid("logs-cached-records")).text.strip() not in ("", "0"))
    retype(driver, "logs-filter-text", request_id)
    wait(driver).until(lambda d: len(rows(d)) == 1 and rows(d)[0].get_attribute("data-request-id") == request_id)
    rows(driver)[0].click()
    drawer = wait(driver).until(EC.visibility_of_element_located(tid("logs-drawer")))
    assert drawer.find_element(*tid("drawer-status")).text.startswith("402")

    # Opened from the log entry, the doctor diagnoses at once, live.
    drawer.find_element(*tid("drawer-diagnose")).click()
    result = wait(driver, 30).until(EC.visibility_of_element_located(tid("doctor-result")))
    assert result.get_attribute("data-cause") == "insufficient-funds", result.text
    assert driver.find_element(*tid("doctor-source")).get_attribute("data-source") == "live"
    assert "insufficient funds" in driver.find_element(*tid("doctor-refusal")).text
    cause = driver.find_element(*tid("finding-0"))
    assert "USD wallet cannot pay" in cause.find_element(*tid("doctor-cause-title")).text
    assert "Top up" in cause.find_element(*tid("doctor-fix-text")).text
    shot(driver, "doctor-diagnosis")

    # The one-step fix asks first, with the amount editable.
    cause.find_element(*tid("fix-button")).click()
    amount = wait(driver).until(EC.visibility_of_element_located(tid("fix-amount")))
    assert amount.get_attribute("value") == "10.00"
    retype(driver, "fix-amount", "-3")
    wait(driver).until(lambda d: d.find_element(*tid("fix-amount")).get_attribute("aria-invalid") == "true")
    assert not driver.find_element(*tid("confirm-ok")).is_enabled()
    retype(driver, "fix-amount", "25")
    shot(driver, "doctor-confirm")
    driver.find_element(*tid("confirm-ok")).click()
    outcome = wait(driver, 30).until(EC.visibility_of_element_located(tid("doctor-outcome")))
    assert outcome.get_attribute("data-resolved") == "true", outcome.text
    wait(driver).until(lambda d: d.find_element(*tid("doctor-result")).get_attribute("data-cause") == "no-problem-found")
    history = wait(driver).until(EC.visibility_of_element_located(tid("doctor-history")))
    assert "Top up the USD wallet by 25 USD" in history.text and "resolved" in history.text
    shot(driver, "doctor-fixed")

    # The consumer's next call is served.
    assert chat(gw, key, "paid now", "doctor-e2e")[0] == 200

    # Another system's answer, pasted: classified, with its origin.
    Select(driver.find_element(*tid("doctor-kind"))).select_by_value("response")
    pasted = (REPO / "tests" / "doctor" / "corpus" / "openai-429-insufficient-quota.http").read_text()
    field = wait(driver).until(EC.element_to_be_clickable(tid("doctor-input")))
    field.clear()
    driver.execute_script(
        "const t = arguments[0]; const set = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set;"
        "set.call(t, arguments[1]); t.dispatchEvent(new Event('input', {bubbles: true}));",
        field,
        pasted,
    )
    driver.find_element(*tid("doctor-run")).click()
    wait(driver, 30).until(lambda d: d.find_element(*tid("doctor-result")).get_attribute("data-cause") == "foreign")
    refusal = driver.find_element(*tid("doctor-refusal")).text
    assert "quota exceeded" in refusal and "openai" in refusal and "provider" in refusal, refusal
    shot(driver, "doctor-foreign")

    # A bad paste is refused with the reason, nothing lost.
    driver.execute_script(
        "const t = arguments[0]; const set = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set;"
        "set.call(t, arguments[1]); t.dispatchEvent(new Event('input', {bubbles: true}));",
        field,
        json.dumps({"error": "just a body"}),
    )
    driver.find_element(*tid("doctor-run")).click()
    error = wait(driver).until(EC.visibility_of_element_located(tid("doctor-error")))
    assert "status line" in error.text, error.text
    assert "just a body" in driver.find_element(*tid("doctor-input")).get_attribute("value")


def notifications() -> list:
    """The summaries of the notifications the desktop's daemon (dunst, on
    this test session's D-Bus) has shown so far."""
    out = subprocess.run(["dunstctl", "history"], capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        return []
    history = json.loads(out.stdout)
    return [n["summary"]["data"] for group in history["data"] for n in group]


def run_alerts(driver, gw):
    """The alerts inbox of the same instance: a wallet below the threshold is
    raised by "Check now", once; snoozed, then resolved; bad rules are refused
    with the field."""
    team = admin(gw, "POST", "/admin/v1/teams", {"name": "Thin ice"})["id"]
    consumer(gw, team, "Thin", "1")
    driver.find_element(*tid("nav-alerts")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("alerts-evaluate"))).click()
    row = wait(driver, 30).until(EC.visibility_of_element_located(tid("alert-low-balance")))
    assert "Thin's USD wallet is low" in row.text, row.text
    assert row.get_attribute("data-state") == "open"
    shot(driver, "alerts-inbox")
    # The new alert was also shown as a desktop notification.
    deadline = time.monotonic() + 15
    while True:
        shown = notifications()
        if any("Thin's USD wallet is low" in s for s in shown):
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.3)
    # Checked again: the same situation is not raised twice.
    driver.find_element(*tid("alerts-evaluate")).click()
    wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".toasts"), "nothing new"))
    assert len(driver.find_elements(*tid("alert-low-balance"))) == 1
    row.find_element(*tid("alert-snooze-day")).click()
    wait(driver).until(lambda d: d.find_element(*tid("alert-low-balance")).get_attribute("data-state") == "snoozed")
    driver.find_element(*tid("alert-low-balance")).find_element(*tid("alert-resolve")).click()
    wait(driver).until(lambda d: not d.find_elements(*tid("alert-low-balance")))
    driver.find_element(*tid("alerts-show-resolved")).click()
    resolved = wait(driver).until(EC.visibility_of_element_located(tid("alert-low-balance")))
    assert resolved.get_attribute("data-state") == "resolved" and "resolved by the admin" in resolved.text
    # A negative threshold is refused, on its field.
    retype(driver, "rule-low_balance", "-1")
    driver.find_element(*tid("save-alert-rules")).click()
    wait(driver).until(EC.text_to_be_present_in_element(tid("alert-rules"), "must not be negative"))
    shot(driver, "alerts-rules")


def test_doctor_from_a_log_entry(driver, sim_provider):
    gw = Gateway("clinic")
    # The desktop's notification daemon, on this session's display and D-Bus.
    daemon = subprocess.Popen(["dunst"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_doctor(driver, gw, sim_provider)
        run_alerts(driver, gw)
    except Exception:
        shot(driver, "doctor-failure")
        raise
    finally:
        gw.stop()
        daemon.terminate()
        daemon.wait(timeout=10)
