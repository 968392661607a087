# Checkpoints anchored outside the database (anchor file, anchor URL): when each was anchored.
# Checkpoints signed before this have neither: `manage.py maintain` anchors them on its next run.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_fleet_moved"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditcheckpoint",
            name="anchored_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="auditcheckpoint",
            name="sent_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
