from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "controlplane.compliance"
    label = "compliance"
    verbose_name = "Compliance (audit browsing, exports, erasure)"
