"""The WSGI application of the messagecenter demo."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "messagecenter.settings")

application = get_wsgi_application()
