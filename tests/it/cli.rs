//! The `coalmine` binary, run as a user would.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn coalmine(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coalmine"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("coalmine starts");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn example() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/checkout-canary.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn judges_the_bundled_example() {
    let out = coalmine(&["judge", "examples/checkout-canary.json"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["judgeName"], "coalmine-v2", "the default judge");
    assert_eq!(result["score"]["classification"], "Fail");
    let p99 = &result["results"][0];
    assert_eq!(p99["name"], "latency p99");
    assert_eq!(p99["classification"], "High");
    assert_eq!(p99["critical"], true);
    let test = &p99["resultMetadata"]["test"];
    assert_eq!(test["kind"], "coalmine-v2");
    // the example's scopes put both arms on one grid: compared at the same instants
    assert_eq!(test["pairing"], "paired", "{test}");
    assert!(test["adjustedPValue"].as_f64().unwrap() < 1e-6, "{test}");
    let location = &test["tests"][0];
    assert_eq!(location["name"], "location");
    assert!(location["estimate"].as_f64().unwrap() > 1.1, "{location}");
    // coalmine-v1 by name: the Mann–Whitney pipeline, as before
    let out = coalmine(
        &[
            "judge",
            "examples/checkout-canary.json",
            "--judge",
            "coalmine-v1",
        ],
        None,
    );
    let v1: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v1["judgeName"], "coalmine-v1");
    assert_eq!(v1["results"][0]["classification"], "High");
    let test = &v1["results"][0]["resultMetadata"]["test"];
    assert_eq!(test["kind"], "mann-whitney");
    assert!(test["lower"].as_f64().unwrap() > 0.0);
    assert!(test["pValue"].as_f64().unwrap() < 1e-6);
    // the same request from standard input, with the Kayenta judge
    let text = serde_json::to_string(&example()).unwrap();
    let out = coalmine(
        &["judge", "-", "--judge", "NetflixACAJudge-v1.0"],
        Some(&text),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let kayenta: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(kayenta["judgeName"], "NetflixACAJudge-v1.0");
    assert!(
        kayenta["results"][0]["resultMetadata"]
            .get("test")
            .is_none(),
        "Kayenta output stays Kayenta's"
    );
}

