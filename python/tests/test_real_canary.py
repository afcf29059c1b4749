"""A canary analysis from end to end with real software we did not write.

Three real nginx processes (Debian's /usr/sbin/nginx) on 127.0.0.1, each the reverse proxy in
front of the same application (a small HTTP backend run by this test that answers in
50–90 ms, so that latencies are real and noisy; nginx would serve a static file within its
1 ms clock resolution, 0 ms on every request):

* the baseline, version v1 (python/tests/real_canary/nginx.conf);
* a regressed canary, v2, whose config adds a per-client rate limit below the traffic it
  gets (real-world mistake: behind a load balancer every request comes from a few
  addresses). nginx queues the excess (latency) and rejects the overflow with 503 (errors)
  (real_canary/nginx-rate-limited.conf);
* a healthy canary, v3, with the baseline's config.

`hey` (/usr/bin/hey, a real HTTP load generator) drives each of them at the same modest
rate. nginx writes every request to its access log directly in coalmine's JSON point
format; a log-shipper thread in this test tails the three logs and produces each line as a
Kafka message with confluent-kafka (librdkafka) to the test broker (Tansu, started by
scripts/test.sh). The real `coalmine serve` daemon consumes the topic.

Everything else goes through the HTTP API as a user would: a SQL canary config (p90
latency and 5xx rate per second) is saved before any data exists, then one run per canary
and judge (the default `coalmine-v2`, `coalmine-v1` and the sequential `coalmine-seq-v1`) compares that
canary against the baseline. The test proves that, on real data from a real server:

* the rate-limited canary fails, and the metrics classified High are the latency and the
  error metric (both with coalmine-v1, one or both with the others);
* the healthy canary passes, every metric judged on a full window of data: its latencies
  differ from the baseline's by noise only, which the judges' tests and the config's
  effect-size gate (a regression is at least 1.5x the baseline) tell from a regression;
* each run's report (its verdict's `reportUrl`) is valid HTML that chromium draws;
* every access-log line was decoded (no decode errors), and the daemon stops cleanly.
"""

import contextlib
import http.server
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from report_checks import check_report
from served import Daemon, stop, wait_for

confluent_kafka = pytest.importorskip("confluent_kafka")

TEMPLATES = Path(__file__).resolve().parent / "real_canary"

# Offered load per server: WORKERS closed-loop hey workers, each at most RATE requests/s,
# 40 requests/s in all: 4x the regressed canary's limit, light for 2 cores.
WORKERS, RATE = 8, 5

# Runs: a judgment every 5 s over everything since the start, 4 judgments in all. Few
# judgments keep the fixed-horizon judge's chance of failing a healthy canary on noise low.
LIFETIME_S, INTERVAL_S = 20, 5

LATENCY, ERRORS = "latency p90", "5xx rate"

CANARY_CONFIG = {
    "name": "nginx-golden-signals",
    "applications": ["web"],
    "metrics": [
        {
            "name": LATENCY,
            "groups": ["latency"],
            "query": {
                "type": "sql",
                "sql": "SELECT date_bin(INTERVAL '1 second', ts) AS ts, "
                "approx_percentile_cont(value, 0.9) * 1000 AS value "
                "FROM metrics WHERE metric = 'nginx.request_time' GROUP BY 1",
            },
            # nginx's request time has millisecond resolution, so the p90s in ms are often
            # whole numbers: say that they are not counts (coalmine-seq-v1 would infer so).
            # A regression is at least 1.5x the baseline's p90 (Kayenta's effect-size gate): two
            # servers of one config differ by noise, which a significant but small shift is.
            "analysisConfigurations": {
                "canary": {"direction": "increase", "critical": True, "metricType": "continuous",
                           "effectSize": {"allowedIncrease": 1.5}}
            },
        },
        {
            # The share of requests answered 5xx, in percent, per second. A rate rather than
            # a count: rejections come in bursts, which break the Poisson model of
            # coalmine-seq-v1's count test (docs/sequential.md), and as continuous metrics
            # latency and errors get the same test, so that both cross at the same
            # judgment (the run stops at the first failing one, and the test wants both High).
            "name": ERRORS,
            "groups": ["errors"],
            "query": {
                "type": "sql",
                "sql": "SELECT date_bin(INTERVAL '1 second', ts) AS ts, "
                "100.0 * sum(CASE WHEN status LIKE '5%' THEN value ELSE 0 END) / sum(value) AS value "
                "FROM metrics WHERE metric = 'nginx.requests' GROUP BY 1",
            },
            "analysisConfigurations": {"canary": {"direction": "increase", "metricType": "continuous"}},
        },
    ],
    "classifier": {"groupWeights": {"latency": 50, "errors": 50}},
}

