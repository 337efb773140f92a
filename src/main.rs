//! The `rvs` command: `rvs run --config FILE` and `rvs check FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use rvs::config::Config;
use rvs::runtime::{self, RunOptions};

/// rvs: a DPDK virtual server (L4 load balancer, IPVS/LVS lineage).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start the data plane with a config file; SIGINT or SIGTERM stops it, SIGHUP re-reads
    /// the file and applies server weight changes and removals.
    Run {
        /// The TOML configuration.
        #[arg(short, long)]
        config: PathBuf,
        /// Also write the counters as JSON to this file at each status interval and at exit.
        #[arg(long)]
        stats_file: Option<PathBuf>,
    },
    /// Validate a config file and print what it would run.
    Check {
        /// The TOML configuration.
        config: PathBuf,
    },
    /// Measure rvs end to end: an in-process generator and sink on DPDK ring ports around the
    /// real workers (needs root; see docs/PERFORMANCE.md).
    Bench(rvs::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Bench(args) => rvs::bench::main(&args),
        Cmd::Check { config } => match Config::load(&config) {
            Ok(c) => {
                print!("{}", c.summary());
                for w in c.warnings() {
                    println!("warning: {w}");
                }
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rvs: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Run { config, stats_file } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("rvs: {e}");
                    return ExitCode::from(2);
                }
            };
            for w in cfg.warnings() {
                eprintln!("rvs: warning: {w}");
            }
            match runtime::run(
                &cfg,
                &RunOptions {
                    stats_file,
                    config_path: Some(config),
                },
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rvs: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
