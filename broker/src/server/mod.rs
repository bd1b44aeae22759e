//! Network side: bind the listeners, accept connections, and stop cleanly.

pub mod connection;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::broker::Broker;
use crate::config::load::Listener;
use crate::config::NodeConfig;
use crate::error::BrokerError;

/// Binds every client listener; returns them with the ports actually bound (port 0 = any
/// free one).
pub async fn bind(node: &NodeConfig) -> Result<Vec<(Listener, TcpListener)>, BrokerError> {
    let mut bound = Vec::new();
    for listener in &node.listeners {
        let address = listener.bind_address();
        let socket = TcpListener::bind(&address).await.map_err(|e| {
            BrokerError::Fatal(format!(
                "cannot listen on {address} ({}): {e}; is another broker running there? change `listeners`",
                listener.name
            ))
        })?;
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
