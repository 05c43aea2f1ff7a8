from django.urls import path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("dashboard/snapshot/", views.snapshot, name="dashboard-snapshot"),
    path("dashboard/history/", views.history, name="dashboard-history"),
    path("dashboard/prices/", views.prices, name="dashboard-prices"),
    path("dashboard/markets/", views.markets, name="dashboard-markets"),
    path("dashboard/export.csv", views.export_csv, name="dashboard-export"),
]
