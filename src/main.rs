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
