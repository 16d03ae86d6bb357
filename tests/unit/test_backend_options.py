from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from conveyor.backend import DatabaseBackend


def test_an_alias_longer_than_the_stored_column_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="is longer than 32 characters"):
        DatabaseBackend("a" * 33, {"QUEUES": ["default"]})


def test_options_are_parsed_when_the_backend_is_built() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"TASKS\['jobs'\] OPTIONS: unknown option"):
        DatabaseBackend("jobs", {"OPTIONS": {"retries": 3}})
    backend = DatabaseBackend("jobs", {"OPTIONS": {"max_attempts": 4}})
    assert backend.config.default_policy.max_attempts == 4
