#!/usr/bin/env python3
"""End-to-end delay: from a point's production to the stored judgment that includes it.

    .venv/bin/python benches/e2e_delay.py [--interval 5s] [--lifetime 60s] [--rate 600]

Starts a real broker (Tansu) and the release `coalmine serve` (HTTP on 127.0.0.1:0), produces
latency points for 3 baseline and 3 canary instances with confluent-kafka (timestamp = the
wall clock at production, `--rate` points/s in messages every 10 ms), and runs a canary run
whose window equals its interval, so every point belongs to exactly one judgment. For every
judgment it checks that the judged value counts equal the points produced in its window
(the point really is in it) and takes, per point, `judgedMs − ts`. Prints the median, p99 and
maximum delay, and the maximum minus the interval (target: ≤ 1 s).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REL = ROOT / "target" / "release"


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout


def http(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def duration_s(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    if not m:
        sys.exit(f"--interval/--lifetime: expected e.g. 5s, 500ms, 1m; found {text!r}")
    return float(m.group(1)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(2)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", default="5s")
    ap.add_argument("--lifetime", default="60s")
    ap.add_argument("--rate", type=int, default=600, help="points per second, both scopes together")
    a = ap.parse_args()
    interval_s, lifetime_s = duration_s(a.interval), duration_s(a.lifetime)

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    print("Building the release binary ...", file=sys.stderr)
    sh("cargo", "build", "--release", "-q", "--bin", "coalmine")
    broker = sh(sys.executable, "scripts/tansu.py", "start").strip()
    topic = f"delay-{int(time.time())}"
    admin = AdminClient({"bootstrap.servers": broker})  # kept alive until the topic exists
    for f in admin.create_topics([NewTopic(topic, num_partitions=3)]).values():
        f.result(timeout=30)
    produced: list[int] = []  # ts of every point, both scopes
    with tempfile.TemporaryDirectory(prefix="coalmine-delay-") as work:
        cfg = Path(work) / "coalmine.toml"
        cfg.write_text(
            f'[store]\ndata-dir = "{work}/data"\n[kafka]\nbootstrap-servers = "{broker}"\ngroup-id = "{topic}"\n'
            f'topics = [{{ name = "{topic}", format = "json" }}]\n[server]\nlisten = "127.0.0.1:0"\n'
        )
        log_path = Path(work) / "coalmine.log"
        log = open(log_path, "wb")
        proc = subprocess.Popen([str(REL / "coalmine"), "serve", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            api = None
            while api is None:
                m = re.search(r"api=(http://\S+)", log_path.read_text())
                if m:
                    api = m.group(1)
                elif proc.poll() is not None or time.time() > deadline:
                    sys.exit(f"coalmine did not start:\n{log_path.read_text()[-3000:]}")
                else:
                    time.sleep(0.1)
            config = {
                "name": "delay",
                "applications": ["delay"],
                "metrics": [
                    {
                        "name": "latency",
                        "groups": ["latency"],
                        "query": {"type": "sql", "sql": "SELECT ts, value FROM metrics WHERE metric = 'latency'"},
                        "analysisConfigurations": {"canary": {"direction": "increase"}},
                    }
                ],
                "classifier": {"groupWeights": {"latency": 100}},
            }
            cid = http("POST", f"{api}/canaryConfig", config)["canaryConfigId"]
            p = Producer({"bootstrap.servers": broker, "linger.ms": 0})
            per_msg = max(1, a.rate // 100 // 6)
            run = None
            seq = 0
            start = time.time()
            while True:
                now = time.time()
                if run is None and now - start > 1.0:  # traffic flowing: start the run
                    body = {
                        "config": cid,
                        "scopes": {
                            "default": {
                                "control": {"tags": {"app": "delay", "version": "v1"}},
                                "experiment": {"tags": {"app": "delay", "version": "v2"}},
                            }
                        },
                        "lifetime": a.lifetime, "interval": a.interval, "window": a.interval, "warmup": "0s",
                    }
                    run = http("POST", f"{api}/runs", body)["id"]
                if run is not None and now - start > lifetime_s + 1.0 + 2.0:
                    break
                ts = int(now * 1000)
                for inst in range(6):
                    version = "v1" if inst < 3 else "v2"
                    pts = [
                        {"metric": "latency", "ts": ts, "value": 100.0 + (seq * 7 + k) % 13,
                         "tags": {"app": "delay", "version": version, "instance": f"i{inst}"}}
                        for k in range(per_msg)
                    ]
                    p.produce(topic, json.dumps(pts).encode(), key=f"i{inst}")
                    produced.extend([ts] * per_msg)
                    seq += 1
                p.poll(0)
                time.sleep(max(0.0, 0.01 - (time.time() - now)))
            p.flush(30)
            del p  # disconnect before the broker stops
            deadline = time.time() + 60
            while http("GET", f"{api}/runs/{run}/verdict")["status"] == "running":
                if time.time() > deadline:
                    sys.exit("the run did not finish")
                time.sleep(0.2)
            judgments = http("GET", f"{api}/runs/{run}")["judgments"]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            log.close()
            sh(sys.executable, "scripts/tansu.py", "stop")

    delays: list[int] = []
    late: list[float] = []
    for j in judgments:
        ws, we, judged = j["windowStartMs"], j["windowEndMs"], j["judgedMs"]
        in_window = [t for t in produced if ws <= t < we]
        r = j["result"]["results"][0]
        judged_n = r["controlMetadata"]["stats"]["count"] + r["experimentMetadata"]["stats"]["count"]
        if judged_n != len(in_window):
            sys.exit(f"judgment {j['index']}: {judged_n} values judged, {len(in_window)} produced in [{ws}, {we})")
        delays.extend(judged - t for t in in_window)
        late.append(judged - j["tickMs"])
    delays.sort()
    q = lambda p: delays[min(len(delays) - 1, int(p * len(delays)))]  # noqa: E731
    print(f"{len(judgments)} judgments, {len(delays):,} points, every point judged exactly once")
    print(f"delay production -> judgment: median {q(0.5)} ms, p99 {q(0.99)} ms, max {delays[-1]} ms (interval {interval_s * 1000:.0f} ms)")
    print(f"judgment after its tick (judgedMs - tickMs): median {statistics.median(late):.0f} ms, max {max(late):.0f} ms")
    print(f"max delay - interval: {delays[-1] - interval_s * 1000:.0f} ms (target <= 1000 ms)")


if __name__ == "__main__":
    main()
