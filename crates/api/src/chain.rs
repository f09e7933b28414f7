//! Status, parameters, proposals, validators, accounts, transactions and blocks.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ogpu_chain::Params;
use ogpu_client::types::{
    Account, AccountTxs, BatchBody, BatchRefusal, BatchVerdicts, BlockView, ProposalList, ProposalView, Refusal,
    Status, SubmitBody, Submitted, TxState, TxSummary, TxView, ValidatorList, ValidatorView,
};
use ogpu_core::encoding::Canonical;
use ogpu_core::tx::Transaction;
use ogpu_core::{Address, Hash};
use ogpu_node::mempool::Rejection;
use ogpu_node::service::{NodeHandle, Request};
use ogpu_node::store::{Store, StoreError, TxRecord};

use crate::error::{ApiError, ask, parse, read_store};

/// Transactions one batch may carry.
pub const MAX_BATCH: usize = 10_000;

#[utoipa::path(get, path = "/v1/status", responses((status = 200, description = "Chain id, heights, validators, peers, mempool size")))]
pub async fn status(State(node): State<NodeHandle>) -> Result<Json<Status>, ApiError> {
    let status = ask(&node, Request::Status).await?;
    Ok(Json(Status {
        chain_id: status.chain_id,
        height: status.height,
        finalized_height: status.finalized_height,
        validators: status.validators,
        peers: status.peers,
        mempool: status.mempool,
        finalized_txs: status.finalized_txs,
        listen: status.listen,
    }))
}

#[utoipa::path(get, path = "/v1/params", responses((status = 200, description = "The chain's current parameters")))]
pub async fn params(State(node): State<NodeHandle>) -> Json<Params> {
    Json(node.finalized.borrow().params.clone())
}

#[utoipa::path(get, path = "/v1/validators", responses((status = 200, description = "Every bonded validator: key, stake, jail term, and whether it is in the current epoch's set")))]
pub async fn validators(State(node): State<NodeHandle>) -> Json<ValidatorList> {
    let state = node.finalized.borrow().clone();
    let validators = state.validators.iter().map(|(address, validator)| ValidatorView {
        address: *address,
        validator: validator.clone(),
        active: state.active_set.contains_key(address),
    });
    Json(ValidatorList { validators: validators.collect() })
}

#[utoipa::path(get, path = "/v1/proposals", responses((status = 200, description = "Proposals to change a parameter that are still being voted on, with their votes")))]
pub async fn proposals(State(node): State<NodeHandle>) -> Json<ProposalList> {
    let state = node.finalized.borrow().clone();
    let proposals = state.proposals.iter().map(|(id, proposal)| ProposalView { id: *id, proposal: proposal.clone() });
    Json(ProposalList { proposals: proposals.collect() })
}

#[utoipa::path(get, path = "/v1/accounts/{address}", params(("address" = String, Path, description = "ogpu1... address")),
    responses((status = 200, description = "Next nonce, and the balance it may spend beside what sits in escrow, trust locks, stake and unbonding"), (status = 400, description = "Not an address")))]
pub async fn account(State(node): State<NodeHandle>, Path(address): Path<String>) -> Result<Json<Account>, ApiError> {
    let address: Address = parse("address", &address)?;
    let state = node.finalized.borrow().clone();
    let held = state.holdings(&address).ok_or_else(|| ApiError::internal("the account's holdings overflow"))?;
    Ok(Json(Account {
        address,
        balance: held.available,
        nonce: state.account(&address).nonce,
        escrow: held.escrow,
        trust_lock: held.trust_lock,
        staked: held.staked,
        unbonding: held.unbonding,
    }))
}

/// How many of an account's transactions are listed, newest last.
const ACCOUNT_TXS: usize = 100;

#[utoipa::path(get, path = "/v1/accounts/{address}/txs", params(("address" = String, Path)),
    responses((status = 200, description = "The account's latest finalized transactions")))]
