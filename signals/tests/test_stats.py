"""/api/stats/ against hand-counted fixtures (docs/methodology.md's rules), the
summary tables kept by every write equal a full rebuild, and the query count stays
flat however many signals exist."""
from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from signals.models import SourceDayLegStats, SourceDayStats
from signals.services import signal_create, signal_event_create, signal_outcome_close, signal_outcome_progress
from signals.services.stats import stats_rebuild
from signals.stats import stats_by_source

pytestmark = pytest.mark.django_db
LADDER = [{"price": "110", "portion": "0.5"}, {"price": "120", "portion": "0.5"}]


def _signal(source="alpha", **overrides):
    fields = dict(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90", take_profit="120",
                  confidence=60, source=source)
    fields.update(overrides)
    return signal_create(**fields).signal


@pytest.fixture
def counted(instruments, staff_user):
    """alpha: tp_hit +2, sl_hit -1, ladder (target 1 then stopped at entry) +0.5, cancelled,
    open, and one expired -0.2 created 40 days ago; beta: closed by its publisher at 0."""
    now = timezone.now()
    signal_outcome_close(signal_id=_signal().pk, status="tp_hit", exit_price="120")
    signal_outcome_close(signal_id=_signal().pk, status="sl_hit", exit_price="90")
    ladder = _signal(take_profit=None, targets=LADDER, stop_rule={"type": "breakeven", "after_target": 1})
    legs = [{"target": "110", "portion": "0.5", "status": "tp_hit", "closed_at": now, "exit_price": "110", "r": "1"},
            {"target": "120", "portion": "0.5", "status": "sl_hit", "closed_at": now, "exit_price": "100", "r": "0"}]
    signal_outcome_progress(signal_id=ladder.pk, legs=legs, stop_price="100", evaluated_until=now, state={},
                            mfe_r="1.5", mae_r="0.3", status="sl_hit", closed_at=now, exit_price="100",
                            r_multiple="0.5")
    signal_event_create(signal_id=_signal(created_by=staff_user).pk, event_type="cancel", created_by=staff_user)
    _signal()
    old = _signal(created_at=now - dt.timedelta(days=40))
    signal_outcome_close(signal_id=old.pk, status="expired", exit_price="98")
    beta = _signal(source="beta")
    signal_outcome_progress(signal_id=beta.pk, legs=[{**legs[1], "status": "closed", "r": "0"}], stop_price="90",
                            evaluated_until=now, state={}, mfe_r="0.2", mae_r="0.1", status="closed",
                            closed_at=now, exit_price="100", r_multiple="0")
    return now


def test_it_counts_each_source_by_the_published_method(staff_client, counted):
    body = staff_client.get("/api/stats/?days=30").json()
    assert body["days"] == 30
    alpha = body["per_source"]["alpha"]
    assert alpha["all_time"] == {
        "signals": 6, "open": 1, "closed": 4, "wins": 2, "losses": 2, "breakeven": 0, "expired": 1,
        "cancelled": 1, "win_rate": 0.5, "avg_r": 0.325, "avg_mfe_r": 1.5, "avg_mae_r": 0.3,
        "legs": [{"target": 1, "eligible": 4, "reached": 2, "reached_share": 0.5, "avg_r": 0.45},
                 {"target": 2, "eligible": 1, "reached": 0, "reached_share": 0.0, "avg_r": 0.0}]}
    recent = alpha["last_days"]
    assert (recent["signals"], recent["closed"], recent["wins"], recent["losses"], recent["expired"]) == (5, 3, 2, 1, 0)
    assert (recent["win_rate"], recent["avg_r"]) == (0.6667, 0.5)
    beta = body["per_source"]["beta"]["all_time"]
    assert (beta["closed"], beta["breakeven"], beta["win_rate"], beta["avg_r"]) == (1, 1, 0.0, 0.0)
    assert body["win_rate_by_source"]["alpha"] == {"wins": 2, "losses": 2, "open": 1, "win_rate": 0.5}


def test_it_keeps_the_24h_counts(staff_client, counted):
    body = staff_client.get("/api/stats/").json()
    assert body["days"] == 30
    assert body["signals"]["by_source"] == {"alpha": 5, "beta": 1}
    assert body["triggers"]["total"] == 6 and isinstance(body["market_updates"]["total"], int)


def test_it_matches_a_full_rebuild(counted):
    before = stats_by_source(days=30)
    kept = sorted(SourceDayStats.objects.values_list("source", "day", "signals", "closed", "r_sum"))
    assert stats_rebuild() == 7
    assert sorted(SourceDayStats.objects.values_list("source", "day", "signals", "closed", "r_sum")) == kept
    assert SourceDayLegStats.objects.filter(source="alpha").count() == 3  # target 1 on two days, target 2
    assert stats_by_source(days=30) == before


def test_it_reads_the_summary_not_the_signals(counted):
    for _ in range(20):
        _signal(source="gamma")
    with CaptureQueriesContext(connection) as queries:
        stats_by_source(days=7)
    assert len(queries) == 4
    assert not any("signals_signal\"" in q["sql"] or "signals_signal " in q["sql"] for q in queries.captured_queries)


@pytest.mark.parametrize("days", ["0", "-1", "abc", "3651"])
def test_it_answers_a_bad_days_with_400(staff_client, db, days):
    response = staff_client.get(f"/api/stats/?days={days}")
    assert response.status_code == 400 and list(response.json()) == ["days"]


def test_it_does_not_count_a_rolled_back_signal(instruments):
    from django.db import transaction

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            _signal(source="ghost")
            raise RuntimeError("rollback")
    assert not SourceDayStats.objects.filter(source="ghost").exists()
