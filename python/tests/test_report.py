"""The HTML report, checked with software we did not write: html5lib parses every page in
strict mode (any parse error fails), and Debian's chromium renders it headless (the DOM it
builds, the pixels it paints).

* a live daemon (`coalmine serve` on the test broker) judges a 20-metric run over data
  produced to Kafka with timestamps of the last hour, with a regressed critical metric, a
  NaN-only metric and a muted regressed metric; the report is fetched from the verdict's
  `reportUrl`, and `/metrics` shows the run's gauges until `server.run-metrics-ttl` after
  it finished; `POST /judge?format=html` answers one judgment's report;
* archived runs (a regressed and a healthy one), a single judgment and a re-judge
  comparison render from Python, the CLI and in notebook form.
"""

import json
import random
import re
import subprocess
import time
import urllib.request
import uuid

import pytest
from report_checks import check_report, external_references, parse_strict, print_pdf
from served import Daemon, wait_for

import coalmine


def last_classes(result: dict) -> dict:
    return {r["name"]: r["classification"] for r in result["results"]}


# ---------------------------------------------------------------------------------------
# a live run


REGRESSED, NAN_ONLY, MUTED = "m00 latency", "m18 nan only", "m19 muted"
NAMES = [REGRESSED] + [f"m{i:02d} signal" for i in range(1, 18)] + [NAN_ONLY, MUTED]


def metric_config(name):
    canary = {"direction": "increase"}
    if name == REGRESSED:
        canary.update(critical=True, effectSize={"allowedIncrease": 1.1})
    if name == MUTED:
        canary["muted"] = True
    return {
        "name": name,
        "groups": ["latency" if name == REGRESSED else "other"],
        "query": {
            "type": "sql",
            "sql": "SELECT date_bin(INTERVAL '1 minute', ts) AS ts, avg(value) AS value "
            f"FROM metrics WHERE metric = '{name}' GROUP BY 1 ORDER BY 1",
        },
        "analysisConfigurations": {"canary": canary},
    }


def points(start_ms, end_ms, step_ms, seed):
    """Every metric for 3 baseline (v1) and 3 canary (v2) instances: the regressed metric's
    canary is 30 % slower from 12 minutes into the run, the muted one always twice as high,
    the NaN-only metric has NaN values only."""
    rng = random.Random(seed)
    regress_from = start_ms + 12 * 60_000
    for ts in range(start_ms - 10 * 60_000, end_ms, step_ms):
        for version in ("v1", "v2"):
            for i in range(3):
                for name in NAMES:
                    value = rng.gauss(100.0, 5.0)
                    if version == "v2" and name == REGRESSED and ts >= regress_from:
                        value *= 1.3
                    if version == "v2" and name == MUTED:
                        value *= 2.0
                    yield {
                        "metric": name, "ts": ts,
                        "value": "NaN" if name == NAN_ONLY else value,
                        "tags": {"app": "shop", "version": version, "instance": f"{version}-{i}"},
                    }


def produce(broker, topic, pts):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker, "linger.ms": 5})
    errors = []
    batch, n = [], 0
    for p in pts:
        batch.append(p)
        if len(batch) == 400:
            producer.produce(topic, json.dumps(batch), on_delivery=lambda e, _m: e and errors.append(str(e)))
            n += len(batch)
            batch = []
            producer.poll(0)
    if batch:
        producer.produce(topic, json.dumps(batch), on_delivery=lambda e, _m: e and errors.append(str(e)))
        n += len(batch)
    assert producer.flush(60) == 0 and not errors, errors[:3]
    return n


def fetch(url):
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.status, resp.headers, resp.read().decode()


def run_gauges(daemon, run_id):
    _, text = daemon.request("GET", "/metrics")
    return [line for line in text.splitlines() if line.startswith("coalmine_run_") and f'run="{run_id}"' in line]


