"""Celery app: the worker and beat processes run pipeline tasks (see pipeline/tasks.py)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signals_project.settings")

app = Celery("signals_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
