//! Every vector of `tests/data/kayenta_vectors.json` (see tests/data/README.md for its
//! provenance): Kayenta's own test suites plus generated judge scenarios, with the exact
//! outputs of Kayenta's classes. Deterministic outputs must match **bit for bit**
//! (`kayenta_observed`); the vectors' own `expected` values are checked too, with their
//! tolerances.

use std::collections::BTreeMap;

use coalmine::judge::classifier::{
    classify, classify_mean_inequality, ClassifierParams, ClassifyInput, Direction, IntervalMethod,
    Label, NanStrategy,
};
use coalmine::judge::effect::{cles, cohen_d, mean_ratio, EffectMeasure};
use coalmine::judge::json::JsonPath;
use coalmine::judge::kayenta_mw::{mann_whitney_kayenta, wdiff};
use coalmine::judge::lookup::{get, Reader};
use coalmine::judge::score::{score, standalone_passed, ScoredResult, Thresholds};
use coalmine::judge::stats::{percentile, qnorm_commons, summary};
use coalmine::judge::transform::{
    add_gaussian_noise, remove_nans, replace_nans, Detector, JavaRandom,
};
use coalmine::judge::{judge_value, JudgeKind};
use serde_json::Value;

use crate::util::{data_path, num, nums};

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(data_path("kayenta_vectors.json")).expect("vectors file");
    let all: Vec<Value> = serde_json::from_str(&text).expect("vectors parse");
    assert_eq!(all[0]["kind"], "meta");
    all.into_iter().skip(1).collect()
}

fn of_kind(kind: &str) -> Vec<Value> {
    let v: Vec<Value> = vectors()
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect();
    assert!(!v.is_empty(), "no vectors of kind {kind}");
    v
}

/// Bit-for-bit equality (NaN equals NaN).
#[track_caller]
fn same(got: f64, want: f64, ctx: &str) {
    assert!(
        (got.is_nan() && want.is_nan()) || got == want,
        "{ctx}: got {got:?}, Kayenta observed {want:?}"
    );
}

#[track_caller]
fn within(got: f64, want: f64, tol: f64, ctx: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{ctx}: got {got}, expected {want} ± {tol}"
    );
}