pub async fn account_txs(
    State(node): State<NodeHandle>,
    Path(address): Path<String>,
) -> Result<Json<AccountTxs>, ApiError> {
    let address: Address = parse("address", &address)?;
    let sent = read_store(&node, move |store| store.sent_by(&address, ACCOUNT_TXS)).await?;
    let txs = sent.iter().map(|(hash, record)| tx_summary(hash, Some(record))).collect();
    Ok(Json(AccountTxs { address, txs }))
}

/// The name the API gives a mempool's refusal.
fn refusal(rejection: &Rejection) -> Refusal {
    match rejection {
        Rejection::Malformed(_) => Refusal::Malformed,
        Rejection::WrongChain { .. } => Refusal::WrongChain,
        Rejection::BadSignature => Refusal::BadSignature,
        Rejection::NonceUsed { .. } => Refusal::NonceUsed,
        Rejection::NonceTooFarAhead { .. } => Refusal::NonceTooFarAhead,
        Rejection::FeeTooLow { .. } => Refusal::FeeTooLow,
        Rejection::CannotPayFee { .. } => Refusal::CannotPayFee,
        Rejection::FeesOverBalance { .. } => Refusal::FeesOverBalance,
        Rejection::Duplicate => Refusal::Duplicate,
        Rejection::ReplacementUnderpriced { .. } => Refusal::ReplacementUnderpriced,
        Rejection::SenderFull(_) => Refusal::SenderFull,
        Rejection::PoolFull { .. } => Refusal::PoolFull,
    }
}

fn decode_tx(hex: &str, field: &str) -> Result<Transaction, ApiError> {
    let bytes = ogpu_core::hex::decode(hex)
        .ok_or_else(|| ApiError::bad_request("invalid_hex", format!("{field} is not hex")))?;
    Transaction::decode(&bytes).map_err(|e| ApiError::bad_request("malformed_transaction", format!("{field}: {e}")))
}

#[utoipa::path(post, path = "/v1/txs", request_body = SubmitBody,
    responses((status = 202, description = "Admitted to the mempool: `{tx: hash}`"),
        (status = 400, description = "Malformed, or refused by the mempool: `error` names the refusal (`nonce_used`, `fee_too_low`, ...)")))]
pub async fn submit(
    State(node): State<NodeHandle>,
    body: Result<Json<SubmitBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let Json(body) = body?;
    let tx = decode_tx(&body.tx, "tx")?;
    match ask(&node, |reply| Request::Submit(vec![tx], reply)).await?.pop() {
        Some(Ok(tx)) => Ok((StatusCode::ACCEPTED, Json(Submitted { tx }))),
        Some(Err(rejection)) => Err(ApiError::bad_request(refusal(&rejection).code(), rejection)),
        None => Err(ApiError::unavailable()),
    }
}

/// Submits many transactions at once; each gets its own verdict.
#[utoipa::path(post, path = "/v1/txs/batch", request_body = BatchBody,
    responses((status = 202, description = "`{accepted, rejected: [{index, error, detail}]}`"), (status = 400, description = "Malformed batch")))]
