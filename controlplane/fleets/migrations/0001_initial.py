# The Fleet model moved here from edgenodes (state only): its table stays `edgenodes_fleet`, so no
# row and no foreign key moves. edgenodes 0005 drops it from that app's state once the apps that
# point at it (accounts 0003, audit 0005) point here.

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("edgenodes", "0004_node_desired_model_digest_node_model_choice_rollout_and_more"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Fleet",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("slug", models.SlugField(max_length=63, unique=True)),
                        ("name", models.CharField(max_length=100)),
                        ("description", models.TextField(blank=True)),
                        ("poll_interval_s", models.PositiveIntegerField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("compliance_mode", models.CharField(choices=[("none", "None"), ("hipaa", "HIPAA"), ("gdpr", "GDPR")], default="none", max_length=8)),
                        ("phi_action", models.CharField(choices=[("redact", "Redact"), ("refuse", "Refuse")], default="redact", max_length=8)),
                        ("store_content", models.BooleanField(blank=True, null=True)),
                        ("allowed_regions", models.JSONField(blank=True, default=list)),
                        ("cloud_endpoints", models.JSONField(blank=True, default=list)),
                        ("events_retention_days", models.PositiveIntegerField(blank=True, null=True)),
                    ],
                    options={"db_table": "edgenodes_fleet"},
                ),
            ],
            database_operations=[],
        ),
    ]