#[test]
fn table_and_exit_status() {
    let out = coalmine(
        &[
            "judge",
            "examples/checkout-canary.json",
            "--format",
            "table",
            "--fail-on",
            "fail",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.starts_with("coalmine-v2 · verdict FAIL · score 0.00"),
        "{table}"
    );
    assert!(
        table.contains("latency p99") && table.contains("High (critical)"),
        "{table}"
    );
    assert!(table.contains(
        "reason: Canary Failed: The metric latency p99 was classified as High (Critical)"
    ));
    // the sequential judges show their confidence sequence (level 1 − 0.01/4 per metric: four
    // unmuted metrics), anytime-valid p-value and test
    let out = coalmine(
        &[
            "judge",
            "examples/checkout-canary.json",
            "--judge",
            "coalmine-seq-v2",
            "--format",
            "table",
        ],
        None,
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let p99 = table
        .lines()
        .find(|l| l.starts_with("latency p99"))
        .unwrap();
    assert!(
        p99.contains("High (critical)")
            && p99.contains("@99.75%")
            && p99.contains("sequential-paired"),
        "{table}"
    );
}

#[test]
fn invalid_input_names_the_json_path() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|r: &mut Value| r["metricSetPairList"][3]["values"]["control"][17] = "oops".into()),
            "metricSetPairList[3].values.control[17]: expected a number or \"NaN\", found string \"oops\"",
        ),
        (
            Box::new(|r: &mut Value| r["metricSetPairList"][1]["name"] = "nope".into()),
            "metricSetPairList[1].name: could not find metric config for 'nope'",
        ),
        (
            Box::new(|r: &mut Value| r["canaryConfig"]["metrics"][2]["analysisConfigurations"]["canary"]["critical"] = "true".into()),
            "canaryConfig.metrics[2].analysisConfigurations.canary.critical: expected a boolean, found string \"true\"",
        ),
        (
            Box::new(|r: &mut Value| {
                r["canaryConfig"]["metrics"][0]["analysisConfigurations"]["canary"]["effectSize"]["allowedIncrease"] = "1.1".into()
            }),
            "canaryConfig.metrics[0].analysisConfigurations.canary.effectSize.allowedIncrease: expected a number",
        ),
        (
            Box::new(|r: &mut Value| r["canaryConfig"]["metrics"][0]["analysisConfigurations"]["canary"]["confidence"] = 1.5.into()),
            "canaryConfig.metrics[0].analysisConfigurations.canary.confidence: confidence must be in (0, 1)",
        ),
        (Box::new(|r: &mut Value| r["scoreThresholds"]["pass"] = Value::Null), "scoreThresholds.pass: missing"),
        (
            Box::new(|r: &mut Value| r["canaryConfig"]["classifier"]["groupWeights"]["latency"] = "half".into()),
            "canaryConfig.classifier.groupWeights.latency: expected a number",
        ),
    ];
    for (mutate, want) in cases {
        let mut r = example();
        mutate(&mut r);
        let out = coalmine(&["judge"], Some(&r.to_string()));
        assert_eq!(out.status.code(), Some(2), "{want}");
        assert!(
            stderr(&out).contains(want),
            "wanted {want:?}, got {:?}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
    let out = coalmine(
        &[
            "judge",
            "examples/checkout-canary.json",
            "--judge",
            "dredd-v1.0",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Unable to resolve canary judge 'dredd-v1.0'"),
        "{}",
        stderr(&out)
    );
    let out = coalmine(
        &["judge"],
        Some("{\"canaryConfig\": {},\n  \"metricSetPairList\": [,]}"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not valid JSON") && stderr(&out).contains("line 2"),
        "{}",
        stderr(&out)
    );
    let out = coalmine(&["judge", "does/not/exist.json"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read 'does/not/exist.json'"),
        "{}",
        stderr(&out)
    );
}

/// `coalmine replay --judge coalmine-v2` on an archive (the demo's labelled fixture): every
/// judgment re-judged with the new judge, the changed verdicts counted, and a setting v2 does
/// not read refused by name instead of silently ignored.
#[test]
fn replay_with_coalmine_v2_shows_which_verdicts_change() {
    let dir = std::env::temp_dir().join(format!("coalmine-replay-v2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let out = coalmine(
        &[
            "demo",
            "--archive",
            d,
            "--runs",
            "12",
            "--judgments",
            "3",
            "--seed",
            "5",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // "wrote N judgments of 12 runs to …" (a failing run stops early)
    let written: usize = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("the demo says how many judgments it wrote");
    let replay = |args: &[&str]| {
        let mut all = vec!["replay", "--archive", d];
        all.extend_from_slice(args);
        coalmine(&all, None)
    };
    // a refused override: exit 2 and the message
    let refused = |args: &[&str], message: &str| {
        let out = replay(args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
    };
    let out = replay(&["--judge", "coalmine-v2", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["judgments"].as_array().unwrap();
    assert_eq!(rows.len(), written, "every archived judgment re-judged");
    let changed = rows.iter().filter(|r| r["changed"] == true).count() as u64;
    assert_eq!(doc["changed"].as_u64(), Some(changed));
    let table = replay(&["--judge", "coalmine-v2"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(&format!("{changed} verdicts change")),
        "{text}"
    );
    refused(
        &[
            "--judge",
            "coalmine-v2",
            "--overrides",
            r#"{"tolerance": 0.1}"#,
        ],
        "`tolerance` has no effect on coalmine-v2",
    );
    // the sequential v2 judge re-judges the same archive (each judgment as one judgment of
    // one look per value), and its settings go through --overrides
    let out = replay(&[
        "--judge",
        "coalmine-seq-v2",
        "--overrides",
        r#"{"warmup": 10}"#,
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["judgments"].as_array().unwrap();
    assert_eq!(rows.len(), written);
    assert!(
        rows.iter().all(|r| r["newJudge"] == "coalmine-seq-v2"),
        "{}",
        rows[0]
    );
    // and a judge that does not read it refuses it, naming the one that does
    refused(
        &["--judge", "coalmine-v2", "--overrides", r#"{"warmup": 10}"#],
        "`warmup` has no effect on coalmine-v2 (coalmine-seq-v2 reads it): re-judge with coalmine-seq-v2",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The gates and the traffic-split guard in `coalmine judge --format table`: an error-budget
/// breach marks the class and names the burn rates; a 45/55 request split where 50/50 is
/// expected says the verdict is inconclusive, with a `traffic split:` line.
#[test]
fn the_table_shows_error_budget_and_traffic_split() {
    let jitter = |i: usize| ((i * 37) % 11) as f64 - 5.0;
    let request = serde_json::json!({
        "canaryConfig": {"name": "gates", "trafficSplit": {"metric": "requests"},
            "metrics": [
              {"name": "error ratio", "groups": ["errors"],
               "analysisConfigurations": {"canary": {"direction": "increase",
                 "errorBudget": {"objective": 0.999, "maxBurnRate": 10}}}},
              {"name": "requests", "groups": ["traffic"],
               "analysisConfigurations": {"canary": {"direction": "decrease"}}}],
            "classifier": {"groupWeights": {"errors": 100}}},
        "metricSetPairList": [
            {"name": "error ratio", "values": {
                "control": (0..30).map(|i| 0.001 + jitter(i) * 1e-5).collect::<Vec<_>>(),
                "experiment": (0..30).map(|i| 0.02 + jitter(i) * 1e-4).collect::<Vec<_>>()}},
            {"name": "requests", "values": {
                "control": (0..30).map(|i| 3300.0 + jitter(i)).collect::<Vec<_>>(),
                "experiment": (0..30).map(|i| 2700.0 - jitter(i)).collect::<Vec<_>>()}}],
        "scoreThresholds": {"pass": 95, "marginal": 75}});
    let out = coalmine(
        &["judge", "-", "--format", "table"],
        Some(&request.to_string()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    let row = table
        .lines()
        .find(|l| l.starts_with("error ratio"))
        .unwrap();
    assert!(row.contains("High (burn rate breached)"), "{table}");
    assert!(
        table.contains("reason: Inconclusive: Traffic split mismatch on requests: the canary has 45 % of its events"),
        "{table}"
    );
    assert!(
        table.contains("traffic split: Traffic split mismatch on requests"),
        "{table}"
    );
}

/// `--format html` renders a report for every judge: the verdict, every metric and a chart.
#[test]
fn every_judge_renders_an_html_report() {
    let metrics: Vec<String> = example()["canaryConfig"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    for judge in coalmine::judge::JudgeKind::ALL {
        let out = coalmine(
            &[
                "judge",
                "--judge",
                judge.name(),
                "--format",
                "html",
                "examples/checkout-canary.json",
            ],
            None,
        );
        assert!(out.status.success(), "{}: {}", judge.name(), stderr(&out));
        let page = String::from_utf8(out.stdout).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"), "{}", judge.name());
        assert!(page.contains("id=\"verdict\""), "{}", judge.name());
        for m in &metrics {
            assert!(
                page.contains(&format!("</span> {m}")),
                "{}: no section for {m}",
                judge.name()
            );
        }
        assert!(page.contains("<svg"), "{}: charts", judge.name());
        assert!(
            !page.contains("<script") && !page.contains("http://") && !page.contains("https://")
        );
    }
}
