//! `coalmine-v2` and its long-run variance against independent references: R's
//! `sandwich::lrvar` (vectors from `tests/data/lrvar.R`: R 4.2.2, sandwich 3.0-2, Debian
//! bookworm's `r-base-core` and `r-cran-sandwich`, run as `Rscript tests/data/lrvar.R`),
//! R's `binom.test`/`p.adjust`, and labelled data where the answer is known.
// R's values as it printed them (`%.17g`): the digits beyond f64's are R's, kept verbatim.
#![allow(clippy::excessive_precision)]

use coalmine::judge::lrv::{estimate, lrvar, Kernel, LrvarOptions};

struct Case {
    name: &'static str,
    x: &'static [f64],
    bartlett_prewhite: f64,
    bartlett_plain: f64,
    qs_prewhite: f64,
    bartlett_bw: f64,
}

const CASES: &[Case] = &[
    Case {
        name: "ar08_n60",
        x: &[
            1.4111535904697452,
            0.60731182168705189,
            2.300690938801766,
            2.9839541490343082,
            2.3934907716437293,
            1.0003369467082095,
            1.1326961727272742,
            1.5059258948186915,
            -0.26710857896755735,
            0.88910217289686866,
            2.4867500991720988,
            1.3649513808281264,
            -0.17919352918263431,
            -0.70026077288391153,
            0.11362832690474456,
            0.001621839877440065,
            -0.56878307382537674,
            0.093842360783023271,
            0.45542707228928331,
            1.044721912178209,
            0.19411579356936315,
            1.0308765052601392,
            0.2774440950162913,
            -0.38787975829360494,
            -1.1253070138379813,
            -0.99370342659698196,
            -1.9659130012614217,
            -1.608309649495572,
            -1.7987610458353105,
            -1.3262309708362601,
            -3.515516300483986,
            -2.3068992824324632,
            -1.7450473161631226,
            -0.64924042947337923,
            1.4428037172948169,
            3.0017842752346664,
            5.2408012106498791,
            5.2801827933712051,
            3.0020410342978967,
            0.95012285843579214,
            0.72124262545534534,
            0.11892558759172878,
            0.83280872065083589,
            1.5059923469623935,
            1.6638002746163425,
            0.48789292787432137,
            0.24891047375461822,
            1.7825543461524282,
            1.6535488759316104,
            1.0734298460664273,
            -0.13960887057595028,
            -2.3716308849651195,
            -2.586883115304544,
            -2.6234632906295858,
            -2.0059937160163317,
            -3.5580779978364343,
            -2.0304358933652393,
            -0.90803250346026887,
            -0.52466278191049243,
            -0.86084313138105073,
        ],
        bartlett_prewhite: 0.75305615541204896,
        bartlett_plain: 0.21376725612176004,
        qs_prewhite: 0.80510877274640613,
        bartlett_bw: 2.8118516258812587,
    },
    Case {
        name: "iid_n60",
        x: &[
            -0.17958591321748421,
            0.25612659129479415,
            0.86075966860768061,
            -0.29488207641255187,
            1.0429558896781277,
            -0.37800500924028119,
            -0.014034834479930737,
            0.11763975984177194,
            1.4664185397308234,
            -0.12478046218775905,
            1.3271496294567848,
            -1.246206433946802,
            2.0286805774724366,
            1.680243287627222,
            -0.26880096848017038,
            -0.013986431747923836,
            -0.068612611405285712,
            0.27338191852128674,
            0.18213867740809489,
            0.6136875631333627,
            -0.096468987732289235,
            -0.3288394571634865,
            1.5714420778353555,
            0.36208124983264156,
            1.3494349214187757,
            0.11980760387882566,
            -0.85055135806200011,
            1.3081940417857194,
            -0.039285219839624207,
            -0.51255503731212604,
            0.62751313007125797,
            -0.67551495496334601,
            -0.35005543227732422,
            0.01065874529998897,
            -0.17106972383289065,
            1.1911322593721434,
            -0.24974630335313147,
            -1.2255286267869818,
            -0.85527886820965493,
            0.46461156669718173,
            -0.013798413155315251,
            1.0612907050227629,
            0.70877076526091409,
            -0.92554576388526233,
            -0.49813819350404498,
            1.0074284982023067,
            -0.66417830011061219,
            1.2550589965099601,
            -1.0714445968480901,
            0.64281845823214689,
            1.043927797420126,
            0.19096748795926971,
            0.62590149940936202,
            0.1487927436534669,
            -0.54485259719775447,
            0.40425279614604415,
            1.7287915244908809,
            -0.77618340376555028,
            0.12679204398984764,
            0.43420381850475143,
        ],
        bartlett_prewhite: 0.0063180224588367971,
        bartlett_plain: 0.0066801039136010227,
        qs_prewhite: 0.0062602269496651666,
        bartlett_bw: 0.74022761881541743,
    },
    Case {
        name: "ar05_n200",
        x: &[
            102.31696699657064,
            104.38753577059849,
            99.638903386380619,
            103.10371509265977,
            104.82230575286306,
            103.57667121582256,
            101.7650635897741,
            101.66232712321938,
            96.828698051587907,
            98.522371812209926,
            94.31779474270958,
            101.17999832991428,
            99.731001437702986,
            96.295572107463485,
            100.56701917007274,
            96.611977027893928,
            99.509725394936169,
            102.8934578283432,
            104.28988437570244,
            107.61247194682737,
            105.08275158375977,
            102.20769375199903,
            101.44114613670409,
            102.37793478835381,
            100.52139449141941,
            100.9761424730097,
            96.583552805545011,
            101.86907192628455,
            101.85799085296578,
            100.21910776614592,
            96.342141524612572,
            97.639361383193574,
            99.628662161283401,
            97.784087328131662,
            97.14864821195593,
            96.542978903883522,
            98.059532966496874,
            98.463322715684839,
            97.287086318895675,
            95.834570259899365,
            93.671899249079843,
            96.169023308666283,
            96.070161718158545,
            96.733495664384819,
            100.7018883478143,
            97.829628834017015,
            96.845847405474061,
            96.524051579277199,
            105.90764567061942,
            100.97604171731462,
            98.278788955595502,
            106.74440855537067,
            96.80795171374271,
            98.538117565836671,
            98.496225328766499,
            101.70461121356438,
            102.35880849894384,
            98.955401904246486,
            99.633639563229494,
            95.087323533078944,
            103.50859854327504,
            105.78392057948442,
            100.14498469463618,
            103.12220675830386,
            105.1684053690921,
            102.63958803830333,
            102.62079657021965,
            99.607438916248782,
            98.088229032081756,
            92.002624915033905,
            94.965212437974273,
            102.08438193686412,
            104.48179019670806,
            102.86376244919288,
            104.54423214554699,
            104.70689837366717,
            102.45349728897732,
            100.72024810518613,
            103.03956062832702,
            101.43161018141963,
            100.22915454415565,
            102.4844050751624,
            100.76648417167482,
            100.95447808605444,
            101.06543599835935,
            102.94129306824551,
            101.75284840182505,
            100.70359497547018,
            106.40406017382792,
            98.156936737240969,
            99.297894791054063,
            98.859854392711554,
            99.864875344241668,
            104.10049762804044,
            101.530636297066,
            106.69320274003464,
            103.61176105096916,
            102.48279936231289,
            102.63993947916917,
            100.25445721966641,
            97.629063275211308,
            100.05432862413998,
            99.96703053136234,
            97.324235771998076,
            102.20333653612806,
            100.59621220283584,
            102.70513139969921,
            105.99639990470432,
            100.95141793092694,
            96.627023673357499,
            95.830743326168545,
            101.59115548622067,
            100.85593492062128,
            101.18507480661265,
            103.25169825753926,
            101.60060937254303,
            97.376963239979531,
            97.590647635118984,
            94.494099764639572,
            98.538191232237949,
            98.102794039781841,
            96.577461953810996,
            96.582332406441324,
            96.960157526308009,
            93.221556885726372,
            100.34943582815755,
            100.92413204701695,
            96.436897536500467,
            97.804684585796949,
            95.830758872002988,
            94.378380031931442,
            94.705978917876152,
            90.99908613575063,
            93.846883809185599,
            95.830874113256726,
            104.39054858042125,
            103.98804903046276,
            103.30969236422459,
            98.304070226410929,
            100.45796991410074,
            96.229861994425335,
            95.537507393812902,
            98.412611907760407,
            100.63182207281336,
            99.822288238453353,
            98.784337660701951,
            102.17675954880112,
            100.87645212868267,
            97.085904393662616,
            99.592661289920073,
            99.191078945629883,
            94.771731279169529,
            96.067204967551518,
            92.104918688259914,
            98.984916795487038,
            99.894113798765943,
            99.499828037225242,
            97.150487667274106,
            96.983730983234622,
            98.919960841673046,
            100.09762244715689,
            94.564899263357134,
            95.645291058968411,
            102.39683679961102,
            104.77980740981066,
            106.24142437196436,
            100.0309511688519,
            100.70573209054544,
            100.364650896068,
            95.526344590560313,
            95.259139638453306,
            95.742061483992259,
            104.61072071959525,
            107.97114398797061,
            104.74532922577846,
            100.32441804048489,
            104.0306348337979,
            101.98298370966766,
            99.309214486463247,
            101.16692122831422,
            102.94849975183547,
            101.50922594814394,
            98.339257165087417,
            99.347642374018832,
            99.710490040012161,
            106.03780090717963,
            102.44074333053749,
            100.86697511999822,
            102.98063979260051,
            102.07018583281548,
            102.07291374684709,
            102.68604258272819,
            107.46362971586942,
            98.065591300597305,
            97.670123876587894,
            102.69780225948688,
            101.19084807101822,
            97.30662361586684,
            97.102265740362384,
            100.34048802397302,
        ],
        bartlett_prewhite: 0.16255372557908365,
        bartlett_plain: 0.13777762479873559,
        qs_prewhite: 0.16257369213254846,
        bartlett_bw: 0.069477583333746123,
    },
    Case {
        name: "neg_n25",
        x: &[
            2.8606939675418528,
            -2.4860479027932905,
            1.5708406175971514,
            -1.9564934577373747,
            1.9545089145904451,
            -0.361407179903178,
            -0.67081401747937486,
            -1.4930707759598585,
            -0.19990849870283622,
            -0.54867717366895952,
            -1.30156396059619,
            -1.0272411639331116,
            -0.45995677364182985,
            1.1324852667989311,
            -0.51360563181299301,
            0.44403610753593037,
            1.1233459859410171,
            -1.4722746137251268,
            2.7492483284753684,
            -2.0252763411588579,
            0.79707083229508702,
            -0.85170435065067074,
            -0.42411152085348558,
            -0.71320715320666328,
            -1.1175165176744128,
        ],
        bartlett_prewhite: 0.01868118176381673,
        bartlett_plain: 0.038978059688482718,
        qs_prewhite: 0.02141712275012117,
        bartlett_bw: 1.9707607168819798,
    },
];

