"""TASKS[alias]["OPTIONS"], parsed once into frozen dataclasses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from conveyor import durations, task_options
from conveyor.schedules import Schedule, ScheduleError, parse_schedules

DEFAULT_MAX_ATTEMPTS = 1
DEFAULT_BACKOFF_FACTOR = 2.0
DEFAULT_MAX_SNOOZES = 100
DEFAULT_HEARTBEAT_INTERVAL = timedelta(seconds=10)
DEFAULT_WORKER_TIMEOUT = timedelta(seconds=60)

_OPTION_KEYS = frozenset(
    {
        "max_attempts",
        "backoff_factor",
        "backoff",
        "timeout",
        "max_snoozes",
        "queues",
        "purge",
        "heartbeat_interval",
        "worker_timeout",
        "periodic",
    }
)
_POLICY_KEYS = frozenset(
    {"max_attempts", "backoff_factor", "backoff", "timeout", "max_snoozes", "concurrency"}
)
_PURGE_KEYS = frozenset({"finished", "unfinished", "automatic"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a queue's tasks are attempted: how often, how long a retry waits (`backoff`, a
    callable `(exception, task_result)`, or else `backoff_factor ** attempts` seconds), and
    how long one attempt may run (`timeout`, None: as long as it takes), and how often a
    task may snooze (conveyor.Snooze) before a snooze counts as a failure (`max_snoozes`)."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR
    backoff: Callable[..., Any] | None = None
    timeout: timedelta | None = None
    max_snoozes: int = DEFAULT_MAX_SNOOZES
    # At most this many of the queue's tasks hold a slot at once (queues only; a task's own
    # `concurrency` option takes precedence).
    concurrency: int | None = None

    def retry_delay(self, attempts: int) -> timedelta | None:
        """Return how long to wait after `attempts` failed attempts by `backoff_factor`, or
        None to give up."""
        if attempts >= self.max_attempts:
            return None
        return timedelta(seconds=self.backoff_factor**attempts)


@dataclass(frozen=True, slots=True)
class PurgePolicy:
    """How old results get before they are deleted."""

    finished: timedelta | None = None
    unfinished: timedelta | None = None
    automatic: bool = False


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """Everything a DatabaseBackend reads from its OPTIONS."""

    default_policy: RetryPolicy = RetryPolicy()
    queue_policies: Mapping[str, RetryPolicy] = field(default_factory=dict)
    purge: PurgePolicy = PurgePolicy()
    heartbeat_interval: timedelta = DEFAULT_HEARTBEAT_INTERVAL
    worker_timeout: timedelta = DEFAULT_WORKER_TIMEOUT
    # OPTIONS["periodic"]: schedules by name.
    periodic: Mapping[str, Schedule] = field(default_factory=dict)

    def policy(self, queue_name: str) -> RetryPolicy:
        """Return the retry policy of one queue."""
        return self.queue_policies.get(queue_name, self.default_policy)


class _Parser:
    """Reads one backend's OPTIONS; every error names the alias and the key."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def error(self, where: str, message: str) -> ImproperlyConfigured:
        place = f" {where}" if where else ""
        return ImproperlyConfigured(f"TASKS[{self.alias!r}] OPTIONS{place}: {message}")

    def mapping(
        self, where: str, value: object, allowed: frozenset[str] | None
    ) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(where, f"must be a dict, got {type(value).__name__}")
        for key in value:
            if allowed is not None and key not in allowed:
                raise self.error(
                    where, f"unknown option {key!r} (expected one of {', '.join(sorted(allowed))})"
                )
        return value

    def max_attempts(self, where: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(where, f"max_attempts must be an integer >= 1, got {value!r}")
        return value

    def max_snoozes(self, where: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(where, f"max_snoozes must be an integer >= 0, got {value!r}")
        return value

    def backoff_factor(self, where: str, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.error(where, f"backoff_factor must be a number >= 0, got {value!r}")
        return float(value)

    def duration(self, where: str, value: object) -> timedelta:
        try:
            return durations.parse(value)
        except ValueError as exc:
            raise self.error(where, str(exc)) from exc

    def task_option(self, where: str, key: str, value: object) -> Any:
        """A value that @task also takes, checked by the task option's own parser."""
        try:
            return task_options.OPTION_PARSERS[key](value)
        except (TypeError, ValueError) as exc:
            raise self.error(where, f"{key} {exc}") from None

    def policy(self, where: str, value: Mapping[str, Any], base: RetryPolicy) -> RetryPolicy:
        # A queue that sets its own backoff_factor means it: an inherited backoff callable
        # does not override it.
        backoff = None if "backoff_factor" in value else base.backoff
        if value.get("backoff") is not None:
            backoff = self.task_option(where, "backoff", value["backoff"])
        timeout = base.timeout
        if "timeout" in value:
            given = value["timeout"]
            timeout = None if given is None else self.task_option(where, "timeout", given)
        return RetryPolicy(
            max_attempts=self.max_attempts(where, value.get("max_attempts", base.max_attempts)),
            backoff_factor=self.backoff_factor(
                where, value.get("backoff_factor", base.backoff_factor)
            ),
            backoff=backoff,
            timeout=timeout,
            max_snoozes=self.max_snoozes(where, value.get("max_snoozes", base.max_snoozes)),
            concurrency=self.concurrency(where, value.get("concurrency")),
        )

    def concurrency(self, where: str, value: object) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(where, f"concurrency must be an integer >= 1, got {value!r}")
        return value

    def queue_policies(
        self, value: object, base: RetryPolicy, queues: frozenset[str]
    ) -> dict[str, RetryPolicy]:
        policies = {}
        for name, overrides in self.mapping("queues", value, None).items():
            where = f"queues[{name!r}]"
            if queues and name not in queues:
                raise self.error(where, f"queue is not in QUEUES ({', '.join(sorted(queues))})")
            policies[name] = self.policy(where, self.mapping(where, overrides, _POLICY_KEYS), base)
        return policies

    def purge(self, value: object) -> PurgePolicy:
        purge = self.mapping("purge", value, _PURGE_KEYS)
        automatic = purge.get("automatic", False)
        if not isinstance(automatic, bool):
            raise self.error("purge['automatic']", f"must be True or False, got {automatic!r}")
        finished, unfinished = (
            self.duration(f"purge[{key!r}]", purge[key]) if key in purge else None
            for key in ("finished", "unfinished")
        )
        if automatic and finished is None and unfinished is None:
            raise self.error("purge['automatic']", "needs 'finished' or 'unfinished' cut-offs")
        return PurgePolicy(finished=finished, unfinished=unfinished, automatic=automatic)

    def periodic(self, value: object, queues: frozenset[str]) -> dict[str, Schedule]:
        try:
            schedules = parse_schedules(value, where="periodic")
        except ScheduleError as exc:
            raise self.error(exc.where, exc.message) from None
        for name, schedule in schedules.items():
            if queues and schedule.queue_name is not None and schedule.queue_name not in queues:
                raise self.error(
                    f"periodic[{name!r}]['queue_name']",
                    f"queue is not in QUEUES ({', '.join(sorted(queues))})",
                )
        return schedules


def parse_options(alias: str, options: object, queues: frozenset[str]) -> BackendOptions:
    """Validate a backend's OPTIONS; raise ImproperlyConfigured naming the faulty key."""
    parser = _Parser(alias)
    raw = parser.mapping("", options or {}, _OPTION_KEYS)
    default = parser.policy("", raw, RetryPolicy())
    heartbeat = parser.duration(
        "heartbeat_interval", raw.get("heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL)
    )
    timeout = parser.duration("worker_timeout", raw.get("worker_timeout", DEFAULT_WORKER_TIMEOUT))
    if heartbeat <= timedelta(0):
        raise parser.error("heartbeat_interval", "must be longer than zero")
    if timeout <= heartbeat:
        raise parser.error(
            "worker_timeout",
            f"must be longer than heartbeat_interval "
            f"({durations.describe(timeout)} <= {durations.describe(heartbeat)})",
        )
    return BackendOptions(
        default_policy=default,
        queue_policies=parser.queue_policies(raw.get("queues", {}), default, queues),
        purge=parser.purge(raw.get("purge", {})),
        heartbeat_interval=heartbeat,
        worker_timeout=timeout,
        periodic=parser.periodic(raw.get("periodic", {}), queues),
    )
