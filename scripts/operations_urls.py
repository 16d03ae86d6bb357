from __future__ import annotations

from django.contrib import admin
from django.urls import path

from scripts.operations_plain_admin import plain_site

urlpatterns = [path("admin/", admin.site.urls), path("plain-admin/", plain_site.urls)]
