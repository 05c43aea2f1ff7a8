"""Celery beat schedule of the pipeline (settings imports it as CELERY_BEAT_SCHEDULE).

A plain dict with no Django imports on purpose: settings.py loads this module
while Django is still configuring itself. django-celery-beat copies the entries
into its tables when beat starts.
"""

BEAT_SCHEDULE: dict[str, dict] = {
    # Streams that are down or stale during their session are polled over REST until
    # they are healthy again (pipeline.feeds.fallback). `expires` drops a run that
    # waited in the queue past the next one instead of piling them up.
    "feed-fallback-poll": {
        "task": "pipeline.tasks.feed_fallback_poll",
        "schedule": 10.0,
        "options": {"expires": 9.0},
    },
    # Strategies run on closed candles as soon as the feed rings (pipeline.candle_close_watch);
    # this catches up whatever a lost ring missed.
    "strategies-evaluate": {
        "task": "pipeline.tasks.strategies_evaluate",
        "schedule": 30.0,
        "options": {"expires": 25.0},
    },
    # Missing 1m candles of open markets (an outage longer than the fallback covered, a
    # crash) are found and refilled from REST klines; upserts make a rerun harmless.
    "candles-gap-repair": {
        "task": "pipeline.tasks.candles_gap_repair",
        "schedule": 300.0,
        "options": {"expires": 290.0},
    },
    # The feed's outcome tracker expires signals within seconds; this decides those
    # whose expiry passed while no feed ran (candles first, then the expiry).
    "outcomes-expire-overdue": {
        "task": "pipeline.tasks.outcomes_expire_overdue",
        "schedule": 60.0,
        "options": {"expires": 55.0},
    },
    # The health score (pipeline.health): stored as a HealthSnapshot and pushed to
    # dashboards as a `health` frame.
    "health-record": {
        "task": "pipeline.tasks.health_record",
        "schedule": 30.0,
        "options": {"expires": 29.0},
    },
}
