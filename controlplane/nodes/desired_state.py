"""Compose a node's desired-state document from its fleet's layers.

Order: fleet layers, then label layers whose selector matches the node, then node layers; within a
scope by priority (low to high), then name. Later layers win: dicts are merged key by key, anything
else (lists, scalars, null) replaces. The revision of a node moves only when the composed document's
digest changes, so an edit that leaves a node's document as it was causes no download on that node.

A model section may name a registry model and a variant ("auto" or a quantization): it is resolved
per node (registry/resolver.py) into a URL, sha256 and signed manifest. During a rollout, the nodes
it has reached get the rollout's model section in place of their layers'
(controlplane/rollouts/services.py).
A routing section may name a registered router by version: nodes get its sha256, signature and
download URL (or `error` when no such version is registered).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import JSONField, OuterRef, Subquery
from pydantic import ValidationError

from controlplane import signing
from controlplane.errors import ServiceError
from controlplane.events import wake_on_commit
from controlplane.nodes.metrics import measured_speeds
from controlplane.nodes.models import (
    ACTIVE_ROLLOUT,
    DesiredStateLayer,
    Fleet,
    LayerScope,
    Node,
    Rollout,
    RolloutNode,
    RolloutNodeState,
    etag_for,
)
from controlplane.registry import resolver
from controlplane.registry.queries import routers_of, variants_of
from controlplane.registry.resolver import Variant
from wire.schemas import SECTIONS, first_error, model_digest, validate_sections

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


@dataclass
class Context:
    """What composing a fleet's documents needs, loaded once per refresh (not once per node)."""

    layers: list[DesiredStateLayer]
    compliance: dict[str, Any]  # the fleet's policy as nodes see it; no layer can weaken it
    overrides: dict[Any, dict[str, Any]]  # node id -> model section of an active rollout
    variants: dict[str, list[Variant]]  # the registry, for model sections that name a variant
    headroom: float
    routers: dict[str, dict[str, Any]]  # registered routers named by routing sections, by version
    # tokens/s measured by hardware class and model sha256, where an assignment sets a floor
    speeds: dict[str, dict[str, float]] = field(default_factory=dict)
    # the fleet's secrets' versions by name, where an assignment names one (api_key_secret)
    secrets: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, fleet: Fleet, node: Node | None = None) -> Context:
        """For the whole fleet, or (with `node`) for one node's document."""
        layers = list(fleet.layers.all())
        if node is not None and hasattr(
            node, "rollout_model"
        ):  # loaded with the node (for_document)
            overrides = {node.pk: node.rollout_model} if node.rollout_model is not None else {}
        else:
            rollout_nodes = RolloutNode.objects.filter(
                rollout__fleet=fleet,
                rollout__status__in=ACTIVE_ROLLOUT,
                state=RolloutNodeState.UPDATED,
            )
            if node is not None:
                rollout_nodes = rollout_nodes.filter(node=node)
            overrides = dict(rollout_nodes.values_list("node_id", "rollout__model"))
        names = {
            m["name"]
            for m in [
                *(m for layer in layers for m in layer_models(layer.sections)),
                *overrides.values(),
            ]
            if isinstance(m, dict) and m.get("variant") and isinstance(m.get("name"), str)
        }
        versions = {
            r["router"]
            for r in (layer.sections.get("routing") for layer in layers)
            if isinstance(r, dict) and isinstance(r.get("router"), str)
        }
        models = [m for layer in layers for m in layer_models(layer.sections)]
        floors = any(isinstance(m, dict) and m.get("min_tokens_per_s") for m in models)
        named_secrets = any(isinstance(m, dict) and m.get("api_key_secret") for m in models)
        return cls(
            layers=layers,
            compliance=node_compliance(fleet),
            overrides=overrides,
            variants=variants_of(sorted(names)) if names else {},
            headroom=float(settings.EDGEFLEET["MODEL_MEMORY_HEADROOM"]),
            routers=routers_of(sorted(versions)) if versions else {},
            speeds=measured_speeds(fleet.pk) if floors else {},
            secrets=dict(fleet.secrets.values_list("name", "version")) if named_secrets else {},
        )


def layer_models(sections: dict[str, Any]) -> list[Any]:
    """The model assignments a layer's sections hold: its `model` and each of its `models`."""
    extra = sections.get("models")
    return [sections.get("model"), *(extra.values() if isinstance(extra, dict) else [])]


