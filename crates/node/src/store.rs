//! Durable storage in redb: finalized blocks, state snapshots, and indexes.
//!
//! Each finalized block is written in one transaction together with the finalized height
//! and, every `snapshot_every` blocks, a snapshot of the state after it. redb commits are
//! atomic and durable, so a process killed at any moment restarts from the last committed
//! block: it loads the newest snapshot, replays the blocks after it through the chain
//! rules, and checks each state root on the way.

use std::path::Path;

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use ogpu_chain::{BlockError, BlockOutcome, Event, Genesis, GenesisError, State, apply_block};
use ogpu_consensus::SigningRecord;
use ogpu_core::block::SignedHeader;
use ogpu_core::encoding::{Canonical, DecodeError};
use ogpu_core::{Address, Amount, Block, Hash, TaskId};
use redb::{Database, MultimapTableDefinition, ReadableTable, TableDefinition};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
/// Height to the block's signed header and its encoded length, so that serving a header,
/// or deciding whether to serve a block, reads a few hundred bytes rather than the block.
const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new("headers");
const HEIGHTS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("heights");
const SNAPSHOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("snapshots");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Address to `(height, index)` of every transaction it sent.
const BY_SENDER: MultimapTableDefinition<&[u8; 20], (u64, u32)> = MultimapTableDefinition::new("by_sender");
/// `(height, index)` to the hash of the transaction there.
const TX_AT: TableDefinition<(u64, u32), &[u8; 32]> = TableDefinition::new("tx_at");
/// Transaction hash to its [`TxRecord`].
const TXS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("txs");
/// Height to the block's events.
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Task to `(height, index)` of each event about it.
const BY_TASK: MultimapTableDefinition<&[u8; 32], (u64, u32)> = MultimapTableDefinition::new("by_task");
/// Address to `(height, index)` of each event naming it: awards, payments, slashes.
const BY_PARTY: MultimapTableDefinition<&[u8; 20], (u64, u32)> = MultimapTableDefinition::new("by_party");

const GENESIS_KEY: &str = "genesis";
const FINALIZED_KEY: &str = "finalized";
/// What this validator signed: see [`SigningRecord`].
const SIGNING_KEY: &str = "signing";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Db(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("stored block {height} does not apply: {source}")]
    Replay { height: u64, source: BlockError },
    #[error("genesis: {0}")]
    Genesis(#[from] GenesisError),
    #[error("this data directory holds a different chain")]
    OtherChain,
}

macro_rules! db_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}
db_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<DecodeError> for StoreError {
    fn from(e: DecodeError) -> StoreError {
        StoreError::Corrupt(e.to_string())
    }
}

/// Where a finalized transaction landed and how it went.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxRecord {
    pub height: u64,
    pub index: u32,
    pub sender: Address,
    pub nonce: u64,
    /// The fee offered; what was charged is `fee_paid`.
    pub fee: Amount,
    /// The body's kind (`transfer`, `submit_task`, ...).
    pub kind: String,
    pub fee_paid: Amount,
    /// Why the chain refused it, if it did (its fee may still have been charged).
    pub error: Option<String>,
}

pub struct Store {
    db: Database,
    snapshot_every: u64,
}

impl Store {
    /// Opens (or creates) the database and records `genesis` in a new one; an existing
    /// database must hold the same genesis.
    pub fn open(path: &Path, genesis: &Genesis, snapshot_every: u64) -> Result<Store, StoreError> {
        let db = Database::create(path)?;
        let text = genesis.to_toml();
        let write = db.begin_write()?;
        {
            let mut meta = write.open_table(META)?;
            let stored = meta.get(GENESIS_KEY)?.map(|v| v.value().to_vec());
            match stored {
                Some(bytes) if bytes != text.as_bytes() => return Err(StoreError::OtherChain),
                Some(_) => {}
                None => {
                    meta.insert(GENESIS_KEY, text.as_bytes())?;
                }
            }
            write.open_table(BLOCKS)?;
            write.open_table(HEADERS)?;
            write.open_table(HEIGHTS)?;
            write.open_table(SNAPSHOTS)?;
            write.open_multimap_table(BY_SENDER)?;
            write.open_table(TX_AT)?;
            write.open_table(TXS)?;
            write.open_table(EVENTS)?;
            write.open_multimap_table(BY_TASK)?;
            write.open_multimap_table(BY_PARTY)?;
        }
        write.commit()?;
        Ok(Store { db, snapshot_every: snapshot_every.max(1) })
    }

