# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Record live HTTP traffic for the whole length of an upgrade: a per-second timeline as JSON and SVG.

    traffic_watch.py run    --url URL --out timeline.json [--duration S]    # foreground, Ctrl-C/SIGTERM stops
    traffic_watch.py start  --url URL --out timeline.json --pidfile P        # background, returns at once
    traffic_watch.py stop   --pidfile P                                      # SIGTERM, wait, print summary
    traffic_watch.py render timeline.json [--svg timeline.svg]               # redraw the picture

The SVG goes next to the JSON (same name, .svg) unless --svg says otherwise. ``stop`` and ``run`` print
the timeline's summary (the traffic_check numbers plus a verdict) as JSON on stdout.
Needs only Python >= 3.9 and requests; it loads the collection's sampler from this checkout.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import types
from typing import Any, Dict, List, Optional

_CHECKOUT = pathlib.Path(__file__).resolve().parent.parent
_COLLECTION = "ansible_collections.zerodown.rollout"
_TRAFFIC = f"{_COLLECTION}.plugins.module_utils.traffic"


def _load_traffic() -> types.SimpleNamespace:
    """The sampler's modules from this checkout, imported under the collection's own names.

    They import one another as ``ansible_collections.zerodown.rollout...``, which a bare Python (no Ansible's
    collection loader) cannot resolve: this checkout is registered under that name first, so the tool runs
    the code next to it rather than another installed copy of the collection.
    """
    for name, path in (("ansible_collections", None), ("ansible_collections.zerodown", None),
                       (_COLLECTION, _CHECKOUT)):
        package = types.ModuleType(name)
        package.__path__ = [str(path)] if path else []
        sys.modules.setdefault(name, package)
    try:
        return types.SimpleNamespace(**{part: importlib.import_module(f"{_TRAFFIC}.{part}")
                                        for part in ("config", "report", "recorder", "timeline_svg")})
    except ImportError as exc:
        raise SystemExit(f"traffic_watch: cannot load the sampler from {_CHECKOUT}: {exc}") from None


traffic = _load_traffic()


class WatchError(Exception):
    pass


def _parse_headers(args: argparse.Namespace) -> Dict[str, str]:
    headers: Dict[str, str] = {}
    if args.headers_file:
        # a file keeps secrets such as Authorization out of the process list
        try:
            data = json.loads(pathlib.Path(args.headers_file).read_text())
        except (OSError, ValueError) as exc:
            raise WatchError(f"--headers-file {args.headers_file}: cannot read a JSON object of headers ({exc}).")
        if not isinstance(data, dict):
            raise WatchError(f"--headers-file {args.headers_file}: must hold a JSON object of name to value.")
        headers.update(data)
    for item in args.header or []:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise WatchError(f"--header {name.strip()!r}...: use the form 'Name: value'.")
        headers[name.strip()] = value.strip()
    return headers


def _config(args: argparse.Namespace) -> Any:
    return traffic.config.SamplerConfig(
        url=args.url, method=args.method, headers=_parse_headers(args), timeout=args.timeout,
        validate_certs=not args.insecure, ca_path=args.ca_path,
        expected_status=args.expected_status or None, version_json_path=args.version_json_path,
        version_header=args.version_header, version_regex=args.version_regex, concurrency=args.concurrency,
    )


def _svg_path(out: pathlib.Path, svg: Optional[str]) -> pathlib.Path:
    return pathlib.Path(svg) if svg else out.with_suffix(".svg")


