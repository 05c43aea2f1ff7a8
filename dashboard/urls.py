from django.urls import path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("dashboard/snapshot/", views.snapshot, name="dashboard-snapshot"),
]
