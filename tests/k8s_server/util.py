"""Small helpers shared by the test API server: time, selectors, names, hashes."""
from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import random
import re
import time
from typing import Any

# The alphabet Kubernetes uses for generated name suffixes and pod-template hashes (no vowels,
# no confusable characters).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now() -> float:
    return time.time()


def iso(ts: float | None = None) -> str:
    """RFC 3339 timestamp with second precision, as the API server writes them."""
    if ts is None:
        ts = time.time()
    return _dt.datetime.fromtimestamp(int(ts), tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_micro(ts: float | None = None) -> str:
    if ts is None:
        ts = time.time()
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    value = value.replace("Z", "+00:00")
    try:
        return _dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """kubectl's short age format (5s, 3m20s, 2d3h, ...)."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d"


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(SAFE_ALPHABET) for _i in range(n))


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(value: str) -> str:
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in value)


def compute_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    """A pod-template hash shaped like upstream's (fnv32a, then the safe alphabet)."""
    tpl = copy.deepcopy(template)
    (tpl.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
    raw = json.dumps(tpl, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32a(raw)))


def get_path(obj: Any, dotted: str) -> Any:
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def int_or_percent(value: Any, total: int, round_up: bool) -> int:
    """GetScaledValueFromIntOrPercent: ints pass through, "25%" is scaled and rounded."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        pct = int(text[:-1])
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)


# ---------------------------------------------------------------------------- label selectors

_REQ = re.compile(r"\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(==|=|!=|\s+in\s+|\s+notin\s+)\s*(\([^)]*\)|[^,]*))?\s*")


class SelectorError(ValueError):
    pass


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> list[tuple[str, str, list[str]]]:
    """Parse the string form (a=b,c!=d,e in (x,y),f notin (z),g,!h) into requirements."""
    reqs: list[tuple[str, str, list[str]]] = []
    if not text:
        return reqs
    for part in _split_top(text):
        m = _REQ.fullmatch(part)
        if not m:
            raise SelectorError(f"unable to parse requirement: {part!r}")
        neg, key, op, val = m.groups()
        if neg:
            reqs.append((key, "!", []))
        elif op is None:
            reqs.append((key, "exists", []))
        else:
            op = op.strip()
            if op in ("in", "notin"):
                vals = [v.strip() for v in val.strip().strip("()").split(",") if v.strip()]
                reqs.append((key, op, vals))
            else:
                reqs.append((key, "!=" if op == "!=" else "=", [val.strip()]))
    return reqs


def labels_match(reqs: list[tuple[str, str, list[str]]], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, vals in reqs:
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
        if op == "=" and labels.get(key) != vals[0]:
            return False
        if op == "!=" and labels.get(key) == vals[0]:
            return False
        if op == "in" and labels.get(key) not in vals:
            return False
        if op == "notin" and labels.get(key) in vals:
            return False
    return True


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions); an empty selector matches nothing here."""
    if not selector:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, vals = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and key in labels and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def selector_to_string(selector: dict[str, Any] | None) -> str:
    parts = [f"{k}={v}" for k, v in sorted((selector or {}).get("matchLabels", {}).items())]
    for expr in (selector or {}).get("matchExpressions") or []:
        op = expr.get("operator")
        if op in ("In", "NotIn"):
            parts.append(f"{expr['key']} {op.lower()} ({','.join(expr.get('values') or [])})")
        elif op == "Exists":
            parts.append(expr["key"])
        elif op == "DoesNotExist":
            parts.append(f"!{expr['key']}")
    return ",".join(parts)


def parse_field_selector(text: str | None) -> list[tuple[str, str, str]]:
    out = []
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "!=" in part:
            k, v = part.split("!=", 1)
            out.append((k.strip(), "!=", v.strip()))
        elif "==" in part:
            k, v = part.split("==", 1)
            out.append((k.strip(), "=", v.strip()))
        elif "=" in part:
            k, v = part.split("=", 1)
            out.append((k.strip(), "=", v.strip()))
        else:
            raise SelectorError(f"invalid field selector: {part!r}")
    return out


def fields_match(reqs: list[tuple[str, str, str]], obj: dict[str, Any]) -> bool:
    for key, op, val in reqs:
        actual = get_path(obj, key)
        actual = "" if actual is None else str(actual)
        if op == "=" and actual != val:
            return False
        if op == "!=" and actual == val:
            return False
    return True


def is_controlled_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    uid = owner["metadata"]["uid"]
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid") == uid:
            return True
    return False


def controller_ref(owner: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def image_tag(image: str) -> str:
    """The tag of an image reference (repo[:port]/name:tag[@digest]); 'latest' when absent."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return "latest"


def condition(obj_status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in obj_status.get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None
