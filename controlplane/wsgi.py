import os

from django.core.wsgi import get_wsgi_application

from controlplane.env import exit_on_bad_configuration

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
application = exit_on_bad_configuration(get_wsgi_application)