def compose(node: Node, ctx: Context) -> dict[str, Any]:
    """The node's sections: its matching layers merged, an active rollout's model in place of the
    layers' for nodes it has reached (the default model, or the one of `models` with the same
    name), a registry model resolved to the variant for this node. `models` appears only where a
    layer names some (so documents without them keep their digest)."""
    sections = empty_sections()
    for layer in ordered(ctx.layers):
        if layer.matches(node):
            for name in SECTIONS:
                if name in layer.sections and name != "compliance":
                    sections[name] = merge(sections.get(name), layer.sections[name])
    extra = sections.get("models") if isinstance(sections.get("models"), dict) else None
    if node.pk in ctx.overrides:
        override = ctx.overrides[node.pk]
        model = sections["model"]
        same = next(
            (
                key
                for key, m in (extra or {}).items()
                if isinstance(m, dict)
                and isinstance(override, dict)
                and m.get("name") == override.get("name")
                and not (isinstance(model, dict) and model.get("name") == override.get("name"))
            ),
            None,
        )
        if same is not None and extra is not None:
            extra = {**extra, same: override}
        else:
            sections["model"] = override
    sections["model"] = assignment(sections["model"], node, ctx)
    if extra is not None:
        sections["models"] = {key: assignment(m, node, ctx) for key, m in extra.items()}
        together = fit_together(sections, node, ctx)
        if together:
            sections["models"] = {
                key: {**m, "choice": f"{m.get('choice') or ''}; {together}".lstrip("; ")[:1000]}
                if isinstance(m, dict) and not m.get("error")
                else m
                for key, m in sections["models"].items()
            }
    routing = sections["routing"]
    if isinstance(routing, dict) and isinstance(routing.get("router"), str):
        ref = ctx.routers.get(routing["router"])
        sections["routing"] = (
            {**routing, "router": ref}
            if ref
            else {
                **routing,
                "router": None,
                "error": f"router '{routing['router']}' is not registered",
            }
        )
    sections["compliance"] = ctx.compliance
    return sections


def assignment(model: Any, node: Node, ctx: Context) -> Any:
    """One model assignment as the node gets it: a registry model resolved to its variant for
    this node; a file named by URL and sha256 with a manifest the control plane signs (it vouches
    for the sha256 an operator wrote); anything else as it is."""
    if isinstance(model, dict) and model.get("api_key_secret"):
        name = model["api_key_secret"]
        if name not in ctx.secrets:
            return {**model, "error": f"model '{model.get('name')}': no secret '{name}' is set"}
        model = {**model, "api_key_version": ctx.secrets[name]}
    if isinstance(model, dict) and model.get("variant"):
        return resolve(model, node, ctx)
    if isinstance(model, dict) and model.get("backend", "llama_cpp") == "llama_cpp":
        sha = model.get("sha256")
        if isinstance(sha, str) and isinstance(model.get("name"), str):
            return {**model, **signed_manifest(model["name"], sha)}
    return model


def fit_together(sections: dict[str, Any], node: Node, ctx: Context) -> str:
    """Whether the node's registry models fit in its memory at once (weights plus KV caches,
    within the headroom), said in words; "" where a model's size is not known (a URL)."""
    models = [sections.get("model"), *(sections.get("models") or {}).values()]
    needs = []
    for m in models:
        if m is None:
            continue
        if not isinstance(m, dict) or m.get("error") or not m.get("variant"):
            return ""
        found = [v for v in ctx.variants.get(str(m.get("name")), []) if v.sha256 == m.get("sha256")]
        if not found:
            return ""
        needs.append(found[0].need_bytes(int(m.get("n_ctx") or 2048)))
    on_gpu = all(isinstance(m, dict) and int(m.get("n_gpu_layers") or 0) == -1 for m in models if m)
    total, kind = resolver.budget(node.hardware or {}, -1 if on_gpu else 0)
    usable = int(total * (1 - ctx.headroom))
    if not total or len(needs) < 2:
        return ""
    mb = 1 << 20
    if sum(needs) <= usable:
        return (
            f"all {len(needs)} models fit at once: {sum(needs) / mb:,.1f} MB of "
            f"{usable / mb:,.1f} MB usable {kind}"
        )
    return (
        f"the {len(needs)} models need {sum(needs) / mb:,.1f} MB together, more than the "
        f"{usable / mb:,.1f} MB usable {kind}: the node keeps the recently used ones loaded and "
        "swaps the others in when an agent needs them"
    )