fn close(got: f64, want: f64, what: &str) {
    let rel = ((got - want) / want).abs();
    assert!(
        rel < 1e-9,
        "{what}: got {got}, R says {want} (relative error {rel:e})"
    );
}

#[test]
fn long_run_variance_matches_r_sandwich_lrvar() {
    for c in CASES {
        let bartlett = |prewhite| LrvarOptions {
            kernel: Kernel::Bartlett,
            prewhite,
            adjust: true,
        };
        close(
            lrvar(c.x, bartlett(true)),
            c.bartlett_prewhite,
            &format!("{} Bartlett", c.name),
        );
        close(
            lrvar(c.x, bartlett(false)),
            c.bartlett_plain,
            &format!("{} Bartlett, no prewhitening", c.name),
        );
        let qs = LrvarOptions {
            kernel: Kernel::QuadraticSpectral,
            prewhite: true,
            adjust: true,
        };
        close(
            lrvar(c.x, qs),
            c.qs_prewhite,
            &format!("{} Quadratic Spectral", c.name),
        );
        close(
            estimate(c.x, bartlett(true), false).bandwidth,
            c.bartlett_bw,
            &format!("{} bandwidth", c.name),
        );
    }
}

use coalmine::judge::{judge_value, CanaryJudgeResult};
use coalmine::synthetic::Synth;
use serde_json::{json, Value};

