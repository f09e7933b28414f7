//! The dashboards and the explorer in a real browser (Debian's chromium, headless, driven
//! through chromedriver) on a devnet of real processes: refused without the token and from
//! another origin; the balance to the base unit; the digits training example submitted
//! through the form, its chart gaining points live and its status reaching completed; a
//! result downloaded; the winning provider's earnings grown on its own dashboard to what
//! the chain paid; the task in the node's explorer. Screenshots of every page go to `$OGPU_SCREENSHOTS` (default
//! `target/dashboards`); `OGPU_SCREENSHOTS=docs/dashboards` refreshes the README's.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::market::{Devnet, EXAMPLES};
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use ogpu_core::Address;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, url }
    }

    async fn browser(&self, profile: &Path) -> Browser {
        let options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()), "--window-size=1280,800",
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector).capabilities(capabilities).connect(&self.url).await.unwrap()
    }
}

/// A page on another loopback port, for requests from another origin: it answers every
/// request with an empty HTML page.
fn other_origin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let page = "<!doctype html><title>elsewhere</title>";
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n", page.len());
            let _ = stream.write_all(format!("{head}{page}").as_bytes());
        }
    });
    format!("http://{address}")
}

async fn eventually<T>(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(browser: &Browser, css: &str) -> Option<String> {
    browser.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

async fn attribute(browser: &Browser, css: &str, name: &str) -> Option<String> {
    browser.find(Locator::Css(css)).await.ok()?.attr(name).await.ok()?
}

fn screenshots() -> PathBuf {
    let dir = std::env::var_os("OGPU_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboards"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// What the page's script says is unlabelled: every control needs a label a screen
/// reader reads.
async fn unlabelled_controls(browser: &Browser) -> Vec<Value> {
    let script = r#"
        return [...document.querySelectorAll('input, select, textarea, button')]
            .filter(c => !(c.labels && c.labels.length) && !c.getAttribute('aria-label'))
            .map(c => c.outerHTML);
    "#;
    match browser.execute(script, vec![]).await.unwrap() {
        Value::Array(found) => found,
        other => panic!("the label check answered {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_task_goes_from_the_form_to_a_live_chart_a_paid_result_and_the_providers_earnings() {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !common::available("chromium", present) {
        return;
    }
    // The only test of this binary: no other devnet to take turns with.
    let devnet = tokio::task::block_in_place(Devnet::start);
    let link = devnet.dashboard_link("client dashboard");
    let base = link.split("/?").next().unwrap().to_string();
    let me = Address::of(&devnet.client_key().public());
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;

    // Without the token: refused, and the page says how to get in.
    browser.goto(&format!("{base}/")).await.unwrap();
    let refused = browser.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    assert!(refused.contains("no_token"), "{refused}");

    // With it: the overview, the balance to the base unit.
    browser.goto(&link).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().as_str(), format!("{base}/"), "the token leaves the address bar");
    let account = tokio::task::block_in_place(|| devnet.client.account(&me)).unwrap();
    let shown = eventually("the balance", Duration::from_secs(30), async || {
        text(&browser, "#balance-available").await.filter(|t| !t.is_empty())
    })
    .await;
    assert_eq!(shown, account.balance.to_string());
    assert_eq!(text(&browser, "#balance-escrow").await.unwrap(), account.escrow.to_string());
    assert!(unlabelled_controls(&browser).await.is_empty(), "overview");
    screenshot(&browser, "overview").await;

    // A request from another origin carries the cookie (same site: another port of
    // 127.0.0.1) and is refused at the gate: the budget stays unset.
    let elsewhere = other_origin();
    browser.goto(&elsewhere).await.unwrap();
    let attempt = format!(
        "const done = arguments[0];
         fetch('{base}/api/budget', {{method: 'PUT', credentials: 'include', mode: 'no-cors',
             headers: {{'content-type': 'text/plain'}}, body: JSON.stringify({{budget: '1'}})}})
           .then(() => done('sent'), e => done('failed: ' + e));"
    );
    browser.execute_async(&attempt, vec![]).await.unwrap();
    browser.goto(&format!("{base}/")).await.unwrap();
    let budget: Value =
        browser.execute("return fetch('/api/me').then(r => r.json()).then(me => me.budget);", vec![]).await.unwrap();
    assert_eq!(budget, Value::Null, "another origin set nothing");

    // Each provider's earnings as its own dashboard shows them, before the task.
    let mut earned_before = Vec::new();
    for i in 0..3 {
        let link = devnet.dashboard_link(&format!("provider {i} dashboard"));
        browser.goto(&link).await.unwrap();
        let provider = browser.current_url().await.unwrap().as_str().trim_end_matches('/').to_string();
        browser.goto(&format!("{provider}/#/earnings")).await.unwrap();
        let earned = eventually("a provider's earnings", Duration::from_secs(30), async || {
            text(&browser, "#earnings-total").await.filter(|t| !t.is_empty())
        })
        .await;
        earned_before.push((provider, earned));
    }

    // Submit the digits training example through the form: the spec and its two files.
    browser.goto(&format!("{base}/#/submit")).await.unwrap();
    let files = ["digits-train.toml", "digits-train/mlp.toml", "digits-train/digits.csv.gz"]
        .map(|file| Path::new(EXAMPLES).join(file).canonicalize().unwrap().display().to_string());
    let input = eventually("the submit form", Duration::from_secs(30), async || {
        browser.find(Locator::Css("#data-files")).await.ok()
    })
    .await;
    input.send_keys(&files.join("\n")).await.unwrap();
    let reserved = eventually("the quote", Duration::from_secs(60), async || {
        attribute(&browser, "#quote", "data-reserved").await.filter(|r| !r.is_empty())
    })
    .await;
    let quoted = tokio::task::block_in_place(|| {
        let resolved = ogpu_client::spec::resolve(Path::new(&files[0])).unwrap();
        let wallet = ogpu_client::Wallet::new(devnet.client_key(), devnet.client.clone()).unwrap();
        ogpu_client::task::quote(&wallet, &resolved.spec).unwrap().reserved
    });
    assert_eq!(reserved, quoted.to_string(), "the page quotes what the SDK does");
    assert!(unlabelled_controls(&browser).await.is_empty(), "submit");
    screenshot(&browser, "submit").await;
    let submit = browser.find(Locator::Css("#submit")).await.unwrap();
    eventually("the submit button", Duration::from_secs(30), async || {
        submit.is_enabled().await.ok().filter(|enabled| *enabled)
    })
    .await;
    submit.click().await.unwrap();

    // The task's page: the chart gains points as steps arrive, then the task completes.
    let task = eventually("the task page", Duration::from_secs(60), async || {
        let url = browser.current_url().await.ok()?;
        url.fragment()?.strip_prefix("/task/").map(str::to_string)
    })
    .await;
    let points = async || attribute(&browser, "#chart", "data-points").await?.parse::<u64>().ok();
    // Every count of points the chart showed while the task ran, in order.
    let mut seen: Vec<u64> = Vec::new();
    let status = eventually("the task to complete", Duration::from_secs(180), async || {
        if let Some(now) = points().await.filter(|n| *n > 0 && seen.last() != Some(n)) {
            seen.push(now);
        }
        text(&browser, "#task-status").await.filter(|s| s == "completed" || s.starts_with("failed"))
    })
    .await;
    assert_eq!(status, "completed");
    let last = points().await.unwrap();
    assert!(seen.len() >= 2 && seen.is_sorted(), "the chart gained points as steps arrived: {seen:?}");
    let id = task.parse().unwrap();
    let steps = tokio::task::block_in_place(|| ogpu_client::TaskHandle::new(devnet.client.clone(), id).progress());
    // A step reported again (by a replica) is one point.
    let mut logged = Vec::new();
    for step in steps.unwrap() {
        let step = step.unwrap().step;
        if logged.last().is_none_or(|last| step > *last) {
            logged.push(step);
        }
    }
    assert_eq!(last, logged.len() as u64, "one point per step the provider reported");
    let download = eventually("the result's files", Duration::from_secs(60), async || {
        browser.find(Locator::Css("#files a[href$='model.safetensors']")).await.ok()
    })
    .await;
    let href = download.attr("href").await.unwrap().unwrap();
    let size: Value = browser
        .execute("return fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => b.byteLength);", vec![json!(href)])
        .await
        .unwrap();
    assert!(size.as_u64().is_some_and(|n| n > 1_000), "the trained model downloads: {size}");
    assert!(unlabelled_controls(&browser).await.is_empty(), "task");
    screenshot(&browser, "task").await;
    browser.execute("document.querySelector('#chart').scrollIntoView({block: 'start'});", vec![]).await.unwrap();
    screenshot(&browser, "task-chart").await;

    // The winner's dashboard: its earnings grew, to what its events on chain add up to.
    let winner =
        tokio::task::block_in_place(|| devnet.client.task(&id)).unwrap().events.iter().find_map(|record| match record
            .event
        {
            ogpu_chain::Event::Awarded { provider, .. } => Some(provider),
            _ => None,
        });
    let winner = winner.expect("the task was awarded");
    let index = (0..3).find(|i| devnet.provider_address(*i) == winner).expect("one of the devnet's providers won");
    let (provider, before) = &earned_before[index];
    browser.goto(&format!("{provider}/#/earnings")).await.unwrap();
    let events = tokio::task::block_in_place(|| devnet.client.provider(&winner)).unwrap().events;
    let owed = ogpu_client::ledger::earnings(winner, &events).total.to_string();
    let after = eventually("the winner's earnings to grow", Duration::from_secs(60), async || {
        text(&browser, "#earnings-total").await.filter(|t| t != before && !t.is_empty())
    })
    .await;
    assert_eq!(after, owed, "the page shows what the chain paid, to the base unit (before: {before})");
    assert!(unlabelled_controls(&browser).await.is_empty(), "provider earnings");
    screenshot(&browser, "provider-earnings").await;
    browser.goto(&format!("{provider}/#/")).await.unwrap();
    eventually("the provider's devices", Duration::from_secs(30), async || {
        browser.find(Locator::Css("#devices tbody tr")).await.ok()
    })
    .await;
    screenshot(&browser, "provider-overview").await;

    // The task in the node's explorer, which needs no token: it only reads.
    browser.goto(&format!("{}/#/task/{task}", devnet.api)).await.unwrap();
    let phase = eventually("the explorer's task page", Duration::from_secs(30), async || {
        text(&browser, "#task-phase").await.filter(|t| !t.is_empty())
    })
    .await;
    assert_eq!(phase, "done");
    screenshot(&browser, "explorer-task").await;
    browser.goto(&format!("{}/#/", devnet.api)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(unlabelled_controls(&browser).await.is_empty(), "explorer");
    screenshot(&browser, "explorer").await;

    // The other pages, and the task page at a phone's width without sideways scrolling.
    for (route, name, shown) in
        [("#/tasks", "tasks", format!("tr[data-task='{task}']")), ("#/market", "market", "#pools".into())]
    {
        browser.goto(&format!("{base}/{route}")).await.unwrap();
        eventually(name, Duration::from_secs(30), async || browser.find(Locator::Css(&shown)).await.ok()).await;
        assert!(unlabelled_controls(&browser).await.is_empty(), "{name}");
        screenshot(&browser, name).await;
    }
    // At a phone's width no page scrolls sideways (tables scroll inside their own box).
    browser.set_window_size(390, 844).await.unwrap();
    let customer = ["#/", "#/tasks", "#/submit", "#/market"].map(|route| format!("{base}/{route}"));
    let earner = ["#/", "#/work", "#/earnings"].map(|route| format!("{provider}/{route}"));
    let explorer = ["#/", "#/providers", "#/validators"].map(|route| format!("{}/{route}", devnet.api));
    let task_page = format!("{base}/#/task/{task}");
    for page in customer.iter().chain(&earner).chain(&explorer).chain([&task_page]) {
        browser.goto(page).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let wide: Value =
            browser.execute("return document.documentElement.scrollWidth - window.innerWidth;", vec![]).await.unwrap();
        assert!(
            wide.as_i64().is_some_and(|extra| extra <= 0),
            "{page}: {wide} pixels of sideways scrolling at 390 wide"
        );
    }
    screenshot(&browser, "task-phone").await;
    browser.close().await.unwrap();
}