# (role, nginx config template, version tag, instance tag)
SERVERS = [
    ("baseline", "nginx.conf", "v1", "base-1"),
    ("regressed", "nginx-rate-limited.conf", "v2", "canary-1"),
    ("healthy", "nginx.conf", "v3", "canary-2"),
]
JUDGES = [None, "coalmine-v1", "coalmine-seq-v1"]  # None: no "judge" field, the default coalmine-v2


# ---------------------------------------------------------------------------------------
# fixtures


def _missing(what):
    if os.environ.get("COALMINE_REQUIRE_KAFKA"):
        pytest.fail(f"{what} (scripts/test.sh provides it)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def tools():
    """Paths of the real programs: nginx and hey."""
    found = {"nginx": shutil.which("nginx") or shutil.which("/usr/sbin/nginx"), "hey": shutil.which("hey")}
    absent = [name for name, path in found.items() if not path]
    if absent:
        _missing(f"{' and '.join(absent)} not installed (Debian packages nginx and hey)")
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# nginx, hey, the log shipper, the daemon


class App(http.server.BaseHTTPRequestHandler):
    """The application behind the proxies: every answer takes 50–90 ms (its work)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (the standard library's name)
        time.sleep(random.uniform(0.05, 0.09))
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet: nginx logs the requests
        pass


class AppServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 overflows at a few hundred connections a second,
    # and a dropped SYN is retried after a whole second: latency that is the test's, not
    # the system's under test
    request_queue_size = 256

    def handle_error(self, request, client_address):
        # nginx closing a connection when its client (hey, at the end) went away
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def backend():
    """The application's port (a threaded HTTP server, one thread per connection)."""
    server = AppServer(("127.0.0.1", 0), App)
    thread = threading.Thread(target=server.serve_forever, name="app", daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def start_nginx(nginx, template, prefix, version, instance, backend, children):
    """Start nginx from `template` in `prefix`; once it accepts connections, return its
    port, access log and process."""
    prefix.mkdir()
    port = free_port()
    conf = (TEMPLATES / template).read_text()
    values = {"PREFIX": prefix, "PORT": port, "BACKEND": backend, "VERSION": version, "INSTANCE": instance}
    for key, value in values.items():
        conf = conf.replace(f"@{key}@", str(value))
    (prefix / "nginx.conf").write_text(conf)
    # -e: Debian's build opens /var/log/nginx/error.log before reading the config otherwise
    cmd = [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(prefix / "nginx.conf")]
    with open(prefix / "stderr.log", "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT)
    children.append(proc)

    def alive():
        if proc.poll() is not None:
            logs = [(prefix / f).read_text() for f in ("stderr.log", "error.log") if (prefix / f).exists()]
            raise AssertionError(f"nginx ({template}) exited with {proc.returncode}: {logs}")

    def listening():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(f"nginx ({template}) to listen on {port}", listening, 10, alive)
    return port, prefix / "access.log", proc


class LogShipper(threading.Thread):
    """Tails access logs and produces each complete line as one Kafka message, as a log
    shipper (Vector, Fluent Bit) would. Errors are kept for the test to report."""

    def __init__(self, broker, topic, paths):
        super().__init__(name="log-shipper", daemon=True)
        self.topic = topic
        self.paths = list(paths)
        self.shipped = {p: 0 for p in self.paths}  # lines produced per file
        self.delivery_errors = []
        self.error = None
        self._stop_event = threading.Event()
        self._producer = confluent_kafka.Producer({"bootstrap.servers": broker, "linger.ms": 5})

    def _delivered(self, err, _msg):
        if err is not None:
            self.delivery_errors.append(str(err))

    def run(self):
        try:
            with contextlib.ExitStack() as files:
                logs = {p: files.enter_context(open(p, "rb")) for p in self.paths}
                partial = {p: b"" for p in self.paths}
                while not self._stop_event.is_set():
                    idle = True
                    for path, f in logs.items():
                        chunk = f.read()
                        if not chunk:
                            continue
                        idle = False
                        lines = (partial[path] + chunk).split(b"\n")
                        partial[path] = lines.pop()  # a line nginx has not finished yet
                        for line in lines:
                            self._producer.produce(
                                self.topic, line, key=path.parent.name, on_delivery=self._delivered
                            )
                            self.shipped[path] += 1
                    self._producer.poll(0)
                    if idle:
                        self._stop_event.wait(0.05)
            remaining = self._producer.flush(30)
            if remaining:
                self.delivery_errors.append(f"{remaining} messages not delivered at shutdown")
        except Exception as e:  # reported by the test, with the traceback
            self.error = e

    def stop(self):
        self._stop_event.set()
        self.join(timeout=60)

    def check(self):
        assert not self.is_alive(), "the log shipper did not stop"
        if self.error is not None:
            raise self.error
        assert not self.delivery_errors, self.delivery_errors[:5]


# ---------------------------------------------------------------------------------------
# the test


def high_metrics(judgment):
    return sorted(r["name"] for r in judgment["result"]["results"] if r["classification"] == "High")


def values_judged(metric_result):
    """(baseline, canary) values behind a metric's classification: the whole window for
    coalmine-v1 and -v2; every value since the run started for coalmine-seq-v1 (its per-judgment
    stats only cover the values new at that tick)."""
    test = metric_result.get("resultMetadata", {}).get("test", {})
    if test.get("kind", "").startswith("sequential"):
        return test["nControl"], test["nExperiment"]
    return metric_result["controlMetadata"]["stats"]["count"], metric_result["experimentMetadata"]["stats"]["count"]


def run_report(run):
    """A run for assertion messages: the score and High metrics of each judgment, then the
    run's JSON (without the sequential judge's internal states, which are large)."""
    scores = [(j["score"], high_metrics(j)) for j in run["judgments"]]
    shown = {k: v for k, v in run.items() if k != "sequential"}
    return f"(score, High metrics) per judgment: {scores}\nrun: {json.dumps(shown)}"


def check_run(role, verdict, run):
    """What is wrong with a finished run, or None."""
    if not run["judgments"]:
        return f"no judgment: {verdict}"
    last = run["judgments"][-1]
    if role == "regressed":
        # The run stops at the first failing judgment. coalmine-v1 judges the whole window
        # then, and both regressed metrics are High. coalmine-v2 (the default) controls the
        # false-alarm rate across both metrics and may flag the critical latency before the
        # error rate has the values to reach its level; an e-process of coalmine-seq-v1 may
        # cross a tick before the other's: there it is one of them or both, and nothing else.
        high = set(high_metrics(last))
        both = run["spec"]["judge"] == "coalmine-v1"
        if verdict["status"] != "fail" or not high or not high <= {LATENCY, ERRORS} or (both and high != {LATENCY, ERRORS}):
            return f"want fail with {LATENCY!r} and {ERRORS!r} High, got {verdict}"
        return None
    # healthy: a pass at the configured level, every metric Pass on a full window of data
    # (one value per second; a second at either end may be short of points)
    results = last["result"]["results"]
    if verdict["status"] != "pass" or verdict["notJudged"] or any(r["classification"] != "Pass" for r in results):
        return f"want pass with every metric Pass, got {verdict}"
    short = {r["name"]: values_judged(r) for r in results if min(values_judged(r)) < LIFETIME_S - 2}
    if short:
        return f"too few values judged (baseline, canary): {short}"
    # the latencies compared are real ones (limit_rate), not nginx's 0 ms for a static file
    latency = next(r for r in results if r["name"] == LATENCY)
    means = [latency[side]["stats"]["mean"] for side in ("controlMetadata", "experimentMetadata")]
    if not all(50 < m < 500 for m in means):
        return f"want p90 latencies around 100 ms on both sides, got means {means}"
    if latency["resultMetadata"]["test"].get("kind") == "mann-whitney" and latency.get("classificationReason"):
        return f"want the latencies compared by the test, got {latency['classificationReason']!r}"
    return None


def test_rate_limited_nginx_canary_fails_and_healthy_canary_passes(broker, create_topic, tools, backend, coalmine_bin, tmp_path, children):
    topic = f"nginx-access-{uuid.uuid4().hex[:8]}"  # Tansu: a fresh topic and group per test
    create_topic(broker, topic, 1)
    daemon = Daemon(coalmine_bin, tmp_path, broker, topic, children)

    # The config is saved before any point exists: its queries name tags (`status`) the
    # store has never seen.
    status, saved = daemon.request("POST", "/canaryConfig", CANARY_CONFIG)
    assert status == 200, (status, saved)
    config_id = saved["canaryConfigId"]

    servers = {}
    for role, template, version, instance in SERVERS:
        port, log, proc = start_nginx(tools["nginx"], template, tmp_path / role, version, instance, backend, children)
        servers[role] = {"port": port, "log": log, "proc": proc, "version": version}

    shipper = LogShipper(broker, topic, [s["log"] for s in servers.values()])
    shipper.start()
    loads = []
    try:
        for s in servers.values():
            hey = subprocess.Popen(
                # -z: longer than the test needs; stopped when the verdicts are in
                [tools["hey"], "-z", "300s", "-c", str(WORKERS), "-q", str(RATE), f"http://127.0.0.1:{s['port']}/"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            children.append(hey)
            loads.append(hey)

        # The pipeline works end to end before any run starts: every server's log is
        # shipped, and the daemon has stored everything shipped so far (two points a line).
        wait_for("requests in every access log",
                 lambda: all(n >= 20 for n in shipper.shipped.values()), 30, daemon.check)
        shipped = sum(shipper.shipped.values())
        wait_for(f"the daemon to ingest the first {shipped} lines",
                 lambda: daemon.metric("points_ingested_total") >= 2 * shipped, 30, daemon.check)

        runs = {}
        for role in ("regressed", "healthy"):
            for judge in JUDGES:
                body = {
                    "config": config_id,
                    "scopes": {"default": {
                        "control": {"tags": {"app": "web", "version": servers["baseline"]["version"]}},
                        "experiment": {"tags": {"app": "web", "version": servers[role]["version"]}},
                    }},
                    "start": "now", "lifetime": f"{LIFETIME_S}s", "interval": f"{INTERVAL_S}s",
                    "window": "growing", "thresholds": {"pass": 95, "marginal": 75},
                }
                if judge:
                    body["judge"] = judge
                status, created = daemon.request("POST", "/runs", body)
                assert status == 201, (status, created)
                runs[(role, judge or "coalmine-v2")] = created["id"]

        def verdicts():
            out = {key: daemon.request("GET", f"/runs/{rid}/verdict")[1] for key, rid in runs.items()}
            return out if all(v["status"] != "running" for v in out.values()) else None

        def runs_so_far():
            shown = (f"{role} canary, {judge}: {run_report(daemon.request('GET', f'/runs/{rid}')[1])}"
                     for (role, judge), rid in runs.items())
            return "\n\n".join(shown) + f"\n\ndaemon log:\n{daemon.tail()}"

        # "now" is aligned to the next interval boundary: at most one interval, then the
        # lifetime, then the ingest lateness (500 ms) and the judging itself
        final = wait_for("every run's verdict", verdicts, INTERVAL_S + LIFETIME_S + 30, daemon.check,
                         interval=0.5, report=runs_so_far)
    finally:
        # stop the traffic and the servers even when the test failed (the `children`
        # fixture kills whatever does not stop)
        for proc in loads + [s["proc"] for s in servers.values()]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                stop(proc)
        shipper.stop()
    shipper.check()

    problems = []
    for (role, judge), rid in runs.items():
        _, run = daemon.request("GET", f"/runs/{rid}")
        problem = check_run(role, final[(role, judge)], run)
        if problem:
            problems.append(f"{role} canary, {judge}: {problem}\n{run_report(run)}")
    if problems:
        pytest.fail("\n\n".join(problems) + f"\n\ndaemon log:\n{daemon.tail()}")

    # the reports a pipeline links to, as a real browser draws them: the regressed and the
    # healthy canary, with the default judge and with the sequential one (its e-value paths)
    for (role, judge), rid in runs.items():
        if judge not in ("coalmine-v2", "coalmine-seq-v1"):
            continue
        verdict = final[(role, judge)]
        _, run = daemon.request("GET", f"/runs/{rid}")
        status, page = daemon.request("GET", verdict["reportUrl"].removeprefix(daemon.url))
        assert status == 200, (status, page)
        classes = {r["name"]: r["classification"] for r in run["judgments"][-1]["result"]["results"]}
        check_report(page, tmp_path, f"{role}-{judge}", classes, verdict["status"])
        if judge == "coalmine-seq-v1":
            assert "e-value path" in page

    assert daemon.metric("decode_errors_total") == 0, daemon.tail()  # every log line was valid points
    assert stop(daemon.proc, timeout=60) == 0, daemon.tail()
