"""The dashboard's filter query string, parsed once: the page, its JSON snapshot,
the history pages and the CSV export all read the same filters, so a link copied
from the address bar exports exactly the rows on screen.

Values stay strings in the cleaned dict because they travel on: into the boot JSON,
the address bar and the stream's query string.
"""
from __future__ import annotations

from django import forms

from signals.feed_query import feed_filters_clean
from signals.models import Direction, OutcomeStatus

MAX_SOURCE_LENGTH = 64

# Query-string names, in the order the form shows them.
PAGE_FILTERS = ("market", "symbol", "source", "direction", "outcome", "min_confidence", "date_from", "date_to")


class FeedFilterForm(forms.Form):
    market = forms.CharField(required=False)
    symbol = forms.CharField(required=False)
    source = forms.CharField(required=False, max_length=MAX_SOURCE_LENGTH, error_messages={
        "max_length": f"A source name is at most {MAX_SOURCE_LENGTH} characters.",
    })
    direction = forms.ChoiceField(required=False, choices=[("", "")] + Direction.choices, error_messages={
        "invalid_choice": f"Choose one of: {', '.join(Direction.values)}.",
    })
    outcome = forms.ChoiceField(required=False, choices=[("", "")] + OutcomeStatus.choices, error_messages={
        "invalid_choice": f"Choose one of: {', '.join(OutcomeStatus.values)}.",
    })
    min_confidence = forms.IntegerField(required=False, min_value=0, max_value=100, error_messages={
        "invalid": "A whole number from 0 to 100.",
        "min_value": "A whole number from 0 to 100.",
        "max_value": "A whole number from 0 to 100.",
    })
    date_from = forms.DateField(required=False, input_formats=["%Y-%m-%d"], error_messages={
        "invalid": "A date like 2024-05-01.",
    })
    date_to = forms.DateField(required=False, input_formats=["%Y-%m-%d"], error_messages={
        "invalid": "A date like 2024-05-01.",
    })

    def clean(self):
        cleaned = super().clean()
        # Market and symbol follow the live stream's own rule, so the page never
        # accepts a filter the WebSocket would then refuse.
        feed, errors = feed_filters_clean({"market": cleaned.get("market", ""), "symbol": cleaned.get("symbol", "")})
        for name in ("market", "symbol"):
            cleaned[name] = feed.get(name, "")
            if name in errors:
                self.add_error(name, errors[name][:1].upper() + errors[name][1:] + ".")
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned


def dashboard_filters_clean(raw) -> tuple[dict[str, str], dict[str, str]]:
    """Normalise the page's query-string filters. Returns (filters, errors): a bad
    value is left out of `filters` and explained in `errors`, never a 500."""
    form = FeedFilterForm({name: (raw.get(name) or "") for name in PAGE_FILTERS})
    form.is_valid()
    errors = {name: " ".join(messages) for name, messages in form.errors.items()}
    filters: dict[str, str] = {}
    for name in PAGE_FILTERS:
        if name in errors or name not in form.cleaned_data:
            continue
        value = form.cleaned_data[name]
        if value in (None, ""):
            continue
        filters[name] = value.isoformat() if hasattr(value, "isoformat") else str(value).strip()
    return filters, errors
