"""Create the demo admin and a demo fleet once; later runs keep existing data."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from edgenodes import services
from edgenodes.models import Fleet


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
        if not Fleet.objects.filter(slug=fleet).exists():
            services.do_create_fleet(
                user, slug=fleet, name="Demo fleet", description="Created by make run"
            )
