# State only: the Fleet model is now fleets.Fleet (same table, see fleets 0001).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_loginfailure"),
        ("fleets", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="membership",
                    name="fleet",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="memberships", to="fleets.fleet"),
                ),
                migrations.AlterField(
                    model_name="personaltoken",
                    name="fleets",
                    field=models.ManyToManyField(blank=True, related_name="+", to="fleets.fleet"),
                ),
            ],
            database_operations=[],
        ),
    ]
