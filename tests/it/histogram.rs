//! Histogram metrics judged request by request (`coalmine-v2`, `metricType: "histogram"`):
//! bucket series folded into one result, the stratified test on simulated requests whose
//! counts the test knows independently, and bad bucket series refused with their path.

use std::collections::BTreeMap;

use coalmine::judge::sequential::{judge_states, Horizon, SeqVersion, SequentialState};
use coalmine::judge::{judge_value, CanaryJudgeResult, JudgeRequest};
use coalmine::synthetic::Synth;
use serde_json::{json, Value};

/// Prometheus's default bucket bounds.
const LE: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

/// Per minute, cumulative bucket counts of `requests` log-normal latencies (median 100 ms,
/// log-sd 0.6) times `factor`: `[minute][bucket]`.
fn minutes(rng: &mut Synth, n: usize, requests: usize, factor: f64) -> Vec<[f64; 12]> {
    let bounds: Vec<f64> = LE
        .iter()
        .map(|s| s.parse().unwrap_or(f64::INFINITY))
        .collect();
    (0..n)
        .map(|_| {
            let mut c = [0.0; 12];
            for _ in 0..requests {
                let v = 0.1 * rng.normal(0.0, 0.6).exp() * factor;
                for (j, b) in bounds.iter().enumerate() {
                    if v <= *b {
                        c[j] += 1.0;
                    }
                }
            }
            c
        })
        .collect()
}

/// A judge request with one metric whose pairs are the buckets (an `le` tag each, plus
/// `extra` tags), `canary` its `analysisConfigurations.canary`.
/// Extra tags and each arm's minutes.
type Arm = (Value, Vec<[f64; 12]>, Vec<[f64; 12]>);

fn request(canary: Value, arms: &[Arm]) -> Value {
    let mut pairs = Vec::new();
    for (extra, control, experiment) in arms {
        for (j, le) in LE.iter().enumerate() {
            let mut tags = extra.clone();
            tags["le"] = json!(le);
            pairs.push(json!({
                "name": "latency", "id": format!("latency-{}-{le}", pairs.len()), "tags": tags,
                "values": {
                    "control": control.iter().map(|m| m[j]).collect::<Vec<_>>(),
                    "experiment": experiment.iter().map(|m| m[j]).collect::<Vec<_>>(),
                },
            }));
        }
    }
    json!({
        "canaryConfig": {
            "name": "histograms",
            "judge": {"name": "coalmine-v2"},
            "metrics": [{"name": "latency", "query": {"type": "sql", "sql": "SELECT 1"},
                         "groups": ["latency"], "analysisConfigurations": {"canary": canary}}],
            "classifier": {"groupWeights": {"latency": 100}},
        },
        "metricSetPairList": pairs,
        "scoreThresholds": {"pass": 95, "marginal": 75},
    })
}

fn judge(req: &Value) -> CanaryJudgeResult {
    judge_value(req, None).unwrap()
}

/// One tick of a `coalmine-seq-v2` run: `req`'s pairs are the values new since the last.
fn seq_v2_tick(
    req: &Value,
    states: &mut BTreeMap<String, SequentialState>,
    horizon: Horizon,
) -> CanaryJudgeResult {
    let req = JudgeRequest::from_value(req).unwrap();
    judge_states(
        SeqVersion::V2,
        &req.canary_config,
        &req.metric_set_pair_list,
        states,
        req.score_thresholds,
        horizon,
    )
    .unwrap()
}

fn declared() -> Value {
    json!({"direction": "increase", "metricType": "histogram", "histogram": {"quantile": 0.99}})
}

