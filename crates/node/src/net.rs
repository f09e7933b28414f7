//! The libp2p transport: Noise over TCP with yamux; gossipsub for blocks, proposals and
//! transactions; request-response for messages to one validator (polls, chits, fetches);
//! request-response for blob chunks; identify and Kademlia to find peers, mDNS on a devnet.
//!
//! A validator's libp2p identity is its ed25519 chain key, so a peer id names a validator
//! address directly and a message's sender is authenticated by the transport (direct
//! messages) or by gossipsub's signature (broadcasts). Frames are bounded before they are
//! read; what is inside is decoded, and judged, by the replica.

use std::io;
use std::time::Duration;

use async_trait::async_trait;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{PeerId, StreamProtocol, Swarm, identify, identity, kad, mdns, noise, tcp, yamux};
use ogpu_core::{Address, PublicKey, SecretKey};

/// The largest frame a peer may send: a full block and some room.
pub const MAX_FRAME: usize = 17 * 1024 * 1024;
const WIRE_PROTOCOL: StreamProtocol = StreamProtocol::new("/ogpu/wire/1");
const BLOB_PROTOCOL: StreamProtocol = StreamProtocol::new("/ogpu/blob/1");

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub gossipsub: gossipsub::Behaviour,
    pub direct: request_response::Behaviour<FrameCodec>,
    /// Blob chunks: a request names a blob and a chunk, the answer carries it.
    pub blobs: request_response::Behaviour<FrameCodec>,
    pub identify: identify::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Length-prefixed frames both ways: a request and its answer. Messages to a validator
/// are answered with an empty frame, an acknowledgement; blob chunk requests with the chunk.
#[derive(Debug, Clone, Default)]
pub struct FrameCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes is over the limit")));
    }
    let mut frame = vec![0u8; len];
    io.read_exact(&mut frame).await?;
    Ok(frame)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, frame: &[u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(frame).await?;
    io.close().await
}

#[async_trait]
impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        frame: Vec<u8>,
    ) -> io::Result<()> {
        write_frame(io, &frame).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        frame: Vec<u8>,
    ) -> io::Result<()> {
        write_frame(io, &frame).await
    }
}

/// The libp2p identity of a chain key.
pub fn identity_of(key: &SecretKey) -> identity::Keypair {
    let mut seed = *key.seed();
    identity::Keypair::ed25519_from_bytes(&mut seed).expect("any 32 bytes are an ed25519 secret key")
}

pub fn peer_id_of(key: &PublicKey) -> Option<PeerId> {
    let public = identity::ed25519::PublicKey::try_from_bytes(&key.0).ok()?;
    Some(identity::PublicKey::from(public).to_peer_id())
}

/// The chain address behind a peer id, when the peer uses an ed25519 identity.
pub fn address_of(peer: &PeerId) -> Option<Address> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let public = identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let bytes = public.try_into_ed25519().ok()?.to_bytes();
    Some(Address::of(&PublicKey(bytes)))
}

/// The topic on which a chain's blocks, proposals and transactions are broadcast.
pub fn topic(chain_id: &str) -> IdentTopic {
    IdentTopic::new(format!("ogpu/{chain_id}/wire/1"))
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network setup: {0}")]
    Setup(String),
}

fn setup(e: impl std::fmt::Display) -> NetError {
    NetError::Setup(e.to_string())
}

pub fn build_swarm(key: &SecretKey, chain_id: &str, use_mdns: bool) -> Result<Swarm<Behaviour>, NetError> {
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity_of(key))
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(setup)?
        .with_behaviour(|keypair| {
            let peer_id = keypair.public().to_peer_id();
            let gossip_config = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(500))
                .validation_mode(ValidationMode::Strict)
                // Nothing is forwarded before the node has judged it (see `service`).
                .validate_messages()
                .max_transmit_size(MAX_FRAME)
                .mesh_n_low(1)
                .mesh_outbound_min(0)
                .message_id_fn(|message| gossipsub::MessageId::from(blake3::hash(&message.data).as_bytes().to_vec()))
                .build()
                .map_err(|e| e.to_string())?;
            let gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Signed(keypair.clone()), gossip_config)?;
            let direct = request_response::Behaviour::with_codec(
                FrameCodec,
                [(WIRE_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            );
            let blobs = request_response::Behaviour::with_codec(
                FrameCodec,
                [(BLOB_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
            );
            let identify = identify::Behaviour::new(identify::Config::new("/ogpu/1".into(), keypair.public()));
            let kad = kad::Behaviour::new(peer_id, kad::store::MemoryStore::new(peer_id));
            let mdns =
                if use_mdns { Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)?) } else { None };
            Ok(Behaviour { gossipsub, direct, blobs, identify, kad, mdns: mdns.into() })
        })
        .map_err(setup)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    swarm.behaviour_mut().gossipsub.subscribe(&topic(chain_id)).map_err(setup)?;
    Ok(swarm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_id_names_the_validator_address() {
        let key = SecretKey::from_name("validator-0");
        let peer = identity_of(&key).public().to_peer_id();
        assert_eq!(peer_id_of(&key.public()), Some(peer));
        assert_eq!(address_of(&peer), Some(Address::of(&key.public())));
        assert_eq!(address_of(&PeerId::random()), None);
    }
}
