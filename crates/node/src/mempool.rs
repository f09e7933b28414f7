//! Pending transactions waiting for a block.
//!
//! Each sender's transactions wait in nonce order; blocks take the best-paying ready
//! transaction across senders first. The pool is bounded in total and per sender, and a
//! sender's pending fees together must fit its balance. A transaction is ready when every
//! nonce before it is used or pending; one that is not (gapped) waits at most
//! [`GAPPED_TTL_MS`] of chain time, and a full pool lets go of gapped transactions before
//! ready ones, then of the worst-paying. Anything refused gets a reason the submitter can
//! act on.

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
    #[error("the sender's balance {balance:?} cannot pay the fee {fee:?} besides {pending:?} in fees pending")]
    FeesOverBalance { balance: Amount, pending: Amount, fee: Amount },
    #[error("the transaction is already pending")]
    Duplicate,
    #[error("a transaction with this nonce is pending; a replacement must pay at least {min:?}")]
    ReplacementUnderpriced { min: Amount },
    #[error("the sender has {0} transactions pending, the most allowed")]
    SenderFull(usize),
    #[error("the pool is full; a fee above {min:?} is needed to get in")]
    PoolFull { min: Amount },
}

/// How long (in chain time) a transaction may wait for a gap before it in its sender's
/// nonces to fill.
pub const GAPPED_TTL_MS: u64 = 10 * 60_000;

#[derive(Debug, Clone)]
struct Entry {
    tx: Transaction,
    hash: Hash,
    seq: u64,
    /// The finalized chain time when it was admitted.
    admitted_ms: u64,
}

