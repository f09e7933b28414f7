//! A devnet of real processes for market tests: 3 validators and 3 provider agents started
//! by `ogpu devnet`, the demo client's key, and what the tests read back from the API; and
//! a cheating provider run in the test's own process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ogpu_chain::Event;
use ogpu_chain::receipt::{PayReason, SlashReason};
use ogpu_chain::state::{Outcome, Phase, Task};
use ogpu_client::wallet::{Verdict, Wallet};
use ogpu_client::{Client, EventRecord};
use ogpu_core::keystore::Keystore;
use ogpu_core::tx::TxBody;
use ogpu_core::{Address, Amount, BlobHash, Hash, SecretKey, TaskId};
use ogpu_provider::{Agent, ProviderConfig};
use ogpu_runtime::Runtimes;

/// Each devnet wants the machine's cores: the tests of a binary take turns.
pub static ONE_DEVNET_AT_A_TIME: Mutex<()> = Mutex::new(());

pub const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");

/// A devnet of 3 validators and 3 providers, stopped (with every child) when dropped.
pub struct Devnet {
    child: Child,
    data: tempfile::TempDir,
    pub api: String,
    pub client: Client,
    /// Each line the devnet printed with a link in it, and the link.
    links: Arc<Mutex<Vec<(String, String)>>>,
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Reads the devnet's output to its end (so it never blocks on a full pipe), keeping each
/// line with a link in it.
fn read_links(stdout: std::process::ChildStdout) -> Arc<Mutex<Vec<(String, String)>>> {
    use std::io::BufRead;
    let links = Arc::new(Mutex::new(Vec::new()));
    let kept = links.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let link = line.split_whitespace().find(|word| word.starts_with("http://") && word.contains("token="));
            if let Some(link) = link.map(str::to_string) {
                kept.lock().unwrap().push((line, link));
            }
        }
    });
    links
}

pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Devnet {
    pub fn start() -> Devnet {
        let data = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let api = format!("http://127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ogpu"))
            .args([
                "devnet",
                "--dashboard",
                "127.0.0.1:0",
                "--validators",
                "3",
                "--providers",
                "3",
                "--api",
                &format!("127.0.0.1:{port}"),
                "--data",
            ])
            .arg(data.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let links = read_links(child.stdout.take().unwrap());
        let client = Client::new(&api).unwrap();
        let devnet = Devnet { child, data, api, client, links };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let listed = devnet.client.providers(None);
            let staked = listed
                .as_ref()
                .map_or(0, |listed| listed.providers.iter().filter(|p| p.provider.stake >= Amount::ogpu(500)).count());
            if staked == 3 {
                return devnet;
            }
            // What the chain had got to tells a stalled chain from stalled providers.
            assert!(
                Instant::now() < deadline,
                "timed out after 120 s waiting for three staked providers; the API says {:?} and {:?}",
                devnet.client.status(),
                listed.map(|listed| listed.providers)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The link, with its token, on the line the devnet printed that names `whose`
    /// (`client dashboard`, `provider 0 dashboard`).
    pub fn dashboard_link(&self, whose: &str) -> String {
        wait_for(&format!("the devnet to print the link of the {whose}"), Duration::from_secs(60), || {
            let printed = self.links.lock().unwrap();
            printed.iter().find(|(line, _)| line.contains(whose)).map(|(_, link)| link.clone())
        })
    }

    pub fn path(&self) -> &Path {
        self.data.path()
    }

    pub fn client_key(&self) -> SecretKey {
        let text = std::fs::read_to_string(self.path().join("client.key")).unwrap();
        Keystore::from_json(&text).unwrap().open("").unwrap()
    }

    pub fn provider_config(&self, i: usize) -> ProviderConfig {
        ProviderConfig::load(&self.path().join(format!("provider-{i}/provider.toml"))).unwrap()
    }

    pub fn provider_address(&self, i: usize) -> Address {
        let key = Keystore::from_json(&std::fs::read_to_string(self.provider_config(i).key).unwrap()).unwrap();
        Address::of(&key.open("").unwrap().public())
    }

    /// `ogpu` with the demo client's key and this devnet's API.
    pub fn ogpu(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ogpu"))
            .args(args)
            .env("OGPU_API", &self.api)
            .env("OGPU_KEY", self.path().join("client.key"))
            .env("OGPU_PASSWORD", "")
            .output()
            .unwrap()
    }

    pub fn task(&self, id: &TaskId) -> Task {
        self.client.task(id).unwrap().view.task
    }

    pub fn events(&self, id: &TaskId) -> Vec<Event> {
        self.task_events(id).into_iter().map(|(_, event)| event).collect()
    }

    /// The task's events with the heights they happened at.
    pub fn task_events(&self, id: &TaskId) -> Vec<(u64, Event)> {
        let events = self.client.task(id).unwrap().events;
        events.into_iter().map(|EventRecord { height, event }| (height, event)).collect()
    }

    pub fn wait_until_ended(&self, id: &TaskId, timeout: Duration) -> Outcome {
        wait_for("the task to end", timeout, || match self.task(id).phase {
            Phase::Done(outcome) => Some(outcome),
            _ => None,
        })
    }

    pub fn balance(&self, who: &Address) -> Amount {
        self.client.account(who).unwrap().balance
    }

    /// Fees `who` paid for transactions finalized above `height`.
    pub fn fees_since(&self, who: &Address, height: u64) -> Amount {
        let txs = self.client.account_txs(who).unwrap().txs;
        txs.iter()
            .filter(|t| t.height.is_some_and(|h| h > height))
            .fold(Amount::ZERO, |sum, t| sum.checked_add(t.fee.unwrap()).unwrap())
    }

    /// Why `who` was slashed, oldest first (slashes name a party, not a task).
    pub fn slashes(&self, who: &Address) -> Vec<SlashReason> {
        self.client
            .account_events(who)
            .unwrap()
            .events
            .into_iter()
            .filter_map(|h| match h.event {
                Event::Slashed { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    }

    pub fn finalized_height(&self) -> u64 {
        self.client.status().unwrap().finalized_height
    }
}

pub fn blake3_of(path: &Path) -> BlobHash {
    BlobHash(Hash::of_bytes(&std::fs::read(path).unwrap()))
}

/// Writes `spec` (TOML) into a fresh directory beside copies of the example files it names.
pub fn spec_dir(files: &[&str], spec: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        std::fs::copy(Path::new(EXAMPLES).join(file), dir.path().join(file)).unwrap();
    }
    let path = dir.path().join("task.toml");
    std::fs::write(&path, spec).unwrap();
    (dir, path)
}

pub fn submitted_id(output: &Output) -> TaskId {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("task ").and_then(|rest| rest.split(' ').next()))
        .unwrap_or_else(|| panic!("no task id in {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr)));
    TaskId(id.parse().unwrap())
}

pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn paid(events: &[Event], to: &Address, why: PayReason) -> Amount {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Paid { to: t, amount, why: w, .. } if t == to && *w == why => Some(*amount),
            _ => None,
        })
        .fold(Amount::ZERO, |sum, a| sum.checked_add(a).unwrap())
}

/// A provider agent run in this process with the runtimes a test gives it (a cheater's),
/// funded by the demo client and bidding the least so that it wins; stopped when dropped.
pub struct InProcessAgent {
    pub address: Address,
    stop: Arc<AtomicBool>,
    running: Option<JoinHandle<()>>,
    _work: tempfile::TempDir,
}

impl InProcessAgent {
    pub fn start(devnet: &Devnet, name: &str, runtimes: Runtimes) -> InProcessAgent {
        let key = SecretKey::from_name(name);
        let address = Address::of(&key.public());
        let wallet = Wallet::new(devnet.client_key(), devnet.client.clone()).unwrap();
        let funded = wallet
            .send_and_wait(TxBody::Transfer { to: address, amount: Amount::ogpu(1_000) }, Duration::from_secs(30));
        assert_eq!(funded.unwrap(), Verdict::Applied);
        let work = tempfile::tempdir().unwrap();
        let config = ProviderConfig {
            api: devnet.api.clone(),
            work_dir: work.path().to_path_buf(),
            pricing: ogpu_provider::pricing::Pricing {
                per_device_second: Amount::ZERO,
                floor: Amount::from_base_units(1),
                margin_bps: 0,
            },
            ..ProviderConfig::default()
        };
        let profile = ogpu_provider::devices::detect("local");
        let agent = Agent::start(config, key, runtimes, profile).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_agent = stop.clone();
        let running = std::thread::spawn(move || agent.run(&stop_agent));
        InProcessAgent { address, stop, running: Some(running), _work: work }
    }
}

impl Drop for InProcessAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(running) = self.running.take() {
            let _ = running.join();
        }
    }
}

/// Steps of `examples/wasm-spin.wat` that take about `wanted` on this machine now,
/// measured on the wasm runtime the providers use, so that a task's length does not rest
/// on a constant measured once on some other machine.
pub fn spin_steps_for(wanted: Duration) -> u64 {
    use ogpu_runtime::{Job, Runtime, WasmRuntime};
    const STEPS: u64 = 200_000_000;
    let program = std::fs::read(Path::new(EXAMPLES).join("wasm-spin.wat")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (inputs, output) = (dir.path().join("input"), dir.path().join("output"));
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::create_dir_all(&output).unwrap();
    let limits = ogpu_core::spec::Limits { fuel: u64::MAX / 2, memory_mb: 16, timeout_s: 600 };
    let args = [STEPS.to_string()];
    let cancel = AtomicBool::new(false);
    let job = Job {
        kind: ogpu_core::spec::WorkloadKind::Wasm,
        program: &program,
        inputs: &inputs,
        output: &output,
        args: &args,
        container: Default::default(),
        limits,
        progress: &|_| {},
        cancel: &cancel,
    };
    let started = Instant::now();
    WasmRuntime::new().unwrap().run(&job).unwrap();
    (STEPS as f64 * wanted.as_secs_f64() / started.elapsed().as_secs_f64()) as u64
}
