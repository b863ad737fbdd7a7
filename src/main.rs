//! postflytt's command line: parses arguments, hands the chosen verb to its function in `cli`, prints the
//! error chain once and sets the exit code. Every verb works on one data directory (`--data`, default
//! /var/lib/postflytt) that holds the staging database and the key file.

mod appliance;
mod check;
mod cli;
mod export;
mod failure;
mod fault;
mod folders;
mod front_door;
mod http;
mod identity;
mod imap;
mod import;
mod logger;
mod memory;
mod mx;
mod notify;
mod oauth;
mod pipe;
mod pull;
mod push;
mod quirks;
mod report;
mod secret;
mod store;
mod sync;
mod template;
mod units;
mod utf7;
mod verify;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use argh::FromArgs;

/// postflytt moves a company's mail from its old IMAP server to a new one, through a local staging
/// database, exactly once.
#[derive(FromArgs)]
struct Args {
    /// data directory holding the staging database and key file (default /var/lib/postflytt, or
    /// $POSTFLYTT_DATA)
    #[argh(option)]
    data: Option<PathBuf>,
    #[argh(subcommand)]
    command: Verb,
}

#[derive(FromArgs)]
#[argh(subcommand)]
// Parsed once per run; boxing a variant would need argh to parse boxes, which it does not.
#[allow(clippy::large_enum_variant)]
enum Verb {
    Setup(cli::SetupArgs),
    Import(cli::ImportArgs),
    Folders(cli::FoldersArgs),
    Sync(cli::SyncArgs),
    Status(cli::StatusArgs),
    Check(cli::CheckArgs),
    Serve(cli::ServeArgs),
    Finish(cli::FinishArgs),
    Template(cli::TemplateArgs),
    Mx(cli::MxArgs),
    Verify(cli::VerifyArgs),
    Report(cli::ReportArgs),
}

fn main() -> ExitCode {
    memory::share_malloc_arenas();
    memory::limit_sqlite();
    logger::init();
    let args: Args = argh::from_env();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("<3>postflytt: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn data_dir(args: &Args) -> PathBuf {
    args.data
        .clone()
        .or_else(|| std::env::var_os("POSTFLYTT_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/lib/postflytt"))
}

/// Hands the verb to its function in `cli`.
fn run(args: Args) -> Result<ExitCode> {
    let dir = data_dir(&args);
    match &args.command {
        Verb::Setup(a) => cli::setup(&dir, a),
        Verb::Import(a) => cli::import(&dir, a),
        Verb::Folders(a) => cli::folders(&dir, a),
        Verb::Sync(a) => cli::sync(&dir, a),
        Verb::Status(a) => cli::status(&dir, a),
        Verb::Check(a) => cli::check(&dir, a),
        Verb::Serve(a) => cli::serve(&dir, a),
        Verb::Finish(a) => cli::finish(&dir, a),
        Verb::Template(a) => cli::template(a),
        Verb::Mx(a) => cli::mx(a),
        Verb::Verify(a) => cli::verify(&dir, a),
        Verb::Report(a) => cli::report(&dir, a),
    }
}
