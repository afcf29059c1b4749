"""Writes examples/checkout-canary.json: a Kayenta remote-judge request for a checkout
service whose canary regressed its p99 latency by ~15%.

Deterministic (seeded); re-run with `python3 examples/gen_example.py` to regenerate.
"""
import json
import math
import random
from pathlib import Path

rng = random.Random(20261122)
N = 60  # one point per minute for an hour


def series(mean, sd, n=N, nan_every=0, floor=0.0):
    out = []
    for i in range(n):
        if nan_every and i % nan_every == nan_every - 1:
            out.append("NaN")
        else:
            out.append(round(max(floor, rng.gauss(mean, sd)), 2))
    return out


def counts(rate, n=N):
    # Poisson counts per minute (Knuth's method)
    out = []
    for _ in range(n):
        l, k, p = math.exp(-rate), 0, 1.0
        while True:
            p *= rng.random()
            if p <= l:
                break
            k += 1
        out.append(float(k))
    return out


def metric(name, group, canary, query_metric, sql):
    return {
        "name": name,
        "query": {"type": "sql", "sql": sql},
        "groups": [group],
        "analysisConfigurations": {"canary": canary},
        "scopeName": "default",
    }


config = {
    "name": "checkout-golden-signals",
    "description": "Latency, errors and saturation of the checkout service",
    "applications": ["checkout"],
    "metrics": [
        metric("latency p99", "latency", {"direction": "increase", "effectSize": {"allowedIncrease": 1.05, "criticalIncrease": 1.1}, "critical": True}, "http.latency_ms",
               "SELECT date_bin(INTERVAL '1 minute', ts) AS ts, approx_percentile_cont(value, 0.99) AS value FROM metrics WHERE metric = 'http.latency_ms' GROUP BY 1 ORDER BY 1"),
        metric("latency p50", "latency", {"direction": "increase", "effectSize": {"allowedIncrease": 1.05}}, "http.latency_ms",
               "SELECT date_bin(INTERVAL '1 minute', ts) AS ts, approx_percentile_cont(value, 0.5) AS value FROM metrics WHERE metric = 'http.latency_ms' GROUP BY 1 ORDER BY 1"),
        metric("5xx per minute", "errors", {"direction": "increase", "nanStrategy": "replace"}, "http.errors",
               "SELECT date_bin(INTERVAL '1 minute', ts) AS ts, sum(value) AS value FROM metrics WHERE metric = 'http.errors' GROUP BY 1 ORDER BY 1"),
        metric("cpu", "saturation", {"direction": "either", "effectSize": {"measure": "cles", "allowedIncrease": 0.8, "allowedDecrease": 0.2}}, "process.cpu",
               "SELECT date_bin(INTERVAL '1 minute', ts) AS ts, avg(value) AS value FROM metrics WHERE metric = 'process.cpu' GROUP BY 1 ORDER BY 1"),
        metric("gc pause", "saturation", {"direction": "increase", "muted": True}, "jvm.gc_pause_ms",
               "SELECT date_bin(INTERVAL '1 minute', ts) AS ts, max(value) AS value FROM metrics WHERE metric = 'jvm.gc_pause_ms' GROUP BY 1 ORDER BY 1"),
    ],
    "classifier": {"groupWeights": {"latency": 50, "errors": 30, "saturation": 20}},
}

start = 1763766000000


def pair(i, name, control, experiment, tags=None):
    scope = {"startTimeIso": "2025-11-21T23:00:00Z", "startTimeMillis": start, "stepMillis": 60000}
    return {
        "name": name,
        "id": f"pair-{i}",
        "tags": tags or {},
        "values": {"control": control, "experiment": experiment},
        "scopes": {"control": scope, "experiment": scope},
    }


pairs = [
    pair(1, "latency p99", series(240, 18, nan_every=17), series(276, 20, nan_every=23)),
    pair(2, "latency p50", series(41, 3), series(41.5, 3)),
    pair(3, "5xx per minute", counts(0.4), counts(0.5)),
    pair(4, "cpu", series(0.52, 0.04), series(0.53, 0.04)),
    pair(5, "gc pause", series(12, 4, floor=0.5), series(15, 4, floor=0.5)),
]

request = {"canaryConfig": config, "metricSetPairList": pairs, "scoreThresholds": {"pass": 95, "marginal": 75}}
out = Path(__file__).with_name("checkout-canary.json")
out.write_text(json.dumps(request, indent=1) + "\n")
print(f"wrote {out}")
