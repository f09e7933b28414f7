//! One typed call per route of the API. Every path the client asks for is written here.

use std::time::Duration;

use ogpu_chain::Params;
use ogpu_core::encoding::Canonical;
use ogpu_core::tasklog::SignedLogEntry;
use ogpu_core::tx::Transaction;
use ogpu_core::{Address, Hash, PoolId, TaskId, hex};

use crate::http::{Client, ClientError, EventStream};
use crate::types::*;

/// Which tasks `GET /v1/tasks` lists.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this client's.
    pub client: Option<Address>,
    /// Only those in this phase (`bidding`, `executing`, ..., `done`).
    pub phase: Option<String>,
    /// At most this many (the node's default is 100, its most 1,000).
    pub limit: Option<usize>,
}

impl TaskFilter {
    fn query(&self) -> String {
        let mut pairs = Vec::new();
        if let Some(client) = &self.client {
            pairs.push(format!("client={client}"));
        }
        if let Some(phase) = &self.phase {
            pairs.push(format!("phase={}", escape(phase)));
        }
        if let Some(limit) = self.limit {
            pairs.push(format!("limit={limit}"));
        }
        if pairs.is_empty() { String::new() } else { format!("?{}", pairs.join("&")) }
    }
}

/// Percent-encodes everything but unreserved characters, for a query value.
fn escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn limit_query(limit: Option<usize>) -> String {
    limit.map(|n| format!("?limit={n}")).unwrap_or_default()
}

impl Client {
    /// The node's chain id, height, validator and peer counts and mempool size.
    pub fn status(&self) -> Result<Status, ClientError> {
        self.get("/v1/status")
    }

    /// The chain's parameters now (fees, limits, windows).
    pub fn params(&self) -> Result<Params, ClientError> {
        self.get("/v1/params")
    }

    /// Every bonded validator, and whether it is in the current epoch's set.
    pub fn validators(&self) -> Result<ValidatorList, ClientError> {
        self.get("/v1/validators")
    }

    /// Proposals to change a parameter that are still being voted on.
    pub fn proposals(&self) -> Result<ProposalList, ClientError> {
        self.get("/v1/proposals")
    }

    /// The account's next nonce and its money: spendable, in escrow, locked, staked and
    /// unbonding. An address the chain has never seen reads as all zeros.
    pub fn account(&self, address: &Address) -> Result<Account, ClientError> {
        self.get(&format!("/v1/accounts/{address}"))
    }

    /// The account's latest finalized transactions, oldest first.
    pub fn account_txs(&self, address: &Address) -> Result<AccountTxs, ClientError> {
        self.get(&format!("/v1/accounts/{address}/txs"))
    }

    /// Recent chain events that name the account.
    pub fn account_events(&self, address: &Address) -> Result<PartyEvents, ClientError> {
        self.get(&format!("/v1/accounts/{address}/events"))
    }

    /// Hands a signed transaction to the node's mempool; returns its hash. A refusal
    /// carries its reason: [`ClientError::refusal`].
    pub fn submit(&self, tx: &Transaction) -> Result<Hash, ClientError> {
        let body = SubmitBody { tx: hex::encode(&tx.encode()) };
        Ok(self.post::<Submitted>("/v1/txs", &body)?.tx)
    }

    /// Hands many signed transactions to the mempool at once; each gets its own verdict.
    pub fn submit_batch(&self, txs: &[Transaction]) -> Result<BatchVerdicts, ClientError> {
        self.submit_encoded_batch(txs.iter().map(|tx| hex::encode(&tx.encode())).collect())
    }

    /// [`Client::submit_batch`] of transactions already encoded (hex), for load generators
    /// that sign ahead.
    pub fn submit_encoded_batch(&self, txs: Vec<String>) -> Result<BatchVerdicts, ClientError> {
        self.post("/v1/txs/batch", &BatchBody { txs })
    }

    /// A transaction the node knows: pending, or finalized with the chain's verdict.
    pub fn tx(&self, hash: &Hash) -> Result<TxView, ClientError> {
        self.get(&format!("/v1/txs/{hash}"))
    }

    /// The finalized block at `height`, with its transactions' verdicts and its events;
    /// `unknown_block` until that height is finalized.
    pub fn block(&self, height: u64) -> Result<BlockView, ClientError> {
        self.get(&format!("/v1/blocks/{height}"))
    }

    /// The newest finalized block; `unknown_block` while only genesis exists.
    pub fn latest_block(&self) -> Result<BlockView, ClientError> {
        self.get("/v1/blocks/latest")
    }

    /// The tasks on chain that match `filter`, in task id order.
    pub fn tasks(&self, filter: &TaskFilter) -> Result<TaskList, ClientError> {
        self.get(&format!("/v1/tasks{}", filter.query()))
    }

    /// The task, its phase and every event about it.
    pub fn task(&self, id: &TaskId) -> Result<TaskDetail, ClientError> {
        self.get(&format!("/v1/tasks/{id}"))
    }

    /// The task's log entries kept by the node, from cursor `from` on.
    pub fn task_logs(&self, id: &TaskId, from: u64) -> Result<LogPage, ClientError> {
        self.get(&format!("/v1/tasks/{id}/logs?from={from}"))
    }

    /// The task's log entries as they arrive (`log` events, each a signed entry).
    pub fn follow_task_logs(&self, id: &TaskId) -> Result<EventStream, ClientError> {
        self.stream(&format!("/v1/tasks/{id}/logs/stream"), None)
    }

    /// Posts a provider's signed log entries for a task.
    pub fn post_logs(&self, task: &TaskId, entries: &[SignedLogEntry]) -> Result<PostedLogs, ClientError> {
        self.post(&format!("/v1/tasks/{task}/logs"), &entries)
    }

    /// Registered providers, in address order: at most `limit` (the node's default is
    /// 100, its most 1,000).
    pub fn providers(&self, limit: Option<usize>) -> Result<ProviderList, ClientError> {
        self.get(&format!("/v1/providers{}", limit_query(limit)))
    }

    /// The provider with its recent awards, payments and slashes.
    pub fn provider(&self, address: &Address) -> Result<ProviderDetail, ClientError> {
        self.get(&format!("/v1/providers/{address}"))
    }

    /// Pools with their specs and subscribers, in id order: at most `limit` (the node's
    /// default is 100, its most 1,000).
    pub fn pools(&self, limit: Option<usize>) -> Result<PoolList, ClientError> {
        self.get(&format!("/v1/pools{}", limit_query(limit)))
    }

    /// The pool with id `id`; `unknown_pool` when there is none.
    pub fn pool(&self, id: &PoolId) -> Result<PoolView, ClientError> {
        self.get(&format!("/v1/pools/{id}"))
    }

    /// The feed of finalized blocks and chain events, or only one task's events; read it
    /// with [`crate::FeedItem::parse`].
    pub fn events(&self, task: Option<&TaskId>) -> Result<EventStream, ClientError> {
        self.events_within(task, None)
    }

    /// [`Client::events`], read until `within` has passed (then reading fails).
    pub fn events_within(&self, task: Option<&TaskId>, within: Option<Duration>) -> Result<EventStream, ClientError> {
        match task {
            Some(task) => self.stream(&format!("/v1/events?task={task}"), within),
            None => self.stream("/v1/events", within),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_filters_become_query_strings() {
        assert_eq!(TaskFilter::default().query(), "");
        let filter = TaskFilter { client: None, phase: Some("done&x=1".into()), limit: Some(5) };
        assert_eq!(filter.query(), "?phase=done%26x%3D1&limit=5");
    }
}
