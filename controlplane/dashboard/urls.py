from django.urls import path

from controlplane.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("fleets/<slug:slug>/alerts", views.fleet_alerts, name="fleet-alerts"),
    path("nodes/", views.nodes, name="nodes"),
    path("nodes/<str:node_id>/", views.node, name="node"),
    path("nodes/<str:node_id>/row", views.node_row, name="node-row"),
    path("nodes/<str:node_id>/series", views.node_series, name="node-series"),
    path("nodes/<str:node_id>/edit", views.node_edit, name="node-edit"),
    path("nodes/<str:node_id>/revoke", views.node_revoke, name="node-revoke"),
    path("enrollment/", views.enrollment, name="enrollment"),
    path("enrollment/<int:token_id>/revoke", views.enrollment_revoke, name="enrollment-revoke"),
    path("desired-state/", views.layers, name="layers"),
    path("desired-state/<slug:slug>/<str:name>/delete", views.layer_delete, name="layer-delete"),
    path("rollouts/", views.rollouts_page, name="rollouts"),
    path("rollouts/<int:rollout_id>/", views.rollout, name="rollout"),
    path("rollouts/<int:rollout_id>/<str:action>", views.rollout_action, name="rollout-action"),
    path("approvals/", views.approvals, name="approvals"),
    path(
        "approvals/<int:approval_id>/<str:decision>",
        views.approval_decide,
        name="approval-decide",
    ),
    path("models/", views.models_page, name="models"),
    path("compliance/", views.compliance, name="compliance"),
    path("compliance/preview", views.compliance_preview, name="compliance-preview"),
    path("costs/", views.costs, name="costs"),
]