def _write_atomic(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _thresholds(args: argparse.Namespace) -> Any:
    return traffic.report.Thresholds(max_error_rate=args.max_error_rate, expect_version=args.expect_version,
                                     min_version_fraction=args.min_version_fraction, max_p95_ms=args.max_p95_ms,
                                     min_samples=args.min_samples)


def _summary(timeline: Dict[str, Any], out: pathlib.Path, svg: pathlib.Path) -> Dict[str, Any]:
    result = dict(timeline["summary"])
    result.update(timeline.get("verdict", {}))
    result["timeline"] = str(out)
    result["svg"] = str(svg)
    return result


def _judge(timeline: Dict[str, Any], thresholds: Any) -> None:
    summary = timeline["summary"]
    report = traffic.report.TrafficReport(
        url=summary["url"], total=summary["total"], responses=summary["responses"], ok=summary["ok"],
        status_counts=summary["status_counts"], errors=summary["errors"], error_kinds=summary["error_kinds"],
        error_examples=summary["error_examples"], versions=summary["versions"], latency_ms=summary["latency_ms"],
        duration_s=summary["duration_s"], requests_per_s=summary["requests_per_s"],
        concurrency=summary["concurrency"], version_source=summary["version_source"],
        expected_status=summary["expected_status"])
    timeline["verdict"] = traffic.report.evaluate(report, thresholds).to_dict()


def cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    thresholds = _thresholds(args).validate()
    out = pathlib.Path(args.out)
    svg = _svg_path(out, args.svg)
    max_duration = args.duration if args.duration else args.max_duration
    recorder = traffic.recorder.TrafficRecorder(config, rate=args.rate, max_duration=max_duration)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    recorder.start()
    if args.pidfile:
        # written once recording runs: `start` waits for it as the ready signal
        state = {"pid": os.getpid(), "out": str(out.resolve()), "svg": str(svg.resolve())}
        _write_atomic(pathlib.Path(args.pidfile), f"{os.getpid()}\n")
        _write_atomic(_state_path(args.pidfile), json.dumps(state))
    try:
        while not stop.is_set() and not recorder.wait(0.2):
            pass
        timeline = recorder.stop()
        _judge(timeline, thresholds)
        _write_atomic(out, json.dumps(timeline, indent=1) + "\n")
        _write_atomic(svg, traffic.timeline_svg.render_timeline_svg(timeline))
    finally:
        if args.pidfile:
            for path in (pathlib.Path(args.pidfile), _state_path(args.pidfile)):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
    print(json.dumps(_summary(timeline, out, svg), indent=1))
    return 0


def _state_path(pidfile: str) -> pathlib.Path:
    return pathlib.Path(f"{pidfile}.state")


def _read_pid(pidfile: str) -> Optional[int]:
    try:
        text = pathlib.Path(pidfile).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An exited recorder whose new parent does not reap it (PID 1 in some containers) is a zombie: done.
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def cmd_start(args: argparse.Namespace) -> int:
    pidfile = pathlib.Path(args.pidfile)
    old = _read_pid(args.pidfile)
    if old is not None and _alive(old):
        raise WatchError(f"a recorder already runs with pid {old} ({pidfile}); stop it first.")
    for stale in (pidfile, _state_path(args.pidfile)):
        if stale.exists():
            stale.unlink()
    # refuse bad options here, where the caller sees the message, rather than in the detached child
    traffic.recorder.TrafficRecorder(_config(args), rate=args.rate,
                                     max_duration=args.duration if args.duration else args.max_duration)
    _thresholds(args).validate()
    out = pathlib.Path(args.out)
    log = pathlib.Path(args.log) if args.log else out.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(pathlib.Path(__file__).resolve()), "run"] + _forwarded(args)
    with open(log, "ab") as log_file, open(os.devnull, "rb") as devnull:
        # a new session: the recorder outlives the task (and its process group) that started it
        child = subprocess.Popen(argv, stdin=devnull, stdout=log_file, stderr=log_file, start_new_session=True,
                                 close_fds=True)
    deadline = time.monotonic() + args.ready_timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise WatchError(f"the recorder exited at once (code {child.returncode}):\n{tail}")
        if _read_pid(args.pidfile) == child.pid:
            print(json.dumps({"pid": child.pid, "pidfile": str(pidfile), "out": str(out), "log": str(log)}))
            return 0
        time.sleep(0.05)
    child.terminate()
    raise WatchError(f"the recorder did not report ready within {args.ready_timeout} s; see {log}.")


def _forwarded(args: argparse.Namespace) -> List[str]:
    argv = ["--url", args.url, "--out", args.out, "--pidfile", args.pidfile, "--rate", str(args.rate),
            "--concurrency", str(args.concurrency), "--timeout", str(args.timeout), "--method", args.method,
            "--max-duration", str(args.max_duration), "--min-samples", str(args.min_samples),
            "--max-error-rate", str(args.max_error_rate)]
    optional = {"--svg": args.svg, "--ca-path": args.ca_path, "--version-json-path": args.version_json_path,
                "--version-header": args.version_header, "--version-regex": args.version_regex,
                "--headers-file": args.headers_file, "--duration": args.duration,
                "--expect-version": args.expect_version, "--min-version-fraction": args.min_version_fraction,
                "--max-p95-ms": args.max_p95_ms}
    for flag, value in optional.items():
        if value is not None:
            argv += [flag, str(value)]
    for item in args.header or []:
        argv += ["--header", item]
    for item in args.expected_status or []:
        argv += ["--expected-status", item]
    if args.insecure:
        argv.append("--insecure")
    return argv


