//! The `coalmine` command line.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use coalmine::error::Error;
use coalmine::judge::json::parse_text;
use coalmine::judge::{judge_request, JudgeKind, JudgeRequest};

#[derive(Parser)]
#[command(
    name = "coalmine",
    version,
    about = "Automated canary analysis: is the canary worse than its baseline?"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// parsed once per process: the size of its largest variant does not matter
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Judge a Kayenta remote-judge request and print the CanaryJudgeResult.
    ///
    /// The request is `{"canaryConfig": …, "metricSetPairList": […], "scoreThresholds":
    /// {"pass": …, "marginal": …}}` as Kayenta's RemoteJudge sends it (NaN as "NaN").
    /// Exit status: 0 when judged (whatever the verdict, unless --fail-on says otherwise),
    /// 2 for invalid input (the message names the JSON path), 1 for other errors.
    Judge {
        /// Request file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// Judge to use, overriding the config's `judge.name`
        /// (coalmine-v2 [default], coalmine-v1, NetflixACAJudge-v1.0, coalmine-seq-v2, coalmine-seq-v1).
        #[arg(long)]
        judge: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Exit with status 3 when the verdict is this bad or worse.
        #[arg(long, value_enum)]
        fail_on: Option<FailOn>,
    },
    /// List the judges this build knows.
    Judges,
    /// The whole pipeline on an embedded default: an in-process broker, synthetic traffic
    /// from 3 baseline and 3 canary instances, the daemon, a bundled SQL canary config and
    /// one canary run printed tick by tick. Exits 0 if the canary passes, 1 if not.
    Demo {
        /// Use this Kafka broker instead of the in-process mock cluster.
        #[arg(long, value_name = "HOST:PORT")]
        kafka: Option<String>,
        /// What the canary does wrong: latency=+15%, errors=x3, cpu=+20% or none.
        #[arg(long, default_value = "latency=+15%")]
        regression: String,
        /// How long the run lasts.
        #[arg(long, default_value = "40s")]
        lifetime: String,
        /// Time between judgments.
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Sliding window each judgment looks at.
        #[arg(long, default_value = "20s")]
        window: String,
        /// Wait before the first window starts.
        #[arg(long, default_value = "5s")]
        warmup: String,
        /// Latency samples per instance per second.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Judge (coalmine-v1, NetflixACAJudge-v1.0, ...).
        #[arg(long)]
        judge: Option<String>,
        /// Keep the data here instead of a temporary directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Seed of the traffic generator.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Write the run's HTML report here when it ends (`none`: do not).
        #[arg(long, default_value = "coalmine-demo-report.html")]
        report: String,
        /// After the verdict, keep the API up (until Ctrl-C) so the run's `reportUrl` and
        /// `/runs/{id}` can be opened.
        #[arg(long)]
        keep_serving: bool,
        /// Instead of the live demo, write a synthetic archive of --runs runs with known
        /// labels (regressions injected in a recorded subset) into this directory.
        #[arg(long, value_name = "DIR")]
        archive: Option<PathBuf>,
        /// Runs in the synthetic archive.
        #[arg(long, default_value_t = 200, requires = "archive")]
        runs: usize,
        /// Judgments per run in the synthetic archive.
        #[arg(long, default_value_t = 5, requires = "archive")]
        judgments: usize,
        /// Metrics per judgment in the synthetic archive (6 golden signals, then generic ones).
        #[arg(long, default_value_t = 6, requires = "archive")]
        metrics: usize,
    },
    /// Re-judge archived judgments with another judge or settings and show which verdicts
    /// change.
    Replay {
        /// The archive (<data-dir>/archive by default in the daemon).
        #[arg(long)]
        archive: PathBuf,
        /// Judge to use (default: the one each judgment was made with).
        #[arg(long)]
        judge: Option<String>,
        /// Settings to change, as JSON or @file: {"confidence": 0.95, "effectSize":
        /// {"allowedIncrease": 1.1}, "metrics": {"latency p99": {...}}, ...}.
        #[arg(long)]
        overrides: Option<String>,
        /// Output: a table of the judgments whose verdict changes, all of it as JSON, or an
        /// HTML page (old against new scores, the judgments and metric results that change).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Write the HTML report of an archived run: verdict, score over time, and every metric's
    /// series, distributions, test and query (one file, opens offline).
    Report {
        /// The run id.
        run: String,
        /// The archive (<data-dir>/archive by default in the daemon).
        #[arg(long)]
        archive: PathBuf,
        /// The file to write (`-` for standard output).
        #[arg(long, short, default_value = "-")]
        output: String,
    },
    /// Move runs between archives as single files.
    Archive {
        #[command(subcommand)]
        command: ArchiveCommand,
    },
    /// Inspect a data directory (read-only; safe beside a running daemon).
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Run the daemon: consume metric points from Kafka into the embedded store.
    ///
    /// Stops gracefully on SIGINT/SIGTERM (stop polling, flush, commit durable offsets,
    /// exit 0); a second signal exits at once.
    #[command(after_long_help = coalmine::config::settings_help())]
    Serve {
        /// Settings file (defaults are used for everything it does not set).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Check the configuration, print it and exit.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Subcommand)]
enum ArchiveCommand {
    /// Write one run (every judgment's pairs, config and result) to one Arrow IPC file.
    Export {
        #[arg(long)]
        archive: PathBuf,
        /// The run id.
        run: String,
        /// The file to write.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Add a run exported with `archive export` to an archive.
    Import {
        /// The exported file.
        file: PathBuf,
        #[arg(long)]
        archive: PathBuf,
        /// Replace the run if the archive already has it.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Points, series, segments, bytes, the sum of all values and the durable Kafka offsets.
    Stats {
        /// The daemon's store.data-dir.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// CanaryJudgeResult JSON (Kayenta's shape).
    Json,
    /// Single-line JSON.
    CompactJson,
    /// A per-metric table and the verdict, for people.
    Table,
    /// A self-contained HTML report (inline charts, no scripts, opens offline).
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
enum FailOn {
    Marginal,
    Fail,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve { config, check } = &cli.command {
        return serve(config.as_deref(), *check);
    }
    if let Command::Demo { archive: None, .. } = &cli.command {
        return demo(cli.command);
    }
    // Tools that print: end quietly when the reader goes away (`coalmine … | head`).
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("coalmine: error: {e}");
            ExitCode::from(e.kind().exit_code() as u8)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Judge {
            file,
            judge,
            format,
            fail_on,
        } => {
            let (text, origin) = read_input(&file)?;
            let value = parse_text(&text, &origin).map_err(|e| Error::InvalidInput(e.message))?;
            let request =
                JudgeRequest::from_value(&value).map_err(coalmine::judge::JudgeError::from)?;
            let result = judge_request(&request, judge.as_deref())?;
            let out = match format {
                Format::Json => serde_json::to_string_pretty(&result).expect("results serialise"),
                Format::CompactJson => serde_json::to_string(&result).expect("results serialise"),
                Format::Table => {
                    coalmine::report::judge_table(&result, Some(request.score_thresholds))
                }
                Format::Html => {
                    coalmine::report::judgment_html(&request, &result, coalmine::report::Form::Page)
                }
            };
            println!("{}", out.trim_end());
            let failed = matches!(
                (fail_on, result.score.classification.as_str()),
                (Some(FailOn::Fail), "Fail") | (Some(FailOn::Marginal), "Fail" | "Marginal")
            );
            Ok(if failed {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Serve { .. } | Command::Demo { archive: None, .. } => {
            unreachable!("handled in main")
        }
        Command::Demo {
            archive: Some(dir),
            runs,
            judgments,
            metrics,
            seed,
            judge,
            ..
        } => {
            let opts = coalmine::archive::fixture::FixtureOptions {
                runs,
                judgments,
                metrics,
                seed,
                judge: judge
                    .unwrap_or_else(|| coalmine::judge::JudgeKind::NetflixAcaV1.name().into()),
            };
            let n = coalmine::archive::fixture::generate(&dir, &opts)?;
            println!("wrote {n} judgments of {runs} runs to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            archive,
            judge,
            overrides,
            format,
        } => replay(&archive, judge.as_deref(), overrides.as_deref(), format),
        Command::Report {
            run,
            archive,
            output,
        } => {
            let a = coalmine::archive::Archive::open(&archive)?;
            let page = coalmine::report::archived_run_html(&a, &run, coalmine::report::Form::Page)?;
            if output == "-" {
                print!("{page}");
            } else {
                std::fs::write(&output, &page)
                    .map_err(|e| Error::io(format!("cannot write '{output}'"), e))?;
                eprintln!(
                    "wrote the report of run {run} to {output} ({} KiB)",
                    page.len() / 1024
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Archive {
            command:
                ArchiveCommand::Export {
                    archive,
                    run,
                    output,
                },
        } => {
            let a = coalmine::archive::Archive::open(&archive)?;
            let n = a.export_run(&run, &output)?;
            println!("exported run {run} ({n} judgments) to {}", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Archive {
            command:
                ArchiveCommand::Import {
                    file,
                    archive,
                    force,
                },
        } => {
            let id = coalmine::archive::import_run(&file, &archive, force)?;
            println!("imported run {id} into {}", archive.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Store {
            command: StoreCommand::Stats { data_dir },
        } => {
            let store = coalmine::store::Store::open_read_only(&data_dir)?;
            let (points, sum) = store.count_and_sum()?;
            let st = store.stats();
            let out = serde_json::json!({
                "points": points,
                "sum": sum,
                "series": st.series,
                "segments": st.segments,
                "disk_bytes": st.disk_bytes,
                "durable_offsets": store.durable_offsets(),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&out).expect("stats serialise")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Judges => {
            for j in JudgeKind::ALL {
                let default = if j == JudgeKind::DEFAULT {
                    " (default)"
                } else {
                    ""
                };
                println!("{}{}", j.name(), default);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_input(file: &str) -> Result<(String, String), Error> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::io("cannot read standard input", e))?;
        Ok((text, "standard input".into()))
    } else {
        let path = PathBuf::from(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("cannot read '{file}'"), e))?;
        Ok((text, format!("'{file}'")))
    }
}

fn serve(path: Option<&std::path::Path>, check: bool) -> ExitCode {
    let cfg = match coalmine::config::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("coalmine: {e}");
            return ExitCode::from(2);
        }
    };
    if check {
        println!("configuration OK ({})\n{cfg:#?}", cfg.source);
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coalmine: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(coalmine::daemon::run(cfg, shutdown_signal()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "coalmine stopped with an error");
            eprintln!("coalmine: error: {e}");
            ExitCode::from(e.kind().exit_code() as u8)
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits the process at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("Signal received: shutting down (send it again to exit at once)");
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("coalmine: second signal, exiting now");
        std::process::exit(130);
    });
}

fn demo(cmd: Command) -> ExitCode {
    let Command::Demo {
        kafka,
        regression,
        lifetime,
        interval,
        window,
        warmup,
        rate,
        judge,
        data_dir,
        seed,
        report,
        keep_serving,
        ..
    } = cmd
    else {
        unreachable!()
    };
    let parse = |name: &str, v: &str| {
        coalmine::config::parse_duration(v).map_err(|e| format!("--{name}: {e}"))
    };
    let opts = (|| -> Result<coalmine::demo::DemoOptions, String> {
        Ok(coalmine::demo::DemoOptions {
            kafka,
            regression: coalmine::demo::Regression::parse(&regression)
                .map_err(|e| format!("--regression: {e}"))?,
            lifetime: parse("lifetime", &lifetime)?,
            interval: parse("interval", &interval)?,
            window: parse("window", &window)?,
            warmup: parse("warmup", &warmup)?,
            rate,
            judge,
            data_dir,
            seed,
            report: (report != "none").then(|| PathBuf::from(report)),
            keep_serving,
        })
    })();
    let opts = match opts {
        Ok(o) => o,
        Err(e) => {
            eprintln!("coalmine demo: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(coalmine::demo::run(opts)) {
        Ok(run) => ExitCode::from(coalmine::demo::exit_code(&run)),
        Err(e) => {
            eprintln!("coalmine demo: error: {e}");
            ExitCode::from(e.kind().exit_code() as u8)
        }
    }
}

fn replay(
    archive: &std::path::Path,
    judge: Option<&str>,
    overrides: Option<&str>,
    format: Format,
) -> Result<ExitCode, Error> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, UInt64Type};
    let overrides: serde_json::Value = match overrides {
        None => serde_json::Value::Null,
        Some(o) => {
            let text = match o.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| Error::io(format!("cannot read '{path}'"), e))?,
                None => o.to_string(),
            };
            parse_text(&text, "--overrides").map_err(|e| Error::InvalidInput(e.message))?
        }
    };
    let a = coalmine::archive::Archive::open(archive)?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = std::time::Instant::now();
    let c = coalmine::archive::rejudge::rejudge(&a, judge, &overrides, threads, &stop, &done)?;
    let took = started.elapsed();
    let j = &c.judgments;
    let col = |n: &str| j.column_by_name(n).expect("comparison column");
    let utf8 = |n: &str| col(n).as_string::<i32>().clone();
    let f64s = |n: &str| col(n).as_primitive::<Float64Type>().clone();
    let (run, old_c, new_c) = (
        utf8("run_id"),
        utf8("old_classification"),
        utf8("new_classification"),
    );
    let (old_j, new_j) = (utf8("old_judge"), utf8("new_judge"));
    let idx = col("judgment").as_primitive::<UInt64Type>().clone();
    let (old_s, new_s) = (f64s("old_score"), f64s("new_score"));
    let changed = col("changed").as_boolean().clone();
    let n_changed = (0..changed.len()).filter(|&i| changed.value(i)).count();
    match format {
        Format::Table => {
            println!(
                "re-judged {} judgments of {} runs in {:.2?} ({:.0}/s); {} verdicts change",
                j.num_rows(),
                a.runs.len(),
                took,
                j.num_rows() as f64 / took.as_secs_f64(),
                n_changed
            );
            if n_changed > 0 {
                println!(
                    "\n{:<24} {:>3}  {:>8} {:<9} → {:>8} {:<9}",
                    "run", "#", "old", "", "new", ""
                );
                for i in (0..changed.len()).filter(|&i| changed.value(i)) {
                    let old_score = if old_s.is_null(i) {
                        f64::NAN
                    } else {
                        old_s.value(i)
                    };
                    println!(
                        "{:<24} {:>3}  {:>8.2} {:<9} → {:>8.2} {:<9}",
                        run.value(i),
                        idx.value(i),
                        old_score,
                        old_c.value(i),
                        new_s.value(i),
                        new_c.value(i)
                    );
                }
            }
        }
        Format::Json | Format::CompactJson => {
            let rows: Vec<serde_json::Value> = (0..j.num_rows())
                .map(|i| serde_json::json!({"runId": run.value(i), "judgment": idx.value(i),
                    "oldJudge": (!old_j.is_null(i)).then(|| old_j.value(i)), "newJudge": new_j.value(i),
                    "oldScore": if old_s.is_null(i) { None } else { Some(old_s.value(i)) },
                    "newScore": new_s.value(i), "oldClassification": old_c.value(i), "newClassification": new_c.value(i), "changed": changed.value(i)}))
                .collect();
            let doc = serde_json::json!({"judgments": rows, "changed": n_changed, "seconds": took.as_secs_f64()});
            let out = if matches!(format, Format::Json) {
                serde_json::to_string_pretty(&doc)
            } else {
                serde_json::to_string(&doc)
            };
            println!("{}", out.expect("json"));
        }
        Format::Html => {
            let thresholds = a.judgments.first().map_or(
                coalmine::judge::Thresholds {
                    pass: 95.0,
                    marginal: 75.0,
                },
                |j| j.thresholds(),
            );
            print!(
                "{}",
                coalmine::report::html::comparison(
                    &c.judgments,
                    &c.metrics,
                    took.as_secs_f64(),
                    thresholds,
                    coalmine::report::Form::Page,
                )
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
