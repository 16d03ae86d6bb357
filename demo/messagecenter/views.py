"""The one page: a form that sends a notification, and the results of every one sent."""

from __future__ import annotations

import logging
from itertools import islice
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResult, TaskResultDoesNotExist
from messagecenter.forms import MessageForm
from messagecenter.ntfy import Subscription
from messagecenter.rows import Row, rows_of
from messagecenter.tasks import broadcast, send_notification

logger = logging.getLogger(__name__)

TEMPLATE = "messagecenter/page.html"
RESULTS_SHOWN = 50
# htmx's own status code for "swap this, then stop polling".
HTMX_STOP_POLLING = 286
UNPROCESSABLE = 422
# The tasks whose results the page lists.
SHOWN_TASKS = frozenset({send_notification.module_path, broadcast.module_path})


class SeeOther(HttpResponseRedirect):
    """Redirect a POST to a GET page, whatever the browser."""

    status_code = 303


@require_GET
def page(request: HttpRequest) -> HttpResponse:
    return render_page(request, MessageForm())


@require_POST
def send(request: HttpRequest) -> HttpResponse:
    """Enqueue a notification; htmx gets the new row, a plain form post a redirect."""
    form = MessageForm(request.POST)
    if not form.is_valid():
        return rejected(request, form)
    message, title = form.cleaned_data["message"], form.cleaned_data["title"]
    others = form.cleaned_data["topics"]
    result: TaskResult[..., Any]
    if others:
        own = Subscription.of(settings.NTFY_URL).topic
        topics = [own, *(topic for topic in others if topic != own)]
        result = broadcast.enqueue(message=message, topics=topics, title=title)
    else:
        result = send_notification.enqueue(message=message, title=title)
    logger.info("Notification enqueued id=%s", result.id)
    if not is_htmx(request):
        return SeeOther(reverse("page"))
    [row] = rows_of([result])
    return render(request, f"{TEMPLATE}#update", {"row": row}, status=201)


@require_GET
def result(request: HttpRequest, result_id: str) -> HttpResponse:
    """One row for htmx to poll: 204 while it looks as `seen` says, 286 once it is finished."""
    try:
        found = demo_backend().get_result(result_id)
    except TaskResultDoesNotExist:
        found = None
    if found is None or found.task.module_path not in SHOWN_TASKS:
        raise Http404(f"No notification has the id {result_id!r}.")
    [row] = rows_of([found])
    if row.finished:
        return render(request, f"{TEMPLATE}#update", {"row": row}, status=HTMX_STOP_POLLING)
    if request.GET.get("seen") == row.state:
        return HttpResponse(status=204)
    return render(request, f"{TEMPLATE}#update", {"row": row})


def rejected(request: HttpRequest, form: MessageForm) -> HttpResponse:
    """Show the form again with its errors; htmx swaps only the form."""
    if not is_htmx(request):
        return render_page(request, form, status=UNPROCESSABLE)
    response = render(request, f"{TEMPLATE}#send_form", {"form": form}, status=UNPROCESSABLE)
    response["HX-Retarget"] = "#send-form"
    response["HX-Reswap"] = "outerHTML"
    return response


def render_page(request: HttpRequest, form: MessageForm, *, status: int = 200) -> HttpResponse:
    context = {
        "form": form,
        "rows": recent_rows(),
        "subscription": Subscription.of(settings.NTFY_URL),
    }
    return render(request, TEMPLATE, context, status=status)


def recent_rows() -> list[Row]:
    """The newest results of send_notification and broadcast, newest first."""
    backend = demo_backend()
    found: list[TaskResult[..., Any]] = [
        *islice(backend.get_results(send_notification), RESULTS_SHOWN),
        *islice(backend.get_results(broadcast), RESULTS_SHOWN),
    ]
    found.sort(key=lambda r: (r.enqueued_at, int(r.id)), reverse=True)
    return rows_of(found[:RESULTS_SHOWN])


def demo_backend() -> DatabaseBackend:
    backend = send_notification.get_backend()
    if not isinstance(backend, DatabaseBackend):
        raise ImproperlyConfigured("messagecenter needs TASKS['default'] to be conveyor's backend")
    return backend


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"
