# State only: the Fleet model is now fleets.Fleet (same table `edgenodes_fleet`, see fleets 0001);
# the foreign keys keep their columns and constraints.

import django.db.models.deletion
from django.db import migrations, models


def fk(on_delete, related_name):
    return models.ForeignKey(on_delete=on_delete, related_name=related_name, to="fleets.fleet")


class Migration(migrations.Migration):
    dependencies = [
        ("edgenodes", "0004_node_desired_model_digest_node_model_choice_rollout_and_more"),
        ("fleets", "0001_initial"),
        ("accounts", "0003_fleet_moved"),
        ("audit", "0005_fleet_moved"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="node", name="fleet",
                    field=fk(django.db.models.deletion.PROTECT, "nodes"),
                ),
                migrations.AlterField(
                    model_name="enrollmenttoken", name="fleet",
                    field=fk(django.db.models.deletion.CASCADE, "enrollment_tokens"),
                ),
                migrations.AlterField(
                    model_name="desiredstatelayer", name="fleet",
                    field=fk(django.db.models.deletion.CASCADE, "layers"),
                ),
                migrations.AlterField(
                    model_name="toolapproval", name="fleet",
                    field=fk(django.db.models.deletion.CASCADE, "+"),
                ),
                migrations.AlterField(
                    model_name="rollout", name="fleet",
                    field=fk(django.db.models.deletion.CASCADE, "rollouts"),
                ),
                migrations.DeleteModel(name="Fleet"),
            ],
            database_operations=[],
        ),
    ]
