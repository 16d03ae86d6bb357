"""Metrics and tracing are optional: without their packages nothing imports them, and the
hooks do nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

WITHOUT_EXTRAS = textwrap.dedent(
    """
    import sys
    # As if neither extra were installed: any import of them fails.
    sys.modules["prometheus_client"] = None
    sys.modules["opentelemetry"] = None
    import django
    django.setup()
    from conveyor.compat import TaskResultStatus
    from conveyor import observe
    import conveyor.admin, conveyor.backend, conveyor.meta, conveyor.worker.build
    import conveyor.management.commands.conveyor_worker
    from tests.tasksapp.tasks import add
    assert observe.metrics() is None and observe.tracing() is None
    assert observe.enqueued_metadata(add, None) is None
    assert observe.enqueued_metadata(add, {"a": 1}) == {"a": 1}
    with observe.attempt(object()) as observed:
        assert observed is observe.NOTHING
    print("ok")
    """
)


def test_without_the_extras_nothing_imports_them_and_the_hooks_do_nothing() -> None:
    path = os.pathsep.join([str(ROOT), str(ROOT / "demo")])
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


def test_the_settings_turn_an_installed_extra_off(settings: object) -> None:
    from conveyor import observe

    observe.reset()
    try:
        assert observe.metrics() is not None
        assert observe.tracing() is not None
        settings.CONVEYOR_METRICS = False  # type: ignore[attr-defined]
        settings.CONVEYOR_TRACING = False  # type: ignore[attr-defined]
        observe.reset()
        assert observe.metrics() is None
        assert observe.tracing() is None
    finally:
        observe.reset()
