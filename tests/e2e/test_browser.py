"""The Dagster UI in a real headless Chromium, served by a real `dagster dev`.

A user opens the asset lineage and the catalog, finds every SQLMesh model there, ticks two assets,
clicks "Materialize selected" and watches the run succeed. Screenshots go to artifacts/browser/.
Needs Debian's chromium and chromium-driver (scripts/install_browser.sh); without them the test
skips, unless CI or MXM_REQUIRE_BROWSER=1 says a browser is required, and then it fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.dagster_dev import ARTIFACTS, AssetPath, DagsterDev
from tests.support.required import setup_missing

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(360)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ARTIFACTS / "browser"
UI_TIMEOUT = 60.0
# Two assets any warehouse can build on their own, fresh or already filled by the GraphQL tests: a
# seed and the view over it (nothing they read comes from the landing asset, not selected here).
SELECTED: tuple[AssetPath, ...] = (("raw", "etf_master"), ("staging", "stg_etf_master"))
LAUNCHPAD_BUTTON = (
    "//div[@role='dialog']//button[contains(., 'Materialize') or contains(., 'Launch')]"
)


@pytest.fixture(scope="module", autouse=True)
def browser_binaries() -> None:
    """Skip (or fail where a browser is required) before starting dagster dev for nothing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if not missing:
        return
    setup_missing(
        f"browser tests: {' and '.join(missing)} not found: run scripts/install_browser.sh "
        "(Debian packages chromium and chromium-driver)",
        "MXM_REQUIRE_BROWSER",
    )


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium through Debian's chromedriver; selenium-manager never downloads."""
    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1600,1000",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(
        service=Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "driver.log")),
        options=options,
    )
    browser.set_window_size(1600, 1000)
    try:
        yield browser
    finally:
        browser.quit()
        if previous is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = previous


def screenshot(browser: WebDriver, name: str) -> Path:
    """Keep what the user saw under artifacts/browser/ (uploaded by CI, viewed by reviewers)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


def asset_link(key: AssetPath) -> str:
    """XPath of the link on the asset's name, as the catalog renders it."""
    return f"//a[@href='/assets/{'/'.join(key)}']"


def catalog_keys(browser: WebDriver) -> set[AssetPath]:
    """Every asset whose name link the catalog shows; it renders only rows near the viewport,
    so scroll until no new name appears."""
    seen: set[AssetPath] = set()
    for _ in range(50):
        before = len(seen)
        links: list[WebElement] = browser.find_elements(
            By.XPATH, "//a[starts-with(@href, '/assets/')]"
        )
        for link in links:
            try:
                key = tuple(urlparse(link.get_attribute("href") or "").path.split("/")[2:])
                if link.is_displayed() and link.text.strip() == " / ".join(key):
                    seen.add(key)
            except StaleElementReferenceException:
                continue
        if links:
            try:
                browser.execute_script("arguments[0].scrollIntoView({block: 'end'})", links[-1])
            except StaleElementReferenceException:
                pass
        time.sleep(0.3)
        if len(seen) == before and before:
            break
    browser.execute_script("window.scrollTo(0, 0)")
    return seen


def tick_row(browser: WebDriver, key: AssetPath) -> None:
    """Tick the catalog row's checkbox the way a user does: click its label."""
    link = browser.find_element(By.XPATH, asset_link(key))
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    row = link.find_element(By.XPATH, "./ancestor::div[.//input[@type='checkbox']][1]")
    checkbox = row.find_element(By.XPATH, ".//input[@type='checkbox']")
    row.find_element(By.XPATH, ".//input[@type='checkbox']/ancestor::label[1]").click()
    WebDriverWait(browser, 10).until(lambda _: checkbox.is_selected())


