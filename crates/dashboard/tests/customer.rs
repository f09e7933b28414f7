//! The customer dashboard's JSON against a real node in the test's process: drafts that are
//! wrong say which field is wrong and reserve nothing; a complete one submits; the balance
//! shown is the node's to the base unit.

use std::net::SocketAddr;

use ogpu_chain::Genesis;
use ogpu_chain::genesis::{Allocation, GenesisValidator};
use ogpu_client::{Client, Wallet};
use ogpu_core::{Address, Amount, SecretKey};
use ogpu_dashboard::{Dashboard, Token};
use ogpu_node::service::{self, NodeConfig};
use serde_json::{Value, json};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");

fn client_key() -> SecretKey {
    SecretKey::from_name("dashboard-test-client")
}

/// A one-validator chain born now, with the client holding 100 oGPU.
fn genesis() -> Genesis {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    Genesis {
        chain_id: "ogpu-dashboard-test".parse().unwrap(),
        genesis_time_ms: now_ms,
        params: Default::default(),
        allocations: vec![Allocation { address: Address::of(&client_key().public()), amount: Amount::ogpu(100) }],
        validators: vec![GenesisValidator {
            public_key: SecretKey::from_name("dashboard-test-validator").public(),
            stake: Amount::ogpu(10_000),
        }],
    }
}

/// The dashboard as a browser on its own origin reaches it: with the cookie the link set,
/// and the origin's headers.
struct Browser {
    base: String,
    cookie: String,
    agent: ureq::Agent,
}

impl Browser {
    fn request(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("cookie", &self.cookie)
            .header("origin", &self.base)
            .header("sec-fetch-site", "same-origin");
        let mut response = match body {
            Some(bytes) => self.agent.run(builder.header("content-type", "application/json").body(bytes).unwrap()),
            None => self.agent.run(builder.body(()).unwrap()),
        }
        .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.request("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn put(&self, path: &str, bytes: impl Into<Vec<u8>>) -> (u16, Value) {
        self.request("PUT", path, Some(bytes.into()))
    }

    /// A POST without a body, as these routes take none (a body the server never reads
    /// makes it close the connection, which a client reusing it would trip over).
    fn post(&self, path: &str) -> (u16, Value) {
        self.request("POST", path, None)
    }

    fn new_draft(&self, spec: &str, files: &[&str]) -> (String, Value) {
        let (_, draft) = self.post("/api/drafts");
        let id = draft["id"].as_str().unwrap().to_string();
        let (status, mut view) = self.put(&format!("/api/drafts/{id}/spec"), spec);
        assert_eq!(status, 200, "{view}");
        for name in files {
            let bytes = std::fs::read(format!("{EXAMPLES}/{name}")).unwrap();
            let (status, next) = self.put(&format!("/api/drafts/{id}/files/{name}"), bytes);
            assert_eq!(status, 200, "{next}");
            view = next;
        }
        (id, view)
    }
}

fn first_error_field(view: &Value) -> &str {
    view["errors"][0]["field"].as_str().unwrap_or_else(|| panic!("no error in {view}"))
}

/// A one-validator node and its API in this process, and a customer dashboard for the
/// client on it; the node stops when the returned guard drops.
struct Running {
    _data: tempfile::TempDir,
    _stop_node: tokio::sync::oneshot::Sender<()>,
    client: Client,
    browser: Browser,
}

async fn start() -> Running {
    let data = tempfile::tempdir().unwrap();
    let key = SecretKey::from_name("dashboard-test-validator");
    let config = NodeConfig { min_block_interval_ms: 100, ..NodeConfig::default() };
    std::fs::create_dir(data.path().join("node")).unwrap();
    let (handle, node) = service::start(config, data.path().join("node"), key, genesis()).unwrap();
    let (stop_node, shutdown) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(node.run(shutdown));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, ogpu_api::router(handle)).await });

    let client = Client::new(&api).unwrap();
    let wallet = {
        let client = client.clone();
        tokio::task::spawn_blocking(move || Wallet::new(client_key(), client).unwrap()).await.unwrap()
    };
    let token = Token::generate().unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let dashboard = Dashboard::customer(listen, wallet, data.path().join("dashboard"), token.clone()).await.unwrap();
    let base = dashboard.url().split("/?").next().unwrap().to_string();
    let port = base.rsplit(':').next().unwrap().to_string();
    tokio::spawn(dashboard.serve(std::future::pending()));
    // A connection per request: the server closes one whose request body it refused
    // unread (a bad file name), as servers may, and the tests are not about reuse.
    let config = ureq::Agent::config_builder().http_status_as_error(false).max_idle_connections(0);
    let agent: ureq::Agent = config.build().into();
    let browser = Browser { base, cookie: format!("ogpu_dashboard_{port}={}", token.as_str()), agent };
    Running { _data: data, _stop_node: stop_node, client, browser }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_name_the_wrong_field_reserve_nothing_and_a_complete_one_submits() {
    let Running { _data, _stop_node, client, browser } = start().await;
    tokio::task::spawn_blocking(move || {
        let me = Address::of(&client_key().public());
        let before = client.account(&me).unwrap();
        let spec = std::fs::read_to_string(format!("{EXAMPLES}/wasm-sum.toml")).unwrap();
        let files = ["wasm-sum.wat", "numbers.txt"];

        let (_, view) = browser.new_draft("name = \"broken", &[]);
        assert_eq!(first_error_field(&view), "spec", "{view}");

        let free = spec.replace("max_price = \"0.01\"", "max_price = \"0\"");
        let (_, view) = browser.new_draft(&free, &files);
        assert_eq!(first_error_field(&view), "market.max_price", "a price of 0: {view}");

        let dear = spec.replace("max_price = \"0.01\"", "max_price = \"50\"");
        let (id, view) = browser.new_draft(&dear, &files);
        assert_eq!(first_error_field(&view), "market.max_price", "more than the balance: {view}");
        let (status, refused) = browser.post(&format!("/api/drafts/{id}/submit"));
        assert_eq!((status, refused["field"].as_str()), (400, Some("market.max_price")), "{refused}");

        let (id, view) = browser.new_draft(&spec, &["wasm-sum.wat"]);
        assert_eq!(view["missing"], json!(["numbers.txt"]));
        assert!(view["quote"].is_null(), "no quote before every file is there");
        let (status, refused) = browser.post(&format!("/api/drafts/{id}/submit"));
        assert_eq!((status, refused["field"].as_str()), (400, Some("files")), "{refused}");

        let (id, view) = browser.new_draft(&spec, &["wasm-sum.wat", "numbers.txt", "digits-train.toml"]);
        assert_eq!(first_error_field(&view), "files", "a file the spec does not name: {view}");
        let (status, refused) = browser.post(&format!("/api/drafts/{id}/submit"));
        assert_eq!(status, 400, "{refused}");
        let (status, _) = browser.put(&format!("/api/drafts/{id}/files/..%2Fescape"), "x");
        assert_eq!(status, 400, "a name that is not a plain file name");

        let after = client.account(&me).unwrap();
        assert_eq!(after, before, "nothing reserved, nothing spent");
        assert!(browser.get("/api/tasks")["tasks"].as_array().unwrap().is_empty());

        // The extra file taken out, the same draft submits.
        let (status, view) = browser.request("DELETE", &format!("/api/drafts/{id}/files/digits-train.toml"), None);
        assert_eq!(status, 200, "{view}");
        assert!(view["errors"].as_array().unwrap().is_empty(), "{view}");
        let reserved = view["quote"]["reserved"].as_str().unwrap().to_string();
        assert_eq!(reserved, "0.0351", "wasm-sum's reservation, as `spec check` gives it");
        let (status, submitted) = browser.post(&format!("/api/drafts/{id}/submit"));
        assert_eq!(status, 200, "{submitted}");
        let task = submitted["task"].as_str().unwrap().to_string();

        let rows = browser.get("/api/tasks");
        assert_eq!(rows["tasks"][0]["id"], task.as_str());
        assert_eq!(rows["tasks"][0]["cost"], reserved.as_str(), "while it runs, its cost is what it holds");
        let page = browser.get(&format!("/api/tasks/{task}"));
        assert_eq!(page["timeline"][0]["event"], "submitted");
        let shown = browser.get("/api/me");
        let account = client.account(&me).unwrap();
        assert_eq!(shown["balance"]["available"], account.balance.to_string(), "to the base unit");
        assert_eq!(shown["balance"]["escrow"], account.escrow.to_string());
        assert_eq!(shown["spent"], reserved.as_str());

        // A budget is an amount; anything else is refused at its field.
        let (status, refused) = browser.put("/api/budget", json!({ "budget": "ten" }).to_string());
        assert_eq!((status, refused["field"].as_str()), (400, Some("budget")));
        let (status, _) = browser.put("/api/budget", json!({ "budget": "0.04" }).to_string());
        assert_eq!(status, 200);
        assert_eq!(browser.get("/api/me")["budget"], "0.04");
    })
    .await
    .unwrap();
}

