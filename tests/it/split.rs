//! The traffic-split guard: simulated splits (A/A at the configured share stays under α over
//! 3 h checked every look; 45/55 where 50/50 is configured is caught), a judgment through
//! the remote-judge JSON, bad guards named by their path.

use coalmine::judge::judge_value;
use coalmine::judge::sequential::CountTest;
use coalmine::judge::split::{Looks, SplitGuard, SplitState};
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution, Poisson};
use serde_json::{json, Value};

const LOOKS: usize = 1080;

/// One 10 s look at 100 requests/s, each routed to the canary with probability `share`;
/// `sticky`: requests come in sessions (geometric, mean 10) routed whole.
fn look(rng: &mut rand::rngs::StdRng, share: f64, sticky: bool) -> (f64, f64) {
    if sticky {
        let sessions = Poisson::new(100.0).unwrap().sample(rng) as u64;
        let (mut c, mut e) = (0.0, 0.0);
        for _ in 0..sessions {
            let size = (rng.random::<f64>().ln() / 0.9f64.ln()).floor() + 1.0;
            if rng.random::<f64>() < share {
                e += size;
            } else {
                c += size;
            }
        }
        (c, e)
    } else {
        let n = Poisson::new(1000.0).unwrap().sample(rng) as u64;
        let e = Binomial::new(n, share).unwrap().sample(rng) as f64;
        (n as f64 - e, e)
    }
}

fn guard(share: f64) -> SplitGuard {
    SplitGuard {
        metric: "requests".into(),
        share,
        alpha: 0.001,
    }
}

/// The look of the guard's first alarm in a 3 h run (1,080 looks), if any; and whether
/// the same e-process without the overdispersion scaling alarmed.
fn run(seed: u64, true_share: f64, expected: f64, sticky: bool) -> (Option<usize>, bool) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut state = SplitState::new(&guard(expected));
    let mut plain = CountTest::new(expected, 100.0, &[], 0.001);
    let mut plain_alarm = false;
    for t in 0..LOOKS {
        let (c, e) = look(&mut rng, true_share, sticky);
        state.observe(&Looks {
            control: vec![c],
            experiment: vec![e],
        });
        plain.add(c, e);
        plain_alarm |= plain.ln_e_two_sided() >= 1000f64.ln();
        if state.mismatched() {
            return (Some(t + 1), plain_alarm);
        }
    }
    (None, plain_alarm)
}

/// α = 0.001 over a whole run: 60 A/A runs of 3 h at 50/50 and 60 at 10/90, every look
/// checked: at most one alarm among them (expected 0.12; P(≥ 2) < 0.007).
#[test]
fn a_right_split_does_not_alarm_over_three_hours_checked_every_look() {
    let alarms = (0..60)
        .map(|i| run(100 + i, 0.5, 0.5, false).0)
        .chain((0..60).map(|i| run(900 + i, 0.1, 0.1, false).0))
        .filter(Option::is_some)
        .count();
    assert!(alarms <= 1, "{alarms} false alarms in 120 A/A runs");
}

/// Sticky sessions route requests in clusters: the share is right, the counts are
/// overdispersed (φ ≈ 19). The guard's dispersion scaling keeps it quiet; the same
/// e-process on raw counts takes the clusters for a broken split.
#[test]
fn sticky_sessions_are_not_a_broken_split() {
    let results: Vec<(Option<usize>, bool)> =
        (0..30).map(|i| run(300 + i, 0.5, 0.5, true)).collect();
    let ours = results.iter().filter(|r| r.0.is_some()).count();
    let plain = results.iter().filter(|r| r.1).count();
    assert!(ours <= 1, "{ours} false alarms in 30 sticky A/A runs");
    assert!(plain >= 20, "raw counts alarmed in only {plain} of 30");
}

/// 45/55 where 50/50 is configured, at 100 requests/s in 10 s looks: every run caught,
/// within the first 3 minutes (18 looks).
#[test]
fn a_45_55_split_is_caught_within_minutes() {
    for i in 0..30 {
        let (at, _) = run(500 + i, 0.45, 0.5, false);
        let at = at.unwrap_or_else(|| panic!("run {i}: not caught in 3 h"));
        assert!(at <= 18, "run {i}: caught at look {at}");
    }
}

fn request(split: Value, control: &[f64], experiment: &[f64]) -> Value {
    json!({"canaryConfig": {"name": "split", "trafficSplit": split,
            "metrics": [
              {"name": "latency", "groups": ["latency"], "query": {"type": "sql", "sql": "SELECT ts, value FROM metrics"},
               "analysisConfigurations": {"canary": {"direction": "increase"}}},
              {"name": "requests", "groups": ["traffic"], "query": {"type": "sql", "sql": "SELECT ts, value FROM metrics"},
               "analysisConfigurations": {"canary": {"direction": "decrease"}}}],
            "classifier": {"groupWeights": {"latency": 100}}},
        "metricSetPairList": [
            {"name": "latency", "id": "l", "tags": {}, "scopes": {},
             "values": {"control": vec![100.0; control.len()], "experiment": vec![100.0; experiment.len()]}},
            {"name": "requests", "id": "r", "tags": {}, "scopes": {},
             "values": {"control": control, "experiment": experiment}}],
        "scoreThresholds": {"pass": 95, "marginal": 75}})
}