#[test]
fn a_slower_canary_is_caught_from_its_buckets_and_an_equal_one_passes() {
    let mut rng = Synth::new(41);
    let base = minutes(&mut rng, 20, 1000, 1.0);
    let slower = minutes(&mut rng, 20, 1000, 1.2);
    let same = minutes(&mut rng, 20, 1000, 1.0);
    let r = judge(&request(
        declared(),
        &[(json!({}), base.clone(), slower.clone())],
    ));
    assert_eq!(r.results.len(), 1, "the 12 bucket series are one metric");
    let m = &r.results[0];
    assert!(m.tags.is_empty(), "no le tag left: {:?}", m.tags);
    assert_eq!(m.classification, "High", "{:?}", m.classification_reason);
    let v = serde_json::to_value(m).unwrap();
    let test = &v["resultMetadata"]["test"];
    assert_eq!(test["pairing"], "histogram");
    let tail = &test["tests"][0];
    assert_eq!(tail["name"], "tail");
    // p99 ≈ 0.40 s: the pooled share at 0.5 s is nearest 0.99 in log-odds
    assert_eq!(tail["bound"], 0.5);
    assert_eq!(tail["requests"], json!([20000.0, 20000.0]));
    // the slow requests are the ones the simulation put above 0.5 s
    let slow = |h: &[[f64; 12]]| h.iter().map(|m| m[11] - m[6]).sum::<f64>();
    assert_eq!(tail["events"], json!([slow(&base), slow(&slower)]));
    assert_eq!(tail["pairs"], 20);
    assert!(tail["gateMeasure"] == "quantile:0.99" && tail["gateValue"].as_f64() > Some(1.0));
    // 20 minutes of equal distributions: no claim
    let r = judge(&request(declared(), &[(json!({}), base, same)]));
    assert_eq!(
        r.results[0].classification, "Pass",
        "{:?}",
        r.results[0].classification_reason
    );
}

#[test]
fn series_with_le_tags_are_a_histogram_without_metric_type_one_result_per_other_tag() {
    let mut rng = Synth::new(42);
    let arms: Vec<Arm> = ["checkout", "search"]
        .iter()
        .map(|route| {
            let factor = if *route == "search" { 1.25 } else { 1.0 };
            (
                json!({"route": route}),
                minutes(&mut rng, 15, 800, 1.0),
                minutes(&mut rng, 15, 800, factor),
            )
        })
        .collect();
    let r = judge(&request(json!({"direction": "increase"}), &arms));
    let got: Vec<(String, String)> = r
        .results
        .iter()
        .map(|m| (m.tags["route"].clone(), m.classification.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("checkout".into(), "Pass".into()),
            ("search".into(), "High".into())
        ]
    );
}

#[test]
fn too_few_slow_requests_and_a_missing_inf_bucket_are_inconclusive() {
    let mut rng = Synth::new(43);
    let (c, e) = (
        minutes(&mut rng, 3, 100, 1.0),
        minutes(&mut rng, 3, 100, 1.0),
    );
    let r = judge(&request(declared(), &[(json!({}), c.clone(), e.clone())]));
    let m = &r.results[0];
    assert!(m.inconclusive && m.classification == "Nodata", "{m:?}");
    assert!(
        m.not_judged
            .as_deref()
            .unwrap()
            .contains("too few slow requests"),
        "{:?}",
        m.not_judged
    );
    let mut req = request(declared(), &[(json!({}), c, e)]);
    req["metricSetPairList"].as_array_mut().unwrap().pop(); // the +Inf series
    let r = judge(&req);
    assert!(
        r.results[0]
            .not_judged
            .as_deref()
            .unwrap()
            .contains("no le=\"+Inf\" bucket"),
        "{:?}",
        r.results[0].not_judged
    );
}

#[test]
fn bad_bucket_series_are_refused_with_their_path() {
    let mut rng = Synth::new(44);
    let (c, e) = (
        minutes(&mut rng, 3, 100, 1.0),
        minutes(&mut rng, 3, 100, 1.0),
    );
    let base = request(declared(), &[(json!({}), c, e)]);
    let mut req = base.clone();
    req["metricSetPairList"][3]["tags"]["le"] = json!("fast");
    let err = judge_value(&req, None).unwrap_err().to_string();
    assert!(
        err.contains("metricSetPairList[3].tags.le")
            && err.contains("\"fast\" is not a bucket bound"),
        "{err}"
    );
    let mut req = base.clone();
    req["metricSetPairList"][4]["tags"]["le"] = json!("0.025");
    let err = judge_value(&req, None).unwrap_err().to_string();
    assert!(
        err.contains("two series for the bucket le=\"0.025\""),
        "{err}"
    );
    let mut req = base.clone();
    req["metricSetPairList"][5]["tags"] = json!({});
    let err = judge_value(&req, None).unwrap_err().to_string();
    assert!(
        err.contains("metricSetPairList[5].tags") && err.contains("needs an `le` tag"),
        "{err}"
    );
    let mut req = base;
    req["canaryConfig"]["metrics"][0]["analysisConfigurations"]["canary"]["histogram"] =
        json!({"quantile": 1.5});
    let err = judge_value(&req, None).unwrap_err().to_string();
    assert!(
        err.contains("histogram.quantile") && err.contains("(0, 1)"),
        "{err}"
    );
}

