"""The providers journey on the real desktop app against a real gateway: a
provider created through the form (a bad base URL refused next to its field
first), a key whose secret is never shown again (only its last 4), disabled
with a reason (status, reason and history entry), then enabled again; a
second key moved to the front of the pool, then deleted. Then a provider on
the simulated provider (a test fixture), tested from the key pool: with a
good key it lists its models and names the misspelt one; with a refused key
first the test fails with the provider's 401 and the key stays active.
Runs after test_console_billing.py (same session: instance "East")."""

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from conftest import ARTIFACTS
from test_console import fill, shot, tid, wait
from test_console_billing import retype

SECRET = "sk-e2e-provider-key-0123456789wxyz"
BACKUP_SECRET = "sk-e2e-backup-key-9876543210qrst"
# The simulator accepts any key but `sim-key-fail-<status>`, which fails that way.
SIM_SECRET = "sim-key-good-0001"
REFUSED_SECRET = "sim-key-fail-401"


def confirm_reason(driver, reason: str) -> None:
    """Fills the status dialog's optional reason and confirms."""
    if reason:
        fill(driver, "action-reason", reason)
    driver.find_element(*tid("confirm-ok")).click()
    wait(driver).until(EC.invisibility_of_element_located(tid("confirm-ok")))


def add_key(driver, label: str, secret: str):
    """Adds a key through the form; the secret goes into a password field."""
    wait(driver).until(EC.element_to_be_clickable(tid("add-provider-key"))).click()
    fill(driver, "provider-key-label", label)
    secret_input = driver.find_element(*tid("provider-key-secret"))
    assert secret_input.get_attribute("type") == "password"
    secret_input.send_keys(secret)
    driver.find_element(*tid("save-provider-key")).click()
    return wait(driver).until(EC.presence_of_element_located(tid(f"provider-key-row-{label}")))


def pool_order(driver) -> list:
    rows = driver.find_elements(By.CSS_SELECTOR, '[data-testid^="provider-key-row-"]')
    return [r.get_attribute("data-testid").removeprefix("provider-key-row-") for r in rows]


def test_providers_journey(driver, gateways):
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("1").key_up(Keys.CONTROL).perform()
    wait(driver).until(EC.text_to_be_present_in_element(tid("current-instance-name"), "East"))

    driver.find_element(*tid("nav-providers")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("new-provider"))).click()
    fill(driver, "provider-name", "OpenAI")
    Select(driver.find_element(*tid("provider-kind"))).select_by_value("openai-compatible")
    fill(driver, "provider-base-url", "api.openai.test/v1")
    driver.find_element(*tid("add-model")).click()
    fill(driver, "model-name-0", "gpt-4o-mini")
    retype(driver, "model-input-0", "0.15")
    retype(driver, "model-output-0", "0.60")

    # The console refuses the URL without a scheme; the message sits by the field.
    driver.find_element(*tid("save-provider")).click()
    base_url = driver.find_element(*tid("provider-base-url"))
    wait(driver).until(lambda d: base_url.get_attribute("aria-invalid") == "true")
    field = base_url.find_element(By.XPATH, "./ancestor::div[contains(@class, 'field')][1]")
    assert "http(s) URL with a host" in field.text, field.text
    shot(driver, "provider-invalid-url")
    retype(driver, "provider-base-url", "https://api.openai.test/v1")
    driver.find_element(*tid("save-provider")).click()
    wait(driver).until(EC.invisibility_of_element_located(tid("save-provider")))
    row = wait(driver).until(EC.presence_of_element_located(tid("provider-row-OpenAI")))
    assert "https://api.openai.test/v1" in row.text and "0 / 0" in row.text, row.text

    # A new provider is selected: add a key to its (empty) pool.
    key_row = add_key(driver, "primary", SECRET)
    assert "…wxyz" in key_row.text, key_row.text
    assert SECRET not in driver.page_source
    wait(driver).until(lambda d: "1 / 1" in d.find_element(*tid("provider-row-OpenAI")).text)

    # Disable it with a reason: status, reason and an admin's history entry.
    driver.find_element(*tid("disable-key-primary")).click()
    confirm_reason(driver, "Billing account on hold")
    wait(driver).until(EC.text_to_be_present_in_element(tid("provider-key-status-primary"), "disabled"))
    key_row = driver.find_element(*tid("provider-key-row-primary"))
    assert "Billing account on hold" in key_row.text, key_row.text
    history = wait(driver).until(EC.presence_of_element_located(tid("provider-key-history")))
    wait(driver).until(lambda d: "Billing account on hold" in history.text)
    latest = driver.find_elements(*tid("provider-key-event"))[0]
    assert "admin" in latest.text and "active" in latest.text and "disabled" in latest.text, latest.text
    wait(driver).until(lambda d: "0 / 1" in d.find_element(*tid("provider-row-OpenAI")).text)
    assert SECRET not in driver.page_source
    shot(driver, "providers")

    # Enable it again, no reason given: the gateway records a default one.
    driver.find_element(*tid("enable-key-primary")).click()
    confirm_reason(driver, "")
    wait(driver).until(EC.text_to_be_present_in_element(tid("provider-key-status-primary"), "active"))
    wait(driver).until(lambda d: "enabled by an admin" in d.find_element(*tid("provider-key-history")).text)
    # Added, disabled, enabled: newest first.
    events = driver.find_elements(*tid("provider-key-event"))
    assert len(events) == 3 and "added" in events[2].text, [e.text for e in events]
    shot(driver, "providers-enabled")

    # A second key, moved to the front of the pool, then deleted after confirmation.
    add_key(driver, "backup", BACKUP_SECRET)
    assert pool_order(driver) == ["primary", "backup"]
    driver.find_element(*tid("move-up-backup")).click()
    wait(driver).until(lambda d: pool_order(d) == ["backup", "primary"])
    driver.find_element(*tid("delete-key-backup")).click()
    driver.find_element(*tid("confirm-ok")).click()
    wait(driver).until(EC.invisibility_of_element_located(tid("provider-key-row-backup")))
    assert pool_order(driver) == ["primary"]