def cmd_stop(args: argparse.Namespace) -> int:
    pid = _read_pid(args.pidfile)
    if pid is None:
        raise WatchError(f"no recorder pid in {args.pidfile}; was it started with this --pidfile?")
    try:
        state = json.loads(_state_path(args.pidfile).read_text())
    except (OSError, ValueError):
        state = {}
    if not _alive(pid):
        raise WatchError(f"the recorder (pid {pid}) is not running any more; its log says why.")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it when this process happens to be its parent
        except ChildProcessError:
            pass
    if _alive(pid):
        raise WatchError(f"the recorder (pid {pid}) did not stop within {args.timeout} s.")
    out = pathlib.Path(state.get("out") or "")
    if not state or not out.is_file():
        raise WatchError("the recorder stopped but wrote no timeline; see its log.")
    timeline = json.loads(out.read_text())
    print(json.dumps(_summary(timeline, out, pathlib.Path(state["svg"])), indent=1))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    source = pathlib.Path(args.timeline)
    svg = _svg_path(source, args.svg)
    _write_atomic(svg, traffic.timeline_svg.render_timeline_svg(json.loads(source.read_text())))
    print(svg)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="traffic_watch.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def recording(p: argparse.ArgumentParser, need_pidfile: bool) -> None:
        p.add_argument("--url", required=True, help="http:// or https:// URL to watch")
        p.add_argument("--out", required=True, help="timeline JSON to write when the recording stops")
        p.add_argument("--svg", help="SVG picture to write (default: --out with .svg)")
        p.add_argument("--pidfile", required=need_pidfile, help="file holding the recorder's pid")
        p.add_argument("--rate", type=float, default=20.0, help="requests per second over all workers (20)")
        p.add_argument("--concurrency", type=int, default=4, help="workers, keep the rate when answers are slow")
        p.add_argument("--timeout", type=float, default=2.0, help="per-request timeout in seconds (2)")
        p.add_argument("--duration", type=float, help="stop after this many seconds")
        p.add_argument("--max-duration", type=float, default=3600.0,
                       help="stop by itself after this many seconds at most (3600)")
        p.add_argument("--method", default="GET")
        p.add_argument("--header", action="append", help="'Name: value' (repeatable); see --headers-file")
        p.add_argument("--headers-file", help="JSON object of headers; keeps secrets off the command line")
        p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
        p.add_argument("--ca-path", help="PEM bundle to verify TLS certificates against")
        p.add_argument("--expected-status", action="append", help="accepted status or class (repeatable; 2xx)")
        p.add_argument("--version-json-path", help="dotted JSON path of the version (default: version)")
        p.add_argument("--version-header", help="response header holding the version")
        p.add_argument("--version-regex", help="regex on the body; first group is the version")
        p.add_argument("--min-samples", type=int, default=10)
        p.add_argument("--max-error-rate", type=float, default=0.0)
        p.add_argument("--expect-version")
        p.add_argument("--min-version-fraction", type=float)
        p.add_argument("--max-p95-ms", type=float)

    run = sub.add_parser("run", help="record in the foreground until SIGTERM/Ctrl-C or --duration")
    recording(run, need_pidfile=False)
    run.set_defaults(func=cmd_run)
    start = sub.add_parser("start", help="record in the background; returns once recording runs")
    recording(start, need_pidfile=True)
    start.add_argument("--log", help="the recorder's log (default: --out with .log)")
    start.add_argument("--ready-timeout", type=float, default=15.0)
    start.set_defaults(func=cmd_start)
    stop = sub.add_parser("stop", help="stop a background recorder and print its summary")
    stop.add_argument("--pidfile", required=True)
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for it to finish writing")
    stop.set_defaults(func=cmd_stop)
    render = sub.add_parser("render", help="draw the SVG of a timeline JSON again")
    render.add_argument("timeline")
    render.add_argument("--svg")
    render.set_defaults(func=cmd_render)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (WatchError, traffic.config.TrafficError) as exc:
        print(f"traffic_watch: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
