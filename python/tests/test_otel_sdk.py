"""OTLP from the real OpenTelemetry Python SDK, end to end.

The OpenTelemetry SDK records a counter, an explicit-bucket histogram, an exponential
histogram and an up-down counter, under cumulative and under delta temporality (two meter
providers fed the same seeded random recordings, each with an ``InMemoryMetricReader``). Each
collection is encoded by the OpenTelemetry project's own OTLP protobuf encoder
(``opentelemetry-exporter-otlp-proto-common``) and produced as one Kafka message with
confluent-kafka to a real broker; a real ``coalmine serve`` child process consumes the two
topics (format ``otlp-proto``). The expectation is the SDK's own reader output, mapped by the
rules of docs/metrics.md (Prometheus's OTLP translation without suffixes), computed here
independently of coalmine: every data point must come back with the same timestamp (ms),
tags and value, and coalmine's SQL (``increase``, ``sum``, ``histogram_quantile``) must agree
with sums and a Prometheus ``bucketQuantile`` computed by hand.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
pytest.importorskip("opentelemetry.sdk.metrics")
pytest.importorskip("opentelemetry.exporter.otlp.proto.common.metrics_encoder")

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics  # noqa: E402
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter  # noqa: E402
from opentelemetry.sdk.metrics.export import (  # noqa: E402
    AggregationTemporality,
    ExponentialHistogram,
    InMemoryMetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData  # noqa: E402
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402

import coalmine  # noqa: E402

SCOPE, SCOPE_VERSION = "coalmine.test.otel", "0.3.1"
BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
ROUTES = ["/api/orders", "/health"]
QUEUES = ["ingest", "retry"]
METHODS = ["Get", "Put"]
COLLECTIONS = 4
RECORDINGS = 60  # per series and collection
TEMPORALITIES = {"cumulative": AggregationTemporality.CUMULATIVE, "delta": AggregationTemporality.DELTA}
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# (metric, tags without `le`, ts ms) → [(le as float or None, le text or None, value)]
Key = Tuple[str, FrozenSet[Tuple[str, str]], int]
Expected = Dict[Key, List[Tuple[Optional[float], Optional[str], float]]]


# ---- the OTLP → Prometheus mapping, written down independently of src/ingest/otlp.rs ----


def metric_name(name: str) -> str:
    """Runs of ``[A-Za-z0-9:]`` joined by ``_``, ``_`` before a leading digit, no suffixes."""
    out = "_".join(re.findall(r"[A-Za-z0-9:]+", name))
    return "_" + out if out[:1].isdigit() else out


def label_name(key: str) -> str:
    """A Prometheus label name: ``[^A-Za-z0-9_]`` → ``_`` (``http.route`` → ``http_route``)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", key)
    if s[:1].isdigit():
        return "key_" + s
    if s.startswith("_") and not s.startswith("__"):
        return "key" + s
    return s


def tag_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (str, int)):
        return str(v)
    raise AssertionError(f"no attribute of type {type(v).__name__} in this test")


def le_text(bound: float) -> str:
    """Rust's shortest round-trip ``{}`` formatting of the bounds used here (no exponent)."""
    if bound == math.inf:
        return "+Inf"
    if bound == int(bound):
        return str(int(bound))
    text = repr(bound)
    assert "e" not in text, "pick explicit bounds that Python and Rust print alike"
    return text


def exponential_buckets(p: Any) -> List[Tuple[float, float]]:
    """The exponential histogram point ``p`` (the SDK's) as cumulative ``(le, count)``, without
    ``+Inf``. Scale s: base = 2^(2^-s); positive bucket i covers (base^i, base^(i+1)], negative
    bucket i covers [-base^(i+1), -base^i). A bucket list of zeros (the SDK sends ``[0]``) is
    no bucket; the SDK has no zero threshold (0)."""
    step = 2.0 ** -p.scale

    def bound(index: int) -> float:
        return float(2.0 ** (index * step))

    zero_threshold = float(getattr(p, "zero_threshold", 0.0) or 0.0)
    out: List[Tuple[float, float]] = []
    cumulative = 0
    # a list of zeros (the SDK sends [0] for a histogram without negative values) is no bucket
    negative = list(p.negative.bucket_counts) if any(p.negative.bucket_counts) else []
    for k in reversed(range(len(negative))):  # the most negative bucket first
        cumulative += negative[k]
        out.append((-bound(p.negative.offset + k), cumulative))
    if p.zero_count > 0 or zero_threshold > 0 or negative:
        cumulative += p.zero_count
        out.append((max(zero_threshold, 0.0), cumulative))
    positive = list(p.positive.bucket_counts) if any(p.positive.bucket_counts) else []
    if positive:
        low = bound(p.positive.offset)
        if not out or out[-1][0] < low:
            out.append((low, cumulative))  # the first positive bucket's lower edge
        for k, c in enumerate(positive):
            cumulative += c
            out.append((bound(p.positive.offset + k + 1), cumulative))
    return out


