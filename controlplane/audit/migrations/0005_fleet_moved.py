# State only: the Fleet model is now fleets.Fleet (same table, see fleets 0001).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_pending_records"),
        ("fleets", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="auditrecord",
                    name="fleet",
                    field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name="+", to="fleets.fleet"),
                ),
            ],
            database_operations=[],
        ),
    ]
