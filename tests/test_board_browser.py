"""The board in headless Chromium: Debian's `chromium` and `chromium-driver` driven by Selenium
(both paths given, so Selenium Manager downloads nothing), against `expansion board` serving the
test book from its own process: log in, filter by owner and by play, open an account, and see
its charts drawn with their data points."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from expansion.settings import Settings
from tests.support import BIN, Process, free_port, wait_for
from tests.test_board import TOKEN, book_for_module

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="headless Chromium is not installed: apt-get install -y chromium chromium-driver",
    ),
]


@pytest.fixture(scope="module")
def book_settings(session_settings: Settings) -> Iterator[Settings]:
    yield from book_for_module(session_settings)


@pytest.fixture(scope="module")
def board_url(
    env: dict[str, str], book_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`expansion board` in a process of its own, on the test database."""
    port = free_port()
    log = tmp_path_factory.mktemp("board") / "board.log"
    server = Process(
        [str(BIN / "expansion"), "board", "--port", str(port), "--workers", "1"],
        {**env, "BOARD_TOKEN": TOKEN},
        log,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if server.popen.poll() is not None:
            raise AssertionError(f"the board exited:\n{server.output()}")
        try:
            return requests.get(f"{url}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    wait_for(up, 60, "the board")
    yield url
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1440,1000")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def logged_in(browser: WebDriver, board_url: str) -> WebDriver:
    browser.get(board_url + "/")
    assert browser.title.startswith("Log in")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button.primary").click()
    browser.find_element(By.ID, "ranked")  # waits (implicitly) for the book
    return browser


def account_names(browser: WebDriver) -> list[str]:
    return [link.text for link in browser.find_elements(By.CSS_SELECTOR, "#ranked td.account a")]


def click_to_new_page(browser: WebDriver, element: WebElement) -> None:
    """Click and wait until another document has loaded. The old document is marked and the
    new one is known by lacking the mark: asking whether an element of the old one went stale
    fails instead of answering when Chrome drops the document mid-question."""
    browser.execute_script("window.esOldPage = true")
    element.click()
    WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script(
            "return document.readyState === 'complete' && window.esOldPage === undefined"
        )
    )


def apply_filters(browser: WebDriver, **chosen: str) -> None:
    """Choose the values, press Apply and wait for the filtered page to replace this one."""
    for name, value in chosen.items():
        Select(browser.find_element(By.ID, name)).select_by_value(value)
    click_to_new_page(browser, browser.find_element(By.ID, "apply"))


def test_the_board_loads_after_login_with_the_ranked_book(logged_in):
    table = logged_in.find_element(By.ID, "ranked")
    assert table.is_displayed()
    assert account_names(logged_in) == ["Globex", "Northwind", "Contoso", "Fabrikam"]
    bars = logged_in.find_elements(By.CSS_SELECTOR, "svg.score-bar rect.fill")
    assert len(bars) == 8 and all(bar.is_displayed() for bar in bars if bar.size["width"] > 0)
    # The stylesheet shipped in the package is applied: a warm readiness bar is amber.
    warm = logged_in.find_element(By.CSS_SELECTOR, "svg.score-bar rect.band-warm")
    assert logged_in.execute_script("return getComputedStyle(arguments[0]).fill", warm) == (
        "rgb(245, 159, 0)"
    )


def test_filters_by_owner_and_by_play(logged_in, board_url):
    logged_in.get(board_url + "/")
    apply_filters(logged_in, owner="csm-ana")
    assert "owner=csm-ana" in logged_in.current_url
    assert account_names(logged_in) == ["Northwind", "Fabrikam"]
    apply_filters(logged_in, play="save_play")
    assert account_names(logged_in) == ["Fabrikam"]
    count = logged_in.find_element(By.ID, "match-count").text
    assert count == "1 account for csm-ana with Save play"
    apply_filters(logged_in, owner="", play="seat_expansion")
    assert account_names(logged_in) == ["Northwind"]


def visible_points(browser: WebDriver, chart: str, selector: str) -> list[WebElement]:
    svg = browser.find_element(By.CSS_SELECTOR, f"#chart-{chart} svg")
    assert svg.is_displayed() and svg.size["width"] > 300 and svg.size["height"] > 80
    box = svg.rect
    found = svg.find_elements(By.CSS_SELECTOR, selector)
    for point in found:
        inside = point.rect
        assert box["x"] - 1 <= inside["x"] <= box["x"] + box["width"] + 1
        assert box["y"] - 1 <= inside["y"] <= box["y"] + box["height"] + 1
    return found


def test_an_account_opens_with_its_charts_drawn(logged_in, board_url):
    logged_in.get(board_url + "/")
    click_to_new_page(logged_in, logged_in.find_element(By.LINK_TEXT, "Northwind"))
    assert logged_in.find_element(By.ID, "account-name").text == "Northwind"
    seats = visible_points(logged_in, "seats", "circle.point")
    assert len(seats) == 101 and seats[-1].get_attribute("data-value") == "95"
    assert all(point.is_displayed() for point in seats[::10])
    bars = visible_points(logged_in, "api", "rect.bar")
    assert len(bars) == 101 and bars[-1].size["height"] > bars[0].size["height"]
    health = visible_points(logged_in, "health", "circle.point.c-health")
    assert [p.get_attribute("data-value") for p in health][-1] == "90.9"
    assert all(point.is_displayed() for point in health)
    line = logged_in.find_element(By.CSS_SELECTOR, "#chart-health path.line.c-health")
    assert logged_in.execute_script("return getComputedStyle(arguments[0]).stroke", line) == (
        "rgb(43, 138, 62)"
    )
    assert "Seat expansion" in logged_in.find_element(By.ID, "plays").text


def test_the_measure_page_opens_from_the_navigation(logged_in):
    click_to_new_page(logged_in, logged_in.find_element(By.LINK_TEXT, "What to measure"))
    assert logged_in.find_element(By.TAG_NAME, "h1").text == "What to measure"
    assert logged_in.find_element(By.ID, "won-amount").text == "$12,000"