fn tolerance(e: &Value, key: &str) -> f64 {
    e["tolerance"]
        .get(key)
        .or_else(|| e["tolerance"].get("all"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

#[test]
fn mannwhitney_intervals_are_bit_exact() {
    for e in of_kind("mannwhitney") {
        let id = e["id"].as_str().unwrap();
        let i = &e["input"];
        let r = mann_whitney_kayenta(&nums(&i["x"]), &nums(&i["y"]), num(&i["confidence_level"]))
            .unwrap();
        let obs = &e["kayenta_observed"];
        same(r.lower, num(&obs["ci_lower"]), &format!("{id} lower"));
        same(r.upper, num(&obs["ci_upper"]), &format!("{id} upper"));
        same(r.estimate, num(&obs["estimate"]), &format!("{id} estimate"));
        let exp = &e["expected"];
        within(
            r.lower,
            num(&exp["ci_lower"]),
            tolerance(&e, "ci_lower"),
            id,
        );
        within(
            r.upper,
            num(&exp["ci_upper"]),
            tolerance(&e, "ci_upper"),
            id,
        );
        within(
            r.estimate,
            num(&exp["estimate"]),
            tolerance(&e, "estimate"),
            id,
        );
    }
}

#[test]
fn wilcoxon_difference_function_is_bit_exact() {
    for e in of_kind("mannwhitney_wdiff") {
        let i = &e["input"];
        let v = wdiff(num(&i["mu"]), num(&i["zq"]), &nums(&i["x"]), &nums(&i["y"])).unwrap();
        same(
            v,
            num(&e["kayenta_observed"]["value"]),
            e["id"].as_str().unwrap(),
        );
        within(
            v,
            num(&e["expected"]["value"]),
            tolerance(&e, "value"),
            e["id"].as_str().unwrap(),
        );
    }
}

#[test]
fn normal_quantile_is_commons_math() {
    for e in of_kind("normal_quantile") {
        let v = qnorm_commons(num(&e["input"]["p"]));
        same(v, num(&e["kayenta_observed"]["value"]), "qnorm(0.01)");
    }
    // The 95% constant the spec quotes (R prints -1.9599639845400536).
    assert_eq!(qnorm_commons(0.025), -1.959963984540054);
}

#[test]
fn mannwhitney_intermediates_are_bit_exact() {
    for e in of_kind("mannwhitney_intermediate") {
        let i = &e["input"];
        let (x, y) = (nums(&i["x"]), nums(&i["y"]));
        let obs = &e["kayenta_observed"];
        let r = mann_whitney_kayenta(&x, &y, num(&i["confidence_level"])).unwrap();
        same(r.mu_min, num(&obs["muMin"]), "muMin");
        same(r.mu_max, num(&obs["muMax"]), "muMax");
        same(-r.zq, num(&obs["zqLower"]), "zqLower");
        same(r.zq, num(&obs["zqUpper"]), "zqUpper");
        for (key, d, z) in [
            ("fLower0", r.mu_min, 0.0),
            ("fUpper0", r.mu_max, 0.0),
            ("fLower1", r.mu_min, -r.zq),
            ("fUpper1", r.mu_max, -r.zq),
            ("fLower2", r.mu_min, r.zq),
            ("fUpper2", r.mu_max, r.zq),
        ] {
            same(wdiff(d, z, &x, &y).unwrap(), num(&obs[key]), key);
        }
        same(r.lower, num(&obs["ciLower"]), "ciLower");
        same(r.upper, num(&obs["ciUpper"]), "ciUpper");
        same(r.estimate, num(&obs["estimate"]), "estimate");
    }
}

fn classifier_case(
    e: &Value,
) -> (
    Vec<f64>,
    Vec<f64>,
    ClassifierParams,
    Direction,
    NanStrategy,
    bool,
    bool,
) {
    let i = &e["input"];
    let p = &i["params"];
    let mut params = ClassifierParams::kayenta_class_defaults();
    if let Some(t) = p.get("tolerance") {
        params.tolerance = num(t);
    }
    if let Some(c) = p.get("confLevel") {
        params.confidence = num(c);
    }
    if let Some(t) = p.get("effectSizeThresholds") {
        params.effect_thresholds = (num(&t[0]), num(&t[1]));
    }
    if let Some(t) = p.get("criticalThresholds") {
        params.critical_thresholds = (num(&t[0]), num(&t[1]));
    }
    if let Some(m) = p.get("effectSizeMeasure") {
        params.measure = EffectMeasure::parse(m.as_str().unwrap());
    }
    let direction = match i["direction"].as_str().unwrap() {
        "Increase" => Direction::Increase,
        "Decrease" => Direction::Decrease,
        _ => Direction::Either,
    };
    let nan = if i["nanStrategy"] == "Replace" {
        NanStrategy::Replace
    } else {
        NanStrategy::Remove
    };
    (
        nums(&i["control"]),
        nums(&i["experiment"]),
        params,
        direction,
        nan,
        i["isCriticalMetric"].as_bool().unwrap(),
        i["isDataRequired"].as_bool().unwrap(),
    )
}

#[test]
fn classifier_vectors() {
    let mut checked = 0;
    for e in of_kind("classifier") {
        let id = e["id"].as_str().unwrap();
        let (control, experiment, params, direction, nan, critical, required) = classifier_case(&e);
        let i = &e["input"];
        let input = ClassifyInput {
            metric_name: i["metric_name"].as_str().unwrap(),
            direction,
            nan_strategy: nan,
            critical,
            data_required: required,
            experiment_label: i["experiment_label"].as_str().unwrap(),
            control_label: i["control_label"].as_str().unwrap(),
        };
        let c = if i["classifier"] == "MeanInequalityClassifier" {
            classify_mean_inequality(&control, &experiment, &input)
        } else {
            classify(&control, &experiment, &input, &params)
                .unwrap_or_else(|err| panic!("{id}: {err}"))
        };
        let obs = &e["kayenta_observed"];
        let exp = &e["expected"];
        assert_eq!(
            c.label.as_str(),
            obs["classification"].as_str().unwrap(),
            "{id} label"
        );
        if let Some(want) = exp.get("classification") {
            assert_eq!(
                c.label.as_str(),
                want.as_str().unwrap(),
                "{id} expected label"
            );
        }
        if let Some(want) = exp.get("critical") {
            assert_eq!(
                c.critical,
                want.as_bool().unwrap(),
                "{id} expected critical"
            );
        }
        if exp.get("reason_non_empty").is_some() {
            assert!(
                c.reason.as_deref().is_some_and(|r| !r.is_empty()),
                "{id} reason"
            );
        }
        if obs.get("random").is_some() {
            // Gaussian-noise path: only the label is stable.
            checked += 1;
            continue;
        }
        assert_eq!(
            c.critical,
            obs["critical"].as_bool().unwrap(),
            "{id} critical"
        );
        same(
            c.deviation,
            num(&obs["deviation"]),
            &format!("{id} deviation"),
        );
        match obs.get("reason") {
            Some(Value::String(r)) => {
                assert_eq!(c.reason.as_deref(), Some(r.as_str()), "{id} reason")
            }
            _ => assert_eq!(c.reason, None, "{id} reason"),
        }
        if let Some(lo) = obs.get("mw_lower_confidence") {
            let test = c
                .test
                .as_ref()
                .unwrap_or_else(|| panic!("{id}: no test ran"));
            let (l, u, est) = test.interval();
            same(l, num(lo), &format!("{id} lower"));
            same(u, num(&obs["mw_upper_confidence"]), &format!("{id} upper"));
            same(est, num(&obs["mw_estimate"]), &format!("{id} estimate"));
            same(c.bound.unwrap(), num(&obs["bound"]), &format!("{id} bound"));
            same(
                c.effect_size.unwrap(),
                num(&obs["effect_size"]),
                &format!("{id} effect size"),
            );
        } else {
            assert!(c.test.is_none(), "{id}: Kayenta exits early here");
        }
        checked += 1;
    }
    assert_eq!(checked, 42);
}

#[test]
fn constant_series_noise_is_reproducible() {
    // classifier-029/030 take Kayenta's Gaussian-noise path; coalmine seeds it from the data.
    let e = of_kind("classifier")
        .into_iter()
        .find(|e| e["id"] == "classifier-029")
        .unwrap();
    let (control, experiment, params, direction, nan, critical, required) = classifier_case(&e);
    let input = ClassifyInput {
        metric_name: "m",
        direction,
        nan_strategy: nan,
        critical,
        data_required: required,
        experiment_label: "canary",
        control_label: "baseline",
    };
    let a = classify(&control, &experiment, &input, &params).unwrap();
    let b = classify(&control, &experiment, &input, &params).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.label, Label::High);
    assert!(matches!(params.interval, IntervalMethod::Kayenta));
}

fn label(s: &str) -> Label {
    Label::parse(s).unwrap_or_else(|| panic!("label {s}"))
}

#[test]
fn scorer_vectors() {
    for e in of_kind("scorer") {
        let id = e["id"].as_str().unwrap();
        let input = &e["input"];
        let weights: BTreeMap<String, f64> = input["groupWeights"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), num(v)))
            .collect();
        let names: Vec<String> = input["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        let reasons: Vec<String> = names.iter().map(|n| format!("reason-of-{n}")).collect();
        let groups: Vec<Vec<String>> = input["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["groups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| g.as_str().unwrap().to_string())
                    .collect()
            })
            .collect();
        let results: Vec<ScoredResult<'_>> = input["results"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(k, r)| ScoredResult {
                label: label(r["classification"].as_str().unwrap()),
                groups: &groups[k],
                critical: r["critical"].as_bool().unwrap(),
                muted: r["muted"].as_bool().unwrap(),
                reason: Some(&reasons[k]),
                inconclusive: false,
            })
            .collect();
        let s = score(
            &results,
            &weights,
            Thresholds {
                pass: 95.0,
                marginal: 75.0,
            },
        );
        let obs = &e["kayenta_observed"];
        same(s.summary, num(&obs["summaryScore"]), id);
        same(s.summary, num(&e["expected"]["summaryScore"]), id);
        assert_eq!(
            s.reason,
            obs["reason"].as_str().unwrap_or(""),
            "{id} reason"
        );
        let mut want: Vec<(String, f64, bool)> = obs["groupScores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["name"].as_str().unwrap().to_string(),
                    num(&g["score"]),
                    g["noData"].as_bool().unwrap(),
                )
            })
            .collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        let got: Vec<(String, f64, bool)> = s
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.score, g.no_data))
            .collect();
        assert_eq!(got, want, "{id} group scores");
    }
}

