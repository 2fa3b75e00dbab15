"""Issue 3's journey on the real desktop app against a real gateway: a plan
that needs approval, a consumer subscribed and approved, a key revealed once,
a top-up, a declining card refused with a clear error, then a good card.
Runs after test_console.py (same session: instance "East" with team "Platform")."""

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from test_console import fill, shot, tid, wait


def choose(driver, testid: str, text: str) -> None:
    select = Select(wait(driver).until(EC.element_to_be_clickable(tid(testid))))
    for option in select.options:
        if text in option.text:
            select.select_by_visible_text(option.text)
            return
    raise AssertionError(f"no option with {text!r} in {testid}: {[o.text for o in select.options]}")


def create_plan(driver, name: str, price: str, credits: str, approval: bool) -> None:
    driver.find_element(*tid("nav-plans")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("new-plan"))).click()
    fill(driver, "plan-name", name)
    fill(driver, "plan-price", price)
    fill(driver, "plan-credits", credits)
    checkbox = driver.find_element(*tid("plan-approval"))
    if checkbox.is_selected() != approval:
        checkbox.click()
    driver.find_element(*tid("save-plan")).click()
    wait(driver).until(EC.presence_of_element_located(tid(f"plan-row-{name}")))


def open_consumer(driver, name: str) -> None:
    driver.find_element(*tid("nav-consumers")).click()
    row = wait(driver).until(EC.presence_of_element_located(tid(f"consumer-row-{name}")))
    links = row.find_elements(By.CSS_SELECTOR, "a, button")
    (links[0] if links else row).click()
    wait(driver).until(EC.presence_of_element_located(tid("consumer-detail")))


