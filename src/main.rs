//! The `firedrill` binary: parse the command line, run the library, map failures to exit codes.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = firedrill::cli::Cli::try_parse();
    // Short commands die quietly on a closed stdout; the daemon must not (a write into a closed
    // socket raises SIGPIPE), so it keeps Rust's default of ignoring it.
    if cli.as_ref().is_ok_and(|c| !c.serves()) {
        firedrill::signal::default_sigpipe();
    }
    if let Ok(cli) = &cli
        && cli.is_shop()
    {
        // The example shop's services log JSON lines on stdout, as real services would.
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(EnvFilter::try_from_env("SHOP_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
            .init();
    } else {
        // Colour only for a person at a terminal: logs and pipes get plain text.
        let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
        tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::try_from_env("FIREDRILL_LOG").unwrap_or_else(|_| EnvFilter::new("warn")))
            .with_writer(std::io::stderr)
            .with_ansi(colour)
            .init();
    }
    let cli = match cli {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    match firedrill::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("firedrill: {failure:#}");
            ExitCode::from(failure.exit_code())
        }
    }
}
