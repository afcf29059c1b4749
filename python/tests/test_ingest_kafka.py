"""Ingest with an independent producer: Python confluent-kafka writes, `coalmine serve`
(a real child process) consumes from the real broker started by scripts/test.sh, and
`coalmine store stats` reads the data directory."""

import json
import signal
import subprocess
import time
import uuid

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")


def test_points_from_an_independent_producer(broker, create_topic, store_stats, coalmine_bin, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    tj, ti = f"py-json-{suffix}", f"py-influx-{suffix}"
    create_topic(broker, tj, 3)
    create_topic(broker, ti, 2)
    p = confluent_kafka.Producer({"bootstrap.servers": broker, "linger.ms": 5})
    want_points, want_sum = 0, 0.0
    t0 = (int(time.time()) - 3600) * 1000  # inside the store's retention on any date
    for i in range(500):
        pts = [{"metric": "latency", "ts": t0 + i * 1000 + j, "value": i + j / 4,
                "tags": {"version": "v2" if j % 2 else "v1", "pod": f"p{j}"}} for j in range(8)]
        p.produce(tj, json.dumps(pts).encode(), key=str(i).encode())
        want_points += len(pts)
        want_sum += sum(x["value"] for x in pts)
    for i in range(300):
        line = f"cpu,host=h{i % 3} user={i / 2},system={i}i {(t0 + i * 1000) * 1_000_000}"
        p.produce(ti, line.encode())
        want_points += 2
        want_sum += i / 2 + i
    p.produce(tj, b"definitely not json")  # counted and skipped, not stored
    assert p.flush(30) == 0
    data = tmp_path / "data"
    cfg = tmp_path / "coalmine.toml"
    cfg.write_text(
        f'[store]\ndata-dir = "{data}"\nflush-interval = "200ms"\n[kafka]\nbootstrap-servers = "{broker}"\n'
        f'group-id = "py-{suffix}"\ntopics = [{{ name = "{tj}", format = "json" }}, {{ name = "{ti}", format = "influx" }}]\n'
        '[server]\nlisten = "127.0.0.1:0"\n'
    )
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([coalmine_bin, "serve", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while store_stats(data)["points"] < want_points:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.time() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    s = store_stats(data)
    assert s["points"] == want_points
    assert s["sum"] == pytest.approx(want_sum, rel=1e-12)
    assert s["series"] == 8 * 2 // 2 + 3 * 2  # latency{pod,version}: 8 pods; cpu.user/system x 3 hosts
    assert sum(s["durable_offsets"][tj].values()) == 501  # the bad message is consumed too
    text = (tmp_path / "serve.log").read_text()
    assert "Undecodable message skipped" in text and "definitely" not in text