/// A remote-judge request of one metric per `(name, analysis, control, experiment)`.
fn request(metrics: &[(&str, Value, Vec<f64>, Vec<f64>)], judge_config: Value) -> Value {
    json!({
        "canaryConfig": {
            "name": "v2",
            "judge": {"name": "coalmine-v2", "judgeConfigurations": judge_config},
            "metrics": metrics.iter().map(|(name, analysis, _, _)| json!({
                "name": name, "query": {"type": "sql", "sql": "SELECT 1"},
                "groups": ["g"], "analysisConfigurations": analysis,
            })).collect::<Vec<_>>(),
            "classifier": {"groupWeights": {"g": 100}},
        },
        "metricSetPairList": metrics.iter().map(|(name, _, c, e)| json!({
            "name": name, "id": name, "tags": {},
            "values": {"control": c, "experiment": e},
        })).collect::<Vec<_>>(),
        "scoreThresholds": {"pass": 95, "marginal": 75},
    })
}

fn judge(req: &Value, judge: &str) -> CanaryJudgeResult {
    judge_value(req, Some(judge)).unwrap()
}

fn increase() -> Value {
    json!({"canary": {"direction": "increase"}})
}

/// AR(1) with coefficient `phi` and marginal sd `sd` around `mean`, on the log scale.
fn ar1_lognormal(rng: &mut Synth, n: usize, phi: f64, sd: f64, median: f64) -> Vec<f64> {
    let innov = sd * (1.0 - phi * phi).sqrt();
    let mut z = rng.normal(0.0, sd);
    (0..n)
        .map(|_| {
            let v = median * z.exp();
            z = phi * z + rng.normal(0.0, innov);
            v
        })
        .collect()
}

