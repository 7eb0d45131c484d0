//! The JSON-RPC server: HTTP and WebSocket on one port of 127.0.0.1, behind the gate.
//!
//! Connections are accepted here (jsonrpsee's per-connection service), so that each one can be
//! closed on its own: a token rotation closes every connection opened before it, WebSocket
//! subscriptions included, like a password change ends every session.

use std::net::SocketAddr;
use std::time::Duration;

use jsonrpsee::server::{
    serve_with_graceful_shutdown, stop_channel, Methods, Server, ServerConfig, ServerHandle, StopHandle,
};
use tower::Layer;

use super::auth::Token;
use super::gate::{GateLayer, MetricsFn};
use super::methods::{self, Ctx};
use crate::config::RpcConfig;

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen for RPC on 127.0.0.1:{port}: {reason}")]
    Listen { port: u16, reason: String },
    #[error("RPC methods: {0}")]
    Methods(String),
}

/// A running server.
pub struct Running {
    pub handle: ServerHandle,
    pub addr: SocketAddr,
}

/// Starts the server with every method.
pub async fn start(config: &RpcConfig, ctx: Ctx, token: Token, metrics: MetricsFn) -> Result<Running, Error> {
    let listen = |e: std::io::Error| Error::Listen { port: config.port, reason: e.to_string() };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], config.port)))
        .await
        .map_err(listen)?;
    let addr = listener.local_addr().map_err(listen)?;
    let ctx = Ctx { rpc_port: addr.port(), ..ctx };
    let methods: Methods = methods::module(ctx).map_err(|e| Error::Methods(e.to_string()))?.into();
    let server_config = ServerConfig::builder()
        .max_request_body_size(config.max_request_bytes)
        .max_response_body_size(config.max_response_bytes)
        .max_connections(config.max_connections)
        .build();
    let (stop, handle) = stop_channel();
    let hosts = std::sync::Arc::new(config.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect());
    let gate = GateLayer { token, metrics, port: addr.port(), hosts };
    let accept = Accept { listener, methods, server_config, stop, gate };
    tokio::spawn(accept.run());
    Ok(Running { handle, addr })
}

struct Accept {
    listener: tokio::net::TcpListener,
    methods: Methods,
    server_config: ServerConfig,
    stop: StopHandle,
    gate: GateLayer,
}

impl Accept {
    async fn run(self) {
        let builder = Server::builder().set_config(self.server_config).to_service_builder();
        loop {
            let sock = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((sock, _)) => sock,
                    Err(e) => {
                        // Out of file descriptors, say: back off instead of spinning.
                        tracing::warn!(error = %e, "cannot accept an RPC connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = self.stop.clone().shutdown() => return,
            };
            // Each connection has its own stop, fired by the server's or by the next token
            // rotation. It also reaches a WebSocket session, which outlives the HTTP exchange
            // that opened it.
            let (conn_stop, conn_handle) = stop_channel();
            let service = self.gate.layer(builder.clone().build(self.methods.clone(), conn_stop.clone()));
            let (server_stop, rotated) = (self.stop.clone(), self.gate.token.rotated());
            tokio::spawn(async move {
                let stop_requested = async move {
                    tokio::select! {
                        _ = server_stop.shutdown() => {}
                        _ = rotated => {}
                    }
                };
                // Every holder of the connection's stop handle is gone: the connection is over.
                let over = conn_handle.clone().stopped();
                let serving = serve_with_graceful_shutdown(sock, service, conn_stop.shutdown());
                tokio::pin!(stop_requested, over, serving);
                let mut served = false;
                loop {
                    tokio::select! {
                        r = &mut serving, if !served => {
                            served = true;
                            if let Err(e) = r {
                                tracing::debug!(error = %e, "RPC connection ended");
                            }
                        }
                        _ = &mut stop_requested => {
                            let _ = conn_handle.stop();
                            if !served {
                                let _ = serving.await;
                            }
                            return;
                        }
                        _ = &mut over => return,
                    }
                }
            });
        }
    }
}
