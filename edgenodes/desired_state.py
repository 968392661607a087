"""Compose a node's desired-state document from its fleet's layers.

Order: fleet layers, then label layers whose selector matches the node, then node layers; within a
scope by priority (low to high), then name. Later layers win: dicts are merged key by key, anything
else (lists, scalars, null) replaces. The revision of a node moves only when the composed document's
digest changes, so an edit that leaves a node's document as it was causes no download on that node.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from agents.schemas import SECTIONS, validate_sections
from controlplane.errors import ServiceError

from .models import DesiredStateLayer, Fleet, LayerScope, Node

_SCOPE_ORDER = {LayerScope.FLEET: 0, LayerScope.LABEL: 1, LayerScope.NODE: 2}


def merge(base: Any, overlay: Any) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            out[key] = merge(base.get(key), value)
        return out
    return overlay


def empty_sections() -> dict[str, Any]:
    return {"model": None, "agents": {}, "tools": {}, "routing": {}, "compliance": {}}


def ordered(layers: Iterable[DesiredStateLayer]) -> list[DesiredStateLayer]:
    return sorted(
        layers,
        key=lambda layer: (_SCOPE_ORDER[LayerScope(layer.scope)], layer.priority, layer.name),
    )


def compose(
    node: Node, layers: Iterable[DesiredStateLayer], compliance: dict[str, Any]
) -> dict[str, Any]:
    """The node's sections. `layers` are its fleet's layers, in any order. `compliance` is the
    fleet's policy as nodes see it (`node_compliance`), which no layer can weaken."""
    sections = empty_sections()
    for layer in ordered(layers):
        if layer.matches(node):
            for name in SECTIONS:
                if name in layer.sections and name != "compliance":
                    sections[name] = merge(sections[name], layer.sections[name])
    sections["compliance"] = compliance
    return sections


def node_compliance(fleet: Fleet) -> dict[str, Any]:
    return fleet.compliance_policy(for_node=True).model_dump()


def digest(sections: dict[str, Any]) -> str:
    canonical = json.dumps(sections, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def document(node: Node) -> dict[str, Any]:
    """The full desired-state document for one node (used on a poll whose ETag did not match)."""
    sections = compose(node, node.fleet.layers.all(), node_compliance(node.fleet))
    return {
        "node_id": str(node.pk),
        "revision": node.desired_revision,
        "poll_interval_s": node.poll_interval_s,
        **sections,
    }


def refresh(fleet: Fleet, nodes: Iterable[Node] | None = None) -> list[Node]:
    """Recompute digests for `nodes` (default: the whole fleet); bump the revision of each node
    whose document changed and save only those. Returns the changed nodes."""
    layers = list(fleet.layers.all())
    compliance = node_compliance(fleet)  # once per refresh, not once per node
    if nodes is None:
        nodes = fleet.nodes.only(
            "id", "name", "fleet_id", "labels", "desired_revision", "desired_digest"
        )
    changed = []
    for node in nodes:
        sections = compose(node, layers, compliance)
        new = digest(sections)
        if new != node.desired_digest:
            try:
                validate_sections(sections)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ServiceError(
                    f"the desired state of node '{node.name}' would be invalid: {where}: {first['msg']}"
                ) from None
            if node.desired_digest:
                node.desired_revision += 1
            node.desired_digest = new
            changed.append(node)
    Node.objects.bulk_update(changed, ["desired_revision", "desired_digest"], batch_size=1000)
    return changed
