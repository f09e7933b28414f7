//! The API against a real one-validator node in this process: what a client does (submit,
//! follow a transaction to finality, read blocks, upload and download blobs, subscribe
//! to the feed), and every kind of bad request getting a 4xx with a JSON body naming it.

mod common;

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use common::{client, hex, start, tx};
use ogpu_core::tx::{Transaction, TxBody};
use ogpu_core::{Address, Amount, Hash};
use serde_json::Value;
use tower::ServiceExt;

fn transfer(nonce: u64) -> Transaction {
    tx(&client(), nonce, TxBody::Transfer { to: Address([7; 20]), amount: Amount::ogpu(1) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_is_followed_from_submission_to_a_finalized_block() {
    let api = start();
    let mut feed = api.router.clone().oneshot(Request::get("/v1/events").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(feed.status(), StatusCode::OK);

    let tx = transfer(0);
    api.submit(&tx).await;
    let record = api.finalized(tx.hash()).await;
    assert_eq!(record["ok"], true, "{record}");
    let height = record["height"].as_u64().unwrap();
    let (status, block) = api.get(&format!("/v1/blocks/{height}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(block["txs"][0]["hash"], tx.hash().to_string());
    assert_eq!(block["txs"][0]["kind"], "transfer");
    let (_, account) = api.get(&format!("/v1/accounts/{}", Address([7; 20]))).await;
    assert_eq!(account["balance"], Amount::ogpu(1).to_string());
    let (_, history) = api.get(&format!("/v1/accounts/{}/txs", Address::of(&client().public()))).await;
    assert_eq!(history["txs"][0]["hash"], tx.hash().to_string());

    // The feed saw finalized blocks as server-sent events.
    let frame = tokio::time::timeout(Duration::from_secs(10), http_body_util::BodyExt::frame(feed.body_mut()))
        .await
        .expect("a block within ten seconds")
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("event: block\ndata: {"), "{text}");

    let (status, metrics) = api.call("GET", "/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("# TYPE ogpu_height gauge\nogpu_height "), "{metrics}");
    let (status, document) = api.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(document["paths"]["/v1/txs/{hash}"]["get"].is_object(), "every route is documented");
    assert!(document["paths"]["/v1/blobs"]["post"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_round_trip_and_oversize_or_unknown_ones_are_refused() {
    let api = start();
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let (status, body) = api.json("POST", "/v1/blobs", "").await;
    assert_eq!(status, StatusCode::CREATED, "an empty blob is a blob: {body}");
    let request = Request::post("/v1/blobs").body(Body::from(bytes.clone())).unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_eq!(body["hash"], Hash::of_bytes(&bytes).to_string());
    assert_eq!(body["size"], bytes.len());
    let (status, downloaded) = api.call("GET", &format!("/v1/blobs/{}", body["hash"].as_str().unwrap()), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(downloaded, bytes);

    // The limit is a 1 MiB file sealed for a private task, to the byte.
    let sealed_max = ogpu_core::sealed::sealed_len(1 << 20);
    let request = Request::post("/v1/blobs").body(Body::from(vec![1u8; sealed_max as usize])).unwrap();
    assert_eq!(api.router.clone().oneshot(request).await.unwrap().status(), StatusCode::CREATED);
    let oversize = vec![0u8; sealed_max as usize + 1];
    let response = api.router.clone().oneshot(Request::post("/v1/blobs").body(Body::from(oversize)).unwrap()).await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_eq!(body["error"], "too_large");

    let (status, body) = api.get(&format!("/v1/blobs/{}", Hash::of_bytes(b"nobody has this"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no peer to fetch it from: {body}");
    assert_eq!(body["error"], "unknown_blob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_4xx_naming_the_problem() {
    let api = start();
    let mut forged = transfer(0);
    forged.signature.0[3] ^= 1;
    let truncated = &hex(&transfer(0))[..40];
    let cases: Vec<(&str, String, String, StatusCode, &str)> = vec![
        ("POST", "/v1/txs".into(), "not json".into(), StatusCode::BAD_REQUEST, "invalid_json"),
        ("POST", "/v1/txs".into(), r#"{"tx":"00","extra":1}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_json"),
        ("POST", "/v1/txs".into(), r#"{"tx":"zz"}"#.into(), StatusCode::BAD_REQUEST, "invalid_hex"),
        (
            "POST",
            "/v1/txs".into(),
            format!(r#"{{"tx":"{truncated}"}}"#),
            StatusCode::BAD_REQUEST,
            "malformed_transaction",
        ),
        ("POST", "/v1/txs".into(), format!(r#"{{"tx":"{}"}}"#, hex(&forged)), StatusCode::BAD_REQUEST, "bad_signature"),
        (
            "POST",
            "/v1/txs".into(),
            format!(r#"{{"tx":"{}"}}"#, hex(&transfer(9_999))),
            StatusCode::BAD_REQUEST,
            "nonce_too_far_ahead",
        ),
        ("POST", "/v1/txs/batch".into(), r#"{"txs":["00"]}"#.into(), StatusCode::BAD_REQUEST, "malformed_transaction"),
        (
            "POST",
            "/v1/txs/batch".into(),
            format!(r#"{{"txs":[{}]}}"#, vec!["\"00\""; 10_001].join(",")),
            StatusCode::BAD_REQUEST,
            "batch_too_large",
        ),
        ("GET", "/v1/accounts/ogpu1nothing".into(), String::new(), StatusCode::BAD_REQUEST, "invalid_parameter"),
        ("GET", "/v1/txs/123".into(), String::new(), StatusCode::BAD_REQUEST, "invalid_parameter"),
        (
            "GET",
            format!("/v1/txs/{}", Hash::of_bytes(b"x")),
            String::new(),
            StatusCode::NOT_FOUND,
            "unknown_transaction",
        ),
        ("GET", "/v1/blocks/-1".into(), String::new(), StatusCode::BAD_REQUEST, "invalid_parameter"),
        ("GET", "/v1/blocks/99999999".into(), String::new(), StatusCode::NOT_FOUND, "unknown_block"),
        ("GET", "/v1/tasks?limit=0".into(), String::new(), StatusCode::BAD_REQUEST, "invalid_parameter"),
        ("GET", "/v1/tasks?colour=red".into(), String::new(), StatusCode::BAD_REQUEST, "invalid_query"),
        ("GET", "/v1/tasks?client=nobody".into(), String::new(), StatusCode::BAD_REQUEST, "invalid_parameter"),
        ("GET", format!("/v1/tasks/{}", Hash::of_bytes(b"t")), String::new(), StatusCode::NOT_FOUND, "unknown_task"),
        (
            "GET",
            format!("/v1/providers/{}", Address([1; 20])),
            String::new(),
            StatusCode::NOT_FOUND,
            "unknown_provider",
        ),
        ("GET", format!("/v1/pools/{}", Hash::of_bytes(b"p")), String::new(), StatusCode::NOT_FOUND, "unknown_pool"),
        ("GET", "/v1/events?task=nope".into(), String::new(), StatusCode::BAD_REQUEST, "invalid_parameter"),
        ("GET", "/v1/no-such-route".into(), String::new(), StatusCode::NOT_FOUND, "not_found"),
    ];
    for (method, uri, body, expected, error) in cases {
        let (status, answer) =
            if method == "POST" { api.post(&uri, &body).await } else { api.json(method, &uri, &body).await };
        assert_eq!(status, expected, "{method} {uri}: {answer}");
        assert_eq!(answer["error"], error, "{method} {uri}: {answer}");
        assert!(answer["detail"].as_str().is_some_and(|d| !d.is_empty()), "{method} {uri} says what was wrong");
    }
    let (_, account) = api.get(&format!("/v1/accounts/{}", Address::of(&client().public()))).await;
    assert_eq!(account["nonce"], 0, "nothing bad was admitted");
    let (_, status) = api.get("/v1/status").await;
    assert_eq!(status["mempool"], 0);
}

/// A GET from `client`, as the server sees it when it serves over TCP.
fn from(client: [u8; 4], uri: &str) -> Request<Body> {
    let mut request = Request::get(uri).body(Body::empty()).unwrap();
    let address = std::net::SocketAddr::from((client, 40_000));
    request.extensions_mut().insert(axum::extract::ConnectInfo(address));
    request
}

/// Finding 19: the API had no rate limit, so one client could take all of a node's
/// attention. Requests from one address beyond its allowance are refused with 429; other
/// clients are served as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_request_allowance_is_refused_and_others_are_not() {
    let api = start();
    let mut refused = 0;
    for _ in 0..1_000 {
        let response = api.router.clone().oneshot(from([10, 0, 0, 1], "/v1/params")).await.unwrap();
        match response.status() {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                assert_eq!(retry.as_deref(), Some("1"), "a refusal says when to try again");
            }
            other => panic!("{other}"),
        }
    }
    assert!(refused >= 400, "{refused} of 1000 back-to-back requests refused");
    let other = api.router.clone().oneshot(from([10, 0, 0, 2], "/v1/params")).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK, "another client is served");
}

/// Finding 19: every `/v1/events` subscriber held a task and a feed receiver, without
/// limit. Past the cap, a new stream is refused with 503 until one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_past_the_cap_are_refused_until_one_closes() {
    let api = start();
    let mut open = Vec::new();
    let refused = loop {
        // Each from its own address, so that the per-client allowance is not what stops them.
        let client = [10, 1, (open.len() / 256) as u8, (open.len() % 256) as u8];
        let response = api.router.clone().oneshot(from(client, "/v1/events")).await.unwrap();
        if response.status() != StatusCode::OK {
            break response;
        }
        open.push(response);
        assert!(open.len() <= 10_000, "10000 streams open and none refused");
    };
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = serde_json::from_slice(&to_bytes(refused.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_eq!(body["error"], "too_many_streams", "{body}");
    drop(open.pop());
    let again = api.router.clone().oneshot(from([10, 2, 0, 0], "/v1/events")).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK, "a closed stream makes room");
}

/// Finding 8: anyone could upload without limit. Each client address has an upload
/// allowance (and what nothing on chain refers to is collected: see the node's tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_upload_allowance_is_refused() {
    let api = common::start_with(ogpu_api::Limits { upload_bytes_per_hour: 1 << 20, ..Default::default() });
    let upload = |client: [u8; 4], fill: u8| {
        let mut request = Request::post("/v1/blobs").body(Body::from(vec![fill; 600 << 10])).unwrap();
        request.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((client, 1))));
        api.router.clone().oneshot(request)
    };
    assert_eq!(upload([10, 0, 0, 1], 1).await.unwrap().status(), StatusCode::CREATED);
    let refused = upload([10, 0, 0, 1], 2).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = serde_json::from_slice(&to_bytes(refused.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_eq!(body["error"], "upload_quota");
    assert_eq!(upload([10, 0, 0, 2], 3).await.unwrap().status(), StatusCode::CREATED, "another client uploads");
}

/// The explorer's pages are served at `/` with a policy that lets them load only this
/// origin's scripts; what is not embedded is a 404 in the API's own error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_is_served_at_the_root_under_a_strict_policy() {
    let api = start();
    let get = |uri: &'static str| api.router.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap());
    let page = get("/").await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    let html = String::from_utf8(to_bytes(page.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(html.contains("/assets/explorer/app.js"), "{html}");
    let script = get("/assets/explorer/app.js").await.unwrap();
    assert_eq!(
        (script.status(), &script.headers()["content-type"]),
        (StatusCode::OK, &"text/javascript; charset=utf-8".parse().unwrap())
    );
    let missing = get("/assets/explorer/nothing.js").await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_slice(&to_bytes(missing.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(body["error"], "unknown_asset");
}
