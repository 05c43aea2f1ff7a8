"""Fill the per-source statistics tables from the signals that already exist (one
pass over the signals table, once; afterwards every write keeps them current)."""
from django.db import migrations


def backfill(apps, schema_editor):
    from signals.services.stats import stats_rebuild

    stats_rebuild(signal_model=apps.get_model("signals", "Signal"),
                  day_model=apps.get_model("signals", "SourceDayStats"),
                  leg_model=apps.get_model("signals", "SourceDayLegStats"))


class Migration(migrations.Migration):
    dependencies = [("signals", "0005_source_stats")]
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
