"""Market-data API doors (placeholder until the pipeline lands: answers 503)."""
from rest_framework.decorators import api_view
from rest_framework.response import Response


@api_view(["GET"])
def market_latest(request):
    return Response({"detail": "market data pipeline not available yet"}, status=503)


@api_view(["GET"])
def market_candles(request):
    return Response({"detail": "market data pipeline not available yet"}, status=503)


@api_view(["GET"])
def market_session(request):
    return Response({"detail": "market data pipeline not available yet"}, status=503)
