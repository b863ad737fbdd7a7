//! postflytt's command line: parses arguments, hands the chosen verb to its function in `cli`, prints the
//! error chain once and sets the exit code. Every verb works on one data directory (`--data`, default
//! /var/lib/postflytt) that holds the staging database and the key file.

mod accounts_admin;
mod admin_login;
mod appliance;
mod check;
mod cli;
mod dav;
mod export;
mod failure;
mod fault;
mod filters;
mod folder_choice;
mod folder_setup;
mod folder_view;
mod folders;
mod front_door;
mod http;
mod identity;
mod imap;
mod import;
mod lanes;
mod logger;
mod memory;
mod mirror;
mod mx;
mod notify;
mod oauth;
mod pipe;
mod progress;
mod pull;
mod push;
mod quirks;
mod repair;
mod report;
mod row_status;
mod secret;
mod setup;
mod signal;
mod store;
mod stream_append;
mod swedish;
mod switching;
mod sync;
mod template;
mod terminal;
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
#[argh(
    error_code(0, "done"),
    error_code(1, "the verb could not do its work (a wrong argument, no data directory, a server not reachable)"),
    error_code(2, "done, but something needs a person: an account failed (sync, verify, status), not ready (check), not finished")
)]
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
    Remove(cli::RemoveArgs),
    Pause(cli::PauseArgs),
    Resume(cli::ResumeArgs),
    Password(cli::PasswordArgs),
    Switched(cli::SwitchedArgs),
}

fn main() -> ExitCode {
    memory::share_malloc_arenas();
    memory::limit_sqlite();
    logger::init();
    let args: Args = argh::from_env();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            let line = logger::line(log::Level::Error, &format!("postflytt: {e:#}"));
            terminal::print_above(|| eprintln!("{line}"));
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
    // A finished migration is read-only: the verbs that would change it refuse with one sentence (verify
    // too: without the purged passwords it would record a failed verification over finish's own).
    // Only where there is a migration: a verb that needs one says so itself, and none is created here.
    if matches!(
        args.command,
        Verb::Setup(_) | Verb::Import(_) | Verb::Check(_) | Verb::Sync(_) | Verb::Verify(_) | Verb::Finish(_) | Verb::Switched(_)
    ) && store::Store::holds_migration(&dir)
    {
        store::Store::open(&dir)?.ensure_not_finished()?;
    }
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
        Verb::Remove(a) => cli::remove(&dir, a),
        Verb::Pause(a) => cli::pause(&dir, a),
        Verb::Resume(a) => cli::resume(&dir, a),
        Verb::Password(a) => cli::password(&dir, a),
        Verb::Switched(a) => cli::switched(&dir, a),
    }
}