#[test]
fn transform_vectors() {
    for e in of_kind("transform") {
        let id = e["id"].as_str().unwrap();
        let i = &e["input"];
        let data = nums(&i["data"]);
        let out = match i["op"].as_str().unwrap() {
            "removeNaNs" => remove_nans(&data),
            "replaceNaNs" => replace_nans(&data, num(&i["value"])),
            "removeOutliers" => detector(&i["detector"]).remove_outliers(&data),
            "addGaussianNoise" => {
                let mut rng = JavaRandom::new(i["seed"].as_i64().unwrap());
                let noisy = add_gaussian_noise(&data, num(&i["mean"]), num(&i["stdev"]), &mut rng);
                let exp = &e["expected"];
                assert_eq!(noisy.len() as u64, exp["length"].as_u64().unwrap());
                let s = summary(&noisy);
                within(
                    s.mean,
                    num(&exp["sample_mean_within"][0]),
                    num(&exp["sample_mean_within"][1]),
                    id,
                );
                within(
                    s.std,
                    num(&exp["sample_stdev_within"][0]),
                    num(&exp["sample_stdev_within"][1]),
                    id,
                );
                continue;
            }
            op => panic!("unknown op {op}"),
        };
        let want = nums(&e["expected"]["data"]);
        assert_eq!(out.len(), want.len(), "{id}");
        for (a, b) in out.iter().zip(&want) {
            same(*a, *b, id);
        }
    }
}

