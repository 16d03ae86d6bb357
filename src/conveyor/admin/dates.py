"""A date drill-down for the task changelist that stays cheap on big tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Max, Min, QuerySet
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _


def date_drilldown(cl: Any) -> dict[str, Any]:
    """The context of admin/date_hierarchy.html, from the first and last dates of the whole
    table within the selected period: two index reads, whatever the filters.

    Django's own drill-down reads the bounds and the distinct periods of the filtered rows; on
    a big table a filter that matches few rows makes it read nearly every row. This one may
    offer a period in which the filtered rows have none.
    """
    field = cl.date_hierarchy
    selected = [cl.params.get(f"{field}__{kind}") for kind in ("year", "month", "day")]
    year, month, day = (int(str(value)) if value else None for value in selected)

    def link(**lookups: int) -> str:
        filters = {f"{field}__{kind}": value for kind, value in lookups.items()}
        return str(cl.get_query_string(filters, [f"{field}__"]))

    base = {"show": True, "field_name": cl.model._meta.get_field(field).verbose_name}
    if year and month and day:
        date = datetime(year, month, day)
        month_title = capfirst(formats.date_format(date, "YEAR_MONTH_FORMAT"))
        title = capfirst(formats.date_format(date, "MONTH_DAY_FORMAT"))
        back = {"link": link(year=year, month=month), "title": month_title}
        return {**base, "back": back, "choices": [{"title": title}]}
    bounds = _bounds(cl.root_queryset, field, year, month)
    if bounds is None:
        return {"show": False}
    first, last = bounds
    if not year and first.year == last.year:
        year = first.year
        month = first.month if first.month == last.month else None
    if year and month:
        back = {"link": link(year=year), "title": str(year)}
        days = _periods(first, last, "day")
        choices = [
            {
                "link": link(year=year, month=month, day=d.day),
                "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
            }
            for d in days
        ]
        return {**base, "back": back, "choices": choices}
    if year:
        choices = [
            {
                "link": link(year=year, month=m.month),
                "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT")),
            }
            for m in _periods(first, last, "month")
        ]
        return {**base, "back": {"link": link(), "title": _("All dates")}, "choices": choices}
    years = _periods(first, last, "year")
    choices = [{"link": link(year=y.year), "title": str(y.year)} for y in years]
    return {**base, "back": None, "choices": choices}


def _bounds(
    queryset: QuerySet[Any], field: str, year: int | None, month: int | None
) -> tuple[datetime, datetime] | None:
    """The first and last value of a date field within the selected year or month."""
    if year:
        start = datetime(year, month or 1, 1)
        end = _next(start, "month" if month else "year")
        if settings.USE_TZ:
            start, end = timezone.make_aware(start), timezone.make_aware(end)
        queryset = queryset.filter(**{f"{field}__gte": start, f"{field}__lt": end})
    found = queryset.aggregate(first=Min(field), last=Max(field))
    if found["first"] is None:
        return None
    return _local(found["first"]), _local(found["last"])


def _local(value: datetime) -> datetime:
    return timezone.localtime(value) if settings.USE_TZ else value


def _periods(first: datetime, last: datetime, kind: str) -> list[datetime]:
    """Every year, month or day from the one of `first` to the one of `last`."""
    periods, current = [], _truncate(first, kind)
    while current <= last:
        periods.append(current)
        current = _next(current, kind)
    return periods


def _truncate(value: datetime, kind: str) -> datetime:
    start = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "day":
        return start
    if kind == "month":
        return start.replace(day=1)
    return start.replace(month=1, day=1)


def _next(value: datetime, kind: str) -> datetime:
    # Wall-clock arithmetic in the value's own zone: midnights stay midnights across DST.
    if kind == "year":
        return value.replace(year=value.year + 1)
    if kind == "month":
        carry, month = divmod(value.month, 12)
        return value.replace(year=value.year + carry, month=month + 1)
    following = datetime.fromordinal(value.toordinal() + 1)
    return following.replace(tzinfo=value.tzinfo)
