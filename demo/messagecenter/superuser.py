"""The demo's superuser: made on the first run, so that the admin opens with a known login."""

from __future__ import annotations

from django.contrib.auth import get_user_model

# A demo on one machine, reachable from localhost only (ALLOWED_HOSTS): never deploy it.
USERNAME = "demo"
PASSWORD = "demo"


def ensure_superuser() -> bool:
    """Create the demo's superuser unless a user of that name exists; return whether it did.

    An existing user is left as it is: a password changed in the admin stays changed.
    """
    users = get_user_model()._default_manager
    if users.filter(username=USERNAME).exists():
        return False
    users.create_superuser(username=USERNAME, email="", password=PASSWORD)
    return True


def login_line(site_url: str, admin_path: str) -> str:
    """How to log in to the admin, for the terminal."""
    return f"Admin: {site_url.rstrip('/')}{admin_path} user {USERNAME} / password {PASSWORD}"