#[test]
fn the_sequential_judges_test_the_slow_requests_look_by_look() {
    let mut rng = Synth::new(45);
    let base = minutes(&mut rng, 30, 1000, 1.0);
    let slower = minutes(&mut rng, 30, 1000, 1.2);
    let same = minutes(&mut rng, 30, 1000, 1.0);
    for judge_name in ["coalmine-seq-v2", "coalmine-seq-v1"] {
        let r = judge_value(
            &request(declared(), &[(json!({}), base.clone(), slower.clone())]),
            Some(judge_name),
        )
        .unwrap();
        assert_eq!(r.results.len(), 1);
        let m = &r.results[0];
        assert_eq!(
            m.classification, "High",
            "{judge_name}: {:?}",
            m.classification_reason
        );
        let v = serde_json::to_value(m).unwrap();
        let test = &v["resultMetadata"]["test"];
        assert_eq!(test["kind"], "sequential-histogram", "{test}");
        assert_eq!(test["metricType"], "histogram");
        assert_eq!(test["histogram"]["bound"], 0.5);
        let slow = |h: &[[f64; 12]]| h.iter().map(|m| m[11] - m[6]).sum::<f64>();
        assert_eq!(test["eventsControl"].as_f64(), Some(slow(&base)));
        assert_eq!(test["eventsExperiment"].as_f64(), Some(slow(&slower)));
        let r = judge_value(
            &request(declared(), &[(json!({}), base.clone(), same.clone())]),
            Some(judge_name),
        )
        .unwrap();
        assert_eq!(r.results[0].classification, "Pass", "{judge_name}");
    }
}

#[test]
fn a_run_fed_minute_by_minute_reaches_the_same_e_value_as_one_judgment() {
    let mut rng = Synth::new(46);
    let base = minutes(&mut rng, 12, 1000, 1.0);
    let slower = minutes(&mut rng, 12, 1000, 1.15);
    let whole = judge_value(
        &request(declared(), &[(json!({}), base.clone(), slower.clone())]),
        Some("coalmine-seq-v2"),
    )
    .unwrap();
    let mut states = BTreeMap::new();
    let mut last = None;
    for minute in 0..12 {
        let req = request(
            declared(),
            &[(json!({}), vec![base[minute]], vec![slower[minute]])],
        );
        last = Some(seq_v2_tick(&req, &mut states, Horizon::Unknown));
    }
    assert_eq!(states.len(), 1, "one state for the 12 bucket series");
    let e = |r: &CanaryJudgeResult| {
        serde_json::to_value(&r.results[0]).unwrap()["resultMetadata"]["test"]["eValue"].clone()
    };
    assert_eq!(e(&last.unwrap()), e(&whole));
}

#[test]
fn a_missing_inf_bucket_is_not_judged_by_the_sequential_judges_either() {
    let mut rng = Synth::new(47);
    let (c, e) = (
        minutes(&mut rng, 5, 500, 1.0),
        minutes(&mut rng, 5, 500, 1.0),
    );
    let mut req = request(declared(), &[(json!({}), c, e)]);
    req["metricSetPairList"].as_array_mut().unwrap().pop();
    let r = judge_value(&req, Some("coalmine-seq-v2")).unwrap();
    let m = &r.results[0];
    assert!(m.inconclusive && m.classification == "Nodata", "{m:?}");
    assert!(m.not_judged.as_deref().unwrap().contains("+Inf"));
}

