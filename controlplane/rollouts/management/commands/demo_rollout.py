"""The demo's rollout (`make run`, once): when both demo nodes run their model, pin the variant they
run through a staged rollout (canary, then the rest) that finishes within minutes, as an admin
would. Idempotent: nothing happens if the demo fleet has a rollout already."""

import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from controlplane.nodes.models import Fleet, Node, Rollout
from controlplane.registry.models import Artifact
from controlplane.rollouts import services as rollouts


class Command(BaseCommand):
    help = "Start the demo fleet's first rollout once its nodes run their model."

    def add_arguments(self, parser):
        parser.add_argument("--fleet", default="demo")
        parser.add_argument("--wait", type=float, default=180, help="seconds to wait for nodes")

    def handle(self, *args, fleet: str, wait: float, **options):
        demo = Fleet.objects.filter(slug=fleet).first()
        if demo is None:
            raise CommandError(f"fleet '{fleet}' not found (run manage.py demo_setup first)")
        if Rollout.objects.filter(fleet=demo).exists():
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            nodes = list(Node.objects.filter(fleet=demo).exclude(reported_model_digest=""))
            if len(nodes) >= 2 or (nodes and time.monotonic() > deadline - wait / 2):
                break
            time.sleep(2)
        else:
            raise CommandError("no demo node reported a model in time; no rollout started")
        digest = nodes[0].reported_model_digest.removeprefix("sha256:")
        artifact = Artifact.objects.filter(sha256=digest).first()
        if artifact is None:
            raise CommandError("the demo node runs a model that is not in the registry")
        admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
        rollout = rollouts.do_start_rollout(
            demo,
            model={"name": artifact.name, "variant": artifact.variant, "n_ctx": 2048},
            waves=[1, "100%"],
            wave_wait_s=3 * demo.effective_poll_interval_s,  # every node polls in the window
            actor=admin,
        )
        self.stdout.write(
            f"Started rollout {rollout.pk}: {artifact.name} {artifact.variant} pinned, in 2 waves"
        )
        # Until it ends (its waves are judged by the task worker), so that nothing else keeps the
        # nodes busy meanwhile: a node applies a revision between requests.
        deadline = time.monotonic() + 10 * rollout.wave_wait_s
        while time.monotonic() < deadline:
            rollout.refresh_from_db()
            if rollout.status not in ("running", "paused"):
                break
            time.sleep(2)
        self.stdout.write(f"Rollout {rollout.pk}: {rollout.status} {rollout.reason}".rstrip())