def test_live_twenty_metric_run_report(broker, create_topic, coalmine_bin, tmp_path, children, root):
    topic = f"report-{uuid.uuid4().hex[:8]}"
    create_topic(broker, topic, 1)
    daemon = Daemon(coalmine_bin, tmp_path, broker, topic, children, server='run-metrics-ttl = "5s"\n')

    # A run that started 40 minutes ago: every judgment is due at once, over data stamped
    # in the past (as when a pipeline asks after the fact).
    minute = 60_000
    start = (int(time.time() * 1000) // minute - 40) * minute
    n = produce(broker, topic, points(start, start + 31 * minute, 15_000, seed=7))
    wait_for(f"the daemon to ingest {n} points", lambda: daemon.metric("points_ingested_total") >= n, 60, daemon.check)

    config = {"name": "shop-twenty", "applications": ["shop"], "metrics": [metric_config(m) for m in NAMES],
              "classifier": {"groupWeights": {"latency": 50, "other": 50}}}
    status, run = daemon.request("POST", "/runs", {
        "config": config,
        "scopes": {"default": {"control": {"tags": {"app": "shop", "version": "v1"}},
                               "experiment": {"tags": {"app": "shop", "version": "v2"}}}},
        "start": start, "lifetime": "30m", "interval": "5m", "window": "10m",
        "thresholds": {"pass": 95, "marginal": 75},
    })
    assert status == 201, (status, run)
    assert run["reportUrl"] == f"{daemon.url}/runs/{run['id']}/report"
    verdict = wait_for("the run's verdict",
                       lambda: (v := daemon.request("GET", f"/runs/{run['id']}/verdict")[1])["status"] != "running" and v,
                       60, daemon.check)
    assert verdict["status"] == "fail", verdict
    assert verdict["reportUrl"] == run["reportUrl"]
    # /metrics: the run's gauges now (run-metrics-ttl = 5 s after its last judgment they go)
    gauges = run_gauges(daemon, run["id"])
    assert any(g.startswith("coalmine_run_status{") and 'status="fail"' in g and g.endswith(" 1.0") for g in gauges), gauges
    assert any(g.startswith("coalmine_run_score{") for g in gauges), gauges
    assert any('threshold="pass"' in g and g.endswith(" 95.0") for g in gauges), gauges
    per_metric = [g for g in gauges if g.startswith("coalmine_run_metric_classification{")]
    assert len(per_metric) == 20 and any(f'metric="{REGRESSED}"' in g and 'classification="High"' in g for g in per_metric), per_metric
    _, final = daemon.request("GET", f"/runs/{run['id']}")
    last = final["judgments"][-1]["result"]
    classes = last_classes(last)
    assert classes[REGRESSED] == "High", classes
    assert len(final["judgments"]) >= 2, "the score timeline has several judgments"

    # the report, from the link a pipeline would post
    status, headers, page = fetch(verdict["reportUrl"])
    assert status == 200 and headers["Content-Type"].startswith("text/html"), headers
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    check_report(page, tmp_path, "live-run", classes, "fail")
    muted = page.split(f"</span> {MUTED}")[0].rsplit("<h3>", 1)[1]
    assert "muted" in muted, "the muted metric is flagged"
    nan_section = page.split(f"</span> {NAN_ONLY}")[1].split("</section>")[0]
    assert "No finite value to draw" in nan_section and "NaN values" in nan_section
    assert classes[NAN_ONLY] in ("Nodata", "NodataFailMetric") or "not judged" in nan_section
    # failing first: the critical High metric is the first section
    assert page.index(f"</span> {REGRESSED}") < min(page.index(f"</span> {m}") for m in NAMES[1:])
    assert len(page) < 3 * 1024 * 1024

    # one judgment's report: POST /judge?format=html; another format is refused by name
    example = json.loads((root / "examples" / "checkout-canary.json").read_text())
    status, body = daemon.request("POST", "/judge?format=html", example)
    assert status == 200 and body.startswith("<!DOCTYPE html>"), (status, body[:200])
    parse_strict(body)
    assert "</span> latency p99" in body and external_references(body) == []
    status, body = daemon.request("POST", "/judge?format=pdf", example)
    assert status == 400 and "format" in body["message"], body

    # an unknown run: a JSON 404, not a page
    status, body = daemon.request("GET", "/runs/no-such-run/report")
    assert status == 404 and "no-such-run" in body["message"], body

    wait_for("the finished run's gauges to leave /metrics", lambda: not run_gauges(daemon, run["id"]), 30, daemon.check)


# ---------------------------------------------------------------------------------------
# archives, single judgments, comparisons


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("report-archive")
    coalmine.write_fixture(path, runs=12, judgments=4, metrics=8, seed=3, judge="coalmine-v2")
    return coalmine.Archive.open(path)


def labelled(archive, regressed):
    for rid in archive.run_ids():
        info = archive.run(rid)
        if info.label and info.label.regressed == regressed and info.judgments:
            if not regressed or info.status == "fail":
                return info
    pytest.fail(f"the fixture has no {'regressed' if regressed else 'healthy'} run")


@pytest.mark.parametrize("regressed", [True, False], ids=["regressed", "healthy"])
def test_archived_run_report_in_a_browser(archive, tmp_path, regressed):
    info = labelled(archive, regressed)
    page = archive.report_html(info.id)
    result = archive.result(info.id, info.judgments[-1].index).to_dict()
    check_report(page, tmp_path, info.id, last_classes(result), info.status)
    # the score timeline: one marker per judgment
    n = len(info.judgments)
    assert f"{n} judgment{'' if n == 1 else 's'};" in page
    # in a notebook: a fragment whose styles are scoped to it
    fragment = info._repr_html_()
    assert fragment.startswith('<div class="cm"><style>') and "<html" not in fragment
    assert all(rule.startswith((".cm", "@media", "}")) for rule in fragment.split("<style>")[1].split("</style>")[0].split("\n") if rule)
    if regressed:
        # printable: the print stylesheet keeps each metric's section on one page
        pdf = print_pdf(page, tmp_path, info.id)
        pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
        assert pdf.startswith(b"%PDF") and pages >= 2, pages
    info.save_html(tmp_path / "saved.html")
    saved = (tmp_path / "saved.html").read_text(encoding="utf-8")
    assert saved.startswith("<!DOCTYPE html>") and info.id in saved


def test_judgment_report(root, tmp_path):
    result = coalmine.judge(root / "examples" / "checkout-canary.json")
    page = result.to_html()
    classes = {m.name: m.classification for m in result.results}
    check_report(page, tmp_path, "judgment", classes, result.classification)
    assert "Series: the values of the request." in page
    # a result without its request still renders (no series to draw)
    bare = coalmine.JudgeResult(result.to_dict()).to_html()
    parse_strict(bare)
    assert "No series for this metric" in bare
    assert result._repr_html_().startswith('<div class="cm">')


def test_cli_report_judge_and_replay_html(archive, coalmine_bin, root, tmp_path):
    rid = archive.run_ids()[0]
    out = tmp_path / "cli.html"
    done = subprocess.run([coalmine_bin, "report", rid, "--archive", archive.path, "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    parse_strict(page)
    assert external_references(page) == [] and rid in page
    missing = subprocess.run([coalmine_bin, "report", "no-such-run", "--archive", archive.path],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "no-such-run" in missing.stderr and not missing.stdout
    judged = subprocess.run([coalmine_bin, "judge", "--format", "html", str(root / "examples" / "checkout-canary.json")],
                            capture_output=True, text=True, timeout=60)
    assert judged.returncode == 0, judged.stderr
    parse_strict(judged.stdout)
    assert "latency p99" in judged.stdout
    replay = subprocess.run([coalmine_bin, "replay", "--archive", archive.path, "--judge", "coalmine-v1", "--format", "html"],
                            capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    parse_strict(replay.stdout)
    assert external_references(replay.stdout) == []


def test_comparison_report(archive, tmp_path):
    comparison = archive.rejudge(judge="coalmine-v1")
    page = comparison.to_html()
    parse_strict(page)
    assert external_references(page) == []
    s = comparison.summary()
    assert f'<b id="changed">{s["judgments_changed"]}</b> of {s["judgments"]} judgments' in page
    assert comparison._repr_html_().startswith('<div class="cm">')
    comparison.save_html(tmp_path / "comparison.html")
    assert (tmp_path / "comparison.html").read_text(encoding="utf-8") .startswith("<!DOCTYPE html>")
