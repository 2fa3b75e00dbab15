"""The prompt-API studio on the real desktop app against a real gateway
serving the simulated provider (a test fixture): a provider with a key, then
a prompt API written in the studio — an undeclared variable refused next to
the template, declared from the template, previewed live — run with its
answer streamed as it arrives (then its tokens and cost), cancelled
mid-stream, saved as a second version and diffed, published, called by a
consumer exactly as the studio's curl snippet says, rolled back to its first
version, then deprecated and retired. Runs on instance "West" (added by test_console.py), apart from the
other journeys' providers."""

import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from test_console import fill, shot, tid, wait
from test_console_billing import retype
from test_console_providers import add_key

KEY_SECRET = "sim-key-studio-0001"
# Paced by the simulator: 250 ms between two streamed events, so the answer
# visibly arrives piece by piece.
MODEL = "sim-studio-pace-250"
TEMPLATE = "Summarize in a {{tone}} tone: {{text}}"
TEMPLATE_V2 = "Summarize in a {{tone}} tone, in one sentence: {{text}}"
TEXT = "the quick brown fox jumps over the lazy dog"


def admin(gw, method: str, path: str, body=None):
    request = urllib.request.Request(
        gw.base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {gw.token}", "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read() or "null")


def consumer_key(gw, slug: str) -> str:
    """A consumer subscribed to a plan that lists the API's slug, through the
    gateway's admin API; answers the consumer's key."""
    team = admin(gw, "POST", "/admin/v1/teams", {"name": "Studio apps"})
    consumer = admin(gw, "POST", "/admin/v1/consumers", {"team_id": team["id"], "name": "Summarizer"})
    key = admin(gw, "POST", f"/admin/v1/consumers/{consumer['id']}/keys", {"name": "studio"})
    plan = admin(gw, "POST", "/admin/v1/plans", {
        "name": "Summaries", "currency": "USD", "price": "0", "period": "month",
        "included_credits": "5", "overage": "block", "apis": [slug]})
    admin(gw, "POST", "/admin/v1/subscriptions", {"consumer_id": consumer["id"], "plan_id": plan["id"]})
    return key["secret"]


