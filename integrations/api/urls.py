from django.urls import path
from rest_framework.routers import SimpleRouter

from .inbound import inbound_alert
from .views import BrowserPreferenceView, ChannelViewSet, WebhookViewSet

router = SimpleRouter(trailing_slash=True)
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("channels", ChannelViewSet, basename="channel")

urlpatterns = [
    path("inbound/<str:token>/", inbound_alert, name="inbound-alert"),
    path("subscriptions/browser/", BrowserPreferenceView.as_view(), name="browser-preference"),
    *router.urls,
]
