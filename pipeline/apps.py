from django.apps import AppConfig


class PipelineConfig(AppConfig):
    name = "pipeline"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: these modules use the ORM, which is ready only now.
        from prometheus_client import REGISTRY

        from signals_project.pool_metrics import DatabasePoolCollector

        from .ops_metrics import PipelineCollector, ops_metrics_connect
        from .shared_counters import SharedCountersCollector

        ops_metrics_connect()
        if not getattr(PipelineConfig, "_collectors_registered", False):
            REGISTRY.register(PipelineCollector())
            REGISTRY.register(SharedCountersCollector())
            REGISTRY.register(DatabasePoolCollector())
            PipelineConfig._collectors_registered = True