def call(gw, key: str, slug: str, variables: dict):
    request = urllib.request.Request(
        f"{gw.base}/apis/{slug}",
        method="POST",
        data=json.dumps({"variables": variables}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def text_of(driver, testid: str) -> str:
    found = driver.find_elements(*tid(testid))
    return found[0].text if found else ""


def to_top(driver) -> None:
    """Scrolls the page back to its header, for a screenshot."""
    driver.execute_script("document.querySelector('main.content').scrollTo(0, 0)")


def test_prompt_api_studio(driver, gateways, sim_provider):
    west = gateways[1]
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("2").key_up(Keys.CONTROL).perform()
    wait(driver).until(EC.text_to_be_present_in_element(tid("current-instance-name"), "West"))

    # A provider of the simulator serving the studio's model, with a key.
    driver.find_element(*tid("nav-providers")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("new-provider"))).click()
    fill(driver, "provider-name", "Studio Sim")
    fill(driver, "provider-base-url", f"{sim_provider}/v1")
    for i, name in enumerate(["sim-studio", MODEL]):
        driver.find_element(*tid("add-model")).click()
        fill(driver, f"model-name-{i}", name)
        retype(driver, f"model-input-{i}", "1000")
        retype(driver, f"model-output-{i}", "2000")
    driver.find_element(*tid("save-provider")).click()
    wait(driver).until(EC.invisibility_of_element_located(tid("save-provider")))
    wait(driver).until(EC.presence_of_element_located(tid("provider-row-Studio Sim")))
    add_key(driver, "studio", KEY_SECRET)

    # A new prompt API: the slug follows the name; the model comes from the providers.
    driver.find_element(*tid("nav-prompt-apis")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("new-prompt-api"))).click()
    fill(driver, "prompt-name", "Summarize")
    assert driver.find_element(*tid("prompt-slug")).get_attribute("value") == "summarize"
    fill(driver, "prompt-description", "Short summaries in a chosen tone")
    model = wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, f'[data-testid="prompt-model-0"] option[value="{MODEL}"]')))
    assert model
    Select(driver.find_element(*tid("prompt-model-0"))).select_by_value(MODEL)
    fill(driver, "prompt-template", TEMPLATE)
    fill(driver, "prompt-maxTokens", "64")

    # The preview marks the undeclared places; saving is refused next to the template.
    preview = driver.find_element(*tid("prompt-preview"))
    wait(driver).until(lambda d: len(preview.find_elements(*tid("preview-undeclared"))) == 2)
    assert "not declared" in preview.text, preview.text
    driver.find_element(*tid("save-prompt")).click()
    template = driver.find_element(*tid("prompt-template"))
    wait(driver).until(lambda d: template.get_attribute("aria-invalid") == "true")
    field = template.find_element(By.XPATH, "./ancestor::div[contains(@class, 'field')][1]")
    assert "not a declared variable" in field.text, field.text
    shot(driver, "prompt-studio-invalid")

    # Declared from the template (tone first, as placed); tone optional with a default.
    driver.find_element(*tid("declare-variables")).click()
    assert driver.find_element(*tid("variable-name-0")).get_attribute("value") == "tone"
    assert driver.find_element(*tid("variable-name-1")).get_attribute("value") == "text"
    driver.find_element(*tid("variable-required-0")).click()
    fill(driver, "variable-default-0", "neutral")
    fill(driver, "variable-description-1", "The text to summarize")
    wait(driver).until(lambda d: not preview.find_elements(*tid("preview-undeclared")))
    # Live: the default fills its place, the required one is missing until given.
    assert preview.find_element(*tid("preview-default")).text == "neutral"
    assert "{{text}} missing" in preview.find_element(*tid("preview-missing")).text
    fill(driver, "test-value-text", TEXT)
    wait(driver).until(lambda d: preview.find_elements(*tid("preview-value")))
    assert preview.find_element(*tid("preview-value")).text == TEXT
    assert preview.text.startswith("Summarize in a neutral tone: the quick brown fox"), preview.text
    assert not driver.find_elements(*tid("prompt-problems"))

    # Created as a draft (version 1); the studio now edits the saved API.
    driver.find_element(*tid("save-prompt")).click()
    wait(driver).until(EC.text_to_be_present_in_element(tid("prompt-api-status"), "draft"))
    assert "version 1 of 1" in driver.find_element(*tid("prompt-api-versions")).text
    wait(driver).until(lambda d: d.find_element(*tid("prompt-preview")).find_elements(*tid("preview-value")))
    to_top(driver)
    shot(driver, "prompt-studio-editor")

    # A run: the answer arrives piece by piece, then its tokens and cost.
    driver.find_element(*tid("run-prompt")).click()
    wait(driver).until(lambda d: text_of(d, "run-output").startswith("echo:"))
    partial = text_of(driver, "run-output")
    assert not driver.find_elements(*tid("run-summary")), "text shown before the run ended"
    expected = f"echo: Summarize in a neutral tone: {TEXT}"
    assert partial != expected and expected.startswith(partial), partial
    summary = wait(driver, 30).until(EC.presence_of_element_located(tid("run-summary")))
    assert text_of(driver, "run-output") == expected
    assert driver.find_element(*tid("run-model")).text == MODEL
    assert "via Studio Sim" in summary.text, summary.text
    tokens = driver.find_element(*tid("run-tokens")).text
    prompt_tokens, completion_tokens = int(tokens.split()[0]), int(tokens.split()[3])
    assert prompt_tokens > 0 and completion_tokens > 0, tokens
    cost = driver.find_element(*tid("run-cost")).text
    # 1000 and 2000 USD a million tokens: 1000 and 2000 micro-USD a token.
    assert cost.endswith(" USD") and float(cost.split()[0]) == (prompt_tokens * 1000 + completion_tokens * 2000) / 1e6, cost
    to_top(driver)
    shot(driver, "prompt-studio-run")

    # Cancelled mid-stream: the run stops and says so.
    driver.find_element(*tid("run-prompt")).click()
    wait(driver).until(EC.presence_of_element_located(tid("cancel-prompt-run")))
    wait(driver).until(lambda d: text_of(d, "run-output").startswith("echo:"))
    driver.find_element(*tid("cancel-prompt-run")).click()
    wait(driver).until(EC.presence_of_element_located(tid("run-cancelled")))
    assert text_of(driver, "run-output") != expected
    assert not driver.find_elements(*tid("run-summary"))

    # A second version, then its diff against the first.
    retype(driver, "prompt-template", TEMPLATE_V2)
    driver.find_element(*tid("save-prompt")).click()
    wait(driver).until(EC.text_to_be_present_in_element(tid("prompt-api-versions"), "version 2 of 2"))
    driver.find_element(*tid("prompt-tab-versions")).click()
    wait(driver).until(EC.presence_of_element_located(tid("version-row-1")))
    wait(driver).until(EC.presence_of_element_located(tid("prompt-diff")))
    changed = [
        (line.get_attribute("data-op"), line.text)
        for line in driver.find_elements(*tid("diff-line"))
        if line.get_attribute("data-op") != "equal"
    ]
    assert [op for op, _ in changed] == ["delete", "insert"], changed
    assert TEMPLATE in changed[0][1] and TEMPLATE_V2 in changed[1][1], changed
    to_top(driver)
    shot(driver, "prompt-studio-diff")

    # Published: the badge follows.
    driver.find_element(*tid("publish-prompt-api")).click()
    wait(driver).until(EC.text_to_be_present_in_element(tid("prompt-api-status"), "published"))

    # A consumer calls it with the studio's curl snippet, the key in the environment.
    driver.find_element(*tid("prompt-tab-snippets")).click()
    curl = wait(driver).until(EC.presence_of_element_located(tid("snippet-curl"))).text
    assert f"{west.base}/apis/summarize" in curl and "$TOLLGATE_API_KEY" in curl, curl
    to_top(driver)
    shot(driver, "prompt-studio-snippets")
    key = consumer_key(west, "summarize")
    result = subprocess.run(["sh", "-c", curl], env={**os.environ, "TOLLGATE_API_KEY": key}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert answer["choices"][0]["message"]["content"] == "echo: Summarize in a neutral tone, in one sentence: …"
    status, answer = call(west, key, "summarize", {"text": "hello", "tone": "dry"})
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"] == "echo: Summarize in a dry tone, in one sentence: hello"

    # Rolled back to version 1 from the history: calls get it again, and the editor shows it.
    driver.find_element(*tid("prompt-tab-versions")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("rollback-1"))).click()
    driver.find_element(*tid("confirm-ok")).click()
    wait(driver).until(EC.text_to_be_present_in_element(tid("prompt-api-versions"), "version 1 of 2 (rolled back)"))
    assert driver.find_element(*tid("prompt-template")).get_attribute("value") == TEMPLATE
    status, answer = call(west, key, "summarize", {"text": "hello", "tone": "dry"})
    assert answer["choices"][0]["message"]["content"] == "echo: Summarize in a dry tone: hello", answer

    # Deprecated with a sunset (tomorrow by default), then retired after confirmation.
    driver.find_element(*tid("deprecate-prompt-api")).click()
    assert driver.find_element(*tid("prompt-sunset-date")).get_attribute("value")
    driver.find_element(*tid("confirm-deprecate")).click()
    wait(driver).until(EC.text_to_be_present_in_element(tid("prompt-api-status"), "deprecated"))
    assert call(west, key, "summarize", {"text": "still here"})[0] == 200
    driver.find_element(*tid("retire-prompt-api")).click()
    driver.find_element(*tid("confirm-ok")).click()
    wait(driver).until(EC.text_to_be_present_in_element(tid("prompt-api-status"), "retired"))
    status, answer = call(west, key, "summarize", {"text": "gone?"})
    assert status == 410 and answer["reason"] == "api-retired", answer

    # The list shows it, retired, at its latest version.
    driver.find_element(*tid("back-to-prompt-apis")).click()
    row = wait(driver).until(EC.presence_of_element_located(tid("prompt-api-row-summarize")))
    assert "retired" in row.text and "v1 / v2" in row.text, row.text
    assert KEY_SECRET not in driver.page_source and key not in driver.page_source
    shot(driver, "prompt-apis")