def wait_for_launch(browser: WebDriver) -> None:
    """Until the UI confirms the launch; click through the launchpad should one open instead
    (assets that need run config open it; ours should not)."""
    clicked: list[bool] = []

    def launched(_: WebDriver) -> bool:
        if browser.find_elements(By.XPATH, "//*[text()[contains(., 'Launched run')]]"):
            return True
        if not clicked:
            for button in browser.find_elements(By.XPATH, LAUNCHPAD_BUTTON):
                if button.is_displayed() and button.is_enabled():
                    button.click()
                    clicked.append(True)
                    break
        return False

    WebDriverWait(browser, UI_TIMEOUT, ignored_exceptions=(StaleElementReferenceException,)).until(
        launched
    )


def new_run_id(dev: DagsterDev, known: set[str], timeout: float = 30.0) -> str:
    """The id of the run the click launched: the newest one that was not there before."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [r for r in dev.runs() if r["runId"] not in known]
        if fresh:
            return str(fresh[0]["runId"])
        time.sleep(0.5)
    raise AssertionError(f"no run was launched within {timeout:.0f} s of clicking Materialize")


def test_materialize_two_assets_from_the_ui(dagster_dev: DagsterDev, driver: WebDriver) -> None:
    nodes = dagster_dev.asset_nodes()
    models = {key for key, node in nodes.items() if node.model}
    wait = WebDriverWait(driver, UI_TIMEOUT)
    try:
        # The lineage shows the code location's groups (one per SQLMesh schema).
        driver.get(f"{dagster_dev.url}/asset-groups")
        for group in sorted({key[0] for key in models}):
            wait.until(ec.visibility_of_element_located((By.XPATH, f"//*[text()='{group}']")))
        wait.until_not(
            ec.presence_of_element_located(
                (By.XPATH, "//*[text()[contains(., 'fetching statuses')]]")
            )
        )
        screenshot(driver, "01-lineage")

        # The catalog lists every model by name.
        driver.get(f"{dagster_dev.url}/assets")
        wait.until(ec.visibility_of_element_located((By.XPATH, asset_link(min(models)))))
        missing = models - catalog_keys(driver)
        assert not missing, f"the catalog does not show {sorted(missing)}"

        # Tick two assets, "Materialize selected".
        known = {r["runId"] for r in dagster_dev.runs()}
        for key in SELECTED:
            tick_row(driver, key)
        button = wait.until(
            ec.element_to_be_clickable((By.XPATH, "//button[contains(., 'Materialize selected')]"))
        )
        assert f"({len(SELECTED)})" in button.text, button.text
        screenshot(driver, "02-catalog-selected")
        button.click()
        wait_for_launch(driver)
        screenshot(driver, "03-launched")

        run_id = new_run_id(dagster_dev, known)
        run = dagster_dev.run(run_id)
        assert sorted(tuple(k["path"]) for k in run["assetSelection"]) == sorted(SELECTED)
        assert {"key": "dagster/from_ui", "value": "true"} in run["tags"]
        status = dagster_dev.wait_for_run(run_id)
        assert status == "SUCCESS", (
            f"run {run_id} ended {status}:\n{dagster_dev.run_errors(run_id)}"
        )
        materialized = {m.key for m in dagster_dev.run_materializations(run_id)}
        assert materialized == set(SELECTED)

        # The run page and the catalog tell the user the same.
        driver.get(f"{dagster_dev.url}/runs/{run_id}")
        wait.until(ec.visibility_of_element_located((By.XPATH, "//*[text()='Success']")))
        wait.until(ec.visibility_of_element_located((By.XPATH, "//*[text()='RUN_SUCCESS']")))
        screenshot(driver, "04-run-succeeded")
        driver.get(f"{dagster_dev.url}/assets")
        for key in SELECTED:
            row = f"{asset_link(key)}/ancestor::div[.//input[@type='checkbox']][1]"
            wait.until(
                ec.visibility_of_element_located(
                    (By.XPATH, f"{row}//*[starts-with(normalize-space(text()), 'Materialized')]")
                )
            )
        last = driver.find_element(By.XPATH, asset_link(SELECTED[-1]))
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", last)
        screenshot(driver, "05-catalog-materialized")
    except (AssertionError, WebDriverException, TimeoutError):
        screenshot(driver, "failure")
        raise
