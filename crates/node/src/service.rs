//! The node process: the replica, the libp2p swarm and requests from the API, driven by
//! one tokio task with the wall clock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, mdns, request_response};
use ogpu_chain::{Genesis, State};
use ogpu_consensus::Params as ConsensusParams;
use ogpu_core::encoding::Canonical;
use ogpu_core::tx::Transaction;
use ogpu_core::{Address, Hash, SecretKey};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::mempool::{MempoolConfig, Rejection};
use crate::net::{self, Behaviour, BehaviourEvent};
use crate::replica::{Action, Replica, WireMessage};
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
    pub snapshot_every: u64,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            listen: "/ip4/127.0.0.1/tcp/0".into(),
            bootstrap: vec![],
            mdns: false,
            poll_timeout_ms: 500,
            proposer_window_ms: 1_000,
            snapshot_every: 100,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Net(#[from] net::NetError),
    #[error("invalid consensus parameters: {0}")]
    Consensus(#[from] ogpu_consensus::ParamsError),
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

/// A handle on a running node for the API: requests in, the finalized state out.
#[derive(Clone)]
pub struct NodeHandle {
    pub requests: mpsc::Sender<Request>,
    pub finalized: watch::Receiver<Arc<State>>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn parse_addr(text: &str) -> Result<Multiaddr, NodeError> {
    text.parse()
        .map_err(|e: libp2p::multiaddr::Error| NodeError::Address { address: text.into(), reason: e.to_string() })
}

/// Peers that sent this many undecodable messages are disconnected and ignored.
const STRIKES: u32 = 3;

struct Node {
    replica: Replica,
    swarm: Swarm<Behaviour>,
    topic: gossipsub::IdentTopic,
    peers_of: BTreeMap<Address, PeerId>,
    timers: BTreeSet<u64>,
    strikes: BTreeMap<PeerId, u32>,
    finalized: watch::Sender<Arc<State>>,
    listen: Vec<String>,
}

/// Opens the store in `data_dir`, joins the network and runs until `shutdown` fires or
/// the node hits a fatal error.
pub async fn run(
    config: NodeConfig,
    data_dir: PathBuf,
    key: SecretKey,
    genesis: Genesis,
    mut requests: mpsc::Receiver<Request>,
    finalized: watch::Sender<Arc<State>>,
    mut shutdown: oneshot::Receiver<()>,
) -> Result<(), NodeError> {
    let store = Store::open(&data_dir.join("chain.redb"), &genesis, config.snapshot_every)?;
    let state = store.load(genesis)?;
    info!(height = state.height, "resuming from the store");
    let chain_id = state.chain_id.to_string();
    let params = ConsensusParams {
        poll_timeout_ms: config.poll_timeout_ms,
        proposer_window_ms: config.proposer_window_ms,
        ..ConsensusParams::default()
    };
    let mut swarm = net::build_swarm(&key, &chain_id, config.mdns)?;
    swarm.listen_on(parse_addr(&config.listen)?).map_err(|e| NodeError::Fatal(e.to_string()))?;
    for address in &config.bootstrap {
        let address = parse_addr(address)?;
        if let Err(error) = swarm.dial(address.clone()) {
            warn!(%address, %error, "cannot dial a bootstrap peer");
        }
    }
    let peers_of = state.active_set.values().filter_map(|(k, _)| Some((Address::of(k), net::peer_id_of(k)?))).collect();
    let _ = finalized.send(Arc::new(state.clone()));
    let (replica, actions) = Replica::new(key, store, state, params, MempoolConfig::default(), now_ms())?;
    let mut node = Node {
        replica,
        swarm,
        topic: net::topic(&chain_id),
        peers_of,
        timers: BTreeSet::new(),
        strikes: BTreeMap::new(),
        finalized,
        listen: vec![],
    };
    node.dispatch(actions)?;
    loop {
        let next_timer = node.timers.first().copied();
        let sleep =
            next_timer.map_or(Duration::from_secs(3600), |at| Duration::from_millis(at.saturating_sub(now_ms())));
        tokio::select! {
            event = node.swarm.select_next_some() => node.on_event(event)?,
            () = tokio::time::sleep(sleep), if next_timer.is_some() => {
                let now = now_ms();
                node.timers.retain(|at| *at > now);
                let actions = node.replica.tick(now);
                node.dispatch(actions)?;
            }
            Some(request) = requests.recv() => node.on_request(request)?,
            _ = &mut shutdown => {
                info!("shutting down");
                return Ok(());
            }
        }
    }
}

impl Node {
    fn dispatch(&mut self, actions: Vec<Action>) -> Result<(), NodeError> {
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    if let Some(peer) = self.peers_of.get(&to) {
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
                Action::Finalized { height, hash, txs } => {
                    debug!(height, %hash, txs, "finalized");
                    let _ = self.finalized.send(Arc::new(self.replica.finalized().clone()));
                }
                Action::Fatal(error) => return Err(NodeError::Fatal(error)),
            }
        }
        Ok(())
    }

    fn receive(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), NodeError> {
        if self.strikes.get(&peer).is_some_and(|s| *s >= STRIKES) {
            return Ok(());
        }
        let Some(from) = net::address_of(&peer) else { return Ok(()) };
        match self.replica.receive(now_ms(), from, bytes) {
            Ok(actions) => self.dispatch(actions),
            Err(error) => {
                let strikes = self.strikes.entry(peer).or_default();
                *strikes += 1;
                warn!(%peer, %error, strikes = *strikes, "malformed message");
                if *strikes >= STRIKES {
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
                Ok(())
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> Result<(), NodeError> {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                if let Some(source) = message.source {
                    self.receive(source, &message.data)?;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Direct(request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            })) => {
                let _ = self.swarm.behaviour_mut().direct.send_response(channel, ());
                self.receive(peer, &request)?;
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
            Request::Submit(txs, reply) => {
                let (verdicts, actions) = self.replica.submit(txs);
                let _ = reply.send(verdicts);
                self.dispatch(actions)?;
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
