//! The JSON-RPC 2.0 API of the daemon (jsonrpsee), and the client the CLI uses.
//!
//! One port on 127.0.0.1 serves HTTP and WebSocket; every call needs the bearer token of
//! `<data-dir>/rpc.token` or a dashboard session. `/health` (no token), `/metrics` (Prometheus
//! text) and the dashboard (`/ui/`) share the port.

pub mod auth;
pub mod catalog;
pub mod client;
mod fields;
pub mod gate;
pub mod membership;
pub mod methods;
pub mod params;
pub mod server;
pub mod session;
mod sync_status;
mod ui;
