from django.urls import path
from rest_framework.routers import DefaultRouter

from .me import me
from .stream import signal_stream
from .views import SignalViewSet

router = DefaultRouter(trailing_slash=True)
router.register("signals", SignalViewSet, basename="signal")

urlpatterns = [
    path("signals/stream/", signal_stream, name="signal-stream"),
    path("me/", me, name="me"),
    *router.urls,
]