/// The documented path end to end: Prometheus-style cumulative `_bucket` counters per
/// instance in the store, the SQL of `docs/metrics.md` (increase per instance, summed per
/// minute and bound), a run's window judged by `coalmine-v2` as one histogram.
#[test]
fn bucket_counters_queried_with_sql_in_a_run_are_judged_as_one_histogram() {
    use coalmine::query::Engine;
    use coalmine::runs::{spec, PreparedRun};
    use coalmine::store::segment::PointColumns;
    use coalmine::store::{message_offsets, now_ms, Store, StoreConfig};

    let dir = crate::kafka::TempDir::new("histogram-run");
    let store = Store::open(StoreConfig::new(&dir.0)).unwrap();
    // the last 30 minutes, scraped every 15 s: 3 instances per arm, 100 requests each a scrape
    let t0 = (now_ms() / 60_000 - 40) * 60_000;
    let bounds: Vec<f64> = LE
        .iter()
        .map(|s| s.parse().unwrap_or(f64::INFINITY))
        .collect();
    let mut rng = Synth::new(48);
    let mut pts = PointColumns::default();
    {
        let mut reg = store.registry_mut();
        for inst in 0..6 {
            let (version, factor) = if inst < 3 { ("v1", 1.0) } else { ("v2", 1.2) };
            let instance = format!("i-{inst}");
            let ids: Vec<_> = LE
                .iter()
                .map(|le| {
                    reg.resolve(
                        "http_request_duration_seconds_bucket",
                        &[("instance", &instance), ("le", le), ("version", version)],
                    )
                })
                .collect();
            let mut counts = [0.0; 12];
            for scrape in 0..=160 {
                for _ in 0..100 {
                    let v = 0.1 * rng.normal(0.0, 0.6).exp() * factor;
                    for (c, b) in counts.iter_mut().zip(&bounds) {
                        if v <= *b {
                            *c += 1.0;
                        }
                    }
                }
                for (id, c) in ids.iter().zip(counts) {
                    pts.push(*id, t0 + scrape * 15_000, c);
                }
            }
        }
    }
    store.append(&pts, &message_offsets("test", 0, 0));
    store.flush().unwrap();
    let sql = "SELECT t AS ts, le, sum(inc) AS value FROM (SELECT date_bin(INTERVAL '1 minute', ts) AS t, le, instance, increase(value, ts, INTERVAL '1 minute') AS inc FROM metrics WHERE metric = 'http_request_duration_seconds_bucket' GROUP BY 1, 2, 3) GROUP BY 1, 2";
    let config = json!({"name": "h", "applications": ["h"], "metrics": [
        {"name": "latency", "groups": ["latency"], "query": {"type": "sql", "sql": sql},
         "analysisConfigurations": {"canary": {"direction": "increase", "metricType": "histogram"}}}]});
    let body = json!({"config": "h", "scopes": {"default": {"control": {"tags": {"version": "v1"}}, "experiment": {"tags": {"version": "v2"}}}},
                      "start": t0, "lifetime": "1h", "interval": "1m", "window": "30m"});
    let run_spec = spec::parse(&body, now_ms()).unwrap().0;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine::new(store.clone());
    let prepared = rt
        .block_on(PreparedRun::prepare(&engine, &config, run_spec))
        .unwrap();
    let (result, pairs) = rt.block_on(prepared.judge(t0 + 35 * 60_000)).unwrap();
    assert_eq!(pairs.len(), 12, "one pair per bucket bound from the query");
    assert_eq!(result.results.len(), 1, "{:?}", result.results);
    let m = &result.results[0];
    assert_eq!(m.classification, "High", "{:?}", m.classification_reason);
    let v = serde_json::to_value(m).unwrap();
    let tail = &v["resultMetadata"]["test"]["tests"][0];
    assert_eq!(v["resultMetadata"]["test"]["pairing"], "histogram");
    // 3 instances × 4 scrapes × 100 requests a minute per arm, extrapolated over the
    // minute by increase(…, INTERVAL '1 minute'): 1,200 a minute
    let requests = tail["requests"][0].as_f64().unwrap();
    let minutes = tail["pairs"].as_f64().unwrap();
    assert!(
        (requests / minutes - 1200.0).abs() < 120.0,
        "{requests} requests in {minutes} intervals"
    );
}

