"""The Celery app: `celery -A nova worker` and `celery -A nova beat`."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nova.settings")

app = Celery("nova")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
