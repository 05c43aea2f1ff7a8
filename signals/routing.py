from django.urls import path

from .consumers import SignalConsumer

websocket_urlpatterns = [path("ws/signals/", SignalConsumer.as_asgi())]
