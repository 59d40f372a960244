//! `flowgate serve` runs the gateway; `flowgate check-config` prints the route table or every
//! configuration error with its path.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flowgate::configuration::{read_settings, Configuration, DEFAULT_CONFIG_PATH};
use flowgate::error::error_chain;
use flowgate::pipeline::verify::unix_now;
use flowgate::schema_check;
use flowgate::sign_command::{self, SignRequest};
use flowgate::startup::Application;
use flowgate::telemetry;

/// Prints a line to standard output. A reader that has gone (`flowgate check-config | head`)
/// ends the command quietly, as it ends other Unix tools, where `println!` would panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            stdout_failed(&e);
        }
    }};
}

fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1);
}

/// mimalloc: under load glibc's malloc took a quarter of the CPU (see README, *Performance*).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Make the file's [deployments."flow/name"] true in Prefect (or, with --dry-run, print
    /// what would change).
    Apply {
        /// Configuration file (default: config/default.toml).
        #[arg(long, env = "FLOWGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Print what would change in Prefect; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Apply the PostgreSQL store's migrations (store.url) and exit; `serve` applies them too.
    Migrate {
        /// Configuration file (default: config/default.toml).
        #[arg(long, env = "FLOWGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the headers and a curl command a sender of ROUTE would use.
    Sign {
        /// The route to sign for.
        #[arg(long)]
        route: String,
        /// Configuration file (default: config/default.toml).
        #[arg(long, env = "FLOWGATE_CONFIG")]
        config: Option<PathBuf>,
        /// File holding the body to sign; `-` reads standard input (default: `{}`).
        #[arg(long)]
        body: Option<PathBuf>,
        /// Sign with the secret in this environment variable instead of the route's own.
        #[arg(long)]
        secret_env: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { config } => check_config(config),
        Command::Apply { config, dry_run } => apply(config, dry_run),
        Command::Migrate { config } => migrate(config),
        Command::Sign {
            route,
            config,
            body,
            secret_env,
        } => sign(&route, config, body, secret_env),
    }
}

fn sign(
    route: &str,
    config: Option<PathBuf>,
    body: Option<PathBuf>,
    secret_env: Option<String>,
) -> ExitCode {
    let path = config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let settings = match read_settings(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bytes = match body.as_deref() {
        None => b"{}".to_vec(),
        Some(p) if p.as_os_str() == "-" => {
            let mut buf = Vec::new();
            if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf) {
                eprintln!("error: cannot read the body from standard input: {e}");
                return ExitCode::FAILURE;
            }
            buf
        }
        Some(p) => match std::fs::read(p) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
    };
    let body_file = body
        .as_deref()
        .filter(|p| p.as_os_str() != "-")
        .map(|p| p.display().to_string());
    let request = SignRequest {
        route,
        body: &bytes,
        body_file: body_file.as_deref(),
        secret_env: secret_env.as_deref(),
        now: unix_now(),
    };
    match sign_command::sign(&settings, &request) {
        Ok(signed) => {
            for (name, value) in &signed.headers {
                out!("{name}: {value}");
            }
            out!("\n{}", signed.curl);
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            ExitCode::FAILURE
        }
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

fn migrate(path: Option<PathBuf>) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(connect) = config.postgres() else {
        out!("store.url is not set: the SQLite store creates its schema when it opens");
        return ExitCode::SUCCESS;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime to reach PostgreSQL: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(flowgate::store::PgStore::migrate(&connect)) {
        Ok(n) => {
            out!("{n} migration(s) applied to {}", connect.url);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn apply(path: Option<PathBuf>, dry_run: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime to reach Prefect: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    match runtime.block_on(flowgate::apply_command::run(&config, dry_run, &mut out)) {
        Ok(n) => {
            out!(
                "{n} of {} deployment(s) {}",
                config.settings.deployments.len(),
                if dry_run { "would change" } else { "changed" }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: Option<PathBuf>) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    telemetry::init(&config.settings.telemetry);
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config)
            .await
            .map_err(|e| error_chain(&e))?;
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
    out!(
        "configuration OK: {} route(s), Prefect at {}",
        config.routes.len(),
        config.prefect_url
    );
    out!(
        "{:<24} {:<32} {:<40} {:<6} {:>6}  CONTENT TYPES",
        "ROUTE",
        "PATH",
        "DEPLOYMENT",
        "AUTH",
        "FIELDS"
    );
    for route in config.routes.iter() {
        let kinds: Vec<&str> = route
            .content_types()
            .iter()
            .map(|k| k.media_type())
            .collect();
        out!(
            "{:<24} {:<32} {:<40} {:<6} {:>6}  {}",
            route.name().to_string(),
            route.path(),
            route.deployment().to_string(),
            route.auth().kind(),
            route.fields().len(),
            kinds.join(", ")
        );
    }
    compare_with_prefect(&config)
}

/// With Prefect reachable, each route's field rules are compared with its deployment's schema.
fn compare_with_prefect(config: &Configuration) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime to reach Prefect: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reports = match runtime.block_on(schema_check::check_against_prefect(config)) {
        Ok(reports) => reports,
        Err(e) => {
            out!(
                "note: Prefect at {} is not reachable ({}); field rules not compared with deployment schemas",
                config.prefect_url,
                error_chain(&e)
            );
            return ExitCode::SUCCESS;
        }
    };
    let mut failed = false;
    for report in &reports {
        for note in &report.notes {
            out!("note: {note}");
        }
        for issue in &report.issues {
            eprintln!("error: {issue}");
            failed = true;
        }
    }
    if failed {
        return ExitCode::FAILURE;
    }
    out!(
        "Prefect at {}: every route matches its deployment's parameter schema",
        config.prefect_url
    );
    ExitCode::SUCCESS
}
