"""REST doors onto integrations.services / selectors: a user's webhooks and chat
channels (one engine, two URL families), their deliveries, redelivery and browser
notification preferences. Users see only their own channels; staff (operators) may
open any channel by id and list everyone's with `?all=1`."""
from __future__ import annotations

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import ChannelKind
from ..selectors import CHAT_KINDS, WEBHOOK_KINDS, browser_preference_get, channel_get, channel_list, \
    deliveries_recent
from ..services import (
    ChannelValidationError, RedeliveryRefused, browser_preference_set, channel_create, channel_delete,
    channel_update, message_redeliver,
)
from ..tasks import message_deliver_task
from .serializers import (
    BrowserPreferenceSerializer, ChannelInputSerializer, ChannelSerializer, DeliverySerializer,
    RedeliverInputSerializer, RedeliverOutputSerializer, WebhookCreatedSerializer, WebhookInputSerializer,
    WebhookSerializer,
)

_MAX_HOURS = 24 * 30


def _hours(raw: str | None) -> float:
    if raw is None:
        return 24.0
    try:
        hours = float(raw)
    except ValueError:
        raise ValidationError({"hours": ["Must be a number of hours."]}) from None
    if not 0 < hours <= _MAX_HOURS:
        raise ValidationError({"hours": [f"Must be between 0 and {_MAX_HOURS}."]})
    return hours


class _ChannelViewSet(viewsets.ViewSet):
    kinds: tuple = ()
    input_serializer = WebhookInputSerializer
    output_serializer = WebhookSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = "[0-9]+"

    def _channel(self, pk):
        try:
            channel_id = int(pk)
        except (TypeError, ValueError):
            raise NotFound() from None
        channel = channel_get(user=self.request.user, channel_id=channel_id, kinds=self.kinds)
        if channel is None:
            raise NotFound()
        return channel

    def _parse(self, data, *, partial: bool) -> dict:
        serializer = self.input_serializer(data=data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def _kind(self, values: dict) -> str:
        return ChannelKind.WEBHOOK

    def list(self, request):
        everyone = request.query_params.get("all") in ("1", "true")
        rows = channel_list(user=request.user, kinds=self.kinds, everyone=everyone)
        return Response(self.output_serializer(rows, many=True).data)

    def create(self, request):
        values = self._parse(request.data, partial=False)
        kind = self._kind(values)
        values.pop("kind", None)
        try:
            result = channel_create(owner=request.user, kind=kind, **values)
        except ChannelValidationError as exc:
            raise ValidationError(exc.errors) from None
        body = self.output_serializer(result.channel).data
        if result.secret:
            body["secret"] = result.secret  # shown this once; only its owner's receiver keeps it
        return Response(body, status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        return Response(self.output_serializer(self._channel(pk)).data)

    def partial_update(self, request, pk=None):
        channel = self._channel(pk)
        values = self._parse(request.data, partial=True)
        if values.pop("kind", channel.kind) != channel.kind:
            raise ValidationError({"kind": ["The kind of a channel cannot change; add a new channel."]})
        try:
            channel = channel_update(channel=channel, **values)
        except ChannelValidationError as exc:
            raise ValidationError(exc.errors) from None
        return Response(self.output_serializer(channel).data)

    def destroy(self, request, pk=None):
        channel_delete(channel=self._channel(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        channel = self._channel(pk)
        rows = deliveries_recent(channel=channel, hours=_hours(request.query_params.get("hours")),
                                 failed_only=request.query_params.get("failed") in ("1", "true"))
        return Response(DeliverySerializer(rows, many=True).data)

    @action(detail=True, methods=["post"])
    def redeliver(self, request, pk=None):
        channel = self._channel(pk)
        data = RedeliverInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            message = message_redeliver(channel=channel, event_id=data.validated_data["event_id"])
        except RedeliveryRefused as exc:
            raise ValidationError({"event_id": [str(exc)]}) from None
        transaction.on_commit(lambda: message_deliver_task.delay(message.id))
        return Response({"webhook_id": message.id, "event_id": message.event_id, "status": "queued"},
                        status=status.HTTP_202_ACCEPTED)


def _documented(input_cls, output_cls, created_cls):
    """OpenAPI of a channel family (these viewsets are plain ViewSets, so
    drf-spectacular is told each action's shapes)."""
    pk = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)
    invalid = OpenApiResponse(description="field errors: {field: [messages]}")
    missing = OpenApiResponse(description="no such channel of yours")
    return extend_schema_view(
        list=extend_schema(responses=output_cls(many=True), parameters=[
            OpenApiParameter("all", OpenApiTypes.BOOL, description="staff: every user's channels")]),
        create=extend_schema(request=input_cls, responses={201: created_cls, 400: invalid}),
        retrieve=extend_schema(responses={200: output_cls, 404: missing}, parameters=[pk]),
        partial_update=extend_schema(request=input_cls, responses={200: output_cls, 400: invalid, 404: missing},
                                     parameters=[pk]),
        destroy=extend_schema(responses={204: None, 404: missing}, parameters=[pk]),
        deliveries=extend_schema(
            responses={200: DeliverySerializer(many=True), 400: invalid, 404: missing},
            parameters=[pk, OpenApiParameter("hours", OpenApiTypes.NUMBER, description="window, default 24"),
                        OpenApiParameter("failed", OpenApiTypes.BOOL, description="failures only")]),
        redeliver=extend_schema(request=RedeliverInputSerializer,
                                responses={202: RedeliverOutputSerializer, 400: invalid, 404: missing},
                                parameters=[pk]),
    )


@_documented(WebhookInputSerializer, WebhookSerializer, WebhookCreatedSerializer)
class WebhookViewSet(_ChannelViewSet):
    """`/api/webhooks/`: Standard Webhooks endpoints; `POST` answers the secret once."""

    kinds = WEBHOOK_KINDS
    input_serializer = WebhookInputSerializer
    output_serializer = WebhookSerializer


@_documented(ChannelInputSerializer, ChannelSerializer, ChannelSerializer)
class ChannelViewSet(_ChannelViewSet):
    """`/api/channels/`: Telegram chats/topics and Discord webhooks."""

    kinds = CHAT_KINDS
    input_serializer = ChannelInputSerializer
    output_serializer = ChannelSerializer

    def _kind(self, values: dict) -> str:
        if not values.get("kind"):
            raise ValidationError({"kind": ["This field is required: telegram or discord."]})
        return values["kind"]


class BrowserPreferenceView(APIView):
    """`GET/PUT /api/subscriptions/browser/`: which signals notify this user's browser."""

    @extend_schema(responses=BrowserPreferenceSerializer)
    def get(self, request):
        return Response(BrowserPreferenceSerializer(browser_preference_get(user=request.user)).data)

    @extend_schema(request=BrowserPreferenceSerializer, responses=BrowserPreferenceSerializer)
    def put(self, request):
        data = BrowserPreferenceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            preference = browser_preference_set(user=request.user, **data.validated_data)
        except ChannelValidationError as exc:
            raise ValidationError(exc.errors) from None
        return Response(BrowserPreferenceSerializer(preference).data)
