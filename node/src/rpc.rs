//! The JSON-RPC 2.0 API of the daemon (jsonrpsee), and the client the CLI uses.
//!
//! One port on 127.0.0.1 serves HTTP and WebSocket; every call needs the bearer token of
//! `<data-dir>/rpc.token`. `/health` (no token) and `/metrics` (Prometheus text) share the port.

pub mod auth;
pub mod client;
pub mod membership;
pub mod methods;
pub mod params;
pub mod server;