def test_billing_journey(driver, gateways):
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("1").key_up(Keys.CONTROL).perform()
    wait(driver).until(EC.text_to_be_present_in_element(tid("current-instance-name"), "East"))

    create_plan(driver, "Pro", price="0", credits="5", approval=True)
    shot(driver, "plans")

    driver.find_element(*tid("nav-consumers")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("new-consumer"))).click()
    choose(driver, "consumer-team", "Platform")
    fill(driver, "consumer-name", "Chatbot")
    fill(driver, "consumer-contact", "ops@acme.test")
    driver.find_element(*tid("save-consumer")).click()
    wait(driver).until(EC.presence_of_element_located(tid("consumer-row-Chatbot")))
    shot(driver, "consumers")

    open_consumer(driver, "Chatbot")
    driver.find_element(*tid("subscribe")).click()
    choose(driver, "subscribe-plan", "Pro")
    driver.find_element(*tid("save-subscription")).click()
    wait(driver).until(EC.text_to_be_present_in_element(tid("consumer-detail"), "pending"))

    driver.find_element(*tid("nav-approvals")).click()
    approve = wait(driver).until(EC.element_to_be_clickable((By.CSS_SELECTOR, '[data-testid^="approve-"]')))
    shot(driver, "approvals")
    approve.click()
    wait(driver).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, '[data-testid^="approve-"]')))

    open_consumer(driver, "Chatbot")
    wait(driver).until(EC.text_to_be_present_in_element(tid("consumer-detail"), "active"))
    driver.find_element(*tid("new-key")).click()
    fill(driver, "key-name", "production")
    driver.find_element(*tid("save-key")).click()
    secret = wait(driver).until(EC.visibility_of_element_located(tid("revealed-secret")))
    assert secret.text.startswith("tg_") or (secret.get_attribute("value") or "").startswith("tg_")
    # No screenshot here: the secret is on screen, and artifacts must not hold it.
    driver.find_element(*tid("close-secret")).click()
    wait(driver).until(EC.presence_of_element_located(tid("key-row-production")))

    driver.find_element(*tid("wallet-entry")).click()
    fill(driver, "entry-amount", "10.00")
    driver.find_element(*tid("save-entry")).click()
    wait(driver).until(EC.presence_of_element_located(tid("wallet-row-USD")))
    wait(driver).until(EC.text_to_be_present_in_element(tid("wallet-row-USD"), "10.00"))

    driver.find_element(*tid("add-card")).click()
    fill(driver, "card-number", "4000 0000 0000 0002")
    fill(driver, "card-exp-month", "12")
    fill(driver, "card-exp-year", "2030")
    fill(driver, "card-cvc", "123")
    driver.find_element(*tid("save-card")).click()
    error = wait(driver).until(EC.visibility_of_element_located(tid("card-error")))
    wait(driver).until(EC.text_to_be_present_in_element(tid("card-error"), "generic_decline"))
    shot(driver, "card-declined")
    assert "declined" in error.text.lower()

    fill(driver, "card-number", "4242 4242 4242 4242")
    fill(driver, "card-exp-month", "12")
    fill(driver, "card-exp-year", "2030")
    fill(driver, "card-cvc", "123")
    driver.find_element(*tid("save-card")).click()
    wait(driver).until(EC.presence_of_element_located(tid("card-row-4242")))
    shot(driver, "consumer-detail")

    # Move the subscription to a second plan: the dialog says what happens to
    # the running period, and the row then shows the new plan.
    create_plan(driver, "Team", price="29", credits="50", approval=False)

    open_consumer(driver, "Chatbot")
    move = wait(driver).until(EC.element_to_be_clickable((By.CSS_SELECTOR, '[data-testid^="change-plan-sub_"]')))
    move.click()
    choose(driver, "change-plan-select", "Team")
    effect = wait(driver).until(EC.visibility_of_element_located(tid("change-plan-effect")))
    assert "runs to its end" in effect.text, effect.text
    shot(driver, "change-plan")
    driver.find_element(*tid("change-plan-ok")).click()
    wait(driver).until(EC.invisibility_of_element_located(tid("change-plan-ok")))
    row = wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, '[data-testid^="subscription-row-"]')))
    wait(driver).until(lambda d: "Team" in row.text)
    assert "active" in row.text

    # The gateway's payment settings and its billing check: accepting only EUR
    # leaves the USD plans unable to bill, which the check reports with a fix.
    driver.find_element(*tid("nav-billing")).click()
    summary = wait(driver).until(EC.visibility_of_element_located(tid("billing-check-summary")))
    assert "check-ok" in summary.get_attribute("class"), summary.text
    retype(driver, "settings-currencies", "EURO")
    driver.find_element(*tid("settings-save")).click()
    form = driver.find_element(*tid("payment-settings-form"))
    wait(driver).until(lambda d: "three-letter" in form.text)
    retype(driver, "settings-currencies", "EUR")
    driver.find_element(*tid("settings-save")).click()
    finding = wait(driver).until(EC.visibility_of_element_located(tid("finding-currency-not-accepted")))
    assert "Fix:" in finding.text, finding.text
    summary = driver.find_element(*tid("billing-check-summary"))
    assert "check-bad" in summary.get_attribute("class") and "2 errors" in summary.text, summary.text
    shot(driver, "billing-check")
    retype(driver, "settings-currencies", "")
    driver.find_element(*tid("settings-save")).click()
    wait(driver).until(lambda d: "check-ok" in d.find_element(*tid("billing-check-summary")).get_attribute("class"))

    # Plans are edited (not their currency) and deleted once nobody uses them:
    # "Team" carries Chatbot's subscription, "Pro" no longer does.
    driver.find_element(*tid("nav-plans")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("edit-plan-Team"))).click()
    assert not driver.find_element(*tid("plan-currency")).is_enabled()
    retype(driver, "plan-price", "abc")
    driver.find_element(*tid("save-plan")).click()
    wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".field-error"), "decimal amount"))
    retype(driver, "plan-price", "35")
    retype(driver, "plan-rpm", "120")
    shot(driver, "plan-edit")
    driver.find_element(*tid("save-plan")).click()
    wait(driver).until(EC.invisibility_of_element_located(tid("save-plan")))
    team = wait(driver).until(EC.presence_of_element_located(tid("plan-row-Team")))
    wait(driver).until(lambda d: "35" in team.text and "120 req/min" in team.text)

    driver.find_element(*tid("delete-plan-Team")).click()
    driver.find_element(By.XPATH, '//button[normalize-space()="Delete plan"]').click()
    error = wait(driver).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".dialog .form-error")))
    assert "conflict" in error.text, error.text
    driver.find_element(By.XPATH, '//button[normalize-space()="Cancel"]').click()
    driver.find_element(*tid("delete-plan-Pro")).click()
    driver.find_element(By.XPATH, '//button[normalize-space()="Delete plan"]').click()
    wait(driver).until(EC.invisibility_of_element_located(tid("plan-row-Pro")))
    assert driver.find_elements(*tid("plan-row-Team"))
    shot(driver, "plans-after-edit")


def retype(driver, testid: str, value: str) -> None:
    """Replaces a field's text the way a person does (select all, type), so
    that React sees every change, emptying included."""
    field = wait(driver).until(EC.element_to_be_clickable(tid(testid)))
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    if value:
        field.send_keys(value)
