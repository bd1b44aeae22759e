//! Network side: bind the listeners, accept connections, and stop cleanly.

pub mod connection;

use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};

use crate::broker::Broker;
use crate::config::load::Listener;
use crate::config::NodeConfig;
use crate::error::BrokerError;

/// Backlog of each client listener.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds every client listener without listening yet, so the ports are reserved (port 0
/// resolves to a free one, which the broker registers) while clients are still refused
/// until the node is ready ([`listen`]).
pub async fn bind(node: &NodeConfig) -> Result<Vec<(Listener, TcpSocket)>, BrokerError> {
    let mut bound = Vec::new();
    for listener in &node.listeners {
        let address = listener.bind_address();
        let cannot = |e: &dyn std::fmt::Display| {
            BrokerError::Fatal(format!(
                "cannot listen on {address} ({}): {e}; is another broker running there? change `listeners`",
                listener.name
            ))
        };
        let addr = tokio::net::lookup_host(&address)
            .await
            .map_err(|e| cannot(&e))?
            .next()
            .ok_or_else(|| cannot(&"the host resolves to no address"))?;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| cannot(&e))?;
        socket.set_reuseaddr(true).map_err(|e| cannot(&e))?;
        socket.bind(addr).map_err(|e| cannot(&e))?;
        let port = socket
            .local_addr()
            .map_err(|e| BrokerError::Fatal(e.to_string()))?
            .port();
        bound.push((
            Listener {
                port,
                ..listener.clone()
            },
            socket,
        ));
    }
    Ok(bound)
}

/// Starts listening on sockets from [`bind`].
pub fn listen(
    bound: Vec<(Listener, TcpSocket)>,
) -> Result<Vec<(Listener, TcpListener)>, BrokerError> {
    bound
        .into_iter()
        .map(|(listener, socket)| {
            let l = socket.listen(LISTEN_BACKLOG).map_err(|e| {
                BrokerError::Fatal(format!(
                    "cannot listen on {}:{} ({}): {e}",
                    listener.host, listener.port, listener.name
                ))
            })?;
            Ok((listener, l))
        })
        .collect()
}

/// Accepts connections until shutdown is requested.
pub async fn serve(broker: Arc<Broker>, listener: Listener, socket: TcpListener) {
    tracing::info!(listener = %listener.name, address = %format!("{}:{}", listener.host, listener.port), "listening");
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let broker = Arc::clone(&broker);
                    tokio::spawn(async move {
                        let shutdown = broker.shutdown.clone();
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = connection::serve(broker, stream, peer) => {}
                        }
                    });
                }
                Err(e) => {
                    // Running out of file descriptors must not spin the accept loop.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}
