from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from controlplane.errors import ServiceError
from controlplane.registry.services import do_register_artifact


class Command(BaseCommand):
    help = "Register a GGUF model file in the registry (metadata, sha256, signed manifest)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="a .gguf file")
        parser.add_argument("--name", default="", help="model name (default: the file's own)")

    def handle(self, *args, path: str, name: str, **options):
        p = Path(path)
        if not p.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            a = do_register_artifact(p, name=name, actor=None)
        except ServiceError as exc:
            raise CommandError(f"{path}: {exc.message}") from None
        self.stdout.write(
            f"registered {a.name}:{a.variant} ({a.architecture}, {a.parameters:,} parameters, "
            f"{a.bits_per_weight:.2f} bits/weight, {a.size:,} bytes) sha256 {a.sha256}"
        )
