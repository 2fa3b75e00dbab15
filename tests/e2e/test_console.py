"""The first-run journey on the real desktop app: add an instance, see it
healthy in the fleet overview, create a team, add a second instance and
switch between them. Each screen is saved under test-artifacts/e2e/."""

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import ARTIFACTS


def tid(name: str) -> tuple:
    return (By.CSS_SELECTOR, f'[data-testid="{name}"]')


def wait(driver, seconds: float = 20) -> WebDriverWait:
    # A re-render can replace an element between finding it and reading it
    # (the virtualised tables do so as they scroll): the condition is then
    # simply evaluated again.
    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,))


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def fill(driver, testid: str, value: str) -> None:
    field = wait(driver).until(EC.element_to_be_clickable(tid(testid)))
    field.clear()
    field.send_keys(value)


def add_instance(driver, name: str, gateway, environment: str) -> None:
    driver.find_element(*tid("nav-instances")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("add-instance"))).click()
    fill(driver, "field-name", name)
    fill(driver, "field-base-url", gateway.base)
    Select(driver.find_element(*tid("field-environment"))).select_by_value(environment)
    fill(driver, "field-token", gateway.token)
    driver.find_element(*tid("probe-button")).click()
    wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "form"), "0.1.0"))
    shot(driver, f"add-instance-{name.lower()}")
    driver.find_element(*tid("save-instance")).click()
    wait(driver).until(EC.presence_of_element_located(tid(f"instance-row-{name}")))


def test_first_run_journey(driver, gateways):
    east, west = gateways
    wait(driver, 60).until(EC.presence_of_element_located(tid("nav-fleet")))
    shot(driver, "empty")

    # A bad URL is refused in the form, naming the field; nothing is added.
    driver.find_element(*tid("nav-instances")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("add-instance"))).click()
    fill(driver, "field-name", "Broken")
    fill(driver, "field-base-url", "gateway.local:8080")
    fill(driver, "field-token", "tga_x")
    driver.find_element(*tid("save-instance")).click()
    wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "form"), "http"))
    shot(driver, "add-instance-invalid")
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    wait(driver).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "form")))
    assert not driver.find_elements(*tid("instance-row-Broken"))

    add_instance(driver, "East", east, "prod")
    shot(driver, "instances")

    driver.find_element(*tid("nav-fleet")).click()
    state = wait(driver, 30).until(
        EC.text_to_be_present_in_element(
            (By.CSS_SELECTOR, '[data-testid="fleet-row-East"] [data-testid="fleet-state"]'), "reachable"
        )
    )
    assert state
    shot(driver, "fleet")

    driver.find_element(*tid("nav-teams")).click()
    wait(driver).until(EC.element_to_be_clickable(tid("new-team"))).click()
    fill(driver, "team-name", "Platform")
    fill(driver, "team-description", "Created through WebDriver")
    driver.find_element(*tid("save-team")).click()
    wait(driver).until(EC.presence_of_element_located(tid("team-row-Platform")))
    shot(driver, "teams")

    add_instance(driver, "West", west, "staging")
    current = driver.find_element(*tid("current-instance-name"))
    assert current.text == "East"

    # Switch with a click, then back with the keyboard shortcut.
    driver.find_element(*tid("switch-1")).click()
    wait(driver).until(EC.text_to_be_present_in_element(tid("current-instance-name"), "West"))
    driver.find_element(*tid("nav-teams")).click()
    wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "main"), "No teams yet"))
    shot(driver, "teams-west-empty")
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("1").key_up(Keys.CONTROL).perform()
    wait(driver).until(EC.text_to_be_present_in_element(tid("current-instance-name"), "East"))
    wait(driver).until(EC.presence_of_element_located(tid("team-row-Platform")))

    driver.find_element(*tid("nav-fleet")).click()
    wait(driver, 30).until(
        EC.text_to_be_present_in_element(
            (By.CSS_SELECTOR, '[data-testid="fleet-row-West"] [data-testid="fleet-state"]'), "reachable"
        )
    )
    shot(driver, "fleet-two-instances")

    driver.find_element(*tid("nav-audit")).click()
    wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "main"), "team.create"))
    shot(driver, "audit")