def expected_points(collections: Sequence[MetricsData]) -> Expected:
    """What coalmine should store for these collections of the SDK's reader."""
    want: Expected = {}

    def put(name: str, tags: Dict[str, str], ts: int, value: float, le: Optional[float] = None,
            le_txt: Optional[str] = None) -> None:
        key = (name, frozenset((k, v) for k, v in tags.items() if v != ""), ts)
        want.setdefault(key, []).append((le, le_txt, float(value)))

    for md in collections:
        for rm in md.resource_metrics:
            attrs = dict(rm.resource.attributes)
            base = {label_name(k): tag_text(v) for k, v in attrs.items()}
            if attrs.get("service.name"):
                ns = attrs.get("service.namespace")
                base["job"] = f"{ns}/{attrs['service.name']}" if ns else str(attrs["service.name"])
            if attrs.get("service.instance.id"):
                base["instance"] = str(attrs["service.instance.id"])
            for sm in rm.scope_metrics:
                scoped = dict(base)
                scoped["otel_scope_name"] = sm.scope.name
                if sm.scope.version:
                    scoped["otel_scope_version"] = sm.scope.version
                for k, v in (sm.scope.attributes or {}).items():
                    scoped[f"otel_scope_{label_name(k)}"] = tag_text(v)
                for m in sm.metrics:
                    name = metric_name(m.name)
                    data_points: Sequence[Any] = m.data.data_points
                    for p in data_points:
                        tags = dict(scoped)
                        tags.update({label_name(k): tag_text(v) for k, v in (p.attributes or {}).items()})
                        ts = p.time_unix_nano // 1_000_000
                        if isinstance(m.data, Sum):
                            put(name, tags, ts, p.value)
                            continue
                        if isinstance(m.data, HistogramData):
                            cumulative = 0
                            for b, c in zip(p.explicit_bounds, p.bucket_counts):
                                cumulative += c
                                put(name + "_bucket", tags, ts, cumulative, b, le_text(b))
                            put(name + "_bucket", tags, ts, p.count, math.inf, "+Inf")
                        elif isinstance(m.data, ExponentialHistogram):
                            assert p.flags == 0
                            for b, c in exponential_buckets(p):
                                put(name + "_bucket", tags, ts, c, b, None)
                            put(name + "_bucket", tags, ts, p.count, math.inf, "+Inf")
                        else:
                            raise AssertionError(f"unexpected {type(m.data).__name__}")
                        put(name + "_count", tags, ts, p.count)
                        put(name + "_sum", tags, ts, p.sum)
                        put(name + "_min", tags, ts, p.min)  # the encoder always sets min and max
                        put(name + "_max", tags, ts, p.max)
    return want


def parse_le(text: str) -> float:
    return math.inf if text == "+Inf" else (-math.inf if text == "-Inf" else float(text))


def bucket_quantile(q: float, buckets: Sequence[Tuple[float, float]]) -> float:
    """Prometheus's ``bucketQuantile`` (promql/quantile.go) over ``(le, cumulative count)``:
    linear interpolation inside the bucket holding rank q·count, the lowest bucket starting at
    0 (or returning its bound when that is ≤ 0), the second-highest bound for the +Inf bucket."""
    merged: List[List[float]] = []
    for le, c in sorted(buckets):
        if merged and merged[-1][0] == le:
            merged[-1][1] += c
        else:
            merged.append([le, c])
    assert merged[-1][0] == math.inf and len(merged) >= 2
    for i in range(1, len(merged)):  # counts are integers here: monotonic already, but be PromQL
        merged[i][1] = max(merged[i][1], merged[i - 1][1])
    n, observations = len(merged), merged[-1][1]
    assert observations > 0
    rank = q * observations
    b = next((i for i in range(n - 1) if merged[i][1] >= rank), n - 1)
    if b == n - 1:
        return merged[n - 2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)


