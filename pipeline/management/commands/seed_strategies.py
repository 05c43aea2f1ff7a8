"""`manage.py seed_strategies`: enable the demo strategy configs (safe to run twice).

bin/run calls it right after `bootstrap`, so the demo shows automated signals
within a few minutes of starting. Configs that already exist are left exactly as
an operator set them (a disabled one stays disabled).
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from pipeline.strategy_services import DEMO_CONFIGS, demo_strategies_seed


class Command(BaseCommand):
    help = "Create the demo strategy configs on the simulator's symbols (existing ones are left unchanged)."

    def handle(self, *args, **options):
        created, missing = demo_strategies_seed()
        if missing and len(missing) == len({symbol for _, symbol, *_ in DEMO_CONFIGS}):
            raise CommandError(f"No demo instrument exists ({', '.join(missing)}): run `manage.py bootstrap` first.")
        for config in created:
            self.stdout.write(f"strategy config #{config.pk}: {config.strategy} {config.instrument.symbol} "
                              f"{config.timeframe} (enabled)")
        if missing:
            self.stdout.write(self.style.WARNING(f"skipped, no such instrument: {', '.join(missing)}"))
        kept = len(DEMO_CONFIGS) - len(created) - sum(1 for _, s, *_ in DEMO_CONFIGS if s in missing)
        self.stdout.write(self.style.SUCCESS(f"demo strategies: {len(created)} created, {kept} already there"))
