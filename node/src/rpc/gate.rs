//! The HTTP gate in front of the JSON-RPC service, the dashboard and `/metrics`.
//!
//! Every request must name this machine in `Host` (127.0.0.1, localhost, [::1] or a configured
//! name: a page whose domain was rebound to 127.0.0.1 is refused) and, when it changes state (any
//! method but GET and HEAD, and WebSocket upgrades), may only come from the dashboard's own
//! origin (`Origin`, which browsers send: another site's page, or another local port's, is
//! refused). `GET /health` needs nothing more; the dashboard's static files under `/ui/` neither
//! (they hold no data); everything else needs `Authorization: Bearer <token>` or the dashboard's
//! session cookie, or gets 401 and nothing else.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};

use super::auth::Token;
use super::session::SESSION_TTL;
use super::ui;

/// Renders the `/metrics` page.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Where a request goes. Pure: decided from the method, path and headers alone.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Health,
    Asset(&'static ui::Asset),
    /// `POST /ui/login` with the one-time code in `X-Login-Code`.
    Login(String),
    /// `POST /ui/logout`, ending the session of the cookie if any.
    Logout(Option<String>),
    Metrics,
    Rpc,
    Refuse(u16, &'static str),
}

/// What the gate knows: the token, the port it listens on and the extra host names allowed.
#[derive(Clone)]
pub struct GateLayer {
    pub token: Token,
    pub metrics: MetricsFn,
    pub port: u16,
    pub hosts: Arc<Vec<String>>,
}

impl GateLayer {
    /// The session cookie's name: one per port, since cookies do not tell ports apart.
    pub fn cookie_name(&self) -> String {
        format!("archive_node_session_{}", self.port)
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().map(|h| format!("[{h}]")).unwrap_or_default(),
            None => host.rsplit_once(':').map_or(host, |(h, _)| h).to_string(),
        };
        let name = name.to_ascii_lowercase();
        matches!(name.as_str(), "127.0.0.1" | "localhost" | "[::1]") || self.hosts.contains(&name)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let Some(rest) = origin.strip_prefix("http://") else { return false };
        let Some((host, port)) = rest.rsplit_once(':') else { return false };
        port.parse::<u16>().is_ok_and(|p| p == self.port) && self.host_allowed(host) && !host.contains('/')
    }

    /// The session id of the request's cookie, if it carries one.
    fn session_cookie<'a>(&self, cookies: impl Iterator<Item = &'a str>) -> Option<String> {
        let name = self.cookie_name();
        cookies
            .flat_map(|h| h.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }

    /// Decides where a request goes.
    pub fn route(&self, method: &http::Method, path: &str, headers: &http::HeaderMap) -> Route {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if !header("host").is_some_and(|h| self.host_allowed(h)) {
            return Route::Refuse(403, "forbidden: Host is not this machine\n");
        }
        let upgrade = header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
        let changes_state = upgrade || !matches!(*method, http::Method::GET | http::Method::HEAD);
        if changes_state && header("origin").is_some_and(|o| !self.origin_allowed(o)) {
            return Route::Refuse(403, "forbidden: Origin is not this daemon's dashboard\n");
        }
        if path == "/health" {
            return Route::Health;
        }
        let cookie = self.session_cookie(headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()));
        if let Some(ui_path) = path.strip_prefix("/ui") {
            return match (method, ui_path) {
                (&http::Method::POST, "/login") => match header("x-login-code") {
                    Some(code) => Route::Login(code.to_string()),
                    None => Route::Refuse(401, "unauthorized: no login code\n"),
                },
                (&http::Method::POST, "/logout") => Route::Logout(cookie),
                (&http::Method::GET | &http::Method::HEAD, p) => match ui::asset(p) {
                    Some(a) => Route::Asset(a),
                    None => Route::Refuse(404, "not found\n"),
                },
                _ => Route::Refuse(405, "method not allowed\n"),
            };
        }
        let bearer = self.token.accepts(header("authorization"));
        if !bearer && !cookie.is_some_and(|c| self.token.sessions().valid(&c)) {
            return Route::Refuse(401, "unauthorized\n");
        }
        if path == "/metrics" {
            return Route::Metrics;
        }
        Route::Rpc
    }

    fn respond(&self, route: Route) -> HttpResponse {
        match route {
            Route::Health => plain(200, "ok\n".into()),
            Route::Refuse(status, why) => plain(status, why.into()),
            Route::Metrics => plain(200, (self.metrics)()),
            Route::Asset(a) => ui::response(a),
            Route::Login(code) => match self.token.sessions().redeem(&code) {
                Some(id) => with_cookie(
                    plain(200, "{\"loggedIn\":true}".into()),
                    format!(
                        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                        self.cookie_name(),
                        SESSION_TTL.as_secs()
                    ),
                ),
                None => plain(401, "unauthorized: the login code is unknown, used or expired\n".into()),
            },
            Route::Logout(cookie) => {
                if let Some(id) = cookie {
                    self.token.sessions().end(&id);
                }
                with_cookie(
                    plain(200, "{\"loggedIn\":false}".into()),
                    format!("{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0", self.cookie_name()),
                )
            }
            Route::Rpc => plain(500, "internal error\n".into()),
        }
    }
}

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate { inner, layer: self.clone() }
    }
}

/// The gate service.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    layer: GateLayer,
}

