import time

from django.core.management.base import BaseCommand

from edgenodes.metrics import maintain


class Command(BaseCommand):
    help = "Roll metric samples up per minute and purge what is past retention (once, or every N seconds)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--every", type=int, default=0, help="repeat every N seconds (0 = once)"
        )

    def handle(self, *args, every: int = 0, **options):
        while True:
            result = maintain()
            if options["verbosity"] > 1 or not every:
                self.stdout.write(" ".join(f"{k}={v}" for k, v in result.items()))
            if not every:
                return
            time.sleep(every)
