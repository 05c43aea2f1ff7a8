from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "integrations"
    verbose_name = "Integrations (webhooks, chat channels, inbound alerts)"

    def ready(self) -> None:
        # Connect to signals' on-commit hooks; signals itself never imports this app.
        from . import receivers

        receivers.connect()
