"""GET /api/me/: who I am, the last signal id my dashboard acknowledged, and how
many signals arrived since (the "N signals arrived while you were away" summary)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from ..receipts import receipt_summary


@extend_schema(responses=inline_serializer("Me", {
    "username": serializers.CharField(),
    "last_ack_id": serializers.IntegerField(),
    "unseen": serializers.IntegerField(),
}))
@api_view(["GET"])
def me(request):
    return Response(receipt_summary(user=request.user))
