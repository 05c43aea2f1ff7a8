from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import ops_views, stats_views

admin.site.site_header = "Trading signals admin"
admin.site.site_title = "Trading signals"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("signals.api.urls")),
    path("api/market/", include("pipeline.urls")),
    path("api/strategies/", include("pipeline.strategy_urls")),
    path("api/", include("integrations.api.urls")),
    path("api/stats/", stats_views.stats, name="stats"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api-auth/", include("rest_framework.urls")),
    path("health/", ops_views.health, name="health"),
    path("health/live/", ops_views.health_live, name="health-live"),
    path("health/ready/", ops_views.health_ready, name="health-ready"),
    path("metrics", ops_views.metrics_view, name="metrics"),
    path("", include("integrations.urls")),
    path("", include("dashboard.urls")),
]

# A database outage outside a view is a 503 with a clear body, not a 500 page.
handler500 = "signals_project.database_outage.server_error"
# Unknown API paths answer JSON like every other API error.
handler404 = "signals_project.api_not_found.page_not_found"
