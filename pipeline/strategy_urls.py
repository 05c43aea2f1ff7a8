from django.urls import path

from . import strategy_views

urlpatterns = [
    path("", strategy_views.StrategyConfigList.as_view(), name="strategy-configs"),
    path("catalog/", strategy_views.StrategyCatalog.as_view(), name="strategy-catalog"),
    path("<int:pk>/", strategy_views.StrategyConfigDetail.as_view(), name="strategy-config"),
]
