//! `isthmus`: run one Isthmus node. With no arguments: a single node on 127.0.0.1:9092 with
//! data under ./data. `isthmus format --cluster-id <id>` initialises a node's directories;
//! `isthmus random-uuid` prints a new cluster id.

use std::process::ExitCode;

use isthmus_broker::config::load;

/// Request and batch buffers are large and short-lived; glibc hands such sizes back to the
/// kernel and faults fresh zeroed pages in for the next request, which cost more CPU than
/// the copies themselves. mimalloc keeps and reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let matches = load::command().get_matches();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if matches.subcommand_matches("random-uuid").is_some() {
        println!("{}", isthmus_broker::metadata::identity::new_cluster_id());
        return ExitCode::SUCCESS;
    }
    let (settings_matches, format_cluster_id) = match matches.subcommand() {
        Some(("format", sub)) => (sub, sub.get_one::<String>("cluster-id").cloned()),
        _ => (&matches, None),
    };
    let config = match load::load(settings_matches, |name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("isthmus: configuration error: {message}");
            return ExitCode::from(2);
        }
    };
    if let Some(cluster_id) = format_cluster_id {
        return match isthmus_broker::format(&config, &cluster_id) {
            Ok(dir) => {
                println!(
                    "Formatted {} for cluster {cluster_id} (node.id {})",
                    dir.display(),
                    config.node_id
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("isthmus format: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("isthmus")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("isthmus: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = match runtime.block_on(async { stop_signal() }) {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("isthmus: cannot listen for SIGTERM and SIGINT: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(isthmus_broker::run(config, stop)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isthmus: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Registers the SIGTERM and SIGINT handlers now, before any startup work: a signal that
/// arrives while the node is still starting (its port may already accept connections)
/// then stops it cleanly once started, instead of killing it with the default action.
/// The returned future resolves on the first of the two.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
