"""Every page of the dashboard in Debian's chromium under its Content-Security-Policy (no inline
script, no eval, no inline style, nothing from elsewhere): the browser reports no violation, and
the small behaviours that were inline handlers still work as event listeners in
dashboard/static/*.js (the
fleet picker, the "are you sure?" of a revoke, a delete and an abort, the enrollment token's copy
button and focus, the approval queue's countdown and keys, the live websocket).

A listener for `securitypolicyviolation` is injected before any script of a page runs (CDP
`Page.addScriptToEvaluateOnNewDocument`): an inline script or style in a template, an `hx-on`
attribute or a `js:` value (htmx evaluates them) would each be reported, with the page it was on.
"""

from __future__ import annotations

import contextlib
import json

from django.urls import get_resolver, resolve

from controlplane.middleware import CONTENT_SECURITY_POLICY
from controlplane.nodes.models import (
    DesiredStateLayer,
    Fleet,
    Node,
    NodeCredential,
    Rollout,
    ToolApproval,
)
from controlplane.rollouts import services as rollouts

from .conftest import ROLLOUT_MODEL, furnish
from .test_dashboard_browser import BrowserCase, make_user, wait_until
from .test_dashboard_browser import pytestmark as needs_chromium

# The pages of the dashboard, by URL name (each one is opened as alice, the admin).
PAGES = [
    ("dashboard:overview", "/"),
    ("dashboard:nodes", "/nodes/?fleet=north"),
    ("dashboard:node", "/nodes/{node}/"),
    ("dashboard:enrollment", "/enrollment/?fleet=north"),
    ("dashboard:layers", "/desired-state/?fleet=north"),
    ("dashboard:layers", "/desired-state/?fleet=north&preview={node}"),
    ("dashboard:rollouts", "/rollouts/?fleet=north"),
    ("dashboard:rollout", "/rollouts/{rollout}/"),
    ("dashboard:approvals", "/approvals/?fleet=north"),
    ("dashboard:approvals", "/approvals/?all=1"),
    ("dashboard:models", "/models/"),
    ("dashboard:compliance", "/compliance/?fleet=north"),
    ("dashboard:costs", "/costs/?fleet=north"),
    ("audit:browser", "/audit/?fleet=north"),
    ("audit:erase", "/audit/erasure/"),
    ("audit:processing", "/audit/records-of-processing/?fleet=north"),
    ("accounts:access", "/access/?fleet=north"),
]
# The URL names that are not a page a browser opens, and why.
NOT_PAGES = {
    "dashboard:fleet-alerts": "a form's target (POST)",
    "dashboard:node-row": "a row that htmx swaps into the node list",
    "dashboard:node-series": "the node charts' JSON",
    "dashboard:node-edit": "a form's target (POST)",
    "dashboard:node-revoke": "a form's target (POST)",
    "dashboard:enrollment-revoke": "a form's target (POST)",
    "dashboard:layer-delete": "a form's target (POST)",
    "dashboard:secret-set": "a form's target (POST)",
    "dashboard:secret-delete": "a form's target (POST)",
    "dashboard:rollout-action": "a form's target (POST)",
    "dashboard:approval-decide": "a form's target (POST)",
    "dashboard:compliance-preview": "a form's target (POST)",
    "accounts:member-set": "a form's target (POST)",
    "accounts:invite": "a form's target (POST)",
    "accounts:token-create": "a form's target (POST)",
    "accounts:token-revoke": "a form's target (POST)",
}
# Pages that are not the dashboard's templates but are served under its policy.
OTHER_PAGES = [
    "/nodes/no-such-node/",  # the error page
    "/api/v1/docs",  # ninja's Swagger UI, from its own static files
    "/admin/",
    "/admin/auth/user/",
    "/admin/auth/user/{alice}/change/",
]

