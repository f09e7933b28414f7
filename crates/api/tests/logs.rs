//! Providers' task logs through the API against a real node, with a pool job on chain
//! whose pool the provider subscribes to: the provider's signed lines are kept, read back
//! in order and streamed live, while entries from a stranger, forged, about another task,
//! oversize or malformed are refused, and a refused request keeps nothing.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Api, client, provider, start, tx};
use http_body_util::BodyExt;
use ogpu_core::spec::{DeviceKind, DeviceProfile, Market, PoolSpec, Ratio, TaskSpec, Workload, WorkloadKind};
use ogpu_core::tasklog::{LogBody, LogEntry, SignedLogEntry};
use ogpu_core::tx::{StakeRole, TxBody};
use ogpu_core::{Amount, BlobHash, Hash, PoolId, SecretKey, TaskId};
use serde_json::json;
use tower::ServiceExt;

fn pool_spec() -> PoolSpec {
    PoolSpec {
        name: "sums".into(),
        kind: WorkloadKind::Wasm,
        model: BlobHash(Hash::of_bytes(b"sum.wasm")),
        price_per_job: Amount::ogpu(1),
        verification_rate: Ratio(0),
        min_stake: Amount::ogpu(10),
    }
}

fn job(pool: PoolId) -> TaskSpec {
    TaskSpec {
        name: "sum".into(),
        workload: Workload {
            kind: WorkloadKind::Wasm,
            program: BlobHash(Hash::of_bytes(b"sum.wasm")),
            inputs: Default::default(),
            args: vec![],
            env: Default::default(),
            training: None,
            limits: Default::default(),
        },
        market: Market::Pool { pool },
        requirements: Default::default(),
        deadline_blocks: 100,
        verification: Default::default(),
        private: None,
    }
}

fn cpu() -> DeviceProfile {
    let device = ogpu_core::spec::Device { kind: DeviceKind::Cpu, model: "cpu".into(), memory_mb: 1_024, gflops: 10 };
    DeviceProfile { devices: vec![device], region: "eu".into(), reader: None }
}

/// A node with a pool job on chain whose pool `provider()` subscribes to.
async fn pool_job() -> (Api, TaskId) {
    let api = start();
    let create = tx(&client(), 0, TxBody::CreatePool { spec: pool_spec() });
    let pool = PoolId(create.hash());
    let stake = TxBody::Stake { role: StakeRole::Provider, amount: Amount::ogpu(100) };
    let setup = [create, tx(&provider(), 0, TxBody::RegisterProvider { profile: cpu() }), tx(&provider(), 1, stake)];
    finalize(&api, &setup).await;
    let submit = tx(&client(), 1, TxBody::SubmitTask { spec: job(pool) });
    let task = TaskId(submit.hash());
    finalize(&api, &[tx(&provider(), 2, TxBody::JoinPool { pool, stake: Amount::ogpu(10) }), submit]).await;
    (api, task)
}

/// A pool job on chain that `provider()` has committed a result to: it races for it.
async fn racing_job() -> (Api, TaskId) {
    let (api, task) = pool_job().await;
    let commit = TxBody::CommitResult { task, commitment: Hash::of_bytes(b"a sealed result") };
    finalize(&api, &[tx(&provider(), 3, commit)]).await;
    (api, task)
}

async fn finalize(api: &Api, txs: &[ogpu_core::Transaction]) {
    for tx in txs {
        api.submit(tx).await;
    }
    for tx in txs {
        let record = api.finalized(tx.hash()).await;
        assert_eq!(record["ok"], true, "{:?}: {record}", tx.body);
    }
}

fn line(key: &SecretKey, task: TaskId, seq: u64, text: &str) -> SignedLogEntry {
    LogEntry::sign(key, task, seq, 1_000 + seq, LogBody::Log { stream: "stdout".into(), line: text.into() })
}

fn json_of(entries: &[SignedLogEntry]) -> String {
    serde_json::to_string(entries).unwrap()
}