#[test]
fn count_metrics_use_the_exact_binomial_test() {
    // constant per-interval counts: no overdispersion, so the test is R's
    // binom.test(30, 40, 0.5, alternative = "greater"): p = 0.0011107168866146837
    let req = request(
        &[(
            "errors",
            json!({"canary": {"direction": "increase", "metricType": "count"}}),
            vec![1.0; 10],
            vec![3.0; 10],
        )],
        json!({}),
    );
    let r = judge(&req, "coalmine-v2");
    let m = &r.results[0];
    assert_eq!(m.classification, "High", "{m:?}");
    let rep = m
        .result_metadata
        .as_ref()
        .unwrap()
        .test
        .as_ref()
        .unwrap()
        .v2()
        .unwrap();
    let t = &rep.tests[0];
    assert_eq!(t.method, "conditional-binomial");
    assert!(
        (t.p_value - 0.0011107168866146837).abs() < 1e-12,
        "{}",
        t.p_value
    );
    // the rate ratio (30/10)/(10/10) = 3, interval from binom.test(30, 40)$conf.int
    // (0.58803801984857007, 0.87308520106715504) as odds
    assert!((t.estimate - 3.0).abs() < 1e-12);
    let odds = |p: f64| p / (1.0 - p);
    let (lower, upper) = (t.lower.unwrap(), t.upper.unwrap());
    assert!((lower - odds(0.58803801984857007)).abs() < 1e-7, "{lower}");
    assert!((upper - odds(0.87308520106715504)).abs() < 1e-7, "{upper}");
}

#[test]
fn too_few_events_are_inconclusive_not_pass() {
    // 1 error in the baseline and 2 in the canary: even all 3 in the canary gives
    // p = 0.5³ = 0.125 > 0.05, so no test could tell
    let mut c = vec![0.0; 30];
    let mut e = vec![0.0; 30];
    c[4] = 1.0;
    e[7] = 1.0;
    e[20] = 1.0;
    let req = request(&[("errors", increase(), c, e)], json!({}));
    let r = judge(&req, "coalmine-v2");
    let m = &r.results[0];
    assert_eq!(m.classification, "Nodata");
    assert!(m.inconclusive);
    assert!(
        m.not_judged.as_deref().unwrap().contains("too few events"),
        "{m:?}"
    );
}

#[test]
fn one_value_a_side_is_inconclusive() {
    let req = request(
        &[("latency", increase(), vec![100.5], vec![180.5])],
        json!({}),
    );
    let m = &judge(&req, "coalmine-v2").results[0];
    assert_eq!(m.classification, "Nodata");
    assert!(m.inconclusive, "{m:?}");
}

#[test]
fn autocorrelated_healthy_canaries_are_not_flagged() {
    // 600 A/A latency metrics at AR(1) φ = 0.8, 60 values a side: coalmine-v1's i.i.d. test
    // flags about one in ten; v2's long-run variance keeps it at its level (one metric:
    // α = 0.05), within sampling noise (99 % bound of Binomial(600, 0.05): 42)
    let mut rng = Synth::new(7);
    let (mut v1, mut v2) = (0, 0);
    for _ in 0..600 {
        let c = ar1_lognormal(&mut rng, 60, 0.8, 0.08, 120.0);
        let e = ar1_lognormal(&mut rng, 60, 0.8, 0.08, 120.0);
        let req = request(&[("latency", increase(), c, e)], json!({}));
        v1 += (judge(&req, "coalmine-v1").results[0].classification == "High") as usize;
        v2 += (judge(&req, "coalmine-v2").results[0].classification == "High") as usize;
    }
    assert!(v1 >= 60, "coalmine-v1 flagged {v1} of 600");
    assert!(v2 <= 42, "coalmine-v2 flagged {v2} of 600");
}

