from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "controlplane.accounts"
    label = "accounts"
    verbose_name = "Accounts and access"

    def ready(self) -> None:
        from . import (
            auth,  # noqa: F401  (signal receivers: login failures, session timeout)
            services,  # noqa: F401  (signal receivers: logouts and accounts, live access)
        )
