#!/usr/bin/env python3
"""The hardening review's probes, timed against a real daemon: what each hostile input does now.

    .venv/bin/python benches/hostile_probe.py [--profile release|debug]

Starts a real broker (Tansu, unless COALMINE_TEST_KAFKA names one) and `coalmine serve`
(HTTP on 127.0.0.1:0, a token), then sends the inputs that once crashed or stalled the
daemon: a 2,000-branch UNION, 12 concurrent 84 MB `POST /judge` (and 12 that fit), a
four-way cross join and a `generate_series(1, 1e12)` metric in runs beside a normal run,
absurd run schedules, constant SQL building a 1 GB string, YAML nested 100,000 deep, a line
of 100,000 tag keys, `Infinity` values. For each it prints the status, the time it took and
the daemon's peak RSS so far, and checks `/health` answered throughout. The numbers go in
the closing note of the hardening issue; the assertions live in tests/it/hostile.rs.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "probe-secret"


def http(method: str, url: str, body: bytes | str | None = None, ctype: str = "application/json", timeout: float = 120):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": ctype, "Authorization": f"Bearer {TOKEN}"})
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text, headers = r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, text, headers = e.code, e.read().decode(), dict(e.headers)
    except (ConnectionError, urllib.error.URLError) as e:
        status, text, headers = 0, str(e), {}
    return status, text, headers, time.perf_counter() - t


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def judge_body(metrics: int, n: int) -> str:
    values = ",".join(str(i % 97) for i in range(n))
    cfg = {"metrics": [{"name": f"m{i}", "analysisConfigurations": {"canary": {"direction": "either"}}} for i in range(metrics)]}
    pairs = ",".join(f'{{"name": "m{i}", "values": {{"control": [{values}], "experiment": [{values}]}}}}' for i in range(metrics))
    return f'{{"canaryConfig": {json.dumps(cfg)}, "metricSetPairList": [{pairs}], "scoreThresholds": {{"pass": 95, "marginal": 75}}}}'


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="release" if (ROOT / "target/release/coalmine").exists() else "debug")
    args = ap.parse_args()
    binary = ROOT / "target" / args.profile / "coalmine"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build{' --release' if args.profile == 'release' else ''}")
    broker = os.environ.get("COALMINE_TEST_KAFKA")
    own_broker = not broker
    if own_broker:
        broker = subprocess.run([sys.executable, "scripts/tansu.py", "start"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.strip()
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    tmp = Path(tempfile.mkdtemp(prefix="coalmine-probe-"))
    topic, influx = f"probe-{os.getpid()}", f"probe-influx-{os.getpid()}"
    admin = AdminClient({"bootstrap.servers": broker})
    for f in admin.create_topics([NewTopic(topic, 1), NewTopic(influx, 1)]).values():
        f.result()
    (tmp / "c.toml").write_text(f"""
