//! Starting the JSON-RPC server: HTTP and WebSocket on one port of 127.0.0.1, behind the gate.

use std::net::SocketAddr;

use jsonrpsee::server::{Server, ServerConfig, ServerHandle};

use super::auth::{GateLayer, MetricsFn, Token};
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
    let server_config = ServerConfig::builder()
        .max_request_body_size(config.max_request_bytes)
        .max_response_body_size(config.max_response_bytes)
        .max_connections(config.max_connections)
        .build();
    let server = Server::builder()
        .set_config(server_config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(GateLayer { token, metrics }))
        .build(SocketAddr::from(([127, 0, 0, 1], config.port)))
        .await
        .map_err(|e| Error::Listen { port: config.port, reason: e.to_string() })?;
    let addr = server.local_addr().map_err(|e| Error::Listen { port: config.port, reason: e.to_string() })?;
    let module = methods::module(ctx).map_err(|e| Error::Methods(e.to_string()))?;
    Ok(Running { handle: server.start(module), addr })
}