def test_an_instance_of_two_nodes(driver, cluster):
    """An instance whose two nodes share a PostgreSQL database: the fleet
    says both are up, the instance's node list shows each (the one leading
    the jobs, its leases, its heartbeat), and a node that stops turns stale."""
    first, second = cluster
    wait(driver, 60).until(EC.presence_of_element_located(tid("nav-instances")))
    driver.find_element(*tid("nav-instances")).click()
    add_instance(driver, "Cluster", first, "prod")

    driver.find_element(*tid("nav-fleet")).click()
    wait(driver, 30).until(
        EC.text_to_be_present_in_element(
            (By.CSS_SELECTOR, '[data-testid="fleet-row-Cluster"] [data-testid="fleet-nodes"]'), "2 up"
        )
    )
    shot(driver, "fleet-nodes")

    driver.find_element(*tid("nav-instances")).click()
    row = wait(driver).until(EC.presence_of_element_located(tid("instance-row-Cluster")))
    row.find_element(*tid("show-nodes")).click()
    nodes = wait(driver).until(EC.presence_of_element_located(tid("instance-nodes-Cluster")))
    # The leader is recorded with a heartbeat (every 5 s); the list follows every 5 s.
    wait(driver, 30).until(lambda d: "leads the jobs" in nodes.text)
    for node in (first, second):
        assert node.base in nodes.text
    assert len(nodes.find_elements(*tid("node-row"))) == 2
    shot(driver, "instance-nodes")

    second.stop()
    wait(driver, 45).until(lambda d: "stale" in nodes.text)
    shot(driver, "instance-nodes-stale")
    # The fleet checks a healthy instance every 30 s.
    driver.find_element(*tid("nav-fleet")).click()
    wait(driver, 75).until(
        EC.text_to_be_present_in_element(
            (By.CSS_SELECTOR, '[data-testid="fleet-row-Cluster"] [data-testid="fleet-nodes"]'), "1 stale"
        )
    )
    shot(driver, "fleet-nodes-stale")


def test_no_admin_token_on_disk(driver, gateways, console_data_dir):
    """Runs after the journey: the tokens typed into the UI live only in the
    keyring, not in the console's files, the driver log or the screenshots."""
    secrets = [gw.token.encode() for gw in gateways]
    files = [p for p in console_data_dir.rglob("*") if p.is_file()]
    files += [p for p in ARTIFACTS.rglob("*") if p.is_file()]
    assert any(p.name == "console.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"admin token found in {path}"


def test_the_app_opens_no_listening_socket(tmp_path):
    """The UI reaches Rust only over Tauri IPC: the app, started as a user
    starts it (not under WebDriver, whose automation session opens an inspector
    socket), listens on no TCP port."""
    import os
    import subprocess
    import time

    from conftest import CONSOLE_BIN

    app = subprocess.Popen(
        [CONSOLE_BIN],
        env={**os.environ, "TOLLGATE_CONSOLE_DATA_DIR": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        subprocess.run(
            ["xdotool", "search", "--sync", "--onlyvisible", "--pid", str(app.pid)],
            check=True, timeout=60, capture_output=True,
        )
        time.sleep(2)  # let the page load and the fleet monitor start
        assert app.poll() is None, "the app exited"
        out = subprocess.run(["ss", "-Hltnup"], capture_output=True, text=True, check=True).stdout
        pids = {str(app.pid)} | set(
            subprocess.run(["pgrep", "-P", str(app.pid)], capture_output=True, text=True).stdout.split()
        )
        owners = [line for line in out.splitlines() if any(f"pid={pid}," in line for pid in pids)]
        assert owners == [], f"the app listens: {owners}"
    finally:
        app.terminate()
        app.wait(timeout=10)
