"""Fixtures of the operations tests: admin users with and without the change permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client


@pytest.fixture
def admin_client_as_superuser(db: None) -> Client:
    user = User.objects.create_superuser("root", "root@example.com", None)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer(db: None) -> User:
    """A staff user who may view tasks and workers, but not change or delete them."""
    user = User.objects.create_user("viewer", "viewer@example.com", None, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="conveyor",
            codename__in=["view_taskrecord", "view_workerrecord"],
        )
    )
    return user


@pytest.fixture
def viewer_client(viewer: User) -> Client:
    client = Client()
    client.force_login(viewer)
    return client
