"""Named, expiring leases on upkeep that one worker at a time should do (retention): taken
and renewed by compare-and-set on the database clock, so a holder that dies lets it expire."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.db.models.functions import Now

from conveyor.models import Lease
from conveyor.store.core import EngineCore


class Leases(EngineCore):
    def take_lease(self, name: str, *, holder: str, duration: timedelta) -> bool:
        free = Q(expires_at__lte=Now()) | Q(holder=holder)
        if self._extend(name, free, holder, duration):
            return True
        leases = Lease.objects.using(self.using)
        if leases.filter(name=name).exists():
            return False
        # The first taker creates the row, already expired; a racing creator is ignored.
        self.retrying(lambda: leases.bulk_create([Lease(name=name)], ignore_conflicts=True))
        return self._extend(name, free, holder, duration)

    def renew_lease(self, name: str, *, holder: str, duration: timedelta) -> bool:
        held = Q(holder=holder, expires_at__gt=Now())
        return self._extend(name, held, holder, duration)

    def _extend(self, name: str, condition: Q, holder: str, duration: timedelta) -> bool:
        rows = Lease.objects.using(self.using).filter(condition, name=name)
        updated: int = self.retrying(
            lambda: rows.update(holder=holder, expires_at=Now() + duration)
        )
        return updated == 1
