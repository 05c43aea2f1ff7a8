from django.urls import path

from . import views

urlpatterns = [
    path("latest/", views.market_latest, name="market-latest"),
    path("candles/", views.market_candles, name="market-candles"),
    path("session/", views.market_session, name="market-session"),
]