COLLECT = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push({
  directive: e.effectiveDirective, blocked: e.blockedURI, source: e.sourceFile,
  line: e.lineNumber, sample: e.sample,
}), true);
"""


def dashboard_url_names() -> set[str]:
    names = set()
    for pattern in get_resolver().url_patterns:
        namespace = getattr(pattern, "namespace", None)
        if namespace in ("dashboard", "audit", "accounts"):
            names |= {f"{namespace}:{p.name}" for p in pattern.url_patterns if p.name}
    return names


def test_the_browser_check_opens_every_page_of_the_dashboard():
    """A page added to a urls module is opened by the browser check below, or said not to be one."""
    opened = {name for name, _ in PAGES}
    assert opened.isdisjoint(NOT_PAGES)
    assert opened | set(NOT_PAGES) == dashboard_url_names()
    for name, path in PAGES:
        assert resolve(path.split("?")[0].format(node="n1", rollout=1)).view_name == name, path


@needs_chromium
class TheDashboardUnderItsContentSecurityPolicy(BrowserCase):
    def setUp(self):
        super().setUp()
        self.violations: list[dict] = []
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COLLECT})

    def collect(self, what: str) -> None:
        """The violations the page reported so far, kept with what was being done."""
        d = self.driver
        # A violation is reported in a task of its own: let the queued ones run first.
        d.execute_async_script("setTimeout(arguments[arguments.length - 1], 50)")
        for v in d.execute_script("return window.__csp || []"):
            self.violations.append({"page": what, **v})
        d.execute_script("window.__csp = []")

    def expect(self, predicate, what: str) -> None:
        """Wait for what should happen; if it does not, say so with the violations reported so
        far (a handler the policy blocked is the likely cause)."""
        if not wait_until(predicate):
            with contextlib.suppress(Exception):  # an alert open: report what was collected
                self.collect(what)
            raise AssertionError(
                f"{what}: did not happen; policy violations: {json.dumps(self.violations)}"
            )

    def open(self, path: str, *, live: bool = True) -> None:
        d = self.driver
        d.get(self.live_server_url + path)
        self.expect(lambda: d.execute_script("return document.readyState") == "complete", path)
        if live:  # the websocket of the same host is allowed by connect-src 'self'
            self.expect(lambda: d.find_element("id", "socket").text == "live", f"{path}: live")
        self.collect(path)

    def test_every_page_loads_and_works_without_a_policy_violation(self):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import Select

        alice = make_user("alice", is_superuser=True, is_staff=True)
        north = Fleet.objects.create(slug="north", name="North clinics")
        south = Fleet.objects.create(slug="south", name="South warehouses")
        for fleet in (north, south):
            furnish(fleet, alice)
        rollout = rollouts.do_start_rollout(north, model=ROLLOUT_MODEL, actor=alice)
        node = Node.objects.get(fleet=north)
        approval = ToolApproval.objects.get(fleet=north)
        ids = {"node": node.pk, "rollout": rollout.pk, "alice": alice.pk}
        d, base = self.driver, self.live_server_url

        # The login page, before anyone is signed in: it carries the policy too.
        self.open("/accounts/login/", live=False)
        self.log_in("alice")
        self.collect("logging in")
        for _, path in PAGES:
            self.open(path.format(**ids))
        for path in OTHER_PAGES:
            self.open(path.format(**ids), live=False)
            if path == "/api/v1/docs":  # rendered by script, from the schema it fetches
                self.expect(lambda: d.find_elements(By.CSS_SELECTOR, ".opblock"), "Swagger UI")
                self.collect(path)
        assert not self.violations, json.dumps(self.violations, indent=1)

        # The fleet picker submits its form when a fleet is chosen.
        self.open("/enrollment/?fleet=north")
        Select(d.find_element(By.NAME, "fleet")).select_by_value("south")
        self.expect(
            lambda: "South warehouses" in d.find_element(By.TAG_NAME, "h1").text,
            "choosing a fleet shows it",
        )
        assert "fleet=south" in d.current_url
        self.collect("choosing a fleet")

        # The node page's charts (uPlot styles its elements through the CSSOM, which is allowed).
        self.open(f"/nodes/{node.pk}/")
        self.expect(
            lambda: d.find_element(By.ID, "charts").get_attribute("data-points"), "node charts"
        )
        # "Revoke credentials" asks first; cancelled, nothing is revoked.
        d.find_element(By.XPATH, "//button[text()='Revoke credentials']").click()
        self.expect(lambda: d.switch_to.alert.text == "Revoke north-1?", "a revoke asks first")
        d.switch_to.alert.dismiss()
        assert not NodeCredential.objects.filter(node=node, revoked_at__isnull=False).exists()
        self.collect("cancelling a revoke")

        # The rollout's abort asks first; cancelled, the rollout goes on.
        self.open(f"/rollouts/{rollout.pk}/")
        d.find_element(By.XPATH, "//button[text()='Abort and roll back']").click()
        self.expect(
            lambda: "roll every updated node back" in d.switch_to.alert.text,
            "an abort asks first",
        )
        d.switch_to.alert.dismiss()
        assert Rollout.objects.get(pk=rollout.pk).status != "aborted"
        self.collect("cancelling an abort")

        # A layer's delete asks first; confirmed, the layer is deleted.
        self.open("/desired-state/?fleet=north")
        d.find_element(By.XPATH, "//button[text()='Delete']").click()
        self.expect(
            lambda: d.switch_to.alert.text == "Delete layer existing?", "a delete asks first"
        )
        d.switch_to.alert.accept()
        self.expect(
            lambda: not DesiredStateLayer.objects.filter(fleet=north, name="existing").exists(),
            "a confirmed delete deletes",
        )
        self.collect("deleting a layer")

        # A new enrollment token: the notice takes the focus, its copy button copies.
        self.open("/enrollment/?fleet=north")
        d.execute_cdp_cmd(
            "Browser.grantPermissions",
            {"origin": base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
        )
        d.find_element(By.CSS_SELECTOR, "#create form button").click()
        self.expect(lambda: d.find_element(By.ID, "enroll-command").text, "a token is shown")
        self.expect(
            lambda: d.execute_script("return document.activeElement.id") == "token-created",
            "the new token's notice takes the focus",
        )
        command = d.find_element(By.ID, "enroll-command").text
        copy = d.find_element(By.CSS_SELECTOR, "button[data-copy=enroll-command]")
        copy.click()
        self.expect(lambda: copy.text == "Copied", "the copy button copies")
        pasted = d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, (e) => done(String(e)));"
        )
        assert pasted == command
        self.collect("creating and copying an enrollment token")

        # The approval queue counts down to each request's expiry; "d" denies the focused one,
        # which keeps the focus once decided (and through the live refresh of the queue).
        self.open("/approvals/?all=1")
        card = d.find_element(By.ID, f"approval-{approval.pk}")
        countdown = card.find_element(By.CSS_SELECTOR, "time[data-countdown]")
        self.expect(lambda: countdown.text.startswith("in "), "the expiry counts down")
        d.execute_script("arguments[0].focus()", card)
        card.send_keys("d")
        self.expect(
            lambda: ToolApproval.objects.get(pk=approval.pk).decision == "denied",
            "pressing d denies the focused request",
        )
        self.expect(
            lambda: (
                d.execute_script("return document.activeElement.id") == f"approval-{approval.pk}"
                and "denied" in d.find_element(By.ID, f"approval-{approval.pk}").text
            ),
            "the decided request keeps the focus",
        )
        self.collect("denying a tool call from the keyboard")

        # The theme toggle.
        theme = d.find_element(By.ID, "theme")
        before = theme.get_attribute("aria-pressed")
        theme.send_keys(Keys.ENTER)
        self.expect(lambda: theme.get_attribute("aria-pressed") != before, "the theme toggles")
        self.collect("switching the theme")

        assert not self.violations, json.dumps(self.violations, indent=1)
        # The policy these pages ran under is the strict one (no page set its own).
        assert (
            d.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "fetch('/').then((r) => done(r.headers.get('Content-Security-Policy')));"
            )
            == CONTENT_SECURITY_POLICY
        )
