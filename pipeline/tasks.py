"""Celery tasks of the pipeline: thin doors onto plain functions (see their modules)."""
from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from pipeline.health_facts import health_check_record
from pipeline.outcomes import services as outcome_services
from pipeline.strategy_services import strategies_run


@shared_task(name="pipeline.tasks.feed_fallback_poll", ignore_result=True)
def feed_fallback_poll() -> dict:
    """Poll REST klines for symbols whose stream is down or stale (pipeline.feeds.fallback)."""
    from pipeline.feeds.fallback import fallback_poll_locked

    return fallback_poll_locked()


# Hours of 1m history the periodic gap repair checks (inside market sessions only).
GAP_REPAIR_HOURS = 6


@shared_task(name="pipeline.tasks.strategies_evaluate", ignore_result=True)
def strategies_evaluate(symbols: list[str] | None = None) -> dict:
    """Run the enabled strategy configs (of `symbols`, or all) on their new closed
    candles (pipeline.strategy_services). Enqueued by the feed as candles close; beat
    runs it as a safety net."""
    return strategies_run(symbols=symbols)


@shared_task(name="pipeline.tasks.candles_gap_repair", ignore_result=True)
def candles_gap_repair() -> dict:
    """Backfill missing 1m candles of open markets from REST (pipeline.services)."""
    from django.utils import timezone

    from pipeline.feeds.rest import BinanceRestClient
    from pipeline.services import candles_gap_repair as repair

    return repair(now=timezone.now(), hours=GAP_REPAIR_HOURS, fetch=BinanceRestClient.from_settings().klines)


@shared_task(name="pipeline.tasks.outcomes_expire_overdue", ignore_result=True)
def outcomes_expire_overdue() -> int:
    """Expire signals no feed process saw expire (pipeline.outcomes.services)."""
    return outcome_services.outcomes_expire_overdue(now=timezone.now())


@shared_task(name="pipeline.tasks.health_record", ignore_result=True)
def health_record() -> dict:
    """Score health, store a HealthSnapshot and push a `health` frame (pipeline.health_facts)."""
    return health_check_record()