/// A page that follows a task's steps holds one of a few places, each a stream to the
/// node. Pages closed while the task runs on gave none back until the task ended (hours,
/// for a training run), so a user who opened a few task pages was refused the next one.
/// A reader now notices its page has gone at the node stream's next keep-alive (15 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_task_pages_give_their_place_back_while_the_task_runs_on() {
    let Running { _data, _stop_node, client: _, browser } = start().await;
    tokio::task::spawn_blocking(move || {
        // An auction open for 1,000 blocks (100 s here) that nobody bids on: it runs on.
        let spec = std::fs::read_to_string(format!("{EXAMPLES}/wasm-sum.toml")).unwrap();
        let spec = spec.replace("bid_window = 3", "bid_window = 1000");
        let (id, view) = browser.new_draft(&spec, &["wasm-sum.wat", "numbers.txt"]);
        assert!(view["errors"].as_array().unwrap().is_empty(), "{view}");
        let (status, submitted) = browser.post(&format!("/api/drafts/{id}/submit"));
        assert_eq!(status, 200, "{submitted}");
        let steps = format!("{}/api/tasks/{}/steps", browser.base, submitted["task"].as_str().unwrap());
        let open = || {
            let request = ureq::http::Request::get(&steps).header("cookie", &browser.cookie).body(()).unwrap();
            browser.agent.run(request).unwrap().status().as_u16()
        };
        // Every place taken by a page that closes as soon as it has its answer.
        let mut taken = 0;
        while open() == 200 {
            taken += 1;
            assert!(taken <= 64, "the readers have a limit");
        }
        let started = std::time::Instant::now();
        while open() != 200 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(40),
                "none of {taken} closed pages gave its place back within 40 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    })
    .await
    .unwrap();
}