fn logs(task: TaskId) -> String {
    format!("/v1/tasks/{task}/logs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partys_entries_are_kept_and_read_back_in_order() {
    let (api, task) = racing_job().await;
    let p = provider();
    let step = LogBody::Step { step: 1, total: Some(3), metrics: vec![("loss".into(), 0.1 + 0.2)] };
    let first = vec![
        LogEntry::sign(&p, task, 0, 1_000, LogBody::Started),
        line(&p, task, 1, "loading model"),
        LogEntry::sign(&p, task, 2, 1_002, step),
    ];
    let (status, answer) = api.post(&logs(task), &json_of(&first)).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({ "stored": 3, "duplicates": 0 })));
    let finished = LogEntry::sign(&p, task, 3, 1_003, LogBody::Finished { output: Hash::of_bytes(b"42") });
    let retry = vec![first[2].clone(), finished.clone()];
    let (status, answer) = api.post(&logs(task), &json_of(&retry)).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({ "stored": 1, "duplicates": 1 })), "a retry is harmless");

    let (status, all) = api.get(&logs(task)).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let everything = [first.clone(), vec![finished]].concat();
    assert_eq!(all["entries"], serde_json::to_value(&everything).unwrap(), "served as signed, oldest first");
    let served: Vec<SignedLogEntry> = serde_json::from_value(all["entries"].clone()).unwrap();
    assert!(served.iter().all(|e| e.verify().is_ok()), "a client can check every signature");

    let (_, page) = api.get(&format!("{}?limit=2", logs(task))).await;
    assert_eq!(page["entries"], serde_json::to_value(&everything[..2]).unwrap());
    let (_, rest) = api.get(&format!("{}?from={}", logs(task), page["next"])).await;
    assert_eq!(rest["entries"], serde_json::to_value(&everything[2..]).unwrap());
    assert_eq!(rest["next"], all["next"]);
    let (_, nothing_new) = api.get(&format!("{}?from={}", logs(task), rest["next"])).await;
    assert_eq!(nothing_new, json!({ "entries": [], "next": rest["next"] }));

    let (_, document) = api.get("/openapi.json").await;
    let paths = &document["paths"];
    assert!(paths["/v1/tasks/{id}/logs"]["post"].is_object() && paths["/v1/tasks/{id}/logs"]["get"].is_object());
    assert!(paths["/v1/tasks/{id}/logs/stream"]["get"].is_object());
}

/// Reads the event stream until `wanted` has arrived; returns what came.
async fn read_until(body: &mut Body, wanted: &str) -> String {
    let mut text = String::new();
    while !text.contains(wanted) {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap_or_else(|_| panic!("no {wanted:?} within ten seconds; got {text:?}"))
            .expect("the stream stays open")
            .unwrap();
        text.push_str(std::str::from_utf8(&frame.into_data().unwrap()).unwrap());
    }
    text
}

