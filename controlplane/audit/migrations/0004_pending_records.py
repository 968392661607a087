"""Appends under contention store records pending (no seq yet) and seal them after commit: the
append-only trigger lets exactly that one change through (seq, prev_hash, content and hash set on
a record that had no seq; nothing else changed)."""

from django.db import migrations

GUARD = """
CREATE OR REPLACE FUNCTION edgefleet_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('edgefleet.audit_maintenance', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
       AND (OLD.id, OLD.ts, OLD.actor, OLD.fleet_id, OLD.action, OLD.object_type, OLD.object_id,
            OLD.before, OLD.after, OLD.request_id, OLD.source_ip)
           IS NOT DISTINCT FROM
           (NEW.id, NEW.ts, NEW.actor, NEW.fleet_id, NEW.action, NEW.object_type, NEW.object_id,
            NEW.before, NEW.after, NEW.request_id, NEW.source_ip) THEN
        RETURN NEW;  -- sealing a pending record into the chain
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = 'audit records are append-only: '
        || TG_OP || ' refused (retention goes through edgefleet_audit_purge)';
END $$;
"""

PREVIOUS = """
CREATE OR REPLACE FUNCTION edgefleet_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('edgefleet.audit_maintenance', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = 'audit records are append-only: '
        || TG_OP || ' refused (retention goes through edgefleet_audit_purge)';
END $$;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GUARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_pseudonyms_checkpoints_append_only")]

    operations = [migrations.RunPython(forward, backward)]
