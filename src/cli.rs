//! The command tree (clap derive: the doc comments are the help text) and exit codes.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::serve::{self, ServeOptions};

/// Fire drills for dev and QA environments: inject faults, time the response, keep scorecards.
#[derive(Debug, Parser)]
#[command(name = "firedrill", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy daemon: the Toxiproxy-compatible admin API and the proxies in each `PROXY_FILE`.
    Serve {
        /// Address of the admin API. Anything but loopback requires --token.
        #[arg(long, default_value = "127.0.0.1:8474", env = "FIREDRILL_API")]
        api: SocketAddr,
        /// Bearer token the admin API requires (required when --api is not loopback).
        #[arg(long, env = "FIREDRILL_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Seed for toxicity and jitter draws, for repeatable runs.
        #[arg(long, env = "FIREDRILL_SEED")]
        seed: Option<u64>,
        /// Toxiproxy config files (JSON arrays of {name, listen, upstream, enabled}).
        #[arg(value_name = "PROXY_FILE")]
        files: Vec<PathBuf>,
    },
    /// Recompute a run's scorecard from its journal (a `.jsonl` file) and print it as JSON.
    Replay {
        /// The journal.
        #[arg(value_name = "JOURNAL")]
        journal: PathBuf,
    },
    /// Check drill files (`.toml`) and proxy files (`.json`), or every such file in a directory.
    /// Drills are checked against the proxies of the proxy files given (or of `proxies/`).
    /// Exits 2 if anything is wrong.
    Validate {
        /// Files or directories to check.
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
    },
}

/// Why a command failed, and so which exit code it ends with.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad input or usage: exit code 2.
    #[error(transparent)]
    BadInput(anyhow::Error),
    /// The run itself failed: exit code 1.
    #[error(transparent)]
    Failed(anyhow::Error),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadInput(_) => 2,
            Self::Failed(_) => 1,
        }
    }
}

/// Runs a parsed command line to completion.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve { api, token, seed, files } => {
            let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::Failed(e.into()))?;
            runtime.block_on(serve::run(ServeOptions { api, token, seed, files }, serve::shutdown_signal()))
        }
        Command::Validate { paths } => crate::validate::run(&paths),
        Command::Replay { journal } => {
            let records = crate::run::journal::read(&journal).map_err(|e| Failure::BadInput(e.into()))?;
            let card = crate::scorecard::Scorecard::from_journal(&records)
                .map_err(|e| Failure::BadInput(anyhow::anyhow!("{}: {e}", journal.display())))?;
            let text = serde_json::to_string_pretty(&card).map_err(|e| Failure::Failed(e.into()))?;
            println!("{text}");
            Ok(())
        }
    }
}
