"""The "Support agents" group: its members work at /inbox/ (no admin permissions needed)."""

from django.db import migrations

AGENTS_GROUP = "Support agents"


def create_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name=AGENTS_GROUP)


class Migration(migrations.Migration):
    dependencies = [("inbox", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_group, migrations.RunPython.noop)]