fn detector(d: &Value) -> Detector {
    match d["type"].as_str().unwrap() {
        "IQR" => Detector::Iqr {
            factor: num(&d["factor"]),
            reduce_sensitivity: d["reduceSensitivity"].as_bool().unwrap_or(false),
        },
        "KSigma" => Detector::KSigma { k: num(&d["k"]) },
        other => panic!("detector {other}"),
    }
}

#[test]
fn detector_vectors() {
    for e in of_kind("detector") {
        let flags = detector(&e["input"]["detector"]).detect(&nums(&e["input"]["data"]));
        let want: Vec<bool> = e["expected"]["outliers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_bool().unwrap())
            .collect();
        assert_eq!(flags, want, "{}", e["id"]);
        if let Some(p25) = e["kayenta_observed"].get("p25") {
            let data = nums(&e["input"]["data"]);
            same(percentile(&data, 25.0), num(p25), "p25");
            same(
                percentile(&data, 75.0),
                num(&e["kayenta_observed"]["p75"]),
                "p75",
            );
        }
    }
}

#[test]
fn statistics_vectors() {
    for e in of_kind("statistics") {
        let id = e["id"].as_str().unwrap();
        let i = &e["input"];
        let data = nums(&i["data"]);
        let obs = &e["kayenta_observed"];
        match i["op"].as_str().unwrap() {
            "summary" => {
                let s = summary(&data);
                same(s.min, num(&obs["min"]), id);
                same(s.max, num(&obs["max"]), id);
                same(s.mean, num(&obs["mean"]), id);
                same(s.std, num(&obs["std"]), id);
                assert_eq!(s.count, obs["count"].as_u64().unwrap(), "{id}");
                within(s.std, num(&e["expected"]["std"]), tolerance(&e, "std"), id);
            }
            "percentile" => {
                let v = percentile(&data, num(&i["p"]));
                same(v, num(&obs["value"]), id);
                within(v, num(&e["expected"]["value"]), tolerance(&e, "value"), id);
            }
            op => panic!("{op}"),
        }
    }
}

#[test]
fn effect_size_vectors() {
    for e in of_kind("effect_size") {
        let id = e["id"].as_str().unwrap();
        let i = &e["input"];
        let (c, x) = (nums(&i["control"]), nums(&i["experiment"]));
        let v = match i["measure"].as_str().unwrap() {
            "meanRatio" => mean_ratio(&c, &x),
            "cles" => cles(&c, &x),
            "cohenD" => cohen_d(&c, &x),
            m => panic!("{m}"),
        };
        let want = num(&e["kayenta_observed"]["value"]);
        if i["measure"] == "cohenD" {
            // observed printed with 13 significant digits
            within(v, want, 1e-12, id);
        } else {
            same(v, want, id);
        }
        let expected = num(&e["expected"]["value"]);
        if !expected.is_nan() {
            within(v, expected, tolerance(&e, "value"), id);
        }
    }
}

#[test]
fn random_vectors() {
    for e in of_kind("random") {
        let i = &e["input"];
        let seed = i.get("seed").and_then(Value::as_i64).unwrap_or(0);
        let mut rng = JavaRandom::new(seed);
        let n = i["numSamples"].as_u64().unwrap() as usize;
        let v = add_gaussian_noise(&vec![0.0; n], num(&i["mean"]), num(&i["stdev"]), &mut rng);
        let exp = &e["expected"];
        if let Some(values) = exp.get("values") {
            assert_eq!(v, nums(values));
            continue;
        }
        let s = summary(&v);
        within(
            s.mean,
            num(&exp["sample_mean_within"][0]),
            num(&exp["sample_mean_within"][1]),
            "mean",
        );
        if let Some(var) = exp.get("sample_variance_within") {
            within(s.std * s.std, num(&var[0]), num(&var[1]), "variance");
        } else {
            within(
                s.std,
                num(&exp["sample_stdev_within"][0]),
                num(&exp["sample_stdev_within"][1]),
                "stdev",
            );
        }
    }
}

#[test]
fn config_lookup_vectors() {
    for e in of_kind("config_lookup") {
        let id = e["id"].as_str().unwrap();
        let i = &e["input"];
        let path: Vec<&str> = i["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        if i.get("as").is_some() {
            let r = Reader {
                data: &i["data"],
                base_path: JsonPath::root(),
            };
            let v = r.f64(&path, num(&i["default"])).unwrap();
            same(v, num(&e["expected"]["value"]), id);
            continue;
        }
        let got = get(&i["data"], &path);
        assert_eq!(
            got.is_some(),
            e["expected"]["found"].as_bool().unwrap(),
            "{id}"
        );
        if let Some(v) = got {
            assert_eq!(v, e["expected"]["value"], "{id}");
        }
    }
}

#[test]
fn standalone_aggregation_vectors() {
    for e in of_kind("standalone_aggregation") {
        let i = &e["input"];
        let got = standalone_passed(
            num(&i["finalCanaryScore"]),
            i["passThreshold"].as_f64(),
            i["marginalThreshold"].as_f64(),
        );
        assert_eq!(
            got,
            e["expected"]["didPassThresholds"].as_bool().unwrap(),
            "{}",
            e["id"]
        );
    }
}

/// The end-to-end judge scenarios: the whole `CanaryJudgeResult` must equal Kayenta's.
#[test]
fn judge_vectors_are_bit_exact() {
    for e in of_kind("judge") {
        let id = e["id"].as_str().unwrap();
        let result = judge_value(&e["input"], Some(JudgeKind::NetflixAcaV1.name())).unwrap();
        let got = serde_json::to_value(&result).unwrap();
        let mut want = e["expected"].clone();
        for r in want["results"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("_debug");
        }
        assert_eq!(got, want, "{id}:\n got {}\nwant {}", got, want);
        // The config names NetflixACAJudge-v1.0, so no override is needed either.
        let by_config = judge_value(&e["input"], None).unwrap();
        assert_eq!(by_config, result, "{id}");
    }
}
