//! The client side of the RPC API, used by the CLI: finds a daemon on a data dir, calls methods
//! over HTTP and streams signals over WebSocket, with the bearer token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonrpsee::core::client::{ClientT, SubscriptionClientT};
use jsonrpsee::core::params::{ArrayParams, ObjectParams};
use jsonrpsee::http_client::{HeaderMap, HeaderValue, HttpClient, HttpClientBuilder};
use jsonrpsee::ws_client::WsClientBuilder;
use serde_json::Value;

use crate::data_dir::DataDir;

/// Longest a call may take (a fetch of a large DAG takes long).
const CALL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the RPC token {path}: {reason}")]
    Token { path: String, reason: String },
    #[error("{0}")]
    Rpc(String),
    #[error("bad RPC URL {0}")]
    Url(String),
}

/// Where a daemon's API is, and how to authenticate.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    token: String,
}

impl Endpoint {
    /// The endpoint of the daemon running on `dir`, or None when none runs: no `rpc.port`, or
    /// nothing listening on it (a stale file after a crash). `rpc` and `token_file` override.
    pub fn discover(
        dir: &DataDir,
        rpc: Option<&str>,
        token_file: Option<&Path>,
    ) -> Result<Option<Self>, Error> {
        let url = match rpc {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => match std::fs::read_to_string(dir.rpc_port()) {
                Ok(p) => match p.trim().parse::<u16>() {
                    Ok(port) => format!("http://127.0.0.1:{port}"),
                    Err(_) => return Ok(None),
                },
                Err(_) => return Ok(None),
            },
        };
        let host = url.strip_prefix("http://").ok_or_else(|| Error::Url(url.clone()))?.to_string();
        let addr: std::net::SocketAddr = host.parse().map_err(|_| Error::Url(url.clone()))?;
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
            return Ok(None);
        }
        let token_path: PathBuf = token_file.map(Path::to_path_buf).unwrap_or_else(|| dir.rpc_token());
        let token = std::fs::read_to_string(&token_path)
            .map_err(|e| Error::Token { path: token_path.display().to_string(), reason: e.to_string() })?
            .trim()
            .to_string();
        Ok(Some(Self { url, token }))
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", self.token)) {
            h.insert("authorization", v);
        }
        h
    }

    fn http(&self) -> Result<HttpClient, Error> {
        HttpClientBuilder::default()
            .set_headers(self.headers())
            .request_timeout(CALL_TIMEOUT)
            .max_response_size(64 * 1024 * 1024)
            .build(&self.url)
            .map_err(|e| Error::Rpc(e.to_string()))
    }

    /// Calls `method` with parameters by name (an object) or by position (an array).
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        let client = self.http()?;
        let result = match params {
            Value::Object(map) => {
                let mut p = ObjectParams::new();
                for (k, v) in map {
                    p.insert(&k, v).map_err(|e| Error::Rpc(e.to_string()))?;
                }
                client.request(method, p).await
            }
            Value::Array(values) => {
                let mut p = ArrayParams::new();
                for v in values {
                    p.insert(v).map_err(|e| Error::Rpc(e.to_string()))?;
                }
                client.request(method, p).await
            }
            _ => client.request(method, ArrayParams::new()).await,
        };
        result.map_err(|e| Error::Rpc(rpc_error_text(e)))
    }

    /// Streams signals into `on_signal` until it returns false or the daemon goes away.
    pub async fn signals(&self, mut on_signal: impl FnMut(Value) -> bool) -> Result<(), Error> {
        let ws_url = self.url.replacen("http://", "ws://", 1);
        let client = WsClientBuilder::default()
            .set_headers(self.headers())
            .build(&ws_url)
            .await
            .map_err(|e| Error::Rpc(e.to_string()))?;
        let mut sub = client
            .subscribe::<Value, _>("subscribe_signals", ArrayParams::new(), "unsubscribe_signals")
            .await
            .map_err(|e| Error::Rpc(rpc_error_text(e)))?;
        while let Some(item) = sub.next().await {
            let v = item.map_err(|e| Error::Rpc(e.to_string()))?;
            if !on_signal(v) {
                break;
            }
        }
        Ok(())
    }
}

fn rpc_error_text(e: jsonrpsee::core::ClientError) -> String {
    match e {
        jsonrpsee::core::ClientError::Call(obj) => obj.message().to_string(),
        other => other.to_string(),
    }
}