#[test]
fn the_effect_gate_reads_a_ten_percent_shift_as_ten_percent() {
    // PromQL's linear interpolation inside (0.25, 0.5] would read this p99 shift as about 3 %
    let mut rng = Synth::new(49);
    let base = minutes(&mut rng, 20, 2000, 1.0);
    let slower = minutes(&mut rng, 20, 2000, 1.1);
    let gated = |allowed: f64| {
        let mut canary = declared();
        canary["effectSize"] = json!({"allowedIncrease": allowed});
        judge(&request(
            canary,
            &[(json!({}), base.clone(), slower.clone())],
        ))
    };
    let r = gated(1.05);
    let m = &r.results[0];
    assert_eq!(m.classification, "High", "{:?}", m.classification_reason);
    let v = serde_json::to_value(m).unwrap();
    let ratio = v["resultMetadata"]["test"]["tests"][0]["gateValue"]
        .as_f64()
        .unwrap();
    assert!((ratio - 1.1).abs() < 0.04, "p99 ratio {ratio}");
    let r = gated(1.2);
    assert_eq!(r.results[0].classification, "Pass");
    assert_eq!(
        r.results[0].classification_reason.as_deref(),
        Some("no change beyond the allowed effect")
    );
}

#[test]
fn a_run_state_survives_json_and_ticks_without_data() {
    let mut rng = Synth::new(50);
    let base = minutes(&mut rng, 6, 1000, 1.0);
    let slower = minutes(&mut rng, 6, 1000, 1.15);
    let mut states: BTreeMap<String, SequentialState> = BTreeMap::new();
    let tick = |req: &Value, states: &mut BTreeMap<String, SequentialState>| {
        seq_v2_tick(req, states, Horizon::Looks(10))
    };
    // the placeholder a run sends when neither scope returned a row
    let mut empty = request(declared(), &[]);
    empty["metricSetPairList"] = json!([{"name": "latency", "id": "latency", "tags": {},
        "values": {"control": ["NaN"], "experiment": ["NaN"]}}]);
    let r = tick(&empty, &mut states);
    assert_eq!(r.results[0].classification, "Nodata", "{:?}", r.results[0]);
    for minute in 0..6 {
        let req = request(
            declared(),
            &[(json!({}), vec![base[minute]], vec![slower[minute]])],
        );
        let r = tick(&req, &mut states);
        assert_ne!(r.results[0].classification, "Error", "{:?}", r.results[0]);
        // saved between ticks as a run saves it, and read back (∞ and +Inf included)
        let saved = serde_json::to_string(&states).unwrap();
        let restored: BTreeMap<String, SequentialState> = serde_json::from_str(&saved).unwrap();
        assert_eq!(serde_json::to_string(&restored).unwrap(), saved);
        states = restored;
    }
    let r = tick(&empty, &mut states);
    assert_ne!(r.results[0].classification, "Error", "{:?}", r.results[0]);
    assert_eq!(states.len(), 1);
}

/// The report of a histogram judgment draws the requests per interval (its `+Inf` bucket),
/// the tail test's interval and its quantile gate against the allowed effect, and lists the
/// test's histogram statistics.
#[test]
fn the_report_of_a_histogram_metric_draws_its_requests_and_tail_test() {
    let mut rng = Synth::new(43);
    let base = minutes(&mut rng, 20, 1000, 1.0);
    let slower = minutes(&mut rng, 20, 1000, 1.2);
    let mut canary = declared();
    canary["effectSize"] = json!({"allowedIncrease": 1.1});
    let req = request(canary, &[(json!({}), base, slower)]);
    let result = judge(&req);
    let page = coalmine::report::judgment_html(
        &JudgeRequest::from_value(&req).unwrap(),
        &result,
        coalmine::report::Form::Page,
    );
    assert!(page.contains("latency: requests per interval (bucket le=+Inf)"));
    assert!(
        page.contains("tail (cmh): estimate and interval")
            || page.contains("tail (quasi-cmh): estimate and interval")
    );
    assert!(page.contains("tail: effect gate (quantile:0.99)"));
    for field in [
        "tests[0].bound",
        "tests[0].requests",
        "tests[0].quantiles",
        "tests[0].scored",
    ] {
        assert!(page.contains(&format!("<th>{field}</th>")), "{field}");
    }
    assert!(page.contains("▲ High"));
    assert!(!page.contains("http"), "no URL in the page");
}