impl Entry {
    fn eviction_key(&self, sender: Address) -> EvictionKey {
        (self.tx.fee, std::cmp::Reverse(self.seq), sender, self.tx.nonce)
    }
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
    /// The entries of `by_fee` that are not ready.
    gapped: BTreeSet<EvictionKey>,
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
                self.admit(tx, hash, state)
            })
            .collect()
    }

    /// Admits a transaction whose signature verified and that passed `check`.
    fn admit(&mut self, tx: Transaction, hash: Hash, state: &State) -> Result<Hash, Rejection> {
        if self.by_hash.contains_key(&hash) {
            return Err(Rejection::Duplicate);
        }
        let sender = tx.sender_address();
        let next_nonce = state.account(&sender).nonce;
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
            let ready = tx.nonce == self.first_missing_nonce(&sender, next_nonce);
            self.evict_for(tx.fee, ready, state)?;
        }
        self.seq += 1;
        let entry = Entry { tx, hash, seq: self.seq, admitted_ms: state.time_ms };
        self.by_fee.insert(entry.eviction_key(sender));
        self.by_hash.insert(hash, (sender, entry.tx.nonce));
        self.by_sender.entry(sender).or_default().insert(entry.tx.nonce, entry);
        self.reclassify(&sender, next_nonce);
        Ok(hash)
    }

    /// Everything but the signature, which is checked in batches. The fee must fit the
    /// balance together with the sender's other pending fees (not one it would replace).
    fn check(&self, tx: &Transaction, state: &State) -> Result<(), Rejection> {
        if tx.chain_id != state.chain_id {
            return Err(Rejection::WrongChain { expected: state.chain_id.clone(), got: tx.chain_id.clone() });
        }
        let min = state.params.min_fee;
        if tx.fee < min {
            return Err(Rejection::FeeTooLow { min, got: tx.fee });
        }
        let sender = tx.sender_address();
        let account = state.account(&sender);
        if tx.nonce < account.nonce {
            return Err(Rejection::NonceUsed { next: account.nonce, got: tx.nonce });
        }
        if tx.nonce > account.nonce + self.config.max_nonce_gap {
            return Err(Rejection::NonceTooFarAhead { next: account.nonce, got: tx.nonce });
        }
        if account.balance < tx.fee {
            return Err(Rejection::CannotPayFee { balance: account.balance, fee: tx.fee });
        }
        let others = self.by_sender.get(&sender).into_iter().flatten().filter(|(nonce, _)| **nonce != tx.nonce);
        let pending = others.fold(Amount::ZERO, |sum, (_, entry)| sum.checked_add(entry.tx.fee).unwrap_or(sum));
        match pending.checked_add(tx.fee) {
            Some(total) if total <= account.balance => Ok(()),
            _ => Err(Rejection::FeesOverBalance { balance: account.balance, pending, fee: tx.fee }),
        }
    }

    /// The sender's lowest nonce from `next_nonce` on that has no pending transaction: a
    /// transaction with it would be ready.
    fn first_missing_nonce(&self, sender: &Address, next_nonce: u64) -> u64 {
        let Some(queue) = self.by_sender.get(sender) else { return next_nonce };
        let mut expected = next_nonce;
        for nonce in queue.range(next_nonce..).map(|(nonce, _)| *nonce) {
            if nonce != expected {
                break;
            }
            expected += 1;
        }
        expected
    }

    /// Marks each of the sender's transactions ready or gapped.
    fn reclassify(&mut self, sender: &Address, next_nonce: u64) {
        let first_missing = self.first_missing_nonce(sender, next_nonce);
        let Some(queue) = self.by_sender.get(sender) else { return };
        for (nonce, entry) in queue {
            let key = entry.eviction_key(*sender);
            if (next_nonce..first_missing).contains(nonce) {
                self.gapped.remove(&key);
            } else {
                self.gapped.insert(key);
            }
        }
    }

    /// Makes room for a transaction paying `fee` (`ready` or not): by evicting a gapped
    /// transaction, which a ready one always may and a gapped one may when it pays more,
    /// or else the worst-paying ready one, when `fee` beats it.
    fn evict_for(&mut self, fee: Amount, ready: bool, state: &State) -> Result<(), Rejection> {
        let victim = match self.gapped.first() {
            Some(&(worst_fee, _, sender, nonce)) if ready || fee > worst_fee => (sender, nonce),
            _ => match self.by_fee.iter().find(|key| !self.gapped.contains(*key)) {
                Some(&(worst_fee, _, sender, nonce)) if fee > worst_fee => (sender, nonce),
                Some(&(worst_fee, ..)) => return Err(Rejection::PoolFull { min: worst_fee }),
                None => return Ok(()),
            },
        };
        let (sender, nonce) = victim;
        self.remove(&sender, nonce);
        self.reclassify(&sender, state.account(&sender).nonce);
        Ok(())
    }

    fn remove(&mut self, sender: &Address, nonce: u64) {
        let Some(queue) = self.by_sender.get_mut(sender) else { return };
        if let Some(entry) = queue.remove(&nonce) {
            self.by_hash.remove(&entry.hash);
            let key = entry.eviction_key(*sender);
            self.by_fee.remove(&key);
            self.gapped.remove(&key);
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

    /// Drops what a new state has made stale: used nonces, fees the balance no longer
    /// covers, and transactions that waited too long for a gap to fill.
    pub fn prune(&mut self, state: &State) {
        let mut touched = Vec::new();
        for (sender, queue) in &self.by_sender {
            let account = state.account(sender);
            let mut fees = Amount::ZERO;
            let mut stale = Vec::new();
            for (nonce, entry) in queue {
                let expired = self.gapped.contains(&entry.eviction_key(*sender))
                    && state.time_ms.saturating_sub(entry.admitted_ms) > GAPPED_TTL_MS;
                let affordable = fees.checked_add(entry.tx.fee).filter(|total| *total <= account.balance);
                match affordable {
                    Some(total) if *nonce >= account.nonce && !expired => fees = total,
                    _ => stale.push(*nonce),
                }
            }
            touched.push((*sender, account.nonce, stale));
        }
        for (sender, next_nonce, stale) in touched {
            for nonce in stale {
                self.remove(&sender, nonce);
            }
            self.reclassify(&sender, next_nonce);
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

    /// Finding 7: each fee was checked against the balance alone, so an account worth one
    /// fee could queue hundreds of transactions; the pending fees are reserved together.
    #[test]
    fn the_pending_fees_of_a_sender_are_reserved_against_its_balance() {
        let (a, b) = (SecretKey::from_name("a"), SecretKey::from_name("b"));
        let s = state(&[&a, &b]);
        let mut pool = Mempool::default();
        // 10 oGPU pays three fees of 3 oGPU, not four.
        for nonce in 0..3 {
            pool.insert(tx(&a, nonce, 3_000), &s).unwrap();
        }
        assert!(matches!(pool.insert(tx(&a, 3, 3_000), &s), Err(Rejection::FeesOverBalance { .. })));
        let replacement = tx(&a, 2, 4_500);
        assert!(matches!(pool.insert(replacement, &s), Err(Rejection::FeesOverBalance { .. })), "10 < 3 + 3 + 4.5");
        pool.insert(tx(&a, 2, 4_000), &s).unwrap();
        pool.insert(tx(&b, 0, 3_000), &s).unwrap();
    }

    /// Finding 7: a transaction that cannot run until a gap in its sender's nonces fills
    /// waits a limited time, and a full pool lets go of such transactions first.
    #[test]
    fn gapped_transactions_expire_and_are_evicted_before_ready_ones() {
        let keys: Vec<SecretKey> = (0..3).map(|i| SecretKey::from_name(&format!("k{i}"))).collect();
        let mut s = state(&keys.iter().collect::<Vec<_>>());
        let mut pool = Mempool::new(MempoolConfig { max_txs: 2, ..MempoolConfig::default() });
        let ready = pool.insert(tx(&keys[0], 0, 1), &s).unwrap();
        let gapped = pool.insert(tx(&keys[1], 5, 9), &s).unwrap();
        pool.insert(tx(&keys[2], 0, 2), &s).unwrap();
        assert!(pool.contains(&ready) && !pool.contains(&gapped), "the gapped one went, though it paid more");

        let mut pool = Mempool::default();
        let gapped = pool.insert(tx(&keys[1], 5, 9), &s).unwrap();
        let waiting = pool.insert(tx(&keys[0], 0, 1), &s).unwrap();
        s.time_ms += GAPPED_TTL_MS + 1;
        pool.prune(&s);
        assert!(!pool.contains(&gapped), "a gapped transaction expires");
        assert!(pool.contains(&waiting), "a ready one waits for a block however long");
    }

    fn chain_id() -> ChainId {
        "ogpu-test".parse().unwrap()
    }

    fn transfer() -> TxBody {
        TxBody::Transfer { to: Address([2; 20]), amount: Amount::from_base_units(1) }
    }
}