def resolve(model: dict[str, Any], node: Node, ctx: Context) -> dict[str, Any]:
    """Fill a registry assignment in for one node: the variant's URL (on the node API), sha256 and
    signed manifest, and why this variant; or `error` saying why none can run here."""
    model = {
        k: v
        for k, v in model.items()
        if k not in ("url", "sha256", "manifest", "signature", "choice", "error")
    }
    name = str(model.get("name", ""))
    choice = resolver.choose(
        ctx.variants.get(name, []),
        str(model["variant"]),
        node.hardware or {},
        n_ctx=int(model.get("n_ctx") or 2048),
        n_gpu_layers=int(model.get("n_gpu_layers") or 0),
        headroom=ctx.headroom,
        prefer=str(model.get("prefer") or ""),
        speeds=ctx.speeds.get(resolver.hardware_class(node.hardware or {}), {}),
        min_tokens_per_s=model.get("min_tokens_per_s"),
    )
    v = choice.variant
    if v is None:
        return {**model, "error": f"model '{name}': {choice.explanation}"[:1000]}
    return {
        **model,
        "url": f"artifacts/{v.sha256}",
        "sha256": v.sha256,
        "manifest": v.manifest,
        "signature": v.signature,
        "choice": choice.explanation[:1000],
    }


@lru_cache(maxsize=1024)
def _signed(name: str, sha256: str, key_id: str) -> tuple[dict[str, Any], str]:
    return signing.sign_manifest(name=name, variant="custom", sha256=sha256, size=None)


def signed_manifest(name: str, sha256: str) -> dict[str, Any]:
    """A manifest for a model given by URL and sha256 (Ed25519 signatures are deterministic, so
    the document's digest does not move)."""
    m, signature = _signed(name, sha256, signing.key_id())
    return {"manifest": m, "signature": signature}


def node_compliance(fleet: Fleet) -> dict[str, Any]:
    """The fleet's policy as nodes get it. The sessions' retention and the erased subjects are
    added only where there are some, so that other documents keep their digest."""
    policy = fleet.compliance_policy(for_node=True).model_dump(
        exclude={"session_retention_days", "erased_subjects"}
    )
    if fleet.events_retention_days:
        policy["session_retention_days"] = fleet.events_retention_days
    if fleet.erased_subjects:
        policy["erased_subjects"] = sorted({e["subject"] for e in fleet.erased_subjects})
    return policy


