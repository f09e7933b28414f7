//! Signing and sending the agent's transactions: one nonce sequence shared by everything
//! the agent does at once, kept locally so transactions can follow each other within a
//! block, and re-read from the chain when the node says it went wrong or when a
//! transaction this wallet sent disappeared (a node that restarted, or evicted it), since
//! every later one would otherwise wait behind the gap it left.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ogpu_core::tx::{Transaction, TxBody};
use ogpu_core::{Address, Amount, ChainId, Hash, SecretKey};

use crate::types::{Refusal, TxState};
use crate::{Client, ClientError};

/// An account's key with a client of a node: signs the account's transactions with
/// consecutive nonces and the chain's minimum fee, sends them, and waits for their
/// verdicts. Safe to share between threads.
pub struct Wallet {
    key: SecretKey,
    address: Address,
    chain_id: ChainId,
    /// The chain's minimum fee as last read: when the wallet was made, and again whenever
    /// a node says it is too low (governance raised it).
    fee: Mutex<Amount>,
    client: Client,
    sequence: Mutex<Sequence>,
}

#[derive(Default)]
struct Sequence {
    /// The next nonce to use, once known.
    next: Option<u64>,
    /// Transactions sent and not yet seen finalized, by nonce.
    unconfirmed: BTreeMap<u64, Hash>,
}

/// What became of a transaction on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Included and applied.
    Applied,
    /// Included, but the chain refused it, with its reason (fee and nonce are spent).
    Refused(String),
}

/// What went wrong sending a transaction or waiting for it.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// A call to the API failed, or the mempool refused the transaction.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The transaction was not finalized in time; it may still be.
    #[error("{what} was not finalized within {seconds} s")]
    Timeout {
        /// What the transaction was for, as the caller described it.
        what: String,
        /// The timeout, in whole seconds.
        seconds: u64,
    },
    /// The node's status gives a chain id that does not parse.
    #[error("the API names chain {0:?}, which is not a chain id")]
    ChainId(String),
    /// Included, but the chain refused it (its fee and nonce are spent).
    #[error("the chain refused {what} ({tx}): {reason}")]
    Refused {
        /// What the transaction was for, as the caller described it.
        what: String,
        /// The transaction's hash.
        tx: Hash,
        /// The chain's reason.
        reason: String,
    },
}

/// How long [`Wallet::settle`] waits for a transaction to be finalized.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Wallet {
    /// A wallet for `key` on the chain the node at `client` runs, paying the chain's
    /// minimum fee as it is now.
    pub fn new(key: SecretKey, client: Client) -> Result<Wallet, WalletError> {
        let status = client.status()?;
        let chain_id = status.chain_id.parse().map_err(|_| WalletError::ChainId(status.chain_id.clone()))?;
        let fee = client.params()?.min_fee;
        let address = Address::of(&key.public());
        Ok(Wallet { key, address, chain_id, fee: Mutex::new(fee), client, sequence: Mutex::new(Sequence::default()) })
    }

    /// The address of the account this wallet signs for.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The key this wallet signs with.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// The client of the node this wallet sends through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Signs `body` with the next nonce and hands it to the node. A refusal of the nonce
    /// (most often one that another client of this key used, or one lost with a dropped
    /// transaction) re-reads the nonce from the chain and tries once more; a refusal of
    /// the fee re-reads the chain's minimum fee and tries once more.
    pub fn send(&self, body: TxBody) -> Result<Hash, WalletError> {
        let mut sequence = self.sequence.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.resync_if_lost(&mut sequence)?;
        let (mut retried, mut repriced) = (false, false);
        loop {
            let nonce = match sequence.next {
                Some(nonce) => nonce,
                None => self.client.account(&self.address)?.nonce,
            };
            let fee = *self.fee.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let tx = Transaction::sign(&self.key, self.chain_id.clone(), nonce, fee, body.clone());
            match self.client.submit(&tx) {
                Ok(hash) => {
                    sequence.next = Some(nonce + 1);
                    sequence.unconfirmed.insert(nonce, hash);
                    return Ok(hash);
                }
                Err(error) if !retried && error.refusal().is_some_and(Refusal::is_about_the_nonce) => {
                    tracing::debug!(%error, "resynchronizing the nonce");
                    retried = true;
                    *sequence = Sequence::default();
                }
                Err(error) if !repriced && error.refusal() == Some(Refusal::FeeTooLow) => {
                    tracing::debug!(%error, "re-reading the chain's minimum fee");
                    repriced = true;
                    let min_fee = self.client.params()?.min_fee;
                    *self.fee.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = min_fee;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Starts the sequence over from the chain's nonce when the transaction that must be
    /// finalized next is neither finalized nor pending: it was lost, and what this wallet
    /// sent after it can never run.
    fn resync_if_lost(&self, sequence: &mut Sequence) -> Result<(), WalletError> {
        if sequence.unconfirmed.is_empty() {
            return Ok(());
        }
        let on_chain = self.client.account(&self.address)?.nonce;
        sequence.unconfirmed = sequence.unconfirmed.split_off(&on_chain);
        let lost = match sequence.unconfirmed.first_key_value() {
            None => false,
            Some((nonce, _)) if *nonce != on_chain => true,
            Some((_, hash)) => match self.client.tx(hash) {
                Ok(_) => false,
                Err(error) if error.api_error() == Some("unknown_transaction") => true,
                Err(error) => return Err(error.into()),
            },
        };
        if lost {
            tracing::warn!(nonce = on_chain, "a transaction this agent sent was lost; resynchronizing the nonce");
            *sequence = Sequence::default();
        }
        Ok(())
    }

    /// Sends `body` and waits until it is finalized.
    pub fn send_and_wait(&self, body: TxBody, timeout: Duration) -> Result<Verdict, WalletError> {
        let what = body.kind();
        let hash = self.send(body)?;
        self.wait(&hash, what, timeout)
    }

    /// Sends `body` (described as `what` in errors) and waits until it is finalized; a
    /// transaction the chain refused is [`WalletError::Refused`]. Returns its hash.
    pub fn settle(&self, body: TxBody, what: &str) -> Result<Hash, WalletError> {
        let tx = self.send(body)?;
        match self.wait(&tx, what, SETTLE_TIMEOUT)? {
            Verdict::Applied => Ok(tx),
            Verdict::Refused(reason) => Err(WalletError::Refused { what: what.to_string(), tx, reason }),
        }
    }

    /// Waits for a transaction sent earlier to be finalized.
    pub fn wait(&self, hash: &Hash, what: &str, timeout: Duration) -> Result<Verdict, WalletError> {
        let started = Instant::now();
        // Soon at first (a devnet finalizes within a block or two), then gentler: a wallet
        // waiting a minute should not spend the node's allowance for its address.
        let mut poll = Duration::from_millis(50);
        while started.elapsed() < timeout {
            match self.client.tx(hash) {
                Ok(view) => {
                    if let TxState::Finalized { error, .. } = view.state {
                        return Ok(error.map_or(Verdict::Applied, Verdict::Refused));
                    }
                }
                // Not seen yet: a node that restarted may have lost it from its mempool.
                Err(error) if error.api_error() == Some("unknown_transaction") => {}
                Err(error) => return Err(error.into()),
            }
            std::thread::sleep(poll);
            poll = (poll * 2).min(Duration::from_millis(200));
        }
        Err(WalletError::Timeout { what: what.to_string(), seconds: timeout.as_secs() })
    }
}
