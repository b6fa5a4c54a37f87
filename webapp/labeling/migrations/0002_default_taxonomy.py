"""The default failure taxonomy (the nut station's, from the seed trial). Stations may add their own."""

from django.db import migrations

DEFAULT = [
    ("misaligned_nut", "Misaligned nut", False),
    ("cross_threaded", "Cross-threaded", False),
    ("over_torque", "Over-torque / stripped thread", False),
    ("under_torque", "Under-torque / not seated", False),
    ("dropped_nut", "Dropped nut", False),
    ("missed_pick", "Missed pick", False),
    ("part_misfixtured", "Part mis-fixtured", False),
    ("takt_overrun", "Takt overrun", False),
    ("fault", "Station fault", False),
    ("other", "Other (say what)", True),
]


def add_default(apps, schema_editor):
    FailureMode = apps.get_model("labeling", "FailureMode")
    for order, (key, label, needs_text) in enumerate(DEFAULT):
        FailureMode.objects.get_or_create(station=None, key=key, defaults={"label": label, "order": order, "needs_text": needs_text})


def remove_default(apps, schema_editor):
    apps.get_model("labeling", "FailureMode").objects.filter(station=None, key__in=[k for k, _, _ in DEFAULT]).delete()


class Migration(migrations.Migration):
    dependencies = [("labeling", "0001_initial")]
    operations = [migrations.RunPython(add_default, remove_default)]
