"""nginx: upstream rendering and parsing, reloads, convergence to the intent, weights."""
from __future__ import annotations

import sys

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer import nginx as ngx
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Scope
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.registry import make_balancer
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput, RolloutFailed
from tests.support.balancer_fakes import run


def test_nginx_render_and_parse_round_trip():
    text = ngx.render_upstream("shop", [("shop-r1-a", "127.0.0.1:3000"), ("shop-r1-b", "127.0.0.1:3001")], "max_fails=1")
    assert "upstream shop {" in text and "server 127.0.0.1:3000 max_fails=1;  # zerodown:shop-r1-a" in text
    assert ngx.parse_upstream(text) == [("shop-r1-a", "127.0.0.1:3000"), ("shop-r1-b", "127.0.0.1:3001")]
    empty = ngx.render_upstream("shop", [])
    assert "down;" in empty and ngx.parse_upstream(empty) == []


def _script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_nginx_driver_reloads_and_restores_on_rejected_config(tmp_path):
    log = tmp_path / "reloads"
    reload_cmd = _script(tmp_path, "reload", f"open({str(log)!r}, 'a').write('reload\\n')")
    upstream = tmp_path / "upstream.conf"
    lb = ngx.NginxUpstream(str(upstream), "shop", run, reload_command=reload_cmd, test_command="", drain_grace=0)
    lb.add("a", "127.0.0.1:1")
    lb.add("b", "127.0.0.1:2")
    assert set(lb.members()) == {"a", "b"}
    lb.drain("a")
    assert set(lb.members()) == {"b"} and lb.wait_drained("a", 5)
    assert log.read_text().count("reload") == 3
    good = upstream.read_text()
    failing = ngx.NginxUpstream(str(upstream), "shop", run, reload_command=reload_cmd,
                                test_command=_script(tmp_path, "test", "import sys; sys.exit('emerg: bad')"))
    with pytest.raises(RolloutFailed, match="bad"):
        failing.add("c", "127.0.0.1:3")
    assert upstream.read_text() == good  # a config nginx refused is not left behind
    with pytest.raises(InvalidInput):
        ngx.NginxUpstream("", "shop", run)


def test_nginx_file_is_rendered_from_intent_keeping_other_hosts_members(tmp_path):
    upstream = tmp_path / "upstream.conf"
    upstream.write_text(ngx.render_upstream("shop", [("shop-r1-000001.bbbbbb", "10.0.0.2:80"),
                                                     ("shop-r1-000002.aaaaaa", "127.0.0.1:9")]))
    reloads = []
    lb = ngx.NginxUpstream(str(upstream), "shop", lambda argv: reloads.append(argv) or (0, "", ""), test_command="",
                           drain_grace=0)
    lb.bind(Scope("shop", "aaaaaa"), {"shop-r2-000003.aaaaaa": "127.0.0.1:3"}, drain_timeout=0, up_timeout=1)
    assert lb.divergence()
    fixes = lb.reconcile()
    assert ngx.parse_upstream(upstream.read_text()) == [("shop-r1-000001.bbbbbb", "10.0.0.2:80"),
                                                        ("shop-r2-000003.aaaaaa", "127.0.0.1:3")]
    assert len(reloads) == 1 and len(fixes) == 2, fixes
    assert lb.reconcile() == [] and len(reloads) == 1  # nothing differs: no rewrite, no reload


def test_nginx_empty_test_command_means_no_test():
    lb = make_balancer({"type": "nginx", "upstream_file": "/tmp/x.conf", "test_command": ""}, "shop", run)
    assert lb.test_command == ""
    default = make_balancer({"type": "nginx", "upstream_file": "/tmp/x.conf"}, "shop", run)
    assert default.test_command == "nginx -t"


def test_nginx_weights_are_written_and_zero_is_down(tmp_path):
    upstream = tmp_path / "up.conf"
    lb = ngx.NginxUpstream(str(upstream), "web", runner=run, reload_command="true", test_command="")
    lb.bind(Scope("app", "aaaaaa"), {}, drain_timeout=1, up_timeout=1)
    lb.add("app-r1-000001.aaaaaa", "127.0.0.1:1")
    lb.add("app-r2-000002.aaaaaa", "127.0.0.1:2")
    said = lb.set_weights({"app-r1-000001.aaaaaa": 0, "app-r2-000002.aaaaaa": 5})
    text = upstream.read_text()
    assert "server 127.0.0.1:1 down;  # zerodown:app-r1-000001.aaaaaa" in text
    assert "server 127.0.0.1:2 weight=5;  # zerodown:app-r2-000002.aaaaaa" in text
    assert "weight=0" not in text
    assert said == [f"nginx upstream web ({upstream}): set app-r1-000001.aaaaaa's weight to 0 (it was 1)",
                    f"nginx upstream web ({upstream}): set app-r2-000002.aaaaaa's weight to 5 (it was 1)"]
    assert {n: m.weight for n, m in lb.members().items()} == {"app-r1-000001.aaaaaa": 0, "app-r2-000002.aaaaaa": 5}
    assert lb.counters() is None
    assert lb.set_weights({"app-r2-000002.aaaaaa": 5}) == []
