#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    from django.conf import settings
    from django.core.management import execute_from_command_line

    from controlplane.env import exit_on_bad_configuration

    # Bad configuration: one line naming the variable, exit status 2 (never a traceback).
    exit_on_bad_configuration(lambda: settings.INSTALLED_APPS)
    execute_from_command_line(sys.argv)