/// The entries in server-sent `log` events.
fn entries_in(events: &str) -> Vec<SignedLogEntry> {
    events.lines().filter_map(|l| l.strip_prefix("data: ")).map(|data| serde_json::from_str(data).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_kept_entries_then_new_ones_as_they_come() {
    let (api, task) = racing_job().await;
    let kept = line(&provider(), task, 0, "kept before anyone listened");
    assert_eq!(api.post(&logs(task), &json_of(std::slice::from_ref(&kept))).await.0, StatusCode::OK);

    let request = Request::get(format!("{}/stream", logs(task))).body(Body::empty()).unwrap();
    let mut stream = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()[header::CONTENT_TYPE], "text/event-stream");
    let before = read_until(stream.body_mut(), "kept before").await;
    assert!(before.starts_with("event: log\nid: "), "{before}");
    assert_eq!(entries_in(&before), [kept]);

    let live = line(&provider(), task, 1, "posted while listening");
    assert_eq!(api.post(&logs(task), &json_of(std::slice::from_ref(&live))).await.0, StatusCode::OK);
    let after = read_until(stream.body_mut(), "while listening").await;
    assert_eq!(entries_in(&after), [live]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_not_from_a_party_or_not_well_formed_are_refused_and_nothing_is_kept() {
    let (api, task) = racing_job().await;
    let p = provider();
    let good = line(&p, task, 0, "fine");
    let mut forged = line(&p, task, 1, "fine");
    forged.entry.body = LogBody::Log { stream: "stdout".into(), line: "forged".into() };
    let other_task = TaskId(Hash::of_bytes(b"another task"));
    let step = |value: &str| {
        let mut signed = serde_json::to_value(LogEntry::sign(
            &p,
            task,
            2,
            0,
            LogBody::Step { step: 1, total: None, metrics: vec![("loss".into(), 1.0)] },
        ))
        .unwrap();
        signed["entry"]["body"]["metrics"][0][1] = value.into();
        format!("[{signed}]")
    };
    let many: Vec<_> = (0..257).map(|seq| LogEntry::sign(&p, task, seq, 0, LogBody::Started)).collect();
    let huge: Vec<_> = (0..300).map(|seq| line(&p, task, seq, &"x".repeat(4_096))).collect();
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "a stranger's entry",
            json_of(&[good.clone(), line(&SecretKey::from_name("stranger"), task, 0, "hi")]),
            StatusCode::FORBIDDEN,
            "not_a_party",
        ),
        ("a forged entry", json_of(&[good.clone(), forged]), StatusCode::BAD_REQUEST, "bad_signature"),
        (
            "another task's entry",
            json_of(&[good.clone(), line(&p, other_task, 1, "hi")]),
            StatusCode::BAD_REQUEST,
            "wrong_task",
        ),
        (
            "a line over 4 KiB",
            json_of(&[good.clone(), line(&p, task, 1, &"x".repeat(4_097))]),
            StatusCode::BAD_REQUEST,
            "invalid_entry",
        ),
        ("a metric that is not finite", step("NaN"), StatusCode::BAD_REQUEST, "invalid_entry"),
        ("a metric that is no number", step("low"), StatusCode::UNPROCESSABLE_ENTITY, "invalid_json"),
        ("257 entries", json_of(&many), StatusCode::BAD_REQUEST, "too_many_entries"),
        ("a body over the limit", json_of(&huge), StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ("not JSON", "[{".into(), StatusCode::BAD_REQUEST, "invalid_json"),
        (
            "an object, not an array",
            json!({ "entries": [good] }).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_json",
        ),
    ];
    for (what, body, expected, error) in cases {
        let (status, answer) = api.post(&logs(task), &body).await;
        assert_eq!((status, answer["error"].as_str()), (expected, Some(error)), "{what}: {answer}");
        assert!(answer["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what} says what was wrong");
    }
    let (status, kept) = api.get(&logs(task)).await;
    assert_eq!((status, kept), (StatusCode::OK, json!({ "entries": [], "next": 0 })), "nothing was kept");

    let unknown = TaskId(Hash::of_bytes(b"no such task"));
    let requests: Vec<(&str, String, StatusCode, &str)> = vec![
        ("POST", logs(unknown), StatusCode::NOT_FOUND, "unknown_task"),
        ("POST", "/v1/tasks/nope/logs".into(), StatusCode::BAD_REQUEST, "invalid_parameter"),
        ("GET", logs(unknown), StatusCode::NOT_FOUND, "unknown_task"),
        ("GET", format!("{}/stream", logs(unknown)), StatusCode::NOT_FOUND, "unknown_task"),
        ("GET", format!("{}?limit=0", logs(task)), StatusCode::BAD_REQUEST, "invalid_parameter"),
        ("GET", format!("{}?colour=red", logs(task)), StatusCode::BAD_REQUEST, "invalid_query"),
        ("GET", format!("{}/stream?from=soon", logs(task)), StatusCode::BAD_REQUEST, "invalid_query"),
    ];
    for (method, uri, expected, error) in requests {
        let (status, answer) = if method == "POST" {
            api.post(&uri, &json_of(std::slice::from_ref(&good))).await
        } else {
            api.get(&uri).await
        };
        assert_eq!((status, answer["error"].as_str()), (expected, Some(error)), "{method} {uri}: {answer}");
    }
}

/// Finding 11: any subscriber of a pool could post lines for every job in it. Only a live
/// task's executors, racers that committed and verifiers may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_has_not_committed_may_not_post() {
    let (api, task) = pool_job().await;
    let early = line(&provider(), task, 0, "racing, not yet committed");
    let (status, answer) = api.post(&logs(task), &json_of(std::slice::from_ref(&early))).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::FORBIDDEN, Some("not_a_party")), "{answer}");
    let commit = TxBody::CommitResult { task, commitment: Hash::of_bytes(b"a sealed result") };
    finalize(&api, &[tx(&provider(), 3, commit)]).await;
    let (status, answer) = api.post(&logs(task), &json_of(&[early])).await;
    assert_eq!(status, StatusCode::OK, "a committed racer posts: {answer}");
}
