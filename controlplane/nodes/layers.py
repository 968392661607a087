"""controlplane.nodes.layers"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from pydantic import ValidationError

from controlplane.audit.services import record
from controlplane.errors import (
    NotFound,
    ServiceError,
)
from controlplane.events import publish_on_commit
from controlplane.nodes import desired_state
from controlplane.nodes.models import (
    DesiredStateLayer,
    Fleet,
    LayerScope,
    Node,
)
from controlplane.nodes.services import LAYER_NAME
from controlplane.schemas import refuse_unsafe, refuse_unsafe_labels
from wire import schemas
from wire.schemas import SECTIONS, first_error


def _layer_snapshot(layer: DesiredStateLayer) -> dict[str, Any]:
    return {
        "name": layer.name,
        "scope": layer.scope,
        "selector": layer.selector,
        "node": str(layer.node_id) if layer.node_id else None,
        "priority": layer.priority,
        "sections": layer.sections,
    }


def _affected(fleet: Fleet, layer: DesiredStateLayer) -> list[Node] | None:
    """The nodes a layer can touch: one node, or (None) the whole fleet."""
    if layer.scope == LayerScope.NODE and layer.node_id:
        return list(Node.objects.filter(pk=layer.node_id))
    return None


def _layer_node(fleet: Fleet, scope: str, node: Node | uuid.UUID | str | None) -> Node | None:
    if scope != LayerScope.NODE:
        return None
    if node is None:
        raise ServiceError("a node layer needs 'node'")
    node_id = node.pk if isinstance(node, Node) else node
    try:
        found = Node.objects.filter(fleet=fleet, pk=node_id).first()
    except (ValueError, DjangoValidationError):
        found = None
    if found is None:
        raise NotFound(f"node '{node_id}' not found in fleet '{fleet.slug}'")
    return found


@transaction.atomic
def do_put_layer(
    fleet: Fleet,
    *,
    actor,
    name: str,
    scope: str,
    sections: dict[str, Any],
    selector: dict[str, str] | None = None,
    node: Node | uuid.UUID | str | None = None,
    priority: int = 0,
    request=None,
) -> tuple[DesiredStateLayer, int]:
    """Create or replace a named layer. Returns the layer and how many nodes got a new revision.
    `node` (a node of this fleet, or its id) for a node layer; `selector` for a label layer."""
    refuse_unsafe("name", name or "")
    if not LAYER_NAME.match(name or ""):
        raise ServiceError("layer name must be 1-63 letters, digits, '-' or '_'", field="name")
    refuse_unsafe_labels("selector", selector)
    agents = sections.get("agents")
    if isinstance(agents, dict):  # checked here too: a fleet without nodes composes nothing
        refuse_unsafe("sections", *agents)  # agent names
        for spec in agents.values():
            try:
                schemas.AgentSpec.model_validate(spec)
            except ValidationError as exc:
                raise ServiceError(
                    f"invalid agents section: {first_error(exc)}", field="sections"
                ) from None
    if scope not in LayerScope.values:
        raise ServiceError(f"unknown scope '{scope}'; allowed: {list(LayerScope.values)}")
    if "compliance" in sections:
        raise ServiceError(
            "compliance is set per fleet (PUT /api/v1/fleets/{slug}/compliance), not in a layer"
        )
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ServiceError(f"unknown sections {sorted(unknown)}; allowed: {list(SECTIONS)}")
    if scope == LayerScope.LABEL and not selector:
        raise ServiceError("a label layer needs a non-empty 'selector'")
    target = _layer_node(fleet, scope, node)
    model = sections.get("model")
    if isinstance(model, dict):
        # Checked on its own too: a node in a rollout does not compose this layer's model now.
        try:
            schemas.ModelAssignment.model_validate({"name": "layer", **model})
        except ValidationError as exc:
            raise ServiceError(f"invalid model section: {first_error(exc)}") from None
    if "routing" in sections:
        try:
            schemas.RoutingPolicy.model_validate(sections["routing"] or {})
        except ValidationError as exc:
            raise ServiceError(f"invalid routing section: {first_error(exc)}") from None
    layer = DesiredStateLayer.objects.select_for_update().filter(fleet=fleet, name=name).first()
    before = _layer_snapshot(layer) if layer else None
    old_targets = _affected(fleet, layer) if layer else []
    if layer is None:
        layer = DesiredStateLayer(fleet=fleet, name=name)
    layer.scope = scope
    layer.selector = selector or {} if scope == LayerScope.LABEL else {}
    layer.node = target
    layer.priority = priority
    layer.sections = sections
    layer.updated_at = timezone.now()
    layer.save()
    new_targets = _affected(fleet, layer)
    targets = (
        None
        if old_targets is None or new_targets is None
        else {n.pk: n for n in old_targets + new_targets}.values()
    )
    changed = desired_state.refresh(fleet, targets)
    record(
        "layer.put",
        layer,
        user=actor,
        fleet=fleet,
        before=before,
        after=_layer_snapshot(layer),
        request=request,
    )
    publish_on_commit(fleet.pk, "desired_state.changed", layer=name, nodes_changed=len(changed))
    return layer, len(changed)


@transaction.atomic
def do_delete_layer(layer: DesiredStateLayer, *, actor, request=None) -> int:
    fleet = layer.fleet
    targets = _affected(fleet, layer)
    before = _layer_snapshot(layer)
    layer.delete()
    changed = desired_state.refresh(fleet, targets)
    record("layer.delete", layer, user=actor, fleet=fleet, before=before, request=request)
    publish_on_commit(
        fleet.pk, "desired_state.changed", layer=before["name"], nodes_changed=len(changed)
    )
    return len(changed)
