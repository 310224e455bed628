"""JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes strategic merge patch.

The strategic merge patch knows the merge keys of the fields the collection and kubectl touch
(containers by name, env by name, ports, volumes...) and the $patch / $setElementOrder /
$retainKeys / $deleteFromPrimitiveList directives kubectl emits.
"""
from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    pass


# ---------------------------------------------------------------------------- JSON patch

def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError) as exc:
                raise PatchError(f"index {p!r} out of range") from exc
        elif isinstance(cur, dict):
            if p not in cur:
                raise PatchError(f"path element {p!r} not found")
            cur = cur[p]
        else:
            raise PatchError(f"cannot descend into {type(cur).__name__} at {p!r}")
    return cur


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            idx = int(last)
            if idx > len(parent):
                raise PatchError(f"index {idx} out of range")
            parent.insert(idx, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError("cannot add to a scalar")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise PatchError("cannot remove the root")
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        try:
            parent.pop(int(last))
        except (ValueError, IndexError) as exc:
            raise PatchError(f"index {last!r} out of range") from exc
    elif isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"unable to remove nonexistent key: {last}")
        del parent[last]
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError(f"invalid operation {op!r}")
        kind = op["op"]
        parts = _pointer(op.get("path", ""))
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, parts)
        elif kind == "replace":
            _walk(doc, parts)  # must exist
            if parts:
                doc = _remove(doc, parts)
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "move":
            src = _pointer(op["from"])
            value = copy.deepcopy(_walk(doc, src))
            doc = _remove(doc, src)
            doc = _add(doc, parts, value)
        elif kind == "copy":
            value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
            doc = _add(doc, parts, value)
        elif kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise PatchError(f"test operation failed at {op.get('path')}")
        else:
            raise PatchError(f"unknown operation {kind!r}")
    return doc


# ---------------------------------------------------------------------------- merge patch

def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


# ---------------------------------------------------------------------------- strategic merge patch

# list field name -> merge key (patchStrategy=merge in the upstream API types)
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
PRIMITIVE_MERGE = {"finalizers"}


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        for it in items:
            if isinstance(it, dict):
                if "containerPort" in it:
                    return "containerPort"
                if "port" in it:
                    return "port"
        return None
    return MERGE_KEYS.get(field)


def strategic_merge_patch(original: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    return _smp_map(original if isinstance(original, dict) else {}, patch)


def _smp_map(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(original)
    orders: dict[str, list[Any]] = {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [x for x in result[field] if x not in (v or [])]
            continue
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict):
            merged = _smp_map(result.get(k) if isinstance(result.get(k), dict) else {}, v)
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
        elif isinstance(v, list):
            result[k] = _smp_list(k, result.get(k) if isinstance(result.get(k), list) else [], v)
        else:
            result[k] = copy.deepcopy(v)
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _apply_order(field, result[field], order)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(field: str, original: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [copy.deepcopy(x) for x in patch if not (isinstance(x, dict) and x.get("$patch") == "replace")]
    if field in PRIMITIVE_MERGE:
        out = list(original)
        for x in patch:
            if x not in out:
                out.append(x)
        return out
    key = _merge_key(field, patch + original)
    if key is None:
        return [_strip_directives(copy.deepcopy(x)) for x in patch]
    out = copy.deepcopy(original)
    for item in patch:
        if not isinstance(item, dict):
            continue
        kv = item.get(key)
        idx = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(key) == kv), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_strip_directives(copy.deepcopy(item)))
        else:
            merged = _smp_map(out[idx], item)
            if merged is None:
                out.pop(idx)
            else:
                out[idx] = merged
    return out


def _strip_directives(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_directives(v) for k, v in obj.items()
                if not k.startswith("$")}
    if isinstance(obj, list):
        return [_strip_directives(x) for x in obj]
    return obj


def _apply_order(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = _merge_key(field, order + items)
    if key is None:
        return items
    pos = {(o.get(key) if isinstance(o, dict) else o): i for i, o in enumerate(order)}
    indexed = list(enumerate(items))
    indexed.sort(key=lambda p: (pos.get(p[1].get(key) if isinstance(p[1], dict) else p[1], len(pos) + p[0])))
    return [x for _idx, x in indexed]


def apply_patch(content_type: str, original: dict[str, Any], body: Any) -> dict[str, Any]:
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == "application/json-patch+json":
        return json_patch(original, body)
    if ctype == "application/merge-patch+json":
        return merge_patch(original, body)
    if ctype == "application/strategic-merge-patch+json":
        return strategic_merge_patch(original, body)
    raise PatchError(f"unsupported patch type {ctype!r}")