def digest(sections: dict[str, Any]) -> str:
    canonical = json.dumps(sections, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def for_document(node_id) -> Node:
    """The node, its fleet and the model of an active rollout that reached it, in one query (the
    full poll answers with three: credential, this, the fleet's layers)."""
    rollout_model = RolloutNode.objects.filter(
        node=OuterRef("pk"), rollout__status__in=ACTIVE_ROLLOUT, state=RolloutNodeState.UPDATED
    ).values("rollout__model")[:1]
    return (
        Node.objects.select_related("fleet")
        .annotate(rollout_model=Subquery(rollout_model, output_field=JSONField()))
        .get(pk=node_id)
    )


def document(node: Node, ctx: Context | None = None) -> dict[str, Any]:
    """The full desired-state document for one node (used on a poll whose ETag did not match);
    `ctx` loaded for its whole fleet when composing many (`documents`)."""
    sections = compose(node, ctx or Context.load(node.fleet, node))
    return {
        "node_id": str(node.pk),
        "revision": node.desired_revision,
        "poll_interval_s": node.poll_interval_s,
        **sections,
    }


def documents(node_ids: Iterable[Any]) -> list[tuple[Any, int, str, Node, dict[str, Any]]]:
    """The documents of many nodes (woken watches, watch.py), as (node id, revision, ETag, a node
    of the same fleet, sections): the sections are composed once per distinct stored digest, each
    fleet's context loaded once. Nodes whose digest is the same have the same sections (the
    digest is their sha256), so a change that reaches 5,000 nodes alike composes once; the
    sections are shared between those nodes (do not change them)."""
    ids = list(node_ids)
    rows: list[tuple[Any, int, int, str]] = []
    for i in range(0, len(ids), 1000):
        rows += Node.objects.filter(pk__in=ids[i : i + 1000]).values_list(
            "pk", "fleet_id", "desired_revision", "desired_digest"
        )
    first: dict[tuple[int, str], Any] = {}
    for pk, fleet_id, _, digest in rows:
        first.setdefault((fleet_id, digest), pk)
    contexts: dict[int, Context] = {}
    composed: dict[tuple[int, str], tuple[Node, dict[str, Any]]] = {}
    for node in Node.objects.select_related("fleet").filter(pk__in=list(first.values())):
        if node.fleet_id not in contexts:
            contexts[node.fleet_id] = Context.load(node.fleet)
        composed[(node.fleet_id, node.desired_digest)] = (
            node,
            compose(node, contexts[node.fleet_id]),
        )
    out = []
    for pk, fleet_id, revision, digest in rows:
        if (fleet_id, digest) in composed:  # (absent if a node changed between the two reads)
            node, sections = composed[(fleet_id, digest)]
            out.append((pk, revision, etag_for(revision, digest), node, sections))
    return out


def refresh(fleet: Fleet, nodes: Iterable[Node] | None = None) -> list[Node]:
    """Recompute digests for `nodes` (default: the whole fleet); bump the revision of each node
    whose document changed and save only those. Returns the changed nodes."""
    ctx = Context.load(fleet)
    if nodes is None:
        nodes = fleet.nodes.only(
            "id",
            "name",
            "fleet_id",
            "labels",
            "hardware",
            "desired_revision",
            "desired_digest",
            "desired_model_digest",
            "model_choice",
        )
    changed = []
    for node in nodes:
        sections = compose(node, ctx)
        new = digest(sections)
        if new != node.desired_digest:
            try:
                validate_sections(sections)
            except ValidationError as exc:
                raise ServiceError(
                    f"the desired state of node '{node.name}' would be invalid: {first_error(exc)}"
                ) from None
            if node.desired_digest:
                node.desired_revision += 1
            node.desired_digest = new
            model = sections["model"] or {}
            node.desired_model_digest = model_digest(model)
            node.model_choice = model.get("error") or model.get("choice") or ""
            changed.append(node)
    _save(changed)
    return changed


def _save(nodes: list[Node]) -> None:
    """One prepared UPDATE per node, sent with executemany (pipelined on PostgreSQL): bulk_update's
    CASE expressions cost ~1 ms of Python per node to build (bench/registry.py)."""
    if not nodes:
        return
    table = Node._meta.db_table
    sql = (
        f"UPDATE {table} SET desired_revision = %s, desired_digest = %s, "
        "desired_model_digest = %s, model_choice = %s WHERE id = %s"
    )
    pk = Node._meta.pk
    assert pk is not None
    rows = [
        (
            n.desired_revision,
            n.desired_digest,
            n.desired_model_digest,
            n.model_choice,
            pk.get_db_prep_value(n.pk, connection),
        )
        for n in sorted(nodes, key=lambda n: str(n.pk))  # one lock order for concurrent changes
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    by_fleet: dict[int, list[str]] = {}
    for n in nodes:
        by_fleet.setdefault(n.fleet_id, []).append(str(n.pk))
    for fleet_id, ids in by_fleet.items():
        wake_on_commit("desired", fleet=fleet_id, nodes=ids)


# --- the registry's announcements (controlplane.registry.services; connected in apps.py) ------


def refresh_for_model(sender, *, name: str, **kwargs) -> int:
    """A new variant can change what "auto" picks (or fix a "no variant fits"): refresh the fleets
    whose layers or active rollouts name the model. Only documents that change get a revision."""

    def names(model: Any) -> bool:
        return isinstance(model, dict) and model.get("name") == name and bool(model.get("variant"))

    fleet_ids = {
        fid
        for fid, sections in DesiredStateLayer.objects.values_list("fleet_id", "sections")
        if any(names(m) for m in layer_models(sections or {}))
    } | {
        fid
        for fid, model in Rollout.objects.filter(status__in=ACTIVE_ROLLOUT).values_list(
            "fleet_id", "model"
        )
        if names(model)
    }
    changed = 0
    for fleet in Fleet.objects.filter(pk__in=fleet_ids):
        changed += len(refresh(fleet))
    return changed


def refresh_for_router(sender, *, version: str, **kwargs) -> None:
    """A router version registered: refresh the fleets whose layers route with it."""
    fleets = {
        fid
        for fid, sections in DesiredStateLayer.objects.values_list("fleet_id", "sections")
        if ((sections or {}).get("routing") or {}).get("router") == version
    }
    for fleet in Fleet.objects.filter(pk__in=fleets):
        refresh(fleet)
