//! The `sessiongate` command: parse the CLI, load the config, hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a configuration the gateway refuses (sysexits EX_USAGE).
const EXIT_CONFIG: u8 = 64;
/// Exit status when the listen address is held by another process (sysexits EX_UNAVAILABLE).
const EXIT_IN_USE: u8 = 69;

#[derive(Parser)]
#[command(
    name = "sessiongate",
    version,
    about = "Edge gateway that owns user sessions in front of a web backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// The application.yml to use.
        #[arg(long, short, default_value = "config/application.yml")]
        config: PathBuf,
    },
    /// Validate a configuration file, print the values to align elsewhere, and exit.
    Check {
        #[arg(long, short, default_value = "config/application.yml")]
        config: PathBuf,
        /// The provider's access-token lifespan in seconds (else read from the provider
        /// with a client-credentials grant when it allows one, else Keycloak's 300).
        #[arg(long)]
        access_token_lifespan_sec: Option<u64>,
        /// The backend's keep-alive for sessions without requests (censhare "Keep session
        /// alive"), which fresh tokens must beat.
        #[arg(long, default_value_t = 180)]
        backend_keep_alive_sec: u64,
        /// Do not contact the provider.
        #[arg(long)]
        offline: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            config,
            access_token_lifespan_sec,
            backend_keep_alive_sec,
            offline,
        } => {
            let opts = sessiongate::check::Options {
                access_token_lifespan_sec,
                backend_keep_alive_sec,
                offline,
            };
            match sessiongate::check::run(&config, &opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Run { config } => {
            let cfg = match sessiongate::config::load_file(&config) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("{}: {e}", config.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let _log = sessiongate::logging::init(&cfg.logging);
            match sessiongate::server::run(cfg, Some(&config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // Once, on stderr (where the log goes too): not also as a log line.
                    eprintln!("sessiongate: {e}");
                    match e {
                        sessiongate::server::StartError::Certificate(_) => {
                            ExitCode::from(EXIT_CONFIG)
                        }
                        sessiongate::server::StartError::InUse { .. } => {
                            ExitCode::from(EXIT_IN_USE)
                        }
                        _ => ExitCode::FAILURE,
                    }
                }
            }
        }
    }
}
