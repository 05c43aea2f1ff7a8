"""API error handling: user errors become 4xx with a clear body, never a 500."""
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..models import ImmutableSignalError


def exception_handler(exc, context):
    if isinstance(exc, ImmutableSignalError):
        return Response({"detail": str(exc)}, status=status.HTTP_405_METHOD_NOT_ALLOWED)
    return drf_exception_handler(exc, context)
