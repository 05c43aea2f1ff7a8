"""Celery doors for the signals app (thin wrappers over plain functions)."""
from celery import shared_task

from pipeline.health import health_snapshot

from .broadcast import health_broadcast


@shared_task(name="signals.health_publish", ignore_result=True)
def health_publish() -> dict:
    """Score health now and push it to every dashboard as a `health` frame."""
    snapshot = health_snapshot()
    health_broadcast(snapshot)
    return snapshot
