"""REST doors onto signals.services / signals.selectors (thin: parse, call, render)."""
from __future__ import annotations

import logging
from urllib.parse import urlencode

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle

from ..metrics import API_CREATE_LATENCY
from ..selectors import LIST_FILTERS, OUTCOME_FILTER_VALUES, event_payload, signal_after, signal_events, signal_list
from ..services import (
    AmendmentRefused,
    IdempotencyConflict,
    SignalValidationError,
    signal_create,
    signal_event_create,
    signal_validate,
)
from .permissions import CanPublishSignals
from .serializers import (
    EventInputSerializer,
    EventSerializer,
    SignalCreateInputSerializer,
    SignalSerializer,
    parse_every_field,
)

MAX_PAGE_SIZE = 500
logger = logging.getLogger(__name__)


class SignalCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


class SignalCreateThrottle(UserRateThrottle):
    """Per-user create rate, counted in Redis. If Redis is unreachable the request
    is let through: refusing to publish (or answering 500) because the rate counter
    is down would turn a cache outage into lost signals."""

    scope = "signal_create"

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # noqa: BLE001 - redis.ConnectionError and friends
            logger.warning("create throttle skipped, rate store unavailable: %r", exc)
            return True


_FILTER_PARAMS = [
    *(OpenApiParameter(name, OpenApiTypes.STR, description=f"exact {name}") for name in LIST_FILTERS),
    OpenApiParameter("outcome", OpenApiTypes.STR, enum=list(OUTCOME_FILTER_VALUES), description="outcome status"),
]
_MAX_ID = 2**63 - 1  # the id columns are bigint


def _parse_non_negative_int(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationError({name: ["Must be a non-negative integer."]})
    if value < 0 or value > _MAX_ID:
        raise ValidationError({name: [f"Must be a non-negative integer of at most {_MAX_ID}."]})
    return value


def _merge(*error_maps: dict) -> dict:
    merged: dict = {}
    for errors in error_maps:
        for field, problems in errors.items():
            if field in merged and isinstance(merged[field], list) and isinstance(problems, list):
                merged[field] = [*merged[field], *problems]
            else:
                merged.setdefault(field, problems)
    return merged


class SignalViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                    viewsets.GenericViewSet):
    """Signals are append-only: no update or destroy action exists, so PUT, PATCH and
    DELETE answer 405 on every URL."""

    permission_classes = [CanPublishSignals]
    pagination_class = SignalCursorPagination
    serializer_class = SignalSerializer

    def get_throttles(self):
        if self.action == "create" or (self.action == "events" and self.request.method == "POST"):
            return [SignalCreateThrottle()]
        return super().get_throttles()

    def get_permissions(self):
        if self.action == "events":
            # Amending is for the signal's publisher or staff: the service decides (403).
            return [IsAuthenticated()]
        return super().get_permissions()

    def _filters(self) -> dict[str, str]:
        filters = {k: self.request.query_params[k] for k in LIST_FILTERS if self.request.query_params.get(k)}
        outcome = self.request.query_params.get("outcome")
        if outcome:
            if outcome not in OUTCOME_FILTER_VALUES:
                raise ValidationError({"outcome": [f"Must be one of {', '.join(OUTCOME_FILTER_VALUES)}."]})
            filters["outcome"] = outcome
        return filters

    def get_queryset(self):
        return signal_list(filters=self._filters())

    @extend_schema(
        parameters=[
            *_FILTER_PARAMS,
            OpenApiParameter("after_id", OpenApiTypes.INT,
                             description="catch-up: signals with id > after_id, oldest first"),
        ]
    )
    def list(self, request, *args, **kwargs):
        raw_after = request.query_params.get("after_id")
        if raw_after is None:
            return super().list(request, *args, **kwargs)
        after_id = _parse_non_negative_int(raw_after, "after_id")
        limit = self.paginator.get_page_size(request) or 50
        rows = list(signal_after(after_id=after_id, filters=self._filters(), limit=limit))
        next_url = None
        if len(rows) == limit:
            params = request.query_params.copy()
            params["after_id"] = str(rows[-1].id)
            next_url = request.build_absolute_uri(request.path) + "?" + urlencode(params)
        return Response({"next": next_url, "previous": None,
                         "results": SignalSerializer(rows, many=True).data})

    @extend_schema(
        request=SignalCreateInputSerializer,
        responses={201: SignalSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER,
                                     description="a repeat with the same body returns the first signal")],
    )
    def create(self, request, *args, **kwargs):
        with API_CREATE_LATENCY.time():
            values, type_errors = parse_every_field(SignalCreateInputSerializer(data=request.data))
            if type_errors:
                # One answer names every bad field: the service judges what did parse.
                domain = {} if "non_field_errors" in type_errors else signal_validate(unparsed=type_errors, **values)
                raise ValidationError(_merge(type_errors, domain))
            # Every field parsed: signal_create applies the same domain rules itself
            # (SignalValidationError below), so they are not run (and queried) twice.
            key = request.headers.get("Idempotency-Key")
            try:
                result = signal_create(**values, created_by=request.user, idempotency_key=key)
            except SignalValidationError as exc:
                raise ValidationError(exc.errors)
            except IdempotencyConflict as exc:
                return Response({"detail": str(exc), "code": "idempotency_key_reused"},
                                status=status.HTTP_409_CONFLICT)
        # A replay answers exactly like the first request did (201, same body), as
        # Stripe-style idempotency does; the header tells the client it was a replay.
        code = status.HTTP_201_CREATED
        headers = {"Location": f"/api/signals/{result.signal.id}/"}
        if not result.created:
            headers["Idempotent-Replayed"] = "true"
        return Response(SignalSerializer(result.signal).data, status=code, headers=headers)

    @extend_schema(
        methods=["GET"],
        responses={200: EventSerializer(many=True)},
        description="The signal's amendments, oldest first.",
    )
    @extend_schema(
        methods=["POST"],
        request=EventInputSerializer,
        responses={
            201: EventSerializer,
            400: OpenApiResponse(description="field errors"),
            403: OpenApiResponse(description="not the signal's publisher or staff"),
            409: OpenApiResponse(description="refused now: closed signal, close pending, cancel after a hit"),
        },
        description="Amend a signal (publisher or staff): move_stop {price}, close {reason}, cancel {reason} "
                    "(only before any target or stop was reached). Each amendment is a new immutable event.",
    )
    # The amendments of one signal are few: the whole list, never a page (schema too).
    @action(detail=True, methods=["get", "post"], url_path="events", pagination_class=None)
    def events(self, request, pk=None):
        signal = self.get_object()
        if request.method == "GET":
            return Response([event_payload(e) for e in signal_events(signal_id=signal.pk)])
        values, errors = parse_every_field(EventInputSerializer(data=request.data))
        if errors:
            raise ValidationError(errors)
        try:
            event = signal_event_create(signal_id=signal.pk, event_type=values["type"], price=values["price"],
                                        reason=values["reason"], created_by=request.user)
        except SignalValidationError as exc:
            raise ValidationError(exc.errors)
        except AmendmentRefused as exc:
            code = status.HTTP_403_FORBIDDEN if exc.code == "not_publisher" else status.HTTP_409_CONFLICT
            return Response({"detail": str(exc), "code": exc.code}, status=code)
        return Response(event_payload(event), status=status.HTTP_201_CREATED)
