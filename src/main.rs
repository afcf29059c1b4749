//! The `coalmine` command line.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use coalmine::error::Error;
use coalmine::judge::json::parse_text;
use coalmine::judge::{judge_request, JudgeKind, JudgeRequest};

#[derive(Parser)]
#[command(name = "coalmine", version, about = "Automated canary analysis: is the canary worse than its baseline?")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
        /// (coalmine-v1 [default], NetflixACAJudge-v1.0).
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
    if let Command::Demo { .. } = &cli.command {
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
        Command::Judge { file, judge, format, fail_on } => {
            let (text, origin) = read_input(&file)?;
            let value = parse_text(&text, &origin).map_err(|e| Error::InvalidInput(e.message))?;
            let request = JudgeRequest::from_value(&value).map_err(coalmine::judge::JudgeError::from)?;
            let result = judge_request(&request, judge.as_deref())?;
            let out = match format {
                Format::Json => serde_json::to_string_pretty(&result).expect("results serialise"),
                Format::CompactJson => serde_json::to_string(&result).expect("results serialise"),
                Format::Table => coalmine::report::judge_table(&result, Some(request.score_thresholds)),
            };
            println!("{}", out.trim_end());
            let failed = match (fail_on, result.score.classification.as_str()) {
                (Some(FailOn::Fail), "Fail") => true,
                (Some(FailOn::Marginal), "Fail" | "Marginal") => true,
                _ => false,
            };
            Ok(if failed { ExitCode::from(3) } else { ExitCode::SUCCESS })
        }
        Command::Serve { .. } | Command::Demo { .. } => unreachable!("handled in main"),
        Command::Store { command: StoreCommand::Stats { data_dir } } => {
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
            println!("{}", serde_json::to_string_pretty(&out).expect("stats serialise"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Judges => {
            for j in JudgeKind::ALL {
                let default = if j == JudgeKind::DEFAULT { " (default)" } else { "" };
                println!("{}{}", j.name(), default);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_input(file: &str) -> Result<(String, String), Error> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| Error::io("cannot read standard input", e))?;
        Ok((text, "standard input".into()))
    } else {
        let path = PathBuf::from(file);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(format!("cannot read '{file}'"), e))?;
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
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
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
    let Command::Demo { kafka, regression, lifetime, interval, window, warmup, rate, judge, data_dir, seed } = cmd else {
        unreachable!()
    };
    let parse = |name: &str, v: &str| coalmine::config::parse_duration(v).map_err(|e| format!("--{name}: {e}"));
    let opts = (|| -> Result<coalmine::demo::DemoOptions, String> {
        Ok(coalmine::demo::DemoOptions {
            kafka,
            regression: coalmine::demo::Regression::parse(&regression).map_err(|e| format!("--regression: {e}"))?,
            lifetime: parse("lifetime", &lifetime)?,
            interval: parse("interval", &interval)?,
            window: parse("window", &window)?,
            warmup: parse("warmup", &warmup)?,
            rate,
            judge,
            data_dir,
            seed,
        })
    })();
    let opts = match opts {
        Ok(o) => o,
        Err(e) => {
            eprintln!("coalmine demo: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr).init();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    match runtime.block_on(coalmine::demo::run(opts)) {
        Ok(run) => ExitCode::from(coalmine::demo::exit_code(&run)),
        Err(e) => {
            eprintln!("coalmine demo: error: {e}");
            ExitCode::from(e.kind().exit_code() as u8)
        }
    }
}