/// A judgment with a guard in its config: per-minute request counts at 45/55 (with
/// Poisson-like jitter) make the verdict's reason say it is inconclusive; the same at
/// 50/50 report a consistent split; the instance counts give the share when `canaryShare`
/// is not set.
#[test]
fn a_judgment_reports_the_split_and_says_when_it_is_off() {
    let jitter = |i: usize| ((i * 37) % 11) as f64 - 5.0;
    let control: Vec<f64> = (0..30).map(|i| 3300.0 + jitter(i)).collect();
    let skewed: Vec<f64> = (0..30).map(|i| 2700.0 - jitter(i)).collect();
    let even: Vec<f64> = (0..30).map(|i| 3300.0 - jitter(i)).collect();
    let v = serde_json::to_value(
        judge_value(
            &request(json!({"metric": "requests"}), &control, &skewed),
            None,
        )
        .unwrap(),
    )
    .unwrap();
    let split = &v["trafficSplit"];
    assert_eq!(split["state"], "mismatch", "{split}");
    assert_eq!(split["expectedShare"], 0.5);
    assert!(
        (split["observedShare"].as_f64().unwrap() - 0.45).abs() < 1e-3,
        "{split}"
    );
    assert!(split["upper"].as_f64().unwrap() < 0.5, "{split}");
    let reason = v["score"]["classificationReason"].as_str().unwrap();
    assert!(
        reason.starts_with("Inconclusive: Traffic split mismatch on requests: the canary has 45 % of its events (99.9 % confidence sequence 4"),
        "{reason}"
    );
    let v = serde_json::to_value(
        judge_value(
            &request(json!({"metric": "requests"}), &control, &even),
            None,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(v["trafficSplit"]["state"], "consistent", "{v}");
    assert_eq!(v["score"]["classification"], "Pass");
    assert!(!v["score"]["classificationReason"]
        .as_str()
        .unwrap()
        .contains("Traffic split"));
    // 1 canary to 9 baseline instances, the share derived from the judge's settings
    let mut req = request(
        json!({"metric": "requests"}),
        &control,
        &control.iter().map(|c| c / 9.0).collect::<Vec<_>>(),
    );
    req["canaryConfig"]["judge"] = json!({"name": "coalmine-v2",
        "judgeConfigurations": {"canaryInstances": 1, "baselineInstances": 9}});
    let v = serde_json::to_value(judge_value(&req, None).unwrap()).unwrap();
    assert_eq!(v["trafficSplit"]["expectedShare"], 0.1, "{v}");
    assert_eq!(v["trafficSplit"]["state"], "consistent", "{v}");
}

/// A malformed guard is refused with its path, whichever judge.
#[test]
fn bad_guards_are_named_by_their_path() {
    let counts = [100.0, 100.0, 100.0];
    for (split, expected) in [
        (json!({"metric": "reqs"}), "canaryConfig.trafficSplit.metric: the config has no metric named \"reqs\" (its metrics: latency, requests)"),
        (json!({"metric": "requests", "canaryShare": 1.5}), "canaryConfig.trafficSplit.canaryShare: must be in (0, 1), got 1.5"),
        (json!({"metric": "requests", "alpha": "0.01"}), "canaryConfig.trafficSplit.alpha: expected a number, found string \"0.01\""),
        (json!({"metric": "requests", "share": 0.5}), "canaryConfig.trafficSplit.share: unknown key (known: metric, canaryShare, alpha)"),
        (json!({"canaryShare": 0.5}), "canaryConfig.trafficSplit.metric: missing: the request-count metric whose split is checked"),
        (json!("requests"), "canaryConfig.trafficSplit: expected an object like {\"metric\": \"requests\", \"canaryShare\": 0.5}, found string \"requests\""),
    ] {
        for judge in ["coalmine-v2", "NetflixACAJudge-v1.0", "coalmine-seq-v2"] {
            let err = judge_value(&request(split.clone(), &counts, &counts), Some(judge))
                .unwrap_err()
                .to_string();
            assert_eq!(err, expected, "{judge}");
        }
    }
}

/// A run request's `trafficSplit` is parsed with the request.
#[test]
fn a_run_request_guard_is_checked_with_the_request() {
    let body = |split: Value| {
        json!({"config": "c", "scopes": {"default": {"control": {"tags": {"v": "1"}}, "experiment": {"tags": {"v": "2"}}}},
               "lifetime": "1h", "interval": "1m", "trafficSplit": split})
    };
    let (spec, _) = coalmine::runs::spec::parse(
        &body(json!({"metric": "requests", "canaryShare": 0.25})),
        1_800_000_000_000,
    )
    .unwrap();
    let split = spec.traffic_split.unwrap();
    assert_eq!(
        (split.metric.as_str(), split.canary_share),
        ("requests", Some(0.25))
    );
    let err = coalmine::runs::spec::parse(
        &body(json!({"metric": "requests", "alpha": 0.7})),
        1_800_000_000_000,
    )
    .unwrap_err();
    assert_eq!(err, "trafficSplit.alpha: must be in (0, 0.5), got 0.7");
}
