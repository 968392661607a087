from django.urls import path

from controlplane.dashboard import approvals as approvals_pages
from controlplane.dashboard import compliance as compliance_pages
from controlplane.dashboard import costs as costs_pages
from controlplane.dashboard import enrollment as enrollment_pages
from controlplane.dashboard import layers as layers_pages
from controlplane.dashboard import nodes as nodes_pages
from controlplane.dashboard import overview
from controlplane.dashboard import registry as registry_pages
from controlplane.dashboard import rollouts as rollouts_pages

app_name = "dashboard"
urlpatterns = [
    path("", overview.overview, name="overview"),
    path("fleets/<slug:slug>/alerts", overview.fleet_alerts, name="fleet-alerts"),
    path("nodes/", nodes_pages.nodes, name="nodes"),
    path("nodes/<str:node_id>/", nodes_pages.node, name="node"),
    path("nodes/<str:node_id>/row", nodes_pages.node_row, name="node-row"),
    path("nodes/<str:node_id>/series", nodes_pages.node_series, name="node-series"),
    path("nodes/<str:node_id>/edit", nodes_pages.node_edit, name="node-edit"),
    path("nodes/<str:node_id>/revoke", nodes_pages.node_revoke, name="node-revoke"),
    path("enrollment/", enrollment_pages.enrollment, name="enrollment"),
    path(
        "enrollment/<int:token_id>/revoke",
        enrollment_pages.enrollment_revoke,
        name="enrollment-revoke",
    ),
    path("desired-state/", layers_pages.layers, name="layers"),
    path(
        "desired-state/<slug:slug>/<str:name>/delete",
        layers_pages.layer_delete,
        name="layer-delete",
    ),
    path("desired-state/<slug:slug>/secrets", layers_pages.secret_set, name="secret-set"),
    path(
        "desired-state/<slug:slug>/secrets/<str:name>/delete",
        layers_pages.secret_delete,
        name="secret-delete",
    ),
    path("rollouts/", rollouts_pages.rollouts_page, name="rollouts"),
    path("rollouts/<int:rollout_id>/", rollouts_pages.rollout, name="rollout"),
    path(
        "rollouts/<int:rollout_id>/<str:action>",
        rollouts_pages.rollout_action,
        name="rollout-action",
    ),
    path("approvals/", approvals_pages.approvals, name="approvals"),
    path(
        "approvals/<int:approval_id>/<str:decision>",
        approvals_pages.approval_decide,
        name="approval-decide",
    ),
    path("models/", registry_pages.models_page, name="models"),
    path("compliance/", compliance_pages.compliance, name="compliance"),
    path("compliance/preview", compliance_pages.compliance_preview, name="compliance-preview"),
    path("costs/", costs_pages.costs, name="costs"),
]
