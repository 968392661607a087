import json
import sys
from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from controlplane import signing
from controlplane.audit import anchors, services
from controlplane.audit.models import AuditExport, AuditHead
from controlplane.compliance import export
from controlplane.errors import ServiceError


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value) or parse_datetime(value + "T00:00:00+00:00")
    if parsed is None:
        raise CommandError(f"'{value}' is not a date or an ISO 8601 time")
    return parsed


class Command(BaseCommand):
    help = (
        "Audit trail tools: verify the chain, sign a checkpoint, export for an auditor, purge past "
        "retention, print or create the signing key."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        v = sub.add_parser(
            "verify", help="verify the chain, its signed checkpoints and their anchor file"
        )
        v.add_argument("--public-key", help="trusted public key (PEM); default: this server's")
        v.add_argument(
            "--anchors",
            dest="anchor_file",
            metavar="FILE",
            help="anchor file (JSON lines) to check the checkpoints against; default: "
            "EDGEFLEET_AUDIT_ANCHOR_FILE",
        )
        sub.add_parser("checkpoint", help="sign a checkpoint of the chain head now")
        sub.add_parser(
            "anchor", help="anchor the checkpoints not anchored yet (file, URL), as maintain does"
        )
        sub.add_parser("purge", help="delete records past retention (up to a signed checkpoint)")
        sub.add_parser("public-key", help="print the signing public key (give it to auditors)")
        sub.add_parser("keygen", help="create the signing key file if it does not exist")
        e = sub.add_parser("export", help="write an export and its signed manifest")
        e.add_argument("--format", choices=sorted(export.FORMATS), default="jsonl")
        e.add_argument("--out", required=True, help="export file; the manifest goes next to it")
        e.add_argument("--since", help="ISO 8601 time or date (inclusive)")
        e.add_argument("--until", help="ISO 8601 time or date (exclusive)")
        e.add_argument("--fleet", help="fleet slug")
        e.add_argument("--actor", help="actor, e.g. node:<uuid> or user:<pseudonym>")
        e.add_argument("--action", dest="action_filter", help="action, or a prefix ending in '.'")

    def handle(self, *args, action: str, **opts):
        try:
            getattr(self, "do_" + action.replace("-", "_"))(**opts)
        except signing.SigningKeyMissing as exc:
            raise CommandError(str(exc)) from None

    def do_verify(self, public_key=None, anchor_file=None, **_):
        pem = None
        if public_key:
            try:
                pem = Path(public_key).read_text()
                signing.load_public(pem)
            except (OSError, ValueError) as exc:
                raise CommandError(f"cannot use public key {public_key}: {exc}") from None
        if anchor_file and not Path(anchor_file).is_file():
            raise CommandError(f"anchor file {anchor_file} does not exist or is not a file")
        result = services.verify_trail(pem, anchor_file)
        if result.problem is not None:
            raise CommandError(
                f"audit trail FAILED verification at {result.problem} "
                f"({result.checked} records read)"
            )
        if result.unanchored:
            seqs = result.unanchored
            shown = ", ".join(f"#{s}" for s in seqs[:5]) + (", ..." if len(seqs) > 5 else "")
            self.stderr.write(
                f"warning: {len(seqs)} signed checkpoint(s) not in the copy {result.anchor_file} "
                f"({shown}): newer than the copy, or not anchored yet"
                if result.anchor_copy
                else f"warning: {len(seqs)} signed checkpoint(s) not anchored in "
                f"{result.anchor_file} yet ({shown}); `manage.py maintain` retries them"
            )
        if result.incomplete_lines:
            self.stderr.write(
                f"warning: {result.incomplete_lines} incomplete line(s) in {result.anchor_file} "
                "(left by interrupted writes; skipped)"
            )
        head = AuditHead.objects.filter(pk=1).first()
        pending = services.pending_count()
        self.stdout.write(
            self.style.SUCCESS(
                f"audit trail OK: {result.checked} records, chain head "
                f"#{head.seq if head else 0}, last signed checkpoint #{result.newest_checkpoint}, "
                f"{result.anchored} checkpoints anchored in {result.anchor_file}"
                + (f"; {pending} records waiting to be chained" if pending else "")
            )
        )

    def do_anchor(self, **_):
        done = anchors.anchor_pending()
        self.stdout.write(
            f"anchored {done['anchored']} checkpoint(s) in {anchors.anchor_file()}"
            + (f", sent {done['sent']} to {anchors.anchor_url()}" if anchors.anchor_url() else "")
        )

    def do_checkpoint(self, **_):
        cp = services.checkpoint(force=True)
        self.stdout.write(f"signed checkpoint #{cp.seq}" if cp else "nothing new to sign")

    def do_purge(self, **_):
        self.stdout.write(f"purged {services.purge()} audit records past retention")

    def do_public_key(self, **_):
        self.stdout.write(signing.public_pem(), ending="")

    def do_keygen(self, **_):
        path = signing.key_path()
        if path.exists():
            self.stdout.write(f"{path} exists (key id {signing.key_id()})")
            return
        signing.generate(path)
        self.stdout.write(f"created {path} (key id {signing.key_id()})")

    def do_export(self, out, format, since, until, fleet, actor, action_filter, **_):
        done: dict = {}
        path = Path(out)
        try:
            row, body = export.do_export(
                fmt=format,
                fleet=fleet,
                who=actor or "",
                action=action_filter or "",
                since=_when(since),
                until=_when(until),
                via="cli",
                actor=None,
            )
            with path.open("wb") as f:
                for chunk in body:
                    f.write(chunk)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        done = AuditExport.objects.get(pk=row.pk).manifest or {}
        manifest_path = path.with_name(path.name + ".manifest.json")
        manifest_path.write_text(json.dumps(done, indent=1))
        m = done["manifest"]
        sys.stdout.write(
            f"wrote {m['records']} records to {path} and the signed manifest to {manifest_path}\n"
        )
