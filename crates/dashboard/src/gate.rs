//! Who may use a dashboard: the browser of the person who started it. A dashboard acts with
//! an unlocked key, so a request must come from the dashboard's own origin and carry the
//! token the process printed. Another web page is refused by its `Host` (a DNS name
//! rebound to 127.0.0.1), `Origin` or `Sec-Fetch-Site` before the token is looked at;
//! another local user lacks the token. The token in the printed URL is exchanged once per
//! browser for a cookie (`HttpOnly`, `SameSite=Strict`), as Jupyter does.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::DashError;

/// What every answer carries: no script but the dashboard's own files, no framing, no
/// referrer (the URL may hold the token), no caching of account data.
const SECURITY_HEADERS: [(header::HeaderName, &str); 5] = [
    (header::CONTENT_SECURITY_POLICY, ogpu_web::CONTENT_SECURITY_POLICY),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::CACHE_CONTROL, "no-store"),
];

/// The secret in the printed URL: 32 random bytes as hex, new for every run.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// A fresh token from the operating system's randomness.
    pub fn generate() -> std::io::Result<Token> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// A token chosen by whoever starts the dashboard (`ogpu devnet` prints the URL before
    /// the dashboard has started); at least 32 characters, or `None`.
    pub fn given(text: &str) -> Option<Token> {
        (text.len() >= 32 && text.chars().all(|c| c.is_ascii_alphanumeric())).then(|| Token(text.into()))
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The checks for a dashboard listening on 127.0.0.1 at `port`.
pub struct Gate {
    token: Token,
    cookie: String,
    hosts: [String; 2],
    origins: [String; 2],
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` is not the dashboard's: a page on a DNS name rebound to 127.0.0.1.
    Host,
    /// Another origin's page sent it.
    Origin,
    /// A request that changes something, without an `Origin` to check.
    NoOrigin,
    /// The browser says another site sent it.
    CrossSite,
    /// No token, or a wrong one.
    Token,
}

impl Gate {
    pub fn new(token: Token, port: u16) -> Gate {
        Gate {
            token,
            // Cookies ignore ports: named by the port, two dashboards keep theirs apart.
            cookie: format!("ogpu_dashboard_{port}"),
            hosts: [format!("127.0.0.1:{port}"), format!("localhost:{port}")],
            origins: [format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")],
        }
    }

    /// The URL to open: it carries the token.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.hosts[0], self.token.as_str())
    }

    /// Whether the request may come from where it says it comes from.
    pub fn check_site(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        let text = |name| headers.get(name).map(|v: &HeaderValue| v.to_str().unwrap_or("\u{0}"));
        if !text(header::HOST).is_some_and(|host| self.hosts.iter().any(|h| h == host)) {
            return Err(Refusal::Host);
        }
        match text(header::ORIGIN) {
            Some(origin) if !self.origins.iter().any(|o| o == origin) => return Err(Refusal::Origin),
            None if !matches!(*method, Method::GET | Method::HEAD) => return Err(Refusal::NoOrigin),
            _ => {}
        }
        match text(header::HeaderName::from_static("sec-fetch-site")) {
            Some("same-origin" | "none") | None => Ok(()),
            Some(_) => Err(Refusal::CrossSite),
        }
    }

    fn token_in_cookie(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == self.cookie && same(value.as_bytes(), self.token.as_str().as_bytes()))
    }

    fn set_cookie(&self) -> String {
        format!("{}={}; Path=/; HttpOnly; SameSite=Strict", self.cookie, self.token.as_str())
    }
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |differ, (x, y)| differ | (x ^ y)) == 0
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|pair| pair.strip_prefix("token="))
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, error, detail) = match self {
            Refusal::Host => {
                (StatusCode::FORBIDDEN, "wrong_host", "this dashboard answers only at 127.0.0.1 or localhost")
            }
            Refusal::Origin => {
                (StatusCode::FORBIDDEN, "cross_origin", "another origin's page may not use this dashboard")
            }
            Refusal::NoOrigin => {
                (StatusCode::FORBIDDEN, "no_origin", "a request that changes something must say its origin")
            }
            Refusal::CrossSite => {
                (StatusCode::FORBIDDEN, "cross_site", "another site's page may not use this dashboard")
            }
            Refusal::Token => (
                StatusCode::UNAUTHORIZED,
                "no_token",
                "open the link with the token that the dashboard printed when it started",
            ),
        };
        DashError::new(status, error, detail).into_response()
    }
}

/// The middleware in front of every route.
pub async fn check(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let mut response = admit(&gate, request, next).await;
    for (name, value) in SECURITY_HEADERS {
        response.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn admit(gate: &Gate, request: Request, next: Next) -> Response {
    if let Err(refusal) = gate.check_site(request.method(), request.headers()) {
        tracing::warn!(?refusal, uri = %request.uri().path(), "refused a request");
        return refusal.into_response();
    }
    if let Some(given) = query_token(request.uri().query()) {
        if !same(given.as_bytes(), gate.token.as_str().as_bytes()) {
            return Refusal::Token.into_response();
        }
        // The same path without the token, so it leaves the address bar and history.
        let location = request.uri().path().to_string();
        return (StatusCode::SEE_OTHER, [(header::LOCATION, location), (header::SET_COOKIE, gate.set_cookie())])
            .into_response();
    }
    if !gate.token_in_cookie(request.headers()) {
        return Refusal::Token.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(Token::given("short").is_none());
        assert!(Token::given(&"x".repeat(31)).is_none());
        assert!(Token::given(&"a".repeat(40)).is_some());
        assert!(Token::given(&format!("{}\"; path=/", "a".repeat(40))).is_none(), "nothing that breaks a cookie");
    }

    const PORT: u16 = 8090;
    const HOST: &str = "127.0.0.1:8090";
    const SELF: &str = "http://127.0.0.1:8090";

    fn token() -> String {
        "ab".repeat(32)
    }

    /// What a route behind the gate answers `method path` with `headers`: the status, and
    /// the response's headers.
    async fn ask(method: Method, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap) {
        use tower::ServiceExt;
        let gate = Arc::new(Gate::new(Token::given(&token()).unwrap(), PORT));
        let router = axum::Router::new()
            .route("/api/thing", axum::routing::get(|| async { "read" }).post(|| async { "changed" }))
            .layer(axum::middleware::from_fn_with_state(gate, check));
        let mut request = axum::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router.oneshot(request.body(axum::body::Body::empty()).unwrap()).await.unwrap();
        (response.status(), response.headers().clone())
    }

    #[tokio::test]
    async fn only_the_token_holders_own_origin_gets_through() {
        let cookie = format!("other=1; ogpu_dashboard_{PORT}={}", token());
        let wrong_cookie = format!("ogpu_dashboard_{PORT}={}", "cd".repeat(32));
        let other_port_cookie = format!("ogpu_dashboard_8091={}", token());
        // What, how, where, with which headers, and the answer's status.
        type Case<'a> = (&'a str, Method, &'a str, Vec<(&'a str, &'a str)>, StatusCode);
        let cases: Vec<Case> = vec![
            ("the cookie", Method::GET, "/api/thing", vec![("host", HOST), ("cookie", &cookie)], StatusCode::OK),
            (
                "localhost",
                Method::GET,
                "/api/thing",
                vec![("host", "localhost:8090"), ("cookie", &cookie)],
                StatusCode::OK,
            ),
            (
                "a change from the same origin",
                Method::POST,
                "/api/thing",
                vec![("host", HOST), ("cookie", &cookie), ("origin", SELF), ("sec-fetch-site", "same-origin")],
                StatusCode::OK,
            ),
            ("no token", Method::GET, "/api/thing", vec![("host", HOST)], StatusCode::UNAUTHORIZED),
            (
                "a wrong token",
                Method::GET,
                "/api/thing",
                vec![("host", HOST), ("cookie", &wrong_cookie)],
                StatusCode::UNAUTHORIZED,
            ),
            (
                "another dashboard's cookie",
                Method::GET,
                "/api/thing",
                vec![("host", HOST), ("cookie", &other_port_cookie)],
                StatusCode::UNAUTHORIZED,
            ),
            ("a wrong token in the link", Method::GET, "/?token=abc", vec![("host", HOST)], StatusCode::UNAUTHORIZED),
            (
                "a rebound DNS name",
                Method::GET,
                "/api/thing",
                vec![("host", "evil.example:8090"), ("cookie", &cookie)],
                StatusCode::FORBIDDEN,
            ),
            ("no host", Method::GET, "/api/thing", vec![("cookie", &cookie)], StatusCode::FORBIDDEN),
            (
                "another origin",
                Method::POST,
                "/api/thing",
                vec![("host", HOST), ("cookie", &cookie), ("origin", "http://127.0.0.1:9999")],
                StatusCode::FORBIDDEN,
            ),
            (
                "an opaque origin",
                Method::GET,
                "/api/thing",
                vec![("host", HOST), ("cookie", &cookie), ("origin", "null")],
                StatusCode::FORBIDDEN,
            ),
            (
                "a change without origin",
                Method::POST,
                "/api/thing",
                vec![("host", HOST), ("cookie", &cookie)],
                StatusCode::FORBIDDEN,
            ),
            (
                "another site",
                Method::GET,
                "/api/thing",
                vec![("host", HOST), ("cookie", &cookie), ("sec-fetch-site", "same-site")],
                StatusCode::FORBIDDEN,
            ),
        ];
        for (what, method, path, headers, expected) in cases {
            let (status, answer) = ask(method, path, &headers).await;
            assert_eq!(status, expected, "{what}");
            assert_eq!(
                answer.get(header::X_FRAME_OPTIONS).unwrap(),
                "DENY",
                "{what}: every answer carries the headers"
            );
            assert!(answer.get(header::CONTENT_SECURITY_POLICY).is_some(), "{what}");
        }
    }

    #[tokio::test]
    async fn the_link_sets_a_strict_cookie_and_leaves_the_address_bar() {
        let (status, headers) = ask(Method::GET, &format!("/api/thing?token={}", token()), &[("host", HOST)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers.get(header::LOCATION).unwrap(), "/api/thing");
        let cookie = headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        assert_eq!(cookie, format!("ogpu_dashboard_{PORT}={}; Path=/; HttpOnly; SameSite=Strict", token()));
    }

    #[test]
    fn the_token_is_read_from_its_own_query_pair() {
        assert_eq!(query_token(Some("a=1&token=xyz")), Some("xyz"));
        assert_eq!(query_token(Some("mytoken=xyz")), None);
        assert_eq!(query_token(None), None);
    }
}
