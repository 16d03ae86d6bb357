"""The worker registry: rows that live workers keep fresh with heartbeats."""

from __future__ import annotations

from django.db.models import QuerySet
from django.db.models.functions import Now

from conveyor.exceptions import WorkerIdInUse
from conveyor.models import WorkerRecord
from conveyor.store.recovery import Recovery
from conveyor.store.values import QueueFilter


class Registry(Recovery):
    def worker_rows(self) -> QuerySet[WorkerRecord]:
        return WorkerRecord.objects.using(self.using)

    def register_worker(
        self,
        *,
        worker_id: str,
        host: str,
        pid: int,
        queues: QueueFilter,
        take_over: bool = False,
    ) -> None:
        existing = self.worker_rows().filter(worker_id=worker_id)
        fresh = existing.filter(last_heartbeat_at__gte=Now() - self.options.worker_timeout)
        if not take_over and (owner := fresh.values("host", "pid", "last_heartbeat_at").first()):
            raise WorkerIdInUse(
                f"Worker id {worker_id!r} is in use by a live worker (host {owner['host']}, "
                f"pid {owner['pid']}, last heartbeat {owner['last_heartbeat_at'].isoformat()})"
            )
        if existing.exists():
            # An earlier process under this id died: its tasks are lost, not ours.
            self.recover_lost(recovered_by=worker_id, only=worker_id)

        def register() -> None:
            with self.write_transaction():
                existing.delete()
                self.worker_rows().create(
                    worker_id=worker_id,
                    backend_name=self.backend_name,
                    host=host,
                    pid=pid,
                    queues=queues.served(),
                    excluded_queues=queues.excluded(),
                )

        self.retrying(register)

    def heartbeat(self, worker_id: str) -> bool:
        row = self.worker_rows().filter(worker_id=worker_id)
        return bool(self.retrying(lambda: row.update(last_heartbeat_at=Now())))

    def report_stuck(self, worker_id: str, stuck_threads: int) -> None:
        row = self.worker_rows().filter(worker_id=worker_id)
        self.retrying(lambda: row.update(stuck_threads=stuck_threads))

    def deregister_worker(self, worker_id: str) -> None:
        self.retrying(lambda: self.worker_rows().filter(worker_id=worker_id).delete())

    def worker(self, worker_id: str) -> WorkerRecord | None:
        return self.worker_rows().filter(worker_id=worker_id).first()

    def workers(self) -> list[WorkerRecord]:
        return list(self.worker_rows().filter(backend_name=self.backend_name).order_by("worker_id"))