pub(super) fn plain(status: u16, body: String) -> HttpResponse {
    let mut r = HttpResponse::new(HttpBody::from(body));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn with_cookie(mut r: HttpResponse, cookie: String) -> HttpResponse {
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    r.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    r
}

impl<S, B> tower::Service<HttpRequest<B>> for Gate<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: HttpRequest<B>) -> Self::Future {
        match self.layer.route(req.method(), req.uri().path(), req.headers()) {
            Route::Rpc => {
                let fut = self.inner.call(req);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }
            other => {
                let response = self.layer.respond(other);
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn gate() -> GateLayer {
        GateLayer {
            token: Token::new("t".repeat(64)),
            metrics: Arc::new(String::new),
            port: 5420,
            hosts: Arc::new(vec!["node.lan".into()]),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    const BEARER: (&str, &str) =
        ("authorization", "Bearer tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt");

    #[test]
    fn host_must_name_this_machine() {
        let g = gate();
        for host in ["127.0.0.1:5420", "localhost:5420", "LOCALHOST", "[::1]:5420", "node.lan:5420"] {
            assert_eq!(
                g.route(&Method::GET, "/health", &headers(&[("host", host)])),
                Route::Health,
                "{host}"
            );
        }
        for host in ["evil.example:5420", "127.0.0.1.evil.example", "", "[::2]:5420"] {
            let r = g.route(&Method::POST, "/", &headers(&[("host", host), BEARER]));
            assert!(matches!(r, Route::Refuse(403, _)), "{host}: {r:?}");
        }
        assert!(matches!(g.route(&Method::GET, "/health", &headers(&[])), Route::Refuse(403, _)));
    }

    #[test]
    fn state_changing_calls_come_only_from_our_origin() {
        let g = gate();
        let ok = |o: &str| headers(&[("host", "127.0.0.1:5420"), ("origin", o), BEARER]);
        assert_eq!(g.route(&Method::POST, "/", &ok("http://127.0.0.1:5420")), Route::Rpc);
        assert_eq!(g.route(&Method::POST, "/", &ok("http://localhost:5420")), Route::Rpc);
        for o in ["http://127.0.0.1:8000", "http://evil.example:5420", "null", "https://127.0.0.1:5420"] {
            assert!(matches!(g.route(&Method::POST, "/", &ok(o)), Route::Refuse(403, _)), "{o}");
        }
        // A WebSocket upgrade is a GET that changes state: checked too; a plain GET is not.
        let mut ws = ok("http://evil.example");
        ws.insert("upgrade", "websocket".parse().unwrap());
        assert!(matches!(g.route(&Method::GET, "/", &ws), Route::Refuse(403, _)));
        assert_eq!(g.route(&Method::GET, "/metrics", &ok("http://evil.example")), Route::Metrics);
        // Scripts send no Origin.
        assert_eq!(g.route(&Method::POST, "/", &headers(&[("host", "127.0.0.1"), BEARER])), Route::Rpc);
    }

    #[test]
    fn the_api_takes_the_bearer_token_or_a_live_session_cookie() {
        let g = gate();
        let host = ("host", "127.0.0.1:5420");
        assert!(matches!(g.route(&Method::POST, "/", &headers(&[host])), Route::Refuse(401, _)));
        let id = g.token.sessions().redeem(&g.token.sessions().new_login()).unwrap();
        let cookie = format!("other=1; archive_node_session_5420={id}");
        assert_eq!(g.route(&Method::POST, "/", &headers(&[host, ("cookie", &cookie)])), Route::Rpc);
        // Another port's cookie, a wrong one, an ended one: 401.
        for c in [format!("archive_node_session_5421={id}"), "archive_node_session_5420=x".into()] {
            let r = g.route(&Method::POST, "/", &headers(&[host, ("cookie", &c)]));
            assert!(matches!(r, Route::Refuse(401, _)), "{c}");
        }
        g.token.sessions().end(&id);
        assert!(matches!(
            g.route(&Method::GET, "/metrics", &headers(&[host, ("cookie", &cookie)])),
            Route::Refuse(401, _)
        ));
    }

    #[test]
    fn the_dashboard_files_are_public_and_login_needs_a_code() {
        let g = gate();
        let host = ("host", "127.0.0.1:5420");
        assert!(matches!(g.route(&Method::GET, "/ui/", &headers(&[host])), Route::Asset(_)));
        assert!(matches!(g.route(&Method::GET, "/ui/nope", &headers(&[host])), Route::Refuse(404, _)));
        assert!(matches!(g.route(&Method::POST, "/ui/login", &headers(&[host])), Route::Refuse(401, _)));
        let code = g.token.sessions().new_login();
        let login = g.route(&Method::POST, "/ui/login", &headers(&[host, ("x-login-code", &code)]));
        assert_eq!(login, Route::Login(code.clone()));
        let r = g.respond(login);
        assert_eq!(r.status(), 200);
        let set = r.headers()[http::header::SET_COOKIE].to_str().unwrap().to_string();
        assert!(set.starts_with("archive_node_session_5420=") && set.contains("HttpOnly"), "{set}");
        assert!(set.contains("SameSite=Strict") && set.contains("Max-Age="), "{set}");
        assert_eq!(g.respond(Route::Login(code)).status(), 401, "a code works once");
        // Logging in from another origin is refused before the code is looked at.
        let code = g.token.sessions().new_login();
        let foreign = headers(&[host, ("x-login-code", &code), ("origin", "http://evil.example")]);
        assert!(matches!(g.route(&Method::POST, "/ui/login", &foreign), Route::Refuse(403, _)));
    }
}