pub async fn submit_batch(
    State(node): State<NodeHandle>,
    body: Result<Json<BatchBody>, JsonRejection>,
) -> Result<(StatusCode, Json<BatchVerdicts>), ApiError> {
    let Json(body) = body?;
    if body.txs.len() > MAX_BATCH {
        return Err(ApiError::bad_request("batch_too_large", format!("at most {MAX_BATCH} transactions per batch")));
    }
    let txs = body
        .txs
        .iter()
        .enumerate()
        .map(|(i, hex)| decode_tx(hex, &format!("txs[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let results = ask(&node, |reply| Request::Submit(txs, reply)).await?;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let rejected = results
        .iter()
        .enumerate()
        .filter_map(|(index, r)| {
            r.as_ref().err().map(|e| BatchRefusal { index, error: refusal(e), detail: e.to_string() })
        })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(BatchVerdicts { accepted, rejected })))
}

/// A finalized transaction as lists show it, from its record.
fn tx_summary(hash: &Hash, record: Option<&TxRecord>) -> TxSummary {
    TxSummary {
        hash: *hash,
        sender: record.map(|r| r.sender),
        nonce: record.map(|r| r.nonce),
        fee: record.map(|r| r.fee),
        kind: record.map(|r| r.kind.clone()),
        height: record.map(|r| r.height),
        error: record.and_then(|r| r.error.clone()),
    }
}

#[utoipa::path(get, path = "/v1/txs/{hash}", params(("hash" = String, Path, description = "Transaction hash, hex")),
    responses((status = 200, description = "`status`: pending or finalized (with height, fee paid and the chain's verdict)"),
        (status = 404, description = "Neither pending nor finalized here")))]
pub async fn tx(State(node): State<NodeHandle>, Path(hash): Path<String>) -> Result<Json<TxView>, ApiError> {
    let hash: Hash = parse("hash", &hash)?;
    let finalized = async |node: &NodeHandle| -> Result<Option<Json<TxView>>, ApiError> {
        Ok(read_store(node, move |store| store.tx(&hash)).await?.map(|record| {
            let state = TxState::Finalized {
                height: record.height,
                index: record.index,
                fee_paid: record.fee_paid,
                ok: record.error.is_none(),
                error: record.error,
            };
            Json(TxView { hash, state })
        }))
    };
    if let Some(view) = finalized(&node).await? {
        return Ok(view);
    }
    if ask(&node, |reply| Request::Pending(hash, reply)).await? {
        return Ok(Json(TxView { hash, state: TxState::Pending }));
    }
    // The node commits a block before it prunes the mempool, so a transaction finalized
    // between the two looks is in the store now.
    if let Some(view) = finalized(&node).await? {
        return Ok(view);
    }
    Err(ApiError::not_found("unknown_transaction", format!("{hash} is neither pending nor finalized on this node")))
}

/// A finalized block with its transactions' verdicts and its events, read together.
fn block_view(store: &Store, height: u64) -> Result<Option<BlockView>, StoreError> {
    let Some(block) = store.block(height)? else { return Ok(None) };
    let header = block.header();
    let events = store.events(height)?;
    let mut txs = Vec::with_capacity(block.txs.len());
    for tx in &block.txs {
        let hash = tx.hash();
        txs.push(tx_summary(&hash, store.tx(&hash)?.as_ref()));
    }
    Ok(Some(BlockView {
        height: header.height,
        hash: block.hash(),
        parent: header.parent,
        proposer: Address::of(&header.proposer),
        time_ms: header.time_ms,
        tx_root: header.tx_root,
        state_root: header.state_root,
        randomness: header.randomness,
        txs,
        events,
    }))
}

#[utoipa::path(get, path = "/v1/blocks/{height}", params(("height" = u64, Path)),
    responses((status = 200, description = "A finalized block: header, transactions with verdicts, events"), (status = 404, description = "Not finalized yet")))]
pub async fn block(State(node): State<NodeHandle>, Path(height): Path<String>) -> Result<Json<BlockView>, ApiError> {
    let height: u64 = parse("height", &height)?;
    match read_store(&node, move |store| block_view(store, height)).await? {
        Some(view) => Ok(Json(view)),
        None => Err(ApiError::not_found("unknown_block", format!("block {height} is not finalized"))),
    }
}

#[utoipa::path(get, path = "/v1/blocks/latest", responses((status = 200, description = "The newest finalized block"), (status = 404, description = "Only genesis so far")))]
pub async fn latest_block(State(node): State<NodeHandle>) -> Result<Json<BlockView>, ApiError> {
    let height = node.finalized.borrow().height;
    block(State(node), Path(height.to_string())).await
}
