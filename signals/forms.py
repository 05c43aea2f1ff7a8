"""Admin input forms: they parse types with the one price rule; the service judges
the values (`signal_validate` puts its field errors on the form, so one round shows
every problem)."""
from __future__ import annotations

from typing import Any

from django import forms

from .models import EventType, Instrument, Signal, StopRuleType
from .prices import PriceError, decimal_parse, price_parse
from .services import signal_validate
from .timeframes import DEFAULT_SIGNAL_TIMEFRAME, SIGNAL_TIMEFRAMES


class PriceFormField(forms.CharField):
    """A price parsed by the one price rule (signals.prices)."""

    def clean(self, value):
        value = super().clean(value)
        if value in self.empty_values:
            return None
        try:
            return price_parse(value.strip())
        except PriceError as exc:
            raise forms.ValidationError(str(exc)) from None


def _targets_parse(text: str) -> list[dict[str, Any]] | None:
    """'110:0.5, 120:0.5' -> [{"price", "portion"}] (types only; the service judges)."""
    if not text.strip():
        return None
    targets = []
    for number, item in enumerate(text.split(","), start=1):
        price, sep, portion = item.partition(":")
        if not sep:
            raise forms.ValidationError(f"Target {number}: write price:portion, e.g. 110:0.5.")
        try:
            targets.append({"price": price_parse(price.strip()), "portion": decimal_parse(portion.strip())})
        except PriceError as exc:
            raise forms.ValidationError(f"Target {number}: {exc}") from None
    return targets


class SignalAddForm(forms.ModelForm):
    entry_price = PriceFormField()
    stop_loss = PriceFormField()
    take_profit = PriceFormField(required=False, help_text="Leave empty when targets are given.")
    timeframe = forms.ChoiceField(choices=[(t, t) for t in SIGNAL_TIMEFRAMES], initial=DEFAULT_SIGNAL_TIMEFRAME)
    targets = forms.CharField(required=False, help_text="Optional ladder, nearest first: price:portion, ... "
                              "(portions add up to 1), e.g. 110:0.5, 120:0.3, 130:0.2")
    stop_rule = forms.ChoiceField(choices=StopRuleType.choices, initial=StopRuleType.FIXED, required=False)
    stop_after_target = forms.IntegerField(required=False, min_value=1, help_text="breakeven: after target k")
    stop_distance_pct = forms.CharField(required=False, help_text="trailing: distance in percent (0-50]")

    class Meta:
        model = Signal
        fields = ["instrument", "direction", "entry_price", "stop_loss", "take_profit", "targets", "stop_rule",
                  "stop_after_target", "stop_distance_pct", "confidence", "timeframe", "source", "note",
                  "expires_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instrument"].queryset = Instrument.objects.filter(active=True)
        self.fields["source"].initial = "manual"

    def _post_clean(self):
        # Skip ModelForm's instance construction/validation: the service is the judge.
        pass

    def clean_targets(self):
        return _targets_parse(self.cleaned_data.get("targets") or "")

    def _stop_rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"type": self.cleaned_data.get("stop_rule") or StopRuleType.FIXED}
        if rule["type"] == StopRuleType.BREAKEVEN:
            rule["after_target"] = self.cleaned_data.get("stop_after_target")
        elif rule["type"] == StopRuleType.TRAILING:
            rule["distance_pct"] = self.cleaned_data.get("stop_distance_pct") or None
        return rule

    def clean(self):
        cleaned = super().clean()
        parsed = {name: cleaned[name] for name in ("direction", "entry_price", "stop_loss", "take_profit",
                                                    "confidence", "timeframe", "expires_at", "targets")
                  if name in cleaned}
        if cleaned.get("instrument") is not None:
            parsed["symbol"] = cleaned["instrument"].symbol
        parsed.update(source=cleaned.get("source") or "manual", note=cleaned.get("note") or "",
                      stop_rule=self._stop_rule())
        self.service_kwargs = parsed
        # Every field in one round: the service judges what parsed, the form reports the rest.
        targets_of = {"symbol": "instrument", "stop_rule": "stop_rule"}
        unparsed = ["symbol" if name == "instrument" else name for name in self.errors]
        for field, problems in signal_validate(unparsed=unparsed, **parsed).items():
            target = targets_of.get(field, field)
            for problem in problems:
                self.add_error(target if target in self.fields else None, problem)
        return cleaned


class AmendForm(forms.Form):
    type = forms.ChoiceField(choices=EventType.choices)
    price = PriceFormField(required=False, help_text="move_stop: the new stop")
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
