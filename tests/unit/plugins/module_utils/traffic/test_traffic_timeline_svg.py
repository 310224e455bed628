"""The SVG picture of a traffic timeline."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.timeline_svg import render_timeline_svg


def test_svg_escapes_text():
    timeline = {"url": "http://x/?a=<b>&c", "summary": {}, "seconds": [
        {"t": 0, "requests": 2, "errors": 0, "error_kinds": {}, "versions": {'<"v">': 2}, "p95_ms": 1.0}]}
    root = ET.fromstring(render_timeline_svg(timeline))
    assert root.tag.endswith("svg")