# ---- the SDK side ----


def provider(service: str, temporality: AggregationTemporality) -> Tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader(
        preferred_temporality={Counter: temporality, UpDownCounter: temporality, Histogram: temporality}
    )
    resource = Resource.create(
        {"service.name": service, "service.version": "2.7.0", "service.instance.id": f"{service}-pod-1",
         "deployment.environment.name": "canary"}
    )
    # the other instruments match no view: the SDK's defaults (explicit buckets from the advisory)
    views = [View(instrument_name="rpc.server.payload.size", aggregation=ExponentialBucketHistogramAggregation(max_size=24))]
    return MeterProvider(metric_readers=[reader], resource=resource, views=views), reader


def record(pairs: Sequence[Tuple[MeterProvider, InMemoryMetricReader]], seed: int) -> List[List[MetricsData]]:
    """The same seeded recordings into every provider; ``COLLECTIONS`` collections of each
    reader, each after a batch of recordings."""
    rng = random.Random(seed)
    instruments = []
    for mp, _ in pairs:
        meter = mp.get_meter(SCOPE, SCOPE_VERSION)
        instruments.append((
            meter.create_counter("http.server.request.count", unit="{request}"),
            meter.create_histogram("http.server.request.duration", unit="s",
                                   explicit_bucket_boundaries_advisory=BOUNDS),
            meter.create_histogram("rpc.server.payload.size", unit="By"),
            meter.create_up_down_counter("queue.depth", unit="{message}"),
        ))
    out: List[List[MetricsData]] = [[] for _ in pairs]
    last_ms = 0
    for _ in range(COLLECTIONS):
        for _ in range(RECORDINGS):
            route = rng.choice(ROUTES)
            status = rng.choice([200, 200, 200, 503])
            requests = rng.randint(1, 5)
            latency = rng.expovariate(1 / 0.3)  # some beyond the last bound (+Inf)
            method = rng.choice(METHODS)
            size = 0.0 if rng.random() < 0.1 else rng.lognormvariate(6, 2)  # zeros: the zero bucket
            queue = rng.choice(QUEUES)
            depth = rng.randint(-12, 16) / 4  # multiples of 1/4: float sums exact in any order
            for counter, hist, exp_hist, updown in instruments:
                counter.add(requests, {"http.route": route, "http.response.status_code": status})
                hist.record(latency, {"http.route": route})
                exp_hist.record(size, {"rpc.method": method})
                updown.add(depth, {"messaging.destination.name": queue})
        # a new millisecond for every collection, so no two points of a series share a timestamp
        while time.time_ns() // 1_000_000 <= last_ms:
            time.sleep(0.0005)
        for i, (_, reader) in enumerate(pairs):
            md = reader.get_metrics_data()
            assert md is not None
            out[i].append(md)
            last_ms = max([last_ms] + [p.time_unix_nano // 1_000_000 for p in points_of(md)])
    return out


def points_of(md: MetricsData) -> List[Any]:
    return [p for rm in md.resource_metrics for sm in rm.scope_metrics for m in sm.metrics for p in m.data.data_points]


def series_points(collections: Sequence[MetricsData], name: str, **attrs: Any) -> List[Any]:
    """The SDK's points of one series, in collection order."""
    out = []
    for md in collections:
        for rm in md.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out += [p for p in m.data.data_points if dict(p.attributes or {}) == attrs]
    return out


# ---- the test ----


def test_otel_sdk_metrics_through_kafka(
    broker: str,
    create_topic: Callable[[str, str, int], None],
    store_stats: Callable[[Path], Dict[str, Any]],
    coalmine_bin: str,
    tmp_path: Path,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    services = {t: f"checkout-{t}" for t in TEMPORALITIES}
    topics = {t: f"py-otel-{t}-{suffix}" for t in TEMPORALITIES}
    for topic in topics.values():
        create_topic(broker, topic, 1)

    pairs = [provider(services[t], temporality) for t, temporality in TEMPORALITIES.items()]
    try:
        recorded = record(pairs, seed=20240611)
    finally:
        for mp, _ in pairs:
            mp.shutdown()
    sdk = dict(zip(TEMPORALITIES, recorded))

    # the SDK really did what the test is about
    for t, temporality in TEMPORALITIES.items():
        kinds = {type(m.data).__name__: getattr(m.data, "aggregation_temporality", None)
                 for md in sdk[t] for rm in md.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        assert kinds == {"Sum": temporality, "Histogram": temporality, "ExponentialHistogram": temporality}
        exp = series_points(sdk[t], "rpc.server.payload.size", **{"rpc.method": "Get"})
        assert len(exp) == COLLECTIONS and all(p.zero_count > 0 and p.positive.bucket_counts for p in exp)

    p = confluent_kafka.Producer({"bootstrap.servers": broker, "linger.ms": 5})
    for t in TEMPORALITIES:
        for md in sdk[t]:
            p.produce(topics[t], encode_metrics(md).SerializeToString())
    assert p.flush(30) == 0

    want = expected_points([md for t in TEMPORALITIES for md in sdk[t]])
    want_points = sum(len(v) for v in want.values())

    data = tmp_path / "data"
    cfg = tmp_path / "coalmine.toml"
    topic_list = ", ".join(f'{{ name = "{topics[t]}", format = "otlp-proto" }}' for t in TEMPORALITIES)
    cfg.write_text(
        f'[store]\ndata-dir = "{data}"\nflush-interval = "200ms"\n[kafka]\nbootstrap-servers = "{broker}"\n'
        f'group-id = "py-otel-{suffix}"\ntopics = [{topic_list}]\n'
        '[server]\nlisten = "127.0.0.1:0"\n'
    )
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([coalmine_bin, "serve", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while store_stats(data)["points"] < want_points:
            assert proc.poll() is None, log_path.read_text()
            assert time.time() < deadline, log_path.read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "skipped" not in log_path.read_text().lower(), log_path.read_text()

    store = coalmine.Store.open(data)

    # ---- every data point, with its tags, timestamp and value ----
    rows = store.sql("SELECT * FROM metrics").to_pylist()
    assert len(rows) == want_points
    got: Dict[Key, List[Tuple[str, float]]] = {}
    for row in rows:
        ts = (row.pop("ts") - EPOCH) // dt.timedelta(milliseconds=1)
        name, value = row.pop("metric"), row.pop("value")
        row.pop("tags", None)
        le = row.pop("le", None)
        tags = frozenset((k, v) for k, v in row.items() if v is not None)
        got.setdefault((name, tags, ts), []).append((le, value))
    assert set(got) == set(want), set(got) ^ set(want)
    for key, expected in want.items():
        actual = got[key]
        assert len(actual) == len(expected), key
        if expected[0][0] is None:  # a plain series: one point
            assert [v for _, v in actual] == [v for _, _, v in expected], key
            continue
        actual = sorted(actual, key=lambda x: parse_le(x[0]))
        expected = sorted(expected, key=lambda x: x[0])  # type: ignore[arg-type, return-value]
        for (le, value), (want_le, want_text, want_value) in zip(actual, expected):
            assert value == want_value, (key, le)
            if want_text is not None:  # explicit bounds: the exact Prometheus text
                assert le == want_text, key
            else:
                # exponential bounds: base^i is computed here with Python's `**` and in coalmine
                # with Rust's exp2, and printed by Rust; the two may differ in the last digit,
                # so compare as numbers within a relative 1e-12
                assert want_le is not None
                assert parse_le(le) == pytest.approx(want_le, rel=1e-12, abs=0.0), (key, le)

    # the tags, spelled out once (the comparison above already covers them all)
    cum = services["cumulative"]
    spelled = store.sql(
        "SELECT DISTINCT service_name, service_version, service_instance_id, job, instance, otel_scope_name, "
        "otel_scope_version, deployment_environment_name, telemetry_sdk_language, http_route, "
        "http_response_status_code FROM metrics WHERE metric = 'http_server_request_count' "
        f"AND service_name = '{cum}' AND http_route = '/health' AND http_response_status_code = '200'"
    ).to_pylist()
    assert spelled == [{
        "service_name": cum, "service_version": "2.7.0", "service_instance_id": f"{cum}-pod-1", "job": cum,
        "instance": f"{cum}-pod-1", "otel_scope_name": SCOPE, "otel_scope_version": SCOPE_VERSION,
        "deployment_environment_name": "canary", "telemetry_sdk_language": "python", "http_route": "/health",
        "http_response_status_code": "200",
    }]

    # ---- SQL over what was stored ----
    def one(sql: str) -> Any:
        out = store.sql(sql).to_pylist()
        assert len(out) == 1, (sql, out)
        return next(iter(out[0].values()))

    dlt = services["delta"]
    for route in ROUTES:
        for status in (200, 503):
            attrs = {"http.route": route, "http.response.status_code": status}
            where = (f"metric = 'http_server_request_count' AND http_route = '{route}' "
                     f"AND http_response_status_code = '{status}'")
            cum_pts = series_points(sdk["cumulative"], "http.server.request.count", **attrs)
            delta_pts = series_points(sdk["delta"], "http.server.request.count", **attrs)
            assert len(cum_pts) == COLLECTIONS
            inc = one(f"SELECT increase(value, ts) FROM metrics WHERE {where} AND service_name = '{cum}'")
            assert inc == cum_pts[-1].value - cum_pts[0].value
            total = one(f"SELECT sum(value) FROM metrics WHERE {where} AND service_name = '{dlt}'")
            assert total == sum(p.value for p in delta_pts)
            assert total == cum_pts[-1].value  # the same recordings, counted from 0
    for queue in QUEUES:
        attrs = {"messaging.destination.name": queue}
        where = f"metric = 'queue_depth' AND messaging_destination_name = '{queue}'"
        cum_pts = series_points(sdk["cumulative"], "queue.depth", **attrs)
        delta_pts = series_points(sdk["delta"], "queue.depth", **attrs)
        last = one(f"SELECT last_value(value ORDER BY ts) FROM metrics WHERE {where} AND service_name = '{cum}'")
        assert last == cum_pts[-1].value
        total = one(f"SELECT sum(value) FROM metrics WHERE {where} AND service_name = '{dlt}'")
        assert total == sum(p.value for p in delta_pts) == cum_pts[-1].value

    # histogram_quantile over the last collection's buckets vs PromQL's interpolation by hand
    for t, service in services.items():
        for route in ROUTES:
            p_last = series_points(sdk[t], "http.server.request.duration", **{"http.route": route})[-1]
            cumulative = [sum(p_last.bucket_counts[: i + 1]) for i in range(len(p_last.explicit_bounds))]
            buckets = list(zip(p_last.explicit_bounds, cumulative)) + [(math.inf, p_last.count)]
            ms = p_last.time_unix_nano // 1_000_000
            for q in (0.5, 0.9):
                got_q = one(
                    f"SELECT histogram_quantile({q}, le, value) FROM metrics WHERE metric = "
                    f"'http_server_request_duration_bucket' AND service_name = '{service}' "
                    f"AND http_route = '{route}' AND CAST(ts AS BIGINT) = {ms}"
                )
                want_q = bucket_quantile(q, buckets)
                assert got_q == pytest.approx(want_q, rel=1e-12), (t, route, q)
                i = next(i for i, (b, c) in enumerate(buckets) if c >= q * p_last.count)
                assert (buckets[i - 1][0] if i else 0.0) <= got_q <= buckets[i][0]
        for method in METHODS:
            p_last = series_points(sdk[t], "rpc.server.payload.size", **{"rpc.method": method})[-1]
            buckets = exponential_buckets(p_last) + [(math.inf, p_last.count)]
            ms = p_last.time_unix_nano // 1_000_000
            got_q = one(
                "SELECT histogram_quantile(0.5, le, value) FROM metrics WHERE metric = "
                f"'rpc_server_payload_size_bucket' AND service_name = '{service}' "
                f"AND rpc_method = '{method}' AND CAST(ts AS BIGINT) = {ms}"
            )
            # bounds re-read from their printed text: equal within float rounding
            assert got_q == pytest.approx(bucket_quantile(0.5, buckets), rel=1e-9), (t, method)
            # no value was negative, so no quantile is: the lowest bucket is the zero bucket
            # (the SDK's empty negative bucket list [0] adds none below it)
            low = one(
                "SELECT histogram_quantile(0.01, le, value) FROM metrics WHERE metric = "
                f"'rpc_server_payload_size_bucket' AND service_name = '{service}' "
                f"AND rpc_method = '{method}' AND CAST(ts AS BIGINT) = {ms}"
            )
            assert low == pytest.approx(bucket_quantile(0.01, buckets), rel=1e-9) and low >= 0.0, (t, method, low)