    pub fn finalized_height(&self) -> Result<u64, StoreError> {
        let read = self.db.begin_read()?;
        let meta = read.open_table(META)?;
        match meta.get(FINALIZED_KEY)? {
            Some(v) => Ok(u64::from_le_bytes(
                v.value().try_into().map_err(|_| StoreError::Corrupt("finalized height".into()))?,
            )),
            None => Ok(0),
        }
    }

    /// What this validator has signed, as last saved (nothing on a new store).
    pub fn signing_record(&self) -> Result<SigningRecord, StoreError> {
        let read = self.db.begin_read()?;
        let meta = read.open_table(META)?;
        let Some(bytes) = meta.get(SIGNING_KEY)? else { return Ok(SigningRecord::default()) };
        SigningRecord::try_from_slice(bytes.value()).map_err(|e| StoreError::Corrupt(format!("signing record: {e}")))
    }

    /// Saves the signing record durably; the replica signs nothing it covers before this
    /// returns.
    pub fn save_signing_record(&self, record: &SigningRecord) -> Result<(), StoreError> {
        let bytes = borsh::to_vec(record).map_err(|e| StoreError::Db(e.to_string()))?;
        let write = self.db.begin_write()?;
        write.open_table(META)?.insert(SIGNING_KEY, bytes.as_slice())?;
        write.commit()?;
        Ok(())
    }

    /// Commits a finalized block, the state after it and what it produced, atomically.
    pub fn commit(&self, block: &Block, state: &State, outcome: &BlockOutcome) -> Result<(), StoreError> {
        let height = block.header().height;
        let write = self.db.begin_write()?;
        {
            let encoded = block.encode();
            write.open_table(BLOCKS)?.insert(height, encoded.as_slice())?;
            let header =
                borsh::to_vec(&(encoded.len() as u64, &block.signed)).map_err(|e| StoreError::Db(e.to_string()))?;
            write.open_table(HEADERS)?.insert(height, header.as_slice())?;
            write.open_table(HEIGHTS)?.insert(&block.hash().0, height)?;
            let mut by_sender = write.open_multimap_table(BY_SENDER)?;
            let mut txs = write.open_table(TXS)?;
            let mut tx_at = write.open_table(TX_AT)?;
            for (index, (tx, receipt)) in block.txs.iter().zip(&outcome.receipts).enumerate() {
                let sender = tx.sender_address();
                by_sender.insert(&sender.0, (height, index as u32))?;
                tx_at.insert((height, index as u32), &receipt.tx.0)?;
                let record = TxRecord {
                    height,
                    index: index as u32,
                    sender,
                    nonce: tx.nonce,
                    fee: tx.fee,
                    kind: tx.body.kind().to_string(),
                    fee_paid: receipt.fee_paid,
                    error: receipt.result.as_ref().err().map(ToString::to_string),
                };
                txs.insert(
                    &receipt.tx.0,
                    borsh::to_vec(&record).map_err(|e| StoreError::Db(e.to_string()))?.as_slice(),
                )?;
            }
            let events = borsh::to_vec(&outcome.events).map_err(|e| StoreError::Db(e.to_string()))?;
            write.open_table(EVENTS)?.insert(height, events.as_slice())?;
            let (mut by_task, mut by_party) =
                (write.open_multimap_table(BY_TASK)?, write.open_multimap_table(BY_PARTY)?);
            for (index, event) in outcome.events.iter().enumerate() {
                let at = (height, index as u32);
                if let Some(task) = event.task() {
                    by_task.insert(&task.0.0, at)?;
                }
                for party in event.parties() {
                    by_party.insert(&party.0, at)?;
                }
            }
            if height.is_multiple_of(self.snapshot_every) {
                write.open_table(SNAPSHOTS)?.insert(height, state.encode_snapshot().as_slice())?;
            }
            write.open_table(META)?.insert(FINALIZED_KEY, height.to_le_bytes().as_slice())?;
        }
        write.commit()?;
        Ok(())
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let read = self.db.begin_read()?;
        let blocks = read.open_table(BLOCKS)?;
        let Some(bytes) = blocks.get(height)? else { return Ok(None) };
        Ok(Some(Block::decode(bytes.value())?))
    }

