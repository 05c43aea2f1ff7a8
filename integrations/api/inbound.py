"""`POST /api/inbound/{token}/`: the door for alerts from outside (TradingView and the
like). The token in the URL is the only credential: no session, no CSRF."""
from __future__ import annotations

import logging
import math

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework.throttling import SimpleRateThrottle

from ..inbound import inbound_alert_receive
from ..models import InboundToken
from ..services import inbound_token_hash

logger = logging.getLogger(__name__)
_MAX_BODY = 16 * 1024


class InboundTokenThrottle(SimpleRateThrottle):
    """INBOUND_RATE per token, counted in Redis (shared by every web process)."""

    scope = "inbound"

    def __init__(self, token: InboundToken):
        self.token = token
        super().__init__()

    def get_rate(self) -> str:
        return settings.INBOUND_RATE

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.token.token_hash}


def _allowed(token: InboundToken, request) -> tuple[bool, int]:
    throttle = InboundTokenThrottle(token)
    try:
        if throttle.allow_request(request, None):
            return True, 0
    except Exception as exc:  # noqa: BLE001 - a rate store outage must not refuse alerts
        logger.warning("inbound throttle skipped, rate store unavailable: %r", exc)
        return True, 0
    return False, max(1, math.ceil(throttle.wait() or 1))


def _answer(token: str, body: dict, status: int) -> JsonResponse:
    response = JsonResponse(body, status=status)
    if status >= 400:
        # Django logs every 4xx with the request path, and the path is the token:
        # log it here without the secret and mark the response as logged.
        logger.warning("inbound alert answered %s (token %s…): %s", status, token[:8], body.get("detail", ""))
        response._has_been_logged = True  # django.utils.log.log_response skips it; test_inbound pins this
    return response


@csrf_exempt
@require_POST
def inbound_alert(request, token: str):
    token_row = InboundToken.objects.select_related("publisher").filter(
        token_hash=inbound_token_hash(token)).first()
    if token_row is None or token_row.revoked_at is not None:
        return _answer(token, {"detail": "Unknown or revoked inbound token."}, 401)
    allowed, wait = _allowed(token_row, request)
    if not allowed:
        response = _answer(token, {"detail": f"Too many alerts for this token; retry in {wait} s."}, 429)
        response["Retry-After"] = str(wait)
        return response
    if len(request.body) > _MAX_BODY:
        return _answer(token, {"detail": f"The alert is larger than {_MAX_BODY} bytes."}, 413)
    answer = inbound_alert_receive(token=token_row, body=request.body)
    return _answer(token, answer.body, answer.status)
