from django.core.management.base import BaseCommand, CommandError

from controlplane.audit import chain
from controlplane.audit.models import AuditHead, AuditRecord


class Command(BaseCommand):
    help = "Audit trail tools. `audit verify`: check the hash chain and name the first bad record."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("verify", help="verify the hash chain of the audit trail")

    def handle(self, *args, action: str, **options):
        head = AuditHead.objects.filter(pk=1).first()
        records = AuditRecord.objects.order_by("seq").iterator(chunk_size=5000)
        checked, problem = chain.verify(records, head)
        if problem is not None:
            raise CommandError(
                f"audit trail FAILED verification at {problem} ({checked} records read)"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"audit trail OK: {checked} records, chain head #{head.seq if head else 0}"
            )
        )
