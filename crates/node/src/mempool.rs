//! Pending transactions waiting for a block.
//!
//! Each sender's transactions wait in nonce order; blocks take the best-paying ready
//! transaction across senders first. The pool is bounded in total and per sender: when
//! full, a better-paying transaction evicts the worst-paying one, and anything refused
//! gets a reason the submitter can act on.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ogpu_chain::State;
use ogpu_chain::VerifiedSignatures;
use ogpu_core::encoding::{Canonical, DecodeError};
use ogpu_core::tx::{Transaction, verify_signatures};
use ogpu_core::{Address, Amount, ChainId, Hash};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolConfig {
    pub max_txs: usize,
    pub max_per_sender: usize,
    /// How far past an account's next nonce a transaction may wait.
    pub max_nonce_gap: u64,
}

impl Default for MempoolConfig {
    fn default() -> MempoolConfig {
        MempoolConfig { max_txs: 100_000, max_per_sender: 256, max_nonce_gap: 256 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed transaction: {0}")]
    Malformed(#[from] DecodeError),
    #[error("transaction is for chain {got}, this node runs {expected}")]
    WrongChain { expected: ChainId, got: ChainId },
    #[error("the signature does not verify")]
    BadSignature,
    #[error("nonce {got} is already used; the account's next nonce is {next}")]
    NonceUsed { next: u64, got: u64 },
    #[error("nonce {got} is too far ahead of the account's next nonce {next}")]
    NonceTooFarAhead { next: u64, got: u64 },
    #[error("fee {got:?} is below the minimum {min:?}")]
    FeeTooLow { min: Amount, got: Amount },
    #[error("the sender's balance {balance:?} cannot pay the fee {fee:?}")]
    CannotPayFee { balance: Amount, fee: Amount },
    #[error("the transaction is already pending")]
    Duplicate,
    #[error("a transaction with this nonce is pending; a replacement must pay at least {min:?}")]
    ReplacementUnderpriced { min: Amount },
    #[error("the sender has {0} transactions pending, the most allowed")]
    SenderFull(usize),
    #[error("the pool is full; a fee above {min:?} is needed to get in")]
    PoolFull { min: Amount },
}

#[derive(Debug, Clone)]
struct Entry {
    tx: Transaction,
    hash: Hash,
    seq: u64,
}

/// The key that orders transactions for eviction: lowest fee, then newest, first.
type EvictionKey = (Amount, std::cmp::Reverse<u64>, Address, u64);

/// Only transactions whose signatures verified get in, so a block's transactions found
/// here need no second check.
impl VerifiedSignatures for Mempool {
    fn verified(&self, tx: &Hash) -> bool {
        self.contains(tx)
    }
}

#[derive(Debug, Default)]
pub struct Mempool {
    config: MempoolConfig,
    by_sender: BTreeMap<Address, BTreeMap<u64, Entry>>,
    by_fee: BTreeSet<EvictionKey>,
    by_hash: HashMap<Hash, (Address, u64)>,
    seq: u64,
}

impl Mempool {
    pub fn new(config: MempoolConfig) -> Mempool {
        Mempool { config, ..Mempool::default() }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Decodes and admits a transaction as it arrives from a peer or the API.
    pub fn insert_bytes(&mut self, bytes: &[u8], state: &State) -> Result<Hash, Rejection> {
        self.insert(Transaction::decode(bytes)?, state)
    }

    /// Admits a transaction that could run on top of `state`, or says why not.
    pub fn insert(&mut self, tx: Transaction, state: &State) -> Result<Hash, Rejection> {
        self.insert_many(vec![tx], state).pop().unwrap_or(Err(Rejection::Duplicate))
    }

    /// Admits many transactions, checking their signatures in one batch; each gets its
    /// own verdict, in order.
    pub fn insert_many(&mut self, txs: Vec<Transaction>, state: &State) -> Vec<Result<Hash, Rejection>> {
        let signatures = verify_signatures(&txs.iter().collect::<Vec<_>>());
        self.insert_verified(txs, &signatures, state)
    }

    /// Admits many transactions whose signatures were checked elsewhere (off the node's
    /// task): `signatures[i]` says whether `txs[i]`'s verified. Each gets its own verdict.
    pub fn insert_verified(
        &mut self,
        txs: Vec<Transaction>,
        signatures: &[bool],
        state: &State,
    ) -> Vec<Result<Hash, Rejection>> {
        txs.into_iter()
            .zip(signatures.iter().copied().chain(std::iter::repeat(false)))
            .map(|(tx, signature_ok)| {
                let hash = tx.hash();
                if self.by_hash.contains_key(&hash) {
                    return Err(Rejection::Duplicate);
                }
                self.check(&tx, state)?;
                if !signature_ok {
                    return Err(Rejection::BadSignature);
                }
                self.admit(tx, hash)
            })
            .collect()
    }

    /// Admits a transaction whose signature verified and that passed `check`.
    fn admit(&mut self, tx: Transaction, hash: Hash) -> Result<Hash, Rejection> {
        if self.by_hash.contains_key(&hash) {
            return Err(Rejection::Duplicate);
        }
        let sender = tx.sender_address();
        let queued = self.by_sender.get(&sender).map_or(0, BTreeMap::len);
        if let Some(pending) = self.by_sender.get(&sender).and_then(|q| q.get(&tx.nonce)) {
            // Replacing a pending transaction costs at least a tenth more in fee.
            let min = pending.tx.fee.checked_add(pending.tx.fee.bps(1_000)).unwrap_or(pending.tx.fee);
            if tx.fee < min {
                return Err(Rejection::ReplacementUnderpriced { min });
            }
            self.remove(&sender, tx.nonce);
        } else if queued >= self.config.max_per_sender {
            return Err(Rejection::SenderFull(queued));
        } else if self.len() >= self.config.max_txs {
            self.evict_for(tx.fee)?;
        }
        self.seq += 1;
        self.by_fee.insert((tx.fee, std::cmp::Reverse(self.seq), sender, tx.nonce));
        self.by_hash.insert(hash, (sender, tx.nonce));
        self.by_sender.entry(sender).or_default().insert(tx.nonce, Entry { tx, hash, seq: self.seq });
        Ok(hash)
    }

    /// Everything but the signature, which is checked in batches.
    fn check(&self, tx: &Transaction, state: &State) -> Result<(), Rejection> {
        if tx.chain_id != state.chain_id {
            return Err(Rejection::WrongChain { expected: state.chain_id.clone(), got: tx.chain_id.clone() });
        }
        let min = state.params.min_fee;
        if tx.fee < min {
            return Err(Rejection::FeeTooLow { min, got: tx.fee });
        }
        let account = state.account(&tx.sender_address());
        if tx.nonce < account.nonce {
            return Err(Rejection::NonceUsed { next: account.nonce, got: tx.nonce });
        }
        if tx.nonce > account.nonce + self.config.max_nonce_gap {
            return Err(Rejection::NonceTooFarAhead { next: account.nonce, got: tx.nonce });
        }
        if account.balance < tx.fee {
            return Err(Rejection::CannotPayFee { balance: account.balance, fee: tx.fee });
        }
        Ok(())
    }

    /// Makes room by evicting the worst-paying transaction, if `fee` beats it.
    fn evict_for(&mut self, fee: Amount) -> Result<(), Rejection> {
        let Some(&(worst_fee, _, sender, nonce)) = self.by_fee.iter().next() else { return Ok(()) };
        if fee <= worst_fee {
            return Err(Rejection::PoolFull { min: worst_fee });
        }
        self.remove(&sender, nonce);
        Ok(())
    }

    fn remove(&mut self, sender: &Address, nonce: u64) {
        let Some(queue) = self.by_sender.get_mut(sender) else { return };
        if let Some(entry) = queue.remove(&nonce) {
            self.by_hash.remove(&entry.hash);
            self.by_fee.remove(&(entry.tx.fee, std::cmp::Reverse(entry.seq), *sender, nonce));
        }
        if queue.is_empty() {
            self.by_sender.remove(sender);
        }
    }

    /// Up to `max` transactions that can run in order on top of `state`: each sender's in
    /// nonce order from its next nonce, the best-paying sender's next transaction first.
    pub fn select(&self, state: &State, max: usize) -> Vec<Transaction> {
        let mut cursors: BTreeMap<Address, u64> = BTreeMap::new();
        let mut ready: BTreeSet<(std::cmp::Reverse<Amount>, u64, Address)> = BTreeSet::new();
        for (sender, queue) in &self.by_sender {
            let next = state.account(sender).nonce;
            if let Some(entry) = queue.get(&next) {
                ready.insert((std::cmp::Reverse(entry.tx.fee), entry.seq, *sender));
                cursors.insert(*sender, next);
            }
        }
        let mut picked = Vec::with_capacity(max.min(self.len()));
        while picked.len() < max {
            let Some((_, _, sender)) = ready.pop_first() else { break };
            let nonce = cursors[&sender];
            let queue = &self.by_sender[&sender];
            picked.push(queue[&nonce].tx.clone());
            if let Some(entry) = queue.get(&(nonce + 1)) {
                ready.insert((std::cmp::Reverse(entry.tx.fee), entry.seq, sender));
                cursors.insert(sender, nonce + 1);
            }
        }
        picked
    }

    /// Drops what a new state has made stale: used nonces and unaffordable fees.
    pub fn prune(&mut self, state: &State) {
        let stale: Vec<(Address, u64)> = self
            .by_sender
            .iter()
            .flat_map(|(sender, queue)| {
                let account = state.account(sender);
                queue
                    .iter()
                    .filter(move |(nonce, entry)| **nonce < account.nonce || entry.tx.fee > account.balance)
                    .map(move |(nonce, _)| (*sender, *nonce))
            })
            .collect();
        for (sender, nonce) in stale {
            self.remove(&sender, nonce);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogpu_chain::Genesis;
    use ogpu_chain::genesis::{Allocation, GenesisValidator};
    use ogpu_core::SecretKey;
    use ogpu_core::tx::TxBody;

    fn state(funded: &[&SecretKey]) -> State {
        Genesis {
            chain_id: "ogpu-test".parse().unwrap(),
            genesis_time_ms: 0,
            params: Default::default(),
            allocations: funded
                .iter()
                .map(|k| Allocation { address: Address::of(&k.public()), amount: Amount::ogpu(10) })
                .collect(),
            validators: vec![GenesisValidator {
                public_key: SecretKey::from_name("v").public(),
                stake: Amount::ogpu(1_000),
            }],
        }
        .into_state()
        .unwrap()
    }

    /// A transfer paying `fee_thousandths` thousandths of an oGPU.
    fn tx(key: &SecretKey, nonce: u64, fee_thousandths: u128) -> Transaction {
        let body = TxBody::Transfer { to: Address([1; 20]), amount: Amount::from_base_units(1) };
        let fee = Amount::from_base_units(fee_thousandths * 10u128.pow(15));
        Transaction::sign(key, "ogpu-test".parse().unwrap(), nonce, fee, body)
    }

    #[test]
    fn blocks_take_senders_in_nonce_order_and_the_best_fee_first() {
        let (a, b) = (SecretKey::from_name("a"), SecretKey::from_name("b"));
        let s = state(&[&a, &b]);
        let mut pool = Mempool::default();
        for t in [tx(&a, 1, 9), tx(&a, 0, 1), tx(&b, 0, 5), tx(&b, 1, 2)] {
            pool.insert(t, &s).unwrap();
        }
        let picked: Vec<(u64, u64)> =
            pool.select(&s, 10).iter().map(|t| (u64::from(t.sender == b.public()), t.nonce)).collect();
        assert_eq!(picked, vec![(1, 0), (1, 1), (0, 0), (0, 1)], "b pays more up front; a's nonce 1 waits for nonce 0");
        assert_eq!(pool.select(&s, 2).len(), 2);
    }

    #[test]
    fn refusals_name_the_reason() {
        let a = SecretKey::from_name("a");
        let poor = SecretKey::from_name("poor");
        let s = state(&[&a]);
        let mut pool = Mempool::new(MempoolConfig { max_txs: 2, max_per_sender: 2, max_nonce_gap: 4 });
        let first = tx(&a, 0, 1);
        pool.insert(first.clone(), &s).unwrap();
        assert_eq!(pool.insert(first, &s), Err(Rejection::Duplicate));
        let replacement =
            Transaction::sign(&a, chain_id(), 0, Amount::from_base_units(105 * 10u128.pow(13)), transfer());
        assert!(matches!(pool.insert(replacement, &s), Err(Rejection::ReplacementUnderpriced { .. })));
        assert!(matches!(pool.insert(tx(&a, 9, 1), &s), Err(Rejection::NonceTooFarAhead { next: 0, got: 9 })));
        assert!(matches!(pool.insert(tx(&poor, 0, 1), &s), Err(Rejection::CannotPayFee { .. })));
        let mut forged = tx(&a, 1, 1);
        forged.signature.0[0] ^= 1;
        assert_eq!(pool.insert(forged, &s), Err(Rejection::BadSignature));
        let low = Transaction { fee: Amount::from_base_units(1), ..tx(&a, 1, 1) };
        assert!(matches!(pool.insert(low, &s), Err(Rejection::FeeTooLow { .. })));
        assert!(matches!(pool.insert_bytes(&[1, 2, 3], &s), Err(Rejection::Malformed(_))));
        pool.insert(tx(&a, 1, 1), &s).unwrap();
        assert_eq!(pool.insert(tx(&a, 2, 5), &s), Err(Rejection::SenderFull(2)));
    }

    #[test]
    fn a_batch_admits_the_good_and_names_each_bad_one() {
        let a = SecretKey::from_name("a");
        let s = state(&[&a]);
        let mut pool = Mempool::default();
        let mut forged = tx(&a, 1, 1);
        forged.signature.0[0] ^= 1;
        let verdicts = pool.insert_many(vec![tx(&a, 0, 1), forged.clone(), tx(&a, 2, 1), tx(&a, 0, 1)], &s);
        assert!(verdicts[0].is_ok() && verdicts[2].is_ok(), "{verdicts:?}");
        assert_eq!(verdicts[1], Err(Rejection::BadSignature));
        assert_eq!(verdicts[3], Err(Rejection::Duplicate), "a repeat within one batch");
        assert!(!pool.verified(&forged.hash()), "only checked signatures are vouched for");
        assert!(pool.verified(&tx(&a, 2, 1).hash()));
    }

    #[test]
    fn a_full_pool_evicts_the_worst_fee_for_a_better_one() {
        let keys: Vec<SecretKey> = (0..3).map(|i| SecretKey::from_name(&format!("k{i}"))).collect();
        let s = state(&keys.iter().collect::<Vec<_>>());
        let mut pool = Mempool::new(MempoolConfig { max_txs: 2, ..MempoolConfig::default() });
        let cheap = pool.insert(tx(&keys[0], 0, 1), &s).unwrap();
        pool.insert(tx(&keys[1], 0, 3), &s).unwrap();
        assert!(matches!(pool.insert(tx(&keys[2], 0, 1), &s), Err(Rejection::PoolFull { .. })));
        pool.insert(tx(&keys[2], 0, 2), &s).unwrap();
        assert!(!pool.contains(&cheap));
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn pruning_drops_used_nonces() {
        let a = SecretKey::from_name("a");
        let mut s = state(&[&a]);
        let mut pool = Mempool::default();
        pool.insert(tx(&a, 0, 1), &s).unwrap();
        pool.insert(tx(&a, 1, 1), &s).unwrap();
        s.accounts.get_mut(&Address::of(&a.public())).unwrap().nonce = 1;
        pool.prune(&s);
        assert_eq!(pool.select(&s, 10).iter().map(|t| t.nonce).collect::<Vec<_>>(), vec![1]);
    }

    fn chain_id() -> ChainId {
        "ogpu-test".parse().unwrap()
    }

    fn transfer() -> TxBody {
        TxBody::Transfer { to: Address([2; 20]), amount: Amount::from_base_units(1) }
    }
}
