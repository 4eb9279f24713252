//! The `sessiongate` command: parse the CLI, load the config, hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a configuration the gateway refuses (sysexits EX_USAGE).
const EXIT_CONFIG: u8 = 64;

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
    /// Validate a configuration file and exit.
    Check {
        #[arg(long, short, default_value = "config/application.yml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match sessiongate::config::load_file(&config) {
            Ok(cfg) => {
                // The certificate files are part of the configuration: check them as a start
                // would.
                if let Some(ssl) = &cfg.server.ssl {
                    if let Err(e) = sessiongate::tls::load(ssl, std::time::SystemTime::now()) {
                        eprintln!("{}: {e}", config.display());
                        return ExitCode::from(EXIT_CONFIG);
                    }
                }
                if let Some(w) = sessiongate::tls::secure_cookie_warning(&cfg) {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: ok ({} routes, {} workers)",
                    config.display(),
                    cfg.routes.len(),
                    cfg.gateway.workers
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Run { config } => {
            let cfg = match sessiongate::config::load_file(&config) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("{}: {e}", config.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let _log = sessiongate::logging::init(&cfg.logging);
            match sessiongate::server::run(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(target: "sessiongate::server", "{e}");
                    eprintln!("sessiongate: {e}");
                    match e {
                        sessiongate::server::StartError::Certificate(_) => {
                            ExitCode::from(EXIT_CONFIG)
                        }
                        _ => ExitCode::FAILURE,
                    }
                }
            }
        }
    }
}
