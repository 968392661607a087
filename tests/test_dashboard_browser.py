"""The dashboard in a real browser (Debian's chromium, headless) against a real Daphne server.

Log in through the form, see the fleet, and watch a node's report arrive live: the node API call is
handled by the Daphne process, which publishes the event on its channel layer; the page's websocket
receives it and htmx swaps in the fresh node table, with no reload.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.contrib.auth import get_user_model

from edgenodes.models import Fleet

from .conftest import enroll

SHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="needs Debian's chromium and chromedriver (scripts/install-browser.sh)",
)


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,800",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


class DashboardInABrowser(ChannelsLiveServerTestCase):
    def setUp(self):
        from django.conf import settings

        settings.EDGEFLEET = {**settings.EDGEFLEET, "CONTACT_FLUSH_S": 0}
        # The Daphne process was started before the suite switched to a fast test hasher, so the
        # password is hashed with the production default it knows.
        from django.contrib.auth.hashers import PBKDF2PasswordHasher

        hashed = PBKDF2PasswordHasher().encode("correct horse battery staple", "browsertestsalt")
        get_user_model().objects.create(
            username="alice", password=hashed, is_superuser=True, is_staff=True
        )
        self.fleet = Fleet.objects.create(slug="north", name="North clinics")
        self.node, self.credential = enroll(self.fleet, "north-1")
        self.driver = browser()

    def tearDown(self):
        self.driver.quit()

    def test_an_admin_logs_in_and_sees_a_node_report_arrive_live(self):
        from selenium.webdriver.common.by import By

        d = self.driver
        d.get(self.live_server_url + "/")
        assert "/accounts/login/" in d.current_url
        d.find_element(By.NAME, "username").send_keys("alice")
        d.find_element(By.NAME, "password").send_keys("correct horse battery staple")
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        assert wait_until(lambda: "North clinics" in d.page_source)

        def row() -> str:
            from selenium.common.exceptions import (
                NoSuchElementException,
                StaleElementReferenceException,
            )

            try:  # htmx may swap the table between finding the row and reading it
                return d.find_element(By.CSS_SELECTOR, f"tr[data-node='{self.node.pk}']").text
            except (NoSuchElementException, StaleElementReferenceException):
                return ""

        assert wait_until(lambda: "north-1" in row() and "never" in row())
        assert wait_until(lambda: d.find_element(By.ID, "live").text == "live"), (
            "websocket did not connect"
        )

        r = httpx.post(
            f"{self.live_server_url}/api/node/v1/reported-state",
            headers={"Authorization": f"Bearer {self.credential}"},
            json={"applied_revision": 1, "model_digest": "sha256:abc", "health": "ok"},
        )
        assert r.status_code == 200
        assert wait_until(lambda: " ok" in row()), f"row did not update live: {row()!r}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(SHOTS / "dashboard.png"))
