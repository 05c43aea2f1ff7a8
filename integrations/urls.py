from django.urls import path

from . import views

urlpatterns = [
    path("subscriptions/", views.subscriptions_page, name="subscriptions"),
    path("webhooks/", views.webhooks_page, name="webhooks"),
]
