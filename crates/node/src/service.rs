//! The node process: the replica, the libp2p swarm and requests from the API, driven by
//! one tokio task with the wall clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, mdns, request_response};
use ogpu_chain::{Genesis, State};
use ogpu_consensus::{Message, Params as ConsensusParams};
use ogpu_core::encoding::Canonical;
use ogpu_core::tx::{Transaction, verify_signatures};
use ogpu_core::{Address, BlobHash, Hash, SecretKey};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::blobs::{BlobError, BlobStore, BlobWriter, ChunkAnswer, ChunkRequest};
use crate::mempool::{MempoolConfig, Rejection};
use crate::net::{self, Behaviour, BehaviourEvent};
use crate::rate::{Strikes, TokenBucket};
use crate::redial::Redial;
use crate::replica::{Action, Finalized, MAX_GOSSIP_TXS, Replica, WireMessage};
use crate::store::{Store, StoreError};

/// What a node reads from its config file (TOML); every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    pub listen: String,
    pub bootstrap: Vec<String>,
    pub mdns: bool,
    /// Milliseconds a poll waits for its answers.
    pub poll_timeout_ms: u64,
    pub proposer_window_ms: u64,
    /// A block's earliest time after its parent's; it paces the chain's block-count windows.
    pub min_block_interval_ms: u64,
    pub snapshot_every: u64,
    /// Bytes a second one peer may send before its messages are dropped.
    pub peer_bytes_per_s: u64,
    /// Bytes a second of finalized headers and blocks this node reads from disk for one
    /// peer (a node catching up, or following the chain).
    pub serve_bytes_per_s: u64,
    /// Seconds an upload or transfer may stay in the blob store without anything on chain
    /// referring to it, before it is collected.
    pub blob_grace_s: u64,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            listen: "/ip4/127.0.0.1/tcp/0".into(),
            bootstrap: vec![],
            mdns: false,
            poll_timeout_ms: 500,
            proposer_window_ms: 1_000,
            min_block_interval_ms: 500,
            snapshot_every: 100,
            peer_bytes_per_s: 64 << 20,
            serve_bytes_per_s: 16 << 20,
            blob_grace_s: 3_600,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Net(#[from] net::NetError),
    #[error("{0}")]
    Start(#[from] crate::replica::StartError),
    #[error("{0}")]
    Blobs(#[from] BlobError),
    #[error("invalid address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("the node stopped: {0}")]
    Fatal(String),
}

/// What the API may ask of a running node.
pub enum Request {
    /// Transactions to admit; one verdict each, in order.
    Submit(Vec<Transaction>, oneshot::Sender<Vec<Result<Hash, Rejection>>>),
    Status(oneshot::Sender<Status>),
    /// Whether a transaction waits in the mempool.
    Pending(Hash, oneshot::Sender<bool>),
    /// Fetch a blob this node does not have from its peers, checking it against its hash.
    FetchBlob(BlobHash, oneshot::Sender<Result<(), String>>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub chain_id: String,
    pub height: u64,
    pub finalized_height: u64,
    pub validators: usize,
    pub peers: usize,
    pub mempool: usize,
    /// Transactions finalized since this node started.
    pub finalized_txs: u64,
    pub listen: Vec<String>,
}

/// A handle on a running node for the API: requests in; the finalized state, a feed of
/// finalized blocks, the store (for reads) and the blob store out.
#[derive(Clone)]
pub struct NodeHandle {
    pub requests: mpsc::Sender<Request>,
    pub finalized: watch::Receiver<Arc<State>>,
    pub feed: broadcast::Sender<Arc<Finalized>>,
    pub store: Arc<Store>,
    pub blobs: Arc<BlobStore>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn parse_addr(text: &str) -> Result<Multiaddr, NodeError> {
    text.parse()
        .map_err(|e: libp2p::multiaddr::Error| NodeError::Address { address: text.into(), reason: e.to_string() })
}

/// Where to reach each validator of the state's set: its peer id is its chain key.
fn peer_map(state: &State) -> BTreeMap<Address, PeerId> {
    state.active_set.values().filter_map(|(key, _)| Some((Address::of(key), net::peer_id_of(key)?))).collect()
}

/// Peers that sent this many bad messages are disconnected and ignored, until they have
/// had no strike for an hour.
const STRIKES: u32 = 3;
const STRIKE_MEMORY_MS: u64 = 3_600_000;

/// What a request for a finalized header or block costs a peer before anything is read,
/// so that even answers of a few hundred bytes are not free to ask for.
const STORE_READ_COST: u64 = 4 << 10;
/// Reads from the store for peers in progress at once: per peer, and in all.
const READS_PER_PEER: usize = 2;
const READS: usize = 16;

/// Who waits for a blob fetch, and what it is told.
type Waiter = oneshot::Sender<Result<(), String>>;

/// A blob being fetched from peers, one chunk at a time from one peer at a time.
struct Fetch {
    writer: BlobWriter,
    /// Peers to ask next if the current one fails.
    untried: Vec<PeerId>,
    waiters: Vec<Waiter>,
    /// The length the peer being asked announced, once it answered.
    total: Option<u64>,
    /// When the fetch gives up, whoever it is asking (ms).
    deadline_ms: u64,
    /// When to ask this peer again for the next chunk (ms), after it declined for now.
    resume: Option<(u64, PeerId)>,
    /// Declines in a row from the peer being asked.
    declined: u32,
}

impl Fetch {
    /// The chunk to ask for next: the one after those written.
    fn next_chunk(&self) -> u64 {
        self.writer.written() / crate::blobs::CHUNK_BYTES as u64
    }
}

/// Blob fetches in progress at once, at most.
const MAX_FETCHES: usize = 8;
/// A fetch gets this long, plus a second per MiB of the blob, before it fails.
const FETCH_BASE_MS: u64 = 30_000;
const FETCH_MS_PER_MIB: u64 = 1_000;
/// How long to wait before asking again a peer that declined a chunk of a blob it has been
/// serving (it is over its rate allowance), and how many declines in a row it gets before
/// the next peer is tried (the peer may have dropped the blob).
const DECLINED_RETRY_MS: u64 = 100;
const MAX_DECLINES: u32 = 50;

/// A node ready to run: see [`start`].
pub struct Service {
    node: Node,
    requests: mpsc::Receiver<Request>,
    checked: mpsc::UnboundedReceiver<Checked>,
    read: mpsc::UnboundedReceiver<Read>,
}

/// A finalized header or block read from the store for a peer, off the node's task.
struct Read {
    peer: PeerId,
    to: Address,
    answer: Option<WireMessage>,
}

/// A gossiped message awaiting gossipsub's verdict: forwarded only once accepted.
struct GossipId {
    id: gossipsub::MessageId,
    propagation_source: PeerId,
}

/// Transactions whose signatures were checked off the node's task, and who waits for them.
struct Checked {
    txs: Vec<Transaction>,
    signatures: Vec<bool>,
    from: Checking,
}

enum Checking {
    /// Relayed by a peer (the author of a gossiped message), all or nothing.
    Relay { author: PeerId, gossip: Option<GossipId> },
    /// Submitted through the API, each with its own verdict.
    Submit(oneshot::Sender<Vec<Result<Hash, Rejection>>>),
}

struct Node {
    replica: Replica,
    swarm: Swarm<Behaviour>,
    topic: gossipsub::IdentTopic,
    peers_of: BTreeMap<Address, PeerId>,
    /// Connected peers by address: how answers reach nodes outside the validator set.
    connected: BTreeMap<Address, PeerId>,
    /// The bootstrap peers dialed again while not connected.
    redial: Redial,
    timers: BTreeSet<u64>,
    strikes: Strikes<PeerId>,
    limits: HashMap<PeerId, TokenBucket>,
    peer_bytes_per_s: u64,
    finalized: watch::Sender<Arc<State>>,
    feed: broadcast::Sender<Arc<Finalized>>,
    blobs: Arc<BlobStore>,
    fetches: BTreeMap<BlobHash, Fetch>,
    chunk_requests: HashMap<OutboundRequestId, BlobHash>,
    listen: Vec<String>,
    checked: mpsc::UnboundedSender<Checked>,
    store: Arc<Store>,
    /// Per peer, what it may still have read from the store for it, and reads in progress.
    serving: HashMap<PeerId, (TokenBucket, usize)>,
    serve_bytes_per_s: u64,
    read: mpsc::UnboundedSender<Read>,
    blob_grace: Duration,
    /// When blobs were last collected, and whether a collection is running.
    collected_at: std::time::Instant,
    collecting: Arc<std::sync::atomic::AtomicBool>,
}

/// Opens the store and blob store in `data_dir` and joins the network; the node runs
/// when [`Service::run`] is awaited, and the handle is how the API talks to it.
pub fn start(
    config: NodeConfig,
    data_dir: PathBuf,
    key: SecretKey,
    genesis: Genesis,
) -> Result<(NodeHandle, Service), NodeError> {
    let store = Arc::new(Store::open(&data_dir.join("chain.redb"), &genesis, config.snapshot_every)?);
    let blobs = Arc::new(BlobStore::open(&data_dir.join("blobs"))?);
    let state = store.load(genesis)?;
    info!(height = state.height, "resuming from the store");
    let chain_id = state.chain_id.to_string();
    let params = ConsensusParams {
        poll_timeout_ms: config.poll_timeout_ms,
        proposer_window_ms: config.proposer_window_ms,
        min_block_interval_ms: config.min_block_interval_ms,
        ..ConsensusParams::default()
    };
    let mut swarm = net::build_swarm(&key, &chain_id, config.mdns)?;
    swarm.listen_on(parse_addr(&config.listen)?).map_err(|e| NodeError::Fatal(e.to_string()))?;
    let bootstrap = config.bootstrap.iter().map(|address| parse_addr(address)).collect::<Result<Vec<_>, _>>()?;
    for address in &bootstrap {
        if let Err(error) = swarm.dial(address.clone()) {
            warn!(%address, %error, "cannot dial a bootstrap peer");
        }
    }
    let redial = Redial::new(&bootstrap, now_ms());
    let peers_of = peer_map(&state);
    let (finalized, watcher) = watch::channel(Arc::new(state.clone()));
    let (feed, _) = broadcast::channel(256);
    let (requests, receiver) = mpsc::channel(1024);
    let handle =
        NodeHandle { requests, finalized: watcher, feed: feed.clone(), store: store.clone(), blobs: blobs.clone() };
    let (replica, actions) = Replica::new(key, store, state, params, MempoolConfig::default(), now_ms())?;
    let (checked, checked_receiver) = mpsc::unbounded_channel();
    let (read, read_receiver) = mpsc::unbounded_channel();
    let mut node = Node {
        replica,
        swarm,
        topic: net::topic(&chain_id),
        peers_of,
        connected: BTreeMap::new(),
        redial,
        timers: BTreeSet::new(),
        strikes: Strikes::new(STRIKES, STRIKE_MEMORY_MS),
        limits: HashMap::new(),
        peer_bytes_per_s: config.peer_bytes_per_s,
        finalized,
        feed,
        blobs,
        fetches: BTreeMap::new(),
        chunk_requests: HashMap::new(),
        listen: vec![],
        checked,
        store: handle.store.clone(),
        serving: HashMap::new(),
        serve_bytes_per_s: config.serve_bytes_per_s,
        read,
        blob_grace: Duration::from_secs(config.blob_grace_s),
        collected_at: std::time::Instant::now(),
        collecting: Arc::default(),
    };
    node.dispatch(actions)?;
    Ok((handle, Service { node, requests: receiver, checked: checked_receiver, read: read_receiver }))
}

impl Service {
    /// Runs until `shutdown` fires or the node hits a fatal error.
    pub async fn run(self, mut shutdown: oneshot::Receiver<()>) -> Result<(), NodeError> {
        let Service { mut node, mut requests, mut checked, mut read } = self;
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        loop {
            let next_timer = node.timers.first().copied();
            let until = |at: Option<u64>| {
                at.map_or(Duration::from_secs(3600), |at| Duration::from_millis(at.saturating_sub(now_ms())))
            };
            let sleep = until(next_timer);
            let next_resume = node.next_resume();
            tokio::select! {
                event = node.swarm.select_next_some() => node.on_event(event)?,
                () = tokio::time::sleep(sleep), if next_timer.is_some() => {
                    let now = now_ms();
                    node.timers.retain(|at| *at > now);
                    let actions = node.replica.tick(now);
                    node.dispatch(actions)?;
                }
                () = tokio::time::sleep(until(next_resume)), if next_resume.is_some() => node.resume_fetches(),
                Some(request) = requests.recv() => node.on_request(request)?,
                Some(done) = checked.recv() => node.on_checked(done)?,
                Some(done) = read.recv() => node.on_read(done),
                _ = housekeeping.tick() => {
                    node.expire_fetches();
                    node.forget_idle_peers();
                    node.redial_bootstrap();
                    node.collect_blobs();
                }
                _ = &mut shutdown => {
                    info!("shutting down");
                    return Ok(());
                }
            }
        }
    }
}

impl Node {
    fn dispatch(&mut self, actions: Vec<Action>) -> Result<(), NodeError> {
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    if let Some(peer) = self.peers_of.get(&to).or_else(|| self.connected.get(&to)) {
                        self.swarm.behaviour_mut().direct.send_request(peer, message.encode());
                    }
                }
                // Blocks and transactions spread by gossip, which deduplicates by content;
                // requests to everyone (a block fetch) go to each validator directly, since
                // two validators asking for the same block send the same bytes.
                Action::Broadcast(message @ (WireMessage::Block(_) | WireMessage::Txs(_))) => {
                    if let Err(error) =
                        self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), message.encode())
                    {
                        debug!(%error, "broadcast not sent");
                    }
                }
                Action::Broadcast(message) => {
                    let bytes = message.encode();
                    let me = *self.swarm.local_peer_id();
                    let peers: Vec<PeerId> = self.peers_of.values().copied().filter(|p| *p != me).collect();
                    for peer in peers {
                        self.swarm.behaviour_mut().direct.send_request(&peer, bytes.clone());
                    }
                }
                Action::SetTimer { at_ms } => {
                    self.timers.insert(at_ms);
                }
                Action::Finalized(finalized) => {
                    debug!(height = finalized.block.header().height, txs = finalized.block.txs.len(), "finalized");
                    // A new epoch may seat validators this node has never addressed.
                    let peers = peer_map(self.replica.finalized());
                    if peers != self.peers_of {
                        self.peers_of = peers;
                    }
                    let _ = self.finalized.send(Arc::new(self.replica.finalized().clone()));
                    // Nobody listening is fine: the feed is for API subscribers.
                    let _ = self.feed.send(Arc::new(*finalized));
                }
                Action::Fatal(error) => return Err(NodeError::Fatal(error)),
            }
        }
        Ok(())
    }

    fn is_struck(&self, peer: &PeerId) -> bool {
        self.strikes.is_barred(peer, now_ms())
    }

    /// Holds `why` against a peer; at [`STRIKES`] it is disconnected and ignored.
    fn strike(&mut self, peer: PeerId, why: &str) {
        let strikes = self.strikes.strike(peer, now_ms());
        warn!(%peer, strikes, "{why}");
        if strikes >= STRIKES {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Whether `peer` may have `bytes` more of this node's attention now.
    fn within_rate(&mut self, peer: PeerId, bytes: usize) -> bool {
        let now = now_ms();
        let per_s = self.peer_bytes_per_s;
        let bucket = self.limits.entry(peer).or_insert_with(|| TokenBucket::new(per_s, 2 * per_s, now));
        let allowed = bucket.take(now, bytes as u64);
        if !allowed {
            debug!(%peer, bytes, "over its rate limit; dropped");
        }
        allowed
    }

    /// Bytes from a peer, sent directly or (`gossip`) by gossipsub, which forwards a
    /// gossiped message only once it is judged here.
    fn receive(&mut self, peer: PeerId, bytes: &[u8], gossip: Option<GossipId>) -> Result<(), NodeError> {
        use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
        let verdict = if self.is_struck(&peer) || !self.within_rate(peer, bytes.len()) {
            Some(Ignore)
        } else if let Some(from) = net::address_of(&peer) {
            match WireMessage::decode(bytes) {
                Err(error) => {
                    self.strike(peer, &format!("malformed message: {error}"));
                    Some(Reject)
                }
                Ok(WireMessage::Txs(txs)) if txs.len() > MAX_GOSSIP_TXS => {
                    self.strike(peer, &format!("relayed {} transactions in one message", txs.len()));
                    Some(Reject)
                }
                Ok(WireMessage::Txs(txs)) => {
                    // Checked off this task; the verdict follows in `on_checked`.
                    self.check_off_task(txs, Checking::Relay { author: peer, gossip });
                    return Ok(());
                }
                Ok(WireMessage::Block(block)) => match self.replica.on_block(now_ms(), from, block) {
                    Some(actions) => {
                        self.dispatch(actions)?;
                        Some(Accept)
                    }
                    None => Some(Reject),
                },
                // Consensus messages and requests go to one validator, never by gossip.
                Ok(_) if gossip.is_some() => Some(Reject),
                Ok(request @ (WireMessage::GetBlock(_) | WireMessage::Consensus(Message::GetHeader { .. }))) => {
                    let (actions, answered) = self.replica.answer_from_memory(now_ms(), from, &request);
                    self.dispatch(actions)?;
                    if !answered {
                        self.read_for(peer, from, request);
                    }
                    Some(Accept)
                }
                Ok(message) => {
                    let actions = self.replica.on_message(now_ms(), from, message);
                    self.dispatch(actions)?;
                    Some(Accept)
                }
            }
        } else {
            Some(Reject)
        };
        if let (Some(gossip), Some(verdict)) = (gossip, verdict) {
            self.judge_gossip(gossip, verdict);
        }
        Ok(())
    }

    /// Reads a finalized header or block for a peer on a blocking thread, when the peer's
    /// allowance and the limits on reads in progress permit; the answer goes out from
    /// [`Self::on_read`], where its size is charged to the peer.
    fn read_for(&mut self, peer: PeerId, to: Address, request: WireMessage) {
        let in_progress: usize = self.serving.values().map(|(_, reads)| reads).sum();
        let per_s = self.serve_bytes_per_s;
        let (allowance, reads) =
            self.serving.entry(peer).or_insert_with(|| (TokenBucket::new(per_s, 2 * per_s, now_ms()), 0));
        if in_progress >= READS || *reads >= READS_PER_PEER || !allowance.take(now_ms(), STORE_READ_COST) {
            debug!(%peer, "a read from the store refused: over the peer's allowance");
            return;
        }
        *reads += 1;
        let (store, done) = (self.store.clone(), self.read.clone());
        tokio::task::spawn_blocking(move || {
            let answer = Replica::answer_from_store(&store, &request);
            let _ = done.send(Read { peer, to, answer });
        });
    }

    fn on_read(&mut self, read: Read) {
        let Read { peer, to, answer } = read;
        let Some((allowance, reads)) = self.serving.get_mut(&peer) else { return };
        *reads = reads.saturating_sub(1);
        let Some(answer) = answer else { return };
        let bytes = answer.encode();
        allowance.spend(now_ms(), bytes.len() as u64);
        if let Some(peer) = self.peers_of.get(&to).or_else(|| self.connected.get(&to)) {
            self.swarm.behaviour_mut().direct.send_request(peer, bytes);
        }
    }

    fn judge_gossip(&mut self, gossip: GossipId, verdict: gossipsub::MessageAcceptance) {
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        gossipsub.report_message_validation_result(&gossip.id, &gossip.propagation_source, verdict);
    }

    /// Checks the transactions' signatures on a blocking thread, so that a large batch
    /// does not hold up consensus; the result comes back to [`Self::on_checked`].
    fn check_off_task(&self, txs: Vec<Transaction>, from: Checking) {
        let done = self.checked.clone();
        tokio::task::spawn_blocking(move || {
            let signatures = verify_signatures(&txs.iter().collect::<Vec<_>>());
            // The node stopping is the only way to lose the answer.
            let _ = done.send(Checked { txs, signatures, from });
        });
    }

    fn on_checked(&mut self, checked: Checked) -> Result<(), NodeError> {
        let Checked { txs, signatures, from } = checked;
        match from {
            Checking::Submit(reply) => {
                let (verdicts, actions) = self.replica.submit_verified(txs, &signatures);
                let _ = reply.send(verdicts);
                self.dispatch(actions)?;
            }
            Checking::Relay { author, gossip } => {
                let verdict = if signatures.iter().all(|ok| *ok) {
                    self.replica.admit_relayed(txs, &signatures);
                    gossipsub::MessageAcceptance::Accept
                } else {
                    self.strike(author, "relayed a transaction whose signature does not verify");
                    gossipsub::MessageAcceptance::Reject
                };
                if let Some(gossip) = gossip {
                    self.judge_gossip(gossip, verdict);
                }
            }
        }
        Ok(())
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> Result<(), NodeError> {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let gossip = GossipId { id: message_id, propagation_source };
                match message.source {
                    Some(author) => self.receive(author, &message.data, Some(gossip))?,
                    None => self.judge_gossip(gossip, gossipsub::MessageAcceptance::Reject),
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Direct(request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            })) => {
                let _ = self.swarm.behaviour_mut().direct.send_response(channel, Vec::new());
                self.receive(peer, &request, None)?;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Blobs(request_response::Event::Message {
                peer, message, ..
            })) => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let answer = self.answer_chunk(peer, &request);
                    let _ = self.swarm.behaviour_mut().blobs.send_response(channel, answer.encode());
                }
                request_response::Message::Response { request_id, response } => {
                    self.on_chunk(peer, request_id, &response);
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Blobs(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            })) => {
                if let Some(hash) = self.chunk_requests.remove(&request_id) {
                    debug!(%peer, %hash, %error, "blob chunk not fetched");
                    self.next_peer(hash, format!("{peer} did not answer: {error}"));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Direct(request_response::Event::OutboundFailure {
                peer,
                error,
                ..
            })) => {
                debug!(%peer, %error, "direct message not delivered");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Direct(request_response::Event::InboundFailure {
                peer,
                error,
                ..
            })) => {
                debug!(%peer, %error, "direct message not received");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, address) in found {
                    self.swarm.behaviour_mut().kad.add_address(&peer, address.clone());
                    let _ = self.swarm.dial(address);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                for address in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, address);
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                self.redial.connected(&peer_id, now_ms());
                if let Some(address) = net::address_of(&peer_id) {
                    self.connected.insert(address, peer_id);
                }
            }
            // A peer's allowances outlive its connections (reconnecting refills nothing);
            // they are forgotten once full again.
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                if let Some(address) = net::address_of(&peer_id) {
                    self.connected.remove(&address);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.listen.push(address.to_string());
            }
            _ => {}
        }
        Ok(())
    }

    fn on_request(&mut self, request: Request) -> Result<(), NodeError> {
        match request {
            Request::Submit(txs, reply) => self.check_off_task(txs, Checking::Submit(reply)),
            Request::FetchBlob(hash, reply) => self.fetch_blob(hash, reply),
            Request::Pending(hash, reply) => {
                let _ = reply.send(self.replica.is_pending(&hash));
            }
            Request::Status(reply) => {
                let state = self.replica.finalized();
                let _ = reply.send(Status {
                    chain_id: state.chain_id.to_string(),
                    height: state.height,
                    finalized_height: state.height,
                    validators: state.active_set.len(),
                    peers: self.swarm.connected_peers().count(),
                    mempool: self.replica.mempool_len(),
                    finalized_txs: self.replica.finalized_txs(),
                    listen: self.listen.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Blob transfer: serving chunks to peers, and fetching blobs from them.
impl Node {
    fn answer_chunk(&mut self, peer: PeerId, request: &[u8]) -> ChunkAnswer {
        if self.is_struck(&peer) {
            return ChunkAnswer(None);
        }
        let Ok(ChunkRequest { hash, chunk }) = ChunkRequest::decode(request) else {
            self.strike(peer, "malformed blob chunk request");
            return ChunkAnswer(None);
        };
        // Charged a whole chunk before anything is read.
        if !self.within_rate(peer, crate::blobs::CHUNK_BYTES) {
            return ChunkAnswer(None);
        }
        match self.blobs.chunk(&hash, chunk) {
            Ok(Some((bytes, len))) => ChunkAnswer(Some((len, bytes))),
            Ok(None) => ChunkAnswer(None),
            Err(error) => {
                warn!(%hash, %error, "cannot read a blob chunk");
                ChunkAnswer(None)
            }
        }
    }

    fn stored_blob_bytes(&self) -> u64 {
        self.replica.finalized().params.stored_blob_bytes()
    }

    fn fetch_blob(&mut self, hash: BlobHash, reply: oneshot::Sender<Result<(), String>>) {
        if self.blobs.contains(&hash) {
            let _ = reply.send(Ok(()));
            return;
        }
        if let Some(fetch) = self.fetches.get_mut(&hash) {
            fetch.waiters.push(reply);
            return;
        }
        if self.fetches.len() >= MAX_FETCHES {
            let _ = reply.send(Err(format!("{MAX_FETCHES} blob fetches are in progress; try again later")));
            return;
        }
        let peers = self.swarm.connected_peers().copied().collect();
        self.try_next_peer(hash, peers, vec![reply], "no peer is connected".into());
    }

    /// Starts the fetch over from the next untried peer with an empty writer, or, when none
    /// is left, tells those waiting why it failed.
    fn try_next_peer(&mut self, hash: BlobHash, mut untried: Vec<PeerId>, waiters: Vec<Waiter>, why: String) {
        let Some(peer) = untried.pop() else {
            return answer(waiters, Err(format!("no peer could provide it; last: {why}")));
        };
        match self.blobs.writer(self.stored_blob_bytes()) {
            Ok(writer) => {
                let deadline_ms = now_ms() + FETCH_BASE_MS;
                let fetch = Fetch { writer, untried, waiters, total: None, deadline_ms, resume: None, declined: 0 };
                self.fetches.insert(hash, fetch);
                self.request_chunk(hash, peer, 0);
            }
            Err(error) => answer(waiters, Err(error.to_string())),
        }
    }

    /// The peer being asked failed (`why`): on to the next one.
    fn next_peer(&mut self, hash: BlobHash, why: String) {
        debug!(%hash, %why, "trying the next peer for a blob");
        if let Some(fetch) = self.fetches.remove(&hash) {
            self.try_next_peer(hash, fetch.untried, fetch.waiters, why);
        }
    }

    fn request_chunk(&mut self, hash: BlobHash, peer: PeerId, chunk: u64) {
        let request = ChunkRequest { hash, chunk }.encode();
        let id = self.swarm.behaviour_mut().blobs.send_request(&peer, request);
        self.chunk_requests.insert(id, hash);
    }

    fn on_chunk(&mut self, peer: PeerId, request_id: OutboundRequestId, answer_bytes: &[u8]) {
        let Some(hash) = self.chunk_requests.remove(&request_id) else { return };
        let limit = self.stored_blob_bytes();
        let Some(fetch) = self.fetches.get_mut(&hash) else { return };
        let (total, bytes) = match ChunkAnswer::decode(answer_bytes) {
            Ok(ChunkAnswer(Some(found))) => found,
            // A peer that served this blob's earlier chunks has it: it declines because this
            // node is over its rate allowance there, so ask again once that has refilled.
            Ok(ChunkAnswer(None)) if fetch.total.is_some() && fetch.declined < MAX_DECLINES => {
                fetch.declined += 1;
                fetch.resume = Some((now_ms() + DECLINED_RETRY_MS, peer));
                return;
            }
            Ok(ChunkAnswer(None)) => return self.next_peer(hash, format!("{peer} does not have it")),
            Err(error) => return self.next_peer(hash, format!("{peer} sent a malformed chunk: {error}")),
        };
        if total > limit {
            if let Some(fetch) = self.fetches.remove(&hash) {
                answer(fetch.waiters, Err(format!("the blob is {total} bytes, over the limit of {limit}")));
            }
            return;
        }
        if fetch.total.is_some_and(|announced| announced != total) {
            self.strike(peer, "changed a blob's length between chunks");
            return self.next_peer(hash, format!("{peer} announced two lengths"));
        }
        if fetch.total.is_none() {
            fetch.total = Some(total);
            fetch.deadline_ms = fetch.deadline_ms.saturating_add(total / (1 << 20) * FETCH_MS_PER_MIB);
        }
        // Every chunk but the last is whole, so a peer cannot stretch a fetch by trickling.
        let expected = (total - fetch.writer.written().min(total)).min(crate::blobs::CHUNK_BYTES as u64);
        if bytes.len() as u64 != expected {
            self.strike(peer, "sent a blob chunk of the wrong length");
            return self.next_peer(hash, format!("{peer} sent {} bytes where {expected} were due", bytes.len()));
        }
        fetch.declined = 0;
        if let Err(error) = fetch.writer.write(&bytes) {
            return self.next_peer(hash, error.to_string());
        }
        if fetch.writer.written() < total {
            let chunk = fetch.next_chunk();
            return self.request_chunk(hash, peer, chunk);
        }
        let Some(Fetch { writer, untried, waiters, .. }) = self.fetches.remove(&hash) else { return };
        match writer.finish(Some(hash)) {
            Ok(_) => answer(waiters, Ok(())),
            Err(error) => {
                self.strike(peer, "sent a corrupt blob");
                self.try_next_peer(hash, untried, waiters, error.to_string());
            }
        }
    }
}

impl Node {
    /// Every quarter of the grace period (at most every ten minutes), deletes on a blocking
    /// thread the blobs nothing on chain refers to that are older than the grace period.
    fn collect_blobs(&mut self) {
        use std::sync::atomic::Ordering;
        let every = (self.blob_grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
        if self.collected_at.elapsed() < every || self.collecting.swap(true, Ordering::SeqCst) {
            return;
        }
        self.collected_at = std::time::Instant::now();
        let (state, blobs, grace, collecting) =
            (self.replica.finalized().clone(), self.blobs.clone(), self.blob_grace, self.collecting.clone());
        tokio::task::spawn_blocking(move || {
            match blobs.collect(&crate::blobs::pinned(&state, &blobs), grace) {
                Ok((0, _)) => {}
                Ok((count, bytes)) => info!(count, bytes, "collected blobs nothing on chain refers to"),
                Err(error) => warn!(%error, "cannot collect blobs"),
            }
            collecting.store(false, Ordering::SeqCst);
        });
    }

    /// Drops per-peer allowances that have refilled completely: a full bucket is what a
    /// new one would be, so forgetting it changes nothing but the memory it takes.
    fn forget_idle_peers(&mut self) {
        let now = now_ms();
        self.limits.retain(|_, bucket| !bucket.is_full(now));
        self.serving.retain(|_, (allowance, reads)| *reads > 0 || !allowance.is_full(now));
        self.strikes.forget_old(now);
    }

    /// Dials the bootstrap peers due again: not those connected, nor those barred for
    /// what they sent.
    fn redial_bootstrap(&mut self) {
        let (swarm, strikes, now) = (&mut self.swarm, &self.strikes, now_ms());
        let due = self.redial.due(now, |peer| swarm.is_connected(peer) || strikes.is_barred(peer, now));
        for (peer, address) in due {
            let dial = DialOpts::peer_id(peer)
                .addresses(vec![address])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(error) = swarm.dial(dial) {
                debug!(%peer, %error, "bootstrap peer not dialed again");
            }
        }
    }

    /// When the next fetch that a peer declined is due to ask again (ms).
    fn next_resume(&self) -> Option<u64> {
        self.fetches.values().filter_map(|fetch| fetch.resume.map(|(at_ms, _)| at_ms)).min()
    }

    /// Asks again for the chunks whose wait is over.
    fn resume_fetches(&mut self) {
        let now = now_ms();
        let mut due = Vec::new();
        for (hash, fetch) in &mut self.fetches {
            if let Some((_, peer)) = fetch.resume.take_if(|(at_ms, _)| *at_ms <= now) {
                due.push((*hash, peer, fetch.next_chunk()));
            }
        }
        for (hash, peer, chunk) in due {
            self.request_chunk(hash, peer, chunk);
        }
    }

    /// Fails the fetches past their deadline, whichever peer they are waiting on.
    fn expire_fetches(&mut self) {
        let now = now_ms();
        let late: Vec<BlobHash> =
            self.fetches.iter().filter(|(_, fetch)| fetch.deadline_ms <= now).map(|(hash, _)| *hash).collect();
        for hash in late {
            if let Some(fetch) = self.fetches.remove(&hash) {
                self.chunk_requests.retain(|_, pending| *pending != hash);
                answer(fetch.waiters, Err(format!("{hash} was not fetched in time")));
            }
        }
    }
}

fn answer(waiters: Vec<Waiter>, result: Result<(), String>) {
    for waiter in waiters {
        let _ = waiter.send(result.clone());
    }
}
