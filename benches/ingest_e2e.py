#!/usr/bin/env python3
"""End-to-end ingest: from a real broker (Tansu) into coalmine's durable store, against the
ceiling of a bare rdkafka consume loop that decodes nothing, measured in the same run.

    .venv/bin/python benches/ingest_e2e.py [--points 10000000] [--single 2000000]

Scenarios: batched JSON messages of 100 points, and single-point JSON messages. For each:
produce to a fresh 6-partition topic (examples/produce.rs), time the bare consumer
(examples/consume_bare.rs) from its first message, then time `coalmine serve` from its
partition assignment until the manifest says every message is durable (flush-interval
250 ms). Prints points/s, the ratio to the ceiling, and the daemon's peak RSS.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REL = ROOT / "target" / "release"


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, **kw).stdout


def create_topic(broker, name, partitions=6):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker})
    for f in admin.create_topics([NewTopic(name, num_partitions=partitions)]).values():
        f.result(timeout=30)


def durable_messages(data_dir, topic):
    try:
        m = json.loads((Path(data_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(m.get("durable", {}).get(topic, {}).values())


def peak_rss(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_coalmine(broker, topic, messages, workdir):
    data = Path(workdir) / f"data-{topic}"
    cfg = Path(workdir) / f"{topic}.toml"
    cfg.write_text(
        f'[store]\ndata-dir = "{data}"\nflush-interval = "250ms"\n[kafka]\nbootstrap-servers = "{broker}"\n'
        f'group-id = "cm-{topic}"\ntopics = [{{ name = "{topic}", format = "json" }}]\n'
        '[server]\nlisten = "127.0.0.1:0"\n'
    )
    log_path = Path(workdir) / f"{topic}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(REL / "coalmine"), "serve", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    assigned = None
    rss = 0
    try:
        deadline = time.time() + 900
        while True:
            if assigned is None and "Partitions assigned" in log_path.read_text():
                assigned = time.time()
            rss = max(rss, peak_rss(proc.pid))
            if durable_messages(data, topic) >= messages:
                done = time.time()
                break
            if proc.poll() is not None or time.time() > deadline:
                sys.exit(f"coalmine did not finish:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.02)
        rss = max(rss, peak_rss(proc.pid))
        proc.terminate()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return done - assigned, rss


def scenario(broker, name, messages, per, workdir):
    topic = f"e2e-{name}-{int(time.time())}"
    create_topic(broker, topic)
    prod = json.loads(sh(str(REL / "examples" / "produce"), broker, topic, str(messages), str(per)))
    bare = json.loads(sh(str(REL / "examples" / "consume_bare"), broker, topic, str(messages)))
    secs, rss = run_coalmine(broker, topic, messages, workdir)
    points = messages * per
    return {
        "scenario": name,
        "messages": messages,
        "points": points,
        "producer_points_per_s": prod["points_per_s"],
        "bare_messages_per_s": bare["messages_per_s"],
        "bare_points_per_s": bare["messages_per_s"] * per,
        "coalmine_seconds": secs,
        "coalmine_points_per_s": points / secs,
        "coalmine_messages_per_s": messages / secs,
        "ratio_to_ceiling": (points / secs) / (bare["messages_per_s"] * per),
        "coalmine_peak_rss_bytes": rss,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--single", type=int, default=2_000_000)
    args = ap.parse_args()
    print("Building release binaries ...", file=sys.stderr)
    sh("cargo", "build", "--release", "-q", "--bin", "coalmine", "--example", "produce", "--example", "consume_bare")
    broker = sh(sys.executable, "scripts/tansu.py", "start").strip()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as workdir:
            rows.append(scenario(broker, "batched", args.points // 100, 100, workdir))
            rows.append(scenario(broker, "single", args.single, 1, workdir))
    finally:
        sh(sys.executable, "scripts/tansu.py", "stop")
    print()
    print(f"{'scenario':<10} {'points':>11} {'ceiling pts/s':>14} {'coalmine pts/s':>15} {'msgs/s':>10} {'ratio':>6} {'peak RSS':>10}")
    for r in rows:
        print(
            f"{r['scenario']:<10} {r['points']:>11,} {r['bare_points_per_s']:>14,.0f} {r['coalmine_points_per_s']:>15,.0f} "
            f"{r['coalmine_messages_per_s']:>10,.0f} {r['ratio_to_ceiling']:>6.2f} {r['coalmine_peak_rss_bytes'] / 2**20:>8.0f} MiB"
        )
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "ingest_e2e.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