def run_provider_test(driver, outcome: str):
    """Clicks "Test provider" and answers the result block once it says `outcome`."""
    driver.find_element(*tid("test-provider")).click()
    wait(driver).until(EC.text_to_be_present_in_element(tid("provider-test-result"), outcome))
    return driver.find_element(*tid("provider-test-result"))


def test_testing_a_provider(driver, sim_provider):
    driver.find_element(*tid("new-provider")).click()
    fill(driver, "provider-name", "Sim")
    fill(driver, "provider-base-url", f"{sim_provider}/v1")
    for i, name in enumerate(["sim-small", "sim-smal"]):
        driver.find_element(*tid("add-model")).click()
        fill(driver, f"model-name-{i}", name)
        retype(driver, f"model-input-{i}", "0.10")
        retype(driver, f"model-output-{i}", "0.20")
    driver.find_element(*tid("save-provider")).click()
    wait(driver).until(EC.invisibility_of_element_located(tid("save-provider")))
    wait(driver).until(EC.presence_of_element_located(tid("provider-row-Sim")))

    # A fresh key has no use yet: the usage columns show zeros.
    add_key(driver, "sim", SIM_SECRET)
    for column in ("requests", "failures", "tokens"):
        assert driver.find_element(*tid(f"provider-key-{column}-sim")).text == "0"

    # Test: the provider lists its models with the key; the misspelt one is named.
    result = run_provider_test(driver, "Test passed")
    outcome = driver.find_element(*tid("provider-test-outcome")).text
    assert "HTTP 200" in outcome and "the provider answered with the key" in outcome, outcome
    assert "sim …0001" in result.text, result.text
    models = driver.find_element(*tid("provider-test-models")).text
    assert "sim-small" in models and "sim-large" in models, models
    missing = driver.find_element(*tid("provider-test-missing")).text
    assert "sim-smal" in missing and "sim-small" not in missing, missing
    assert SIM_SECRET not in driver.page_source
    shot(driver, "providers-test")

    # A key the provider refuses, tried first: the test fails with its 401,
    # says which key, and leaves the key active.
    add_key(driver, "refused", REFUSED_SECRET)
    driver.find_element(*tid("move-up-refused")).click()
    wait(driver).until(lambda d: pool_order(d) == ["refused", "sim"])
    result = run_provider_test(driver, "Test failed")
    assert "refused the key" in result.text and "HTTP 401" in result.text, result.text
    assert "refused …-401" in result.text, result.text
    assert driver.find_elements(*tid("provider-test-missing")) == []
    assert "active" in driver.find_element(*tid("provider-key-status-refused")).text
    shot(driver, "providers-test-failed")


def test_no_provider_secret_on_disk(driver, console_data_dir):
    """Runs after the journey: the key's secret went to the gateway only, not
    into the console's files, the driver log or the screenshots."""
    files = [p for p in console_data_dir.rglob("*") if p.is_file()]
    files += [p for p in ARTIFACTS.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        for secret in (SECRET, BACKUP_SECRET, SIM_SECRET, REFUSED_SECRET):
            assert secret.encode() not in data, f"provider key secret found in {path}"
