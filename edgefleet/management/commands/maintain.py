import time

from django.core.management.base import BaseCommand

from controlplane.accounts import guesses
from controlplane.accounts.auth import purge_failures
from controlplane.audit import anchors
from controlplane.audit import services as audit
from controlplane.nodes import services
from controlplane.nodes.metrics import maintain
from controlplane.registry import uploads
from controlplane.rollouts import services as rollouts


def run_once() -> dict[str, int]:
    """Everything periodic: metric rollups and retention of every data class, a check of running
    rollouts (a backstop for their task), a signed audit checkpoint when the last one is older
    than the interval, and every checkpoint not anchored yet anchored (docs/compliance.md)."""
    result = maintain()
    result["events_purged"] = services.purge_events()
    result["login_failures_purged"] = purge_failures()
    result["token_failures_purged"] = guesses.purge()
    result["uploads_purged"] = uploads.purge()
    result["rollouts_checked"] = rollouts.check_running()
    result["audit_sealed"] = audit.seal_pending()
    result["audit_sources_forgotten"] = audit.forget_sources()
    result["audit_purged"] = audit.purge()
    cp = audit.checkpoint()
    result["audit_checkpoint"] = cp.seq if cp else 0
    done = anchors.anchor_pending()
    result["audit_anchored"], result["audit_anchor_sent"] = done["anchored"], done["sent"]
    return result


class Command(BaseCommand):
    help = (
        "Periodic upkeep: roll metrics up, purge every data class past its retention, sign an "
        "audit checkpoint when due and anchor what is not anchored yet (once, or every N seconds)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--every", type=int, default=0, help="repeat every N seconds (0 = once)"
        )

    def handle(self, *args, every: int = 0, **options):
        while True:
            result = run_once()
            if options["verbosity"] > 1 or not every:
                self.stdout.write(" ".join(f"{k}={v}" for k, v in result.items()))
            if not every:
                return
            # Between runs, chain audit records left pending by concurrent writers, every second.
            until = time.monotonic() + every
            while time.monotonic() < until:
                time.sleep(1)
                audit.seal_pending()
