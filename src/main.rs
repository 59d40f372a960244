//! `flowgate serve` runs the gateway; `flowgate check-config` prints the route table or every
//! configuration error with its path.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flowgate::configuration::Configuration;
use flowgate::error::error_chain;
use flowgate::startup::Application;
use flowgate::telemetry;

#[derive(Parser)]
#[command(
    name = "flowgate",
    version,
    about = "Webhook ingress gateway for self-hosted Prefect"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (default: config/default.toml).
        #[arg(long, env = "FLOWGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Check the configuration and print the route table.
    CheckConfig {
        /// Configuration file (default: config/default.toml).
        #[arg(long, env = "FLOWGATE_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { config } => check_config(config),
    }
}

fn load(path: Option<PathBuf>) -> Result<Configuration, ExitCode> {
    Configuration::load(path.as_deref()).map_err(|e| {
        for line in e.lines() {
            eprintln!("error: {line}");
        }
        ExitCode::FAILURE
    })
}

fn serve(path: Option<PathBuf>) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    telemetry::init(&config.settings.telemetry);
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config).map_err(|e| error_chain(&e))?;
        app.run_until_stopped().await.map_err(|e| error_chain(&e))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "flowgate stopped with an error");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    println!(
        "configuration OK: {} route(s), Prefect at {}",
        config.routes.len(),
        config.prefect_url
    );
    println!(
        "{:<24} {:<32} {:<40} {:<6} {:>6}  CONTENT TYPES",
        "ROUTE", "PATH", "DEPLOYMENT", "AUTH", "FIELDS"
    );
    for route in config.routes.iter() {
        let kinds: Vec<&str> = route
            .content_types()
            .iter()
            .map(|k| k.media_type())
            .collect();
        println!(
            "{:<24} {:<32} {:<40} {:<6} {:>6}  {}",
            route.name().to_string(),
            route.path(),
            route.deployment().to_string(),
            "none",
            route.fields().len(),
            kinds.join(", ")
        );
    }
    ExitCode::SUCCESS
}