    /// The finalized header at `height` and the length of its block's encoding.
    pub fn header(&self, height: u64) -> Result<Option<(SignedHeader, u64)>, StoreError> {
        let read = self.db.begin_read()?;
        let Some(bytes) = read.open_table(HEADERS)?.get(height)? else { return Ok(None) };
        let (len, header) = <(u64, SignedHeader)>::try_from_slice(bytes.value())
            .map_err(|e| StoreError::Corrupt(format!("header {height}: {e}")))?;
        Ok(Some((header, len)))
    }

    pub fn height_of(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        let read = self.db.begin_read()?;
        Ok(read.open_table(HEIGHTS)?.get(&hash.0)?.map(|v| v.value()))
    }

    /// `(height, index in block)` of the transactions `sender` sent, oldest first.
    pub fn txs_by(&self, sender: &Address) -> Result<Vec<(u64, u32)>, StoreError> {
        let read = self.db.begin_read()?;
        let table = read.open_multimap_table(BY_SENDER)?;
        let mut out = Vec::new();
        for entry in table.get(&sender.0)? {
            out.push(entry?.value());
        }
        Ok(out)
    }

    /// The newest `limit` transactions `sender` sent, oldest first, each with its hash and
    /// record: small reads, no block decoded.
    pub fn sent_by(&self, sender: &Address, limit: usize) -> Result<Vec<(Hash, TxRecord)>, StoreError> {
        let mut at = self.txs_by(sender)?;
        at.drain(..at.len().saturating_sub(limit));
        let read = self.db.begin_read()?;
        let (tx_at, txs) = (read.open_table(TX_AT)?, read.open_table(TXS)?);
        let mut out = Vec::with_capacity(at.len());
        for position in at {
            let Some(hash) = tx_at.get(position)? else { continue };
            let hash = Hash(*hash.value());
            let Some(bytes) = txs.get(&hash.0)? else { continue };
            let record = TxRecord::try_from_slice(bytes.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push((hash, record));
        }
        Ok(out)
    }

    pub fn tx(&self, hash: &Hash) -> Result<Option<TxRecord>, StoreError> {
        let read = self.db.begin_read()?;
        let Some(bytes) = read.open_table(TXS)?.get(&hash.0)? else { return Ok(None) };
        Ok(Some(TxRecord::try_from_slice(bytes.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?))
    }

    /// The events of the block at `height`.
    pub fn events(&self, height: u64) -> Result<Vec<Event>, StoreError> {
        let read = self.db.begin_read()?;
        let Some(bytes) = read.open_table(EVENTS)?.get(height)? else { return Ok(Vec::new()) };
        Vec::<Event>::try_from_slice(bytes.value()).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Every event about `task`, oldest first, with the height it happened at.
    pub fn task_events(&self, task: &TaskId) -> Result<Vec<(u64, Event)>, StoreError> {
        let read = self.db.begin_read()?;
        let at: Vec<(u64, u32)> = read
            .open_multimap_table(BY_TASK)?
            .get(&task.0.0)?
            .map(|e| e.map(|v| v.value()))
            .collect::<Result<_, _>>()?;
        self.events_at(&at)
    }

    /// The newest `limit` events naming `party`, oldest first, with their heights.
    pub fn party_events(&self, party: &Address, limit: usize) -> Result<Vec<(u64, Event)>, StoreError> {
        let read = self.db.begin_read()?;
        let mut at: Vec<(u64, u32)> = read
            .open_multimap_table(BY_PARTY)?
            .get(&party.0)?
            .map(|e| e.map(|v| v.value()))
            .collect::<Result<_, _>>()?;
        at.drain(..at.len().saturating_sub(limit));
        self.events_at(&at)
    }

    fn events_at(&self, at: &[(u64, u32)]) -> Result<Vec<(u64, Event)>, StoreError> {
        let mut blocks: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
        let mut out = Vec::with_capacity(at.len());
        for (height, index) in at {
            if !blocks.contains_key(height) {
                blocks.insert(*height, self.events(*height)?);
            }
            let event = blocks[height]
                .get(*index as usize)
                .ok_or_else(|| StoreError::Corrupt(format!("event {index} of block {height} is missing")))?;
            out.push((*height, event.clone()));
        }
        Ok(out)
    }

    /// The state at the last finalized block: the newest snapshot, then the blocks after
    /// it replayed through the chain rules, each checked against its state root.
    pub fn load(&self, genesis: Genesis) -> Result<State, StoreError> {
        let finalized = self.finalized_height()?;
        let read = self.db.begin_read()?;
        let snapshots = read.open_table(SNAPSHOTS)?;
        let newest = snapshots.range(..=finalized)?.next_back().transpose()?;
        let mut state = match newest {
            Some((_, bytes)) => State::decode_snapshot(bytes.value())?,
            None => genesis.into_state()?,
        };
        let blocks = read.open_table(BLOCKS)?;
        for height in state.height + 1..=finalized {
            let bytes = blocks.get(height)?.ok_or_else(|| StoreError::Corrupt(format!("block {height} is missing")))?;
            let block = Block::decode(bytes.value())?;
            state = apply_block(&state, &block).map_err(|source| StoreError::Replay { height, source })?.0;
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogpu_chain::genesis::{Allocation, GenesisValidator};
    use ogpu_chain::propose_block;
    use ogpu_core::tx::{Transaction, TxBody};
    use ogpu_core::{Amount, SecretKey};

    fn genesis() -> Genesis {
        let alice = SecretKey::from_name("alice");
        Genesis {
            chain_id: "ogpu-test".parse().unwrap(),
            genesis_time_ms: 0,
            params: Default::default(),
            allocations: vec![Allocation { address: Address::of(&alice.public()), amount: Amount::ogpu(100) }],
            validators: vec![GenesisValidator {
                public_key: SecretKey::from_name("v").public(),
                stake: Amount::ogpu(1_000),
            }],
        }
    }

    /// Builds `count` blocks of one transfer each on top of genesis, committing each.
    fn chain(store: &Store, count: u64) -> State {
        let (alice, validator) = (SecretKey::from_name("alice"), SecretKey::from_name("v"));
        let mut state = genesis().into_state().unwrap();
        for nonce in 0..count {
            let body = TxBody::Transfer { to: Address([3; 20]), amount: Amount::ogpu(1) };
            let tx = Transaction::sign(&alice, state.chain_id.clone(), nonce, state.params.min_fee, body);
            let (block, next, outcome) = propose_block(&state, &validator, 1_000 * (nonce + 1), vec![tx]).unwrap();
            store.commit(&block, &next, &outcome).unwrap();
            state = next;
        }
        state
    }

    #[test]
    fn a_reopened_store_resumes_at_the_last_committed_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        let expected = {
            let store = Store::open(&path, &genesis(), 4).unwrap();
            chain(&store, 10)
        };
        let store = Store::open(&path, &genesis(), 4).unwrap();
        assert_eq!(store.finalized_height().unwrap(), 10);
        let loaded = store.load(genesis()).unwrap();
        assert_eq!(loaded.root(), expected.root(), "snapshot at 8, then blocks 9 and 10 replayed");
        assert_eq!(loaded.last_block, expected.last_block);
        let alice = Address::of(&SecretKey::from_name("alice").public());
        assert_eq!(store.txs_by(&alice).unwrap().len(), 10);
        let block = store.block(3).unwrap().unwrap();
        assert_eq!(store.height_of(&block.hash()).unwrap(), Some(3));
        let record = store.tx(&block.txs[0].hash()).unwrap().unwrap();
        assert_eq!((record.height, record.index, record.error), (3, 0, None));
        assert!(store.tx(&Hash::of_bytes(b"never sent")).unwrap().is_none());
    }

    #[test]
    fn a_store_refuses_another_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        Store::open(&path, &genesis(), 4).unwrap();
        let mut other = genesis();
        other.chain_id = "ogpu-other".parse().unwrap();
        assert!(matches!(Store::open(&path, &other, 4), Err(StoreError::OtherChain)));
    }
}