#[test]
fn a_latency_regression_is_caught_through_autocorrelation() {
    let mut rng = Synth::new(11);
    let mut caught = 0;
    for _ in 0..40 {
        let c = ar1_lognormal(&mut rng, 60, 0.5, 0.08, 120.0);
        let e = ar1_lognormal(&mut rng, 60, 0.5, 0.08, 144.0);
        let req = request(&[("latency", increase(), c, e)], json!({}));
        caught += (judge(&req, "coalmine-v2").results[0].classification == "High") as usize;
    }
    assert!(caught >= 38, "+20 % caught in {caught} of 40");
}

#[test]
fn a_shared_load_pattern_cancels_when_the_arms_are_paired() {
    // both arms follow the same ±30 % load over the hour; the canary is 10 % slower
    let mut rng = Synth::new(3);
    let (mut paired, mut unpaired) = (0, 0);
    for _ in 0..30 {
        let load: Vec<f64> = (0..60)
            .map(|i| 1.0 + 0.3 * (i as f64 / 60.0 * std::f64::consts::TAU).sin())
            .collect();
        let c: Vec<f64> = load
            .iter()
            .map(|l| 120.0 * l * rng.normal(0.0, 0.08).exp())
            .collect();
        let e: Vec<f64> = load
            .iter()
            .map(|l| 132.0 * l * rng.normal(0.0, 0.08).exp())
            .collect();
        let mut req = request(&[("latency", increase(), c, e)], json!({}));
        let scope = json!({"startTimeMillis": 1_000_000, "stepMillis": 60_000});
        req["metricSetPairList"][0]["scopes"] = json!({"control": scope, "experiment": scope});
        let m = &judge(&req, "coalmine-v2").results[0];
        let rep = m
            .result_metadata
            .as_ref()
            .unwrap()
            .test
            .as_ref()
            .unwrap()
            .v2()
            .unwrap();
        assert_eq!(rep.pairing, "paired");
        assert_eq!(rep.tests[0].method, "paired-log-ratio-hac");
        paired += (m.classification == "High") as usize;
        req["canaryConfig"]["judge"]["judgeConfigurations"]["pairing"] = json!("off");
        unpaired += (judge(&req, "coalmine-v2").results[0].classification == "High") as usize;
    }
    assert!(paired >= 28, "paired caught {paired} of 30");
    assert!(
        unpaired < paired,
        "unpaired caught {unpaired}, paired {paired}"
    );
}

#[test]
fn a_wider_tail_with_the_same_median_is_caught_by_the_spread_test() {
    let mut rng = Synth::new(5);
    let mut caught = 0;
    for _ in 0..40 {
        let c = ar1_lognormal(&mut rng, 60, 0.0, 0.08, 120.0);
        let e = ar1_lognormal(&mut rng, 60, 0.0, 0.16, 120.0);
        let req = request(&[("latency", increase(), c, e)], json!({}));
        let m = &judge(&req, "coalmine-v2").results[0];
        caught += (m.classification == "High") as usize;
    }
    // coalmine-v1 (a location test) catches almost none of these
    assert!(caught >= 30, "variance ×4 caught in {caught} of 40");
}

#[test]
fn settings_errors_name_the_path() {
    let req = request(
        &[("latency", increase(), vec![1.0; 5], vec![2.0; 5])],
        json!({"multiplicity": "fdr"}),
    );
    let e = judge_value(&req, Some("coalmine-v2"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("judgeConfigurations.multiplicity") && e.contains("fdr"),
        "{e}"
    );
    let mut req = request(
        &[("latency", increase(), vec![1.0; 5], vec![2.0; 5])],
        json!({}),
    );
    req["canaryConfig"]["metrics"][0]["analysisConfigurations"]["canary"]["effectSize"] =
        json!({"measure": "quantile:1.5"});
    let e = judge_value(&req, Some("coalmine-v2"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("effectSize.measure"), "{e}");
}
