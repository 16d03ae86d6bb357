from __future__ import annotations

from django.contrib import admin
from django.urls import path

from messagecenter import views

urlpatterns = [
    path("", views.page, name="page"),
    path("messages/", views.send, name="send"),
    path("messages/<str:result_id>/", views.result, name="result"),
    path("admin/", admin.site.urls),
]
