"""One list of signal timeframes (signals.timeframes): every door accepts exactly it,
and every candle timeframe the pipeline builds (a strategy's signal timeframe) is in it."""
from __future__ import annotations

from django.utils import timezone

from pipeline.aggregation import TIMEFRAMES as CANDLE_TIMEFRAMES
from signals.api.serializers import SignalCreateInputSerializer
from signals.forms import SignalAddForm
from signals.services import signal_validate
from signals.timeframes import SIGNAL_TIMEFRAMES


def test_it_offers_the_same_timeframes_at_every_door():
    assert list(SignalCreateInputSerializer().fields["timeframe"].choices) == list(SIGNAL_TIMEFRAMES)
    assert [value for value, _ in SignalAddForm.base_fields["timeframe"].choices] == list(SIGNAL_TIMEFRAMES)
    assert "timeframe" in signal_validate(timeframe="7m")
    assert all("timeframe" not in signal_validate(timeframe=t) for t in SIGNAL_TIMEFRAMES)


def test_it_accepts_every_candle_timeframe_in_signal_order():
    assert set(CANDLE_TIMEFRAMES) <= set(SIGNAL_TIMEFRAMES)
    assert sorted(CANDLE_TIMEFRAMES, key=SIGNAL_TIMEFRAMES.index) == list(CANDLE_TIMEFRAMES)
    opened = timezone.now()
    for timeframe in CANDLE_TIMEFRAMES:
        trigger = {"config_id": 1, "timeframe": timeframe, "candle_open_time": opened}
        assert "trigger" not in signal_validate(trigger=trigger)