[store]
data-dir = "{tmp / 'data'}"
[kafka]
bootstrap-servers = "{broker}"
group-id = "probe-{os.getpid()}"
topics = [{{ name = "{topic}", format = "json" }}, {{ name = "{influx}", format = "influx" }}]
[server]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[query]
timeout = "5s"
""")
    log = open(tmp / "d.log", "w")
    d = subprocess.Popen([str(binary), "serve", "--config", str(tmp / "c.toml")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        api = None
        while time.time() < deadline and api is None:
            text = (tmp / "d.log").read_text()
            if "api=http://" in text:
                api = "http://" + text.split("api=http://")[1].split()[0]
            time.sleep(0.1)
        assert api, (tmp / "d.log").read_text()
        print(f"daemon: {binary.relative_to(ROOT)} at {api}, broker {broker}")

        def row(name: str, status, secs: float, note: str = "") -> None:
            h = http("GET", api + "/health", timeout=5)[0]
            print(f"{name:<58} {str(status):<14} {secs * 1000:>9.0f} ms  rss peak {rss_peak_mb(d.pid):>6.0f} MB  /health {h}  {note}")

        def sql_config(sql: str) -> str:
            return json.dumps({"name": "probe", "applications": ["a"], "metrics": [{"name": "m", "query": {"type": "sql", "sql": sql}}]})

        def msg(text: str) -> str:
            try:
                return json.loads(text).get("message", "")[:90]
            except ValueError:
                return text[:90]

        s, t, _, dt = http("POST", api + "/canaryConfig", sql_config(" UNION ALL ".join(["SELECT value FROM metrics"] * 2000)))
        row("1  save a 2,000-branch UNION ALL", s, dt, msg(t))

        huge = tmp / "huge.json"
        huge.write_text(judge_body(1, 14_000_000))  # ~84 MB
        curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", f"@{huge}",
                "-H", "Content-Type: application/json", api + "/judge"]
        with cf.ThreadPoolExecutor(12) as ex:
            t0 = time.perf_counter()
            res = list(ex.map(lambda _: subprocess.run(curl, capture_output=True, text=True).stdout, range(12)))
            dt = time.perf_counter() - t0
        row("2  12 concurrent POST /judge of %.0f MB (curl)" % (huge.stat().st_size / 1e6),
            {c: res.count(c) for c in sorted(set(res))}, dt)
        fits = judge_body(10, 50_000)  # ~1.5 MB, 1 M values
        with cf.ThreadPoolExecutor(12) as ex:
            t0 = time.perf_counter()
            res = list(ex.map(lambda _: http("POST", api + "/judge", fits), range(12)))
            dt = time.perf_counter() - t0
        codes = [r[0] for r in res]
        retry = {v for r in res if r[0] == 503 for k, v in r[2].items() if k.lower() == "retry-after"}
        row("2  12 concurrent POST /judge of %.1f MB (1 M values)" % (len(fits) / 1e6),
            {c: codes.count(c) for c in sorted(set(codes))}, dt, f"Retry-After {retry or '-'}")

        normal = json.loads(http("POST", api + "/canaryConfig", sql_config("SELECT ts, value FROM metrics"))[1])["canaryConfigId"]
        cross = json.loads(http("POST", api + "/canaryConfig", sql_config("SELECT a.value FROM metrics a, metrics b, metrics c, metrics d ORDER BY 1"))[1])["canaryConfigId"]
        runaway = json.loads(http("POST", api + "/canaryConfig", sql_config("SELECT count(*) AS value FROM generate_series(1, 1000000000000)"))[1])["canaryConfigId"]
        p = Producer({"bootstrap.servers": broker})
        import threading
        stop = threading.Event()

        def traffic() -> None:  # 200 points/s a side while the runs judge
            prod = Producer({"bootstrap.servers": broker, "linger.ms": 5})
            i = 0
            while not stop.is_set():
                now = int(time.time() * 1000)
                for k in range(40):
                    prod.produce(topic, json.dumps({"metric": "m", "ts": now, "value": (i + k) % 50, "tags": {"v": str(1 + k % 2)}}))
                i += 40
                prod.poll(0)
                time.sleep(0.1)
            prod.flush(30)

        feeder = threading.Thread(target=traffic)
        feeder.start()
        scopes = {"default": {"control": {"tags": {"v": "1"}}, "experiment": {"tags": {"v": "2"}}}}
        runs = {}
        for name, cfg in [("normal", normal), ("cross join", cross), ("generate_series", runaway)]:
            body = {"config": cfg, "scopes": scopes, "start": "now", "lifetime": "12s", "interval": "3s", "window": "2m"}
            runs[name] = json.loads(http("POST", api + "/runs", json.dumps(body))[1])["id"]
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 90:
            states = {n: json.loads(http("GET", api + f"/runs/{i}/verdict")[1])["status"] for n, i in runs.items()}
            if all(s != "running" for s in states.values()):
                break
            time.sleep(0.5)
        dt = time.perf_counter() - t0
        stop.set()
        feeder.join()
        detail = {}
        for n, i in runs.items():
            r = json.loads(http("GET", api + f"/runs/{i}")[1])
            took = [j["tookMs"] for j in r["judgments"]]
            reason = r["judgments"][0]["result"]["results"][0].get("classificationReason", "") if r["judgments"] else ""
            detail[n] = (r["status"], len(took), max(took) if took else None, reason[:80])
        row("3,6  runs: normal + 4-way cross join + generate_series(1e12)", {n: v[0] for n, v in detail.items()}, dt)
        for n, v in detail.items():
            print(f"     {n:<16} status {v[0]:<6} judgments {v[1]}  slowest tick {v[2] and round(v[2])} ms  {v[3]}")

        for label, extra in [("4  run starting at 9223372036854775000", {"start": 9223372036854775000}),
                             ("5  interval 1ms, lifetime 1000years, start 0", {"interval": "1ms", "lifetime": "1000years", "start": 0}),
                             ("15 lifetime 600000000years", {"lifetime": "600000000years"})]:
            body = {"config": normal, "scopes": scopes, "lifetime": "1h", "interval": "1m", **extra}
            s, t, _, dt = http("POST", api + "/runs", json.dumps(body))
            row(label, s, dt, msg(t))

        s, t, _, dt = http("POST", api + "/canaryConfig", sql_config("SELECT ts, length(repeat('x', 1000000000)) AS value FROM metrics"))
        row("10 save constant SQL building a 1 GB string", s, dt, msg(t))
        deep = "[" * 100_000 + "]" * 100_000
        s, t, _, dt = http("POST", api + "/canaryConfig", deep, ctype="application/yaml")
        row("10 save YAML nested 100,000 deep", s, dt, msg(t))

        ns = time.time_ns()
        line = "cpu" + "".join(f",k{i}=v" for i in range(100_000)) + f" value=1 {ns}"
        p.produce(influx, line.encode())
        p.flush(30)
        t0 = time.perf_counter()
        while "100000 tags" not in (tmp / "d.log").read_text() and time.perf_counter() - t0 < 30:
            time.sleep(0.1)
        row("11 one line with 100,000 tag keys", "refused" if "100000 tags" in (tmp / "d.log").read_text() else "?",
            time.perf_counter() - t0)
        s, t, _, dt = http("POST", api + "/canaryConfig", sql_config("SELECT ts, value FROM metrics"))
        row("11 then save a config", s, dt)

        inf = json.loads(judge_body(1, 3))
        inf["metricSetPairList"][0]["values"]["experiment"][1] = "Infinity"
        s, t, _, dt = http("POST", api + "/judge", json.dumps(inf))
        row("17 POST /judge with Infinity", s, dt, msg(t))
    finally:
        d.terminate()
        d.wait(60)
        if own_broker:
            subprocess.run([sys.executable, "scripts/tansu.py", "stop"], cwd=ROOT)


if __name__ == "__main__":
    main()
