//! Block execution: header checks, transaction admission and dispatch with per-transaction
//! rollback, then the end-of-block steps (timers, governance, rewards, epochs).

use ogpu_core::block::{self, BlockHeader};
use ogpu_core::crypto::SecretKey;
use ogpu_core::tx::{Transaction, TxBody};
use ogpu_core::{Address, Amount, Block, Hash, PublicKey, vrf};

use crate::error::{BlockError, TxError};
use crate::receipt::{BlockOutcome, Event, Receipt};
use crate::state::State;
use crate::{bank, governance, market, staking, verify};

pub const MAX_TXS_PER_BLOCK: usize = 20_000;

/// How far past its parent's a block's time may be. Consensus keeps headers within a
/// clock drift of every receiver's clock; this bound holds without a clock, so that no
/// finalized block can carry a time that overflows what is computed from it. After an
/// outage longer than this, block times catch up with the clock a step per block.
pub const MAX_BLOCK_TIME_STEP_MS: u64 = 3_600_000;

/// The time an honest proposer stamps on a block at `now_ms`: its clock, but after its
/// parent's time and within [`MAX_BLOCK_TIME_STEP_MS`] of it.
pub fn next_block_time(parent_ms: u64, now_ms: u64) -> u64 {
    now_ms.clamp(parent_ms.saturating_add(1), parent_ms.saturating_add(MAX_BLOCK_TIME_STEP_MS))
}

/// What a block's execution depends on besides its transactions.
#[derive(Debug, Clone, Copy)]
pub struct BlockContext {
    pub height: u64,
    pub time_ms: u64,
    pub proposer: PublicKey,
    pub randomness: Hash,
}

/// A transaction's view of the chain while it runs.
pub(crate) struct Ctx<'a> {
    pub state: &'a mut State,
    pub events: &'a mut Vec<Event>,
}

impl Ctx<'_> {
    pub fn height(&self) -> u64 {
        self.state.height
    }

    pub fn emit(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// Which transactions' signatures the caller has already verified, by transaction hash
/// (which covers the signature). A node's mempool admits only transactions whose
/// signatures verify, so blocks built from it, or received and matching it, need not pay
/// for the check twice. Answering yes for a transaction whose signature was not verified
/// breaks the chain rules; [`NoneVerified`] is always safe.
pub trait VerifiedSignatures {
    fn verified(&self, tx: &Hash) -> bool;
}

/// Checks every signature.
pub struct NoneVerified;

impl VerifiedSignatures for NoneVerified {
    fn verified(&self, _: &Hash) -> bool {
        false
    }
}

/// Checks `block` against `state` and applies it, returning the new state and what the
/// block produced. `state` is not modified; on error nothing is applied.
pub fn apply_block(state: &State, block: &Block) -> Result<(State, BlockOutcome), BlockError> {
    apply_block_with(state, block, &NoneVerified)
}

/// [`apply_block`], skipping the signatures `verified` vouches for.
pub fn apply_block_with(
    state: &State,
    block: &Block,
    verified: &impl VerifiedSignatures,
) -> Result<(State, BlockOutcome), BlockError> {
    let header = block.header();
    check_header(state, header)?;
    block.signed.verify().map_err(|_| BlockError::BadProposerSignature)?;
    let ids = tx_ids(&block.txs)?;
    if block::tx_root_of_ids(&ids) != header.tx_root {
        return Err(BlockError::TxRootMismatch);
    }
    let context = BlockContext {
        height: header.height,
        time_ms: header.time_ms,
        proposer: header.proposer,
        randomness: header.randomness,
    };
    let (mut next, outcome) = execute(state, context, &block.txs, &ids, verified)?;
    let computed = next.root();
    if computed != header.state_root {
        return Err(BlockError::StateRootMismatch { computed, got: header.state_root });
    }
    next.last_block = block.hash();
    Ok((next, outcome))
}

fn check_header(state: &State, header: &BlockHeader) -> Result<(), BlockError> {
    if header.chain_id != state.chain_id {
        return Err(BlockError::WrongChain { expected: state.chain_id.clone(), got: header.chain_id.clone() });
    }
    if header.height != state.height + 1 {
        return Err(BlockError::WrongHeight { expected: state.height + 1, got: header.height });
    }
    if header.parent != state.last_block {
        return Err(BlockError::WrongParent { expected: state.last_block, got: header.parent });
    }
    if header.time_ms <= state.time_ms {
        return Err(BlockError::TimeNotIncreasing { parent: state.time_ms, got: header.time_ms });
    }
    if header.time_ms - state.time_ms > MAX_BLOCK_TIME_STEP_MS {
        let (parent, got, max_step) = (state.time_ms, header.time_ms, MAX_BLOCK_TIME_STEP_MS);
        return Err(BlockError::TimeTooFarAhead { parent, got, max_step });
    }
    let proposer = Address::of(&header.proposer);
    if state.active_set.get(&proposer).is_none_or(|(key, _)| *key != header.proposer) {
        return Err(BlockError::UnknownProposer);
    }
    let input = block::vrf_input(&state.chain_id, header.height, &state.randomness);
    match vrf::verify(&header.proposer, &input, &header.randomness_proof) {
        Ok(output) if output == header.randomness => Ok(()),
        _ => Err(BlockError::BadRandomness),
    }
}

/// Builds, executes and signs the next block on top of `state`: what a scheduled proposer
/// does. The caller supplies the time; the transactions are included in the given order.
pub fn propose_block(
    state: &State,
    key: &SecretKey,
    time_ms: u64,
    txs: Vec<Transaction>,
) -> Result<(Block, State, BlockOutcome), BlockError> {
    propose_block_with(state, key, time_ms, txs, &NoneVerified)
}

/// [`propose_block`], skipping the signatures `verified` vouches for.
pub fn propose_block_with(
    state: &State,
    key: &SecretKey,
    time_ms: u64,
    txs: Vec<Transaction>,
    verified: &impl VerifiedSignatures,
) -> Result<(Block, State, BlockOutcome), BlockError> {
    let height = state.height + 1;
    let input = block::vrf_input(&state.chain_id, height, &state.randomness);
    let (randomness, randomness_proof) = vrf::prove(key, &input);
    let context = BlockContext { height, time_ms, proposer: key.public(), randomness };
    let ids = tx_ids(&txs)?;
    let (next, outcome) = execute(state, context, &txs, &ids, verified)?;
    let header = BlockHeader {
        chain_id: state.chain_id.clone(),
        height,
        parent: state.last_block,
        proposer: key.public(),
        time_ms,
        tx_root: block::tx_root_of_ids(&ids),
        state_root: next.root(),
        randomness,
        randomness_proof,
    };
    let block = Block { signed: header.sign(key), txs };
    let mut next = next;
    next.last_block = block.hash();
    Ok((block, next, outcome))
}

/// The ids of a block's transactions, after checking there are not too many to hash.
fn tx_ids(txs: &[Transaction]) -> Result<Vec<Hash>, BlockError> {
    if txs.len() > MAX_TXS_PER_BLOCK {
        return Err(BlockError::TooManyTxs { count: txs.len(), max: MAX_TXS_PER_BLOCK });
    }
    Ok(txs.iter().map(Transaction::hash).collect())
}

/// Runs `txs` (whose ids are `ids`) and the end-of-block steps on a copy of `state`. The
/// header's own checks are the caller's (see [`apply_block`]).
fn execute(
    state: &State,
    context: BlockContext,
    txs: &[Transaction],
    ids: &[Hash],
    verified: &impl VerifiedSignatures,
) -> Result<(State, BlockOutcome), BlockError> {
    let mut next = state.clone();
    next.height = context.height;
    next.time_ms = context.time_ms;
    next.randomness = context.randomness;
    let mut outcome = BlockOutcome::default();
    let signatures_ok = check_signatures(txs, ids, verified);
    let mut fees = Amount::ZERO;
    for (index, ((tx, id), signature_ok)) in txs.iter().zip(ids.iter().copied()).zip(signatures_ok).enumerate() {
        let receipt = apply_tx(&mut next, &mut outcome.events, tx, id, signature_ok);
        // An executed transaction carried again would overwrite its finalized receipt,
        // and no honest proposer builds on a nonce that is used.
        if let Err(TxError::NonceReplayed { .. }) = receipt.result {
            return Err(BlockError::NonceAlreadyUsed { index, tx: id });
        }
        fees = fees.checked_add(receipt.fee_paid).ok_or_else(|| invariant("fee total overflows"))?;
        outcome.receipts.push(receipt);
    }
    end_block(&mut next, &mut outcome.events, context, fees)?;
    Ok((next, outcome))
}

fn invariant(what: impl Into<String>) -> BlockError {
    BlockError::Invariant(what.into())
}

/// Whether each transaction's signature verifies: those `verified` vouches for are taken
/// as checked; the rest get one batch check for the common case where all verify.
fn check_signatures(txs: &[Transaction], ids: &[Hash], verified: &impl VerifiedSignatures) -> Vec<bool> {
    let mut ok: Vec<bool> = ids.iter().map(|id| verified.verified(id)).collect();
    let unchecked: Vec<usize> = (0..txs.len()).filter(|i| !ok[*i]).collect();
    let unchecked_txs: Vec<&Transaction> = unchecked.iter().map(|i| &txs[*i]).collect();
    for (i, valid) in unchecked.into_iter().zip(ogpu_core::tx::verify_signatures(&unchecked_txs)) {
        ok[i] = valid;
    }
    ok
}

fn admit(state: &State, tx: &Transaction, signature_ok: bool) -> Result<(), TxError> {
    if tx.chain_id != state.chain_id {
        return Err(TxError::WrongChain { expected: state.chain_id.clone(), got: tx.chain_id.clone() });
    }
    if !signature_ok {
        return Err(TxError::BadSignature);
    }
    let account = state.account(&tx.sender_address());
    if tx.nonce < account.nonce {
        return Err(TxError::NonceReplayed { expected: account.nonce, got: tx.nonce });
    }
    if tx.nonce > account.nonce {
        return Err(TxError::NonceSkipped { expected: account.nonce, got: tx.nonce });
    }
    if tx.fee < state.params.min_fee {
        return Err(TxError::FeeTooLow { min: state.params.min_fee, got: tx.fee });
    }
    if account.balance < tx.fee {
        return Err(TxError::CannotPayFee { balance: account.balance, fee: tx.fee });
    }
    Ok(())
}

fn apply_tx(state: &mut State, events: &mut Vec<Event>, tx: &Transaction, hash: Hash, signature_ok: bool) -> Receipt {
    if let Err(error) = admit(state, tx, signature_ok) {
        return Receipt { tx: hash, result: Err(error), fee_paid: Amount::ZERO };
    }
    let sender = tx.sender_address();
    let account = state.accounts.entry(sender).or_default();
    account.balance = account.balance.checked_sub(tx.fee).expect("admission checked the fee is covered");
    account.nonce += 1;

    let snapshot = state.clone();
    let events_before = events.len();
    let result = dispatch(&mut Ctx { state, events }, tx, sender, hash);
    if result.is_err() {
        *state = snapshot;
        events.truncate(events_before);
    }
    Receipt { tx: hash, result, fee_paid: tx.fee }
}

fn dispatch(ctx: &mut Ctx, tx: &Transaction, sender: Address, hash: Hash) -> Result<(), TxError> {
    match &tx.body {
        TxBody::Transfer { to, amount } => bank::transfer(ctx, sender, *to, *amount),
        TxBody::Stake { role, amount } => staking::stake(ctx, sender, tx.sender, *role, *amount),
        TxBody::Unstake { role, amount } => staking::unstake(ctx, sender, *role, *amount),
        TxBody::Withdraw => staking::withdraw(ctx, sender),
        TxBody::RegisterProvider { profile } => market::register_provider(ctx, sender, profile),
        TxBody::UpdateProvider { profile } => market::update_provider(ctx, sender, profile),
        TxBody::SubmitTask { spec } => market::submit_task(ctx, sender, hash, spec),
        TxBody::CancelTask { task } => market::cancel_task(ctx, sender, *task),
        TxBody::TopUpTask { task, max_price } => market::top_up_task(ctx, sender, *task, *max_price),
        TxBody::PostKeys { task, to, keys } => market::post_keys(ctx, sender, *task, *to, keys),
        TxBody::DeclineTask { task, reason } => market::decline_task(ctx, sender, *task, reason),
        TxBody::CommitBid { task, commitment } => market::commit_bid(ctx, sender, *task, *commitment),
        TxBody::RevealBid { task, price, salt } => market::reveal_bid(ctx, sender, *task, *price, salt),
        TxBody::StartTask { task } => market::start_task(ctx, sender, *task),
        TxBody::CreatePool { spec } => market::create_pool(ctx, sender, hash, spec),
        TxBody::JoinPool { pool, stake } => market::join_pool(ctx, sender, *pool, *stake),
        TxBody::LeavePool { pool } => market::leave_pool(ctx, sender, *pool),
        TxBody::CommitResult { task, commitment } => market::commit_result(ctx, sender, *task, *commitment),
        TxBody::RevealResult { task, claim, salt, sealed } => {
            market::reveal_result(ctx, sender, *task, claim, salt, *sealed)
        }
        TxBody::Report { task, report } => verify::report(ctx, sender, *task, report),
        TxBody::Challenge { task, bond } => verify::challenge(ctx, sender, *task, *bond),
        TxBody::Evidence { evidence } => staking::punish_equivocation(ctx, evidence),
        TxBody::Propose { change } => governance::propose(ctx, sender, hash, *change),
        TxBody::Vote { proposal, approve } => governance::vote(ctx, sender, *proposal, *approve),
    }
}

fn end_block(
    state: &mut State,
    events: &mut Vec<Event>,
    context: BlockContext,
    fees: Amount,
) -> Result<(), BlockError> {
    let mut ctx = Ctx { state, events };
    market::run_timers(&mut ctx).map_err(|e| invariant(format!("task timer: {e}")))?;
    governance::close_votes(&mut ctx).map_err(|e| invariant(format!("governance: {e}")))?;
    bank::mint_block_reward(&mut ctx).map_err(|e| invariant(format!("block reward: {e}")))?;
    ctx.state.credit(Address::of(&context.proposer), fees).map_err(|e| invariant(format!("fees: {e}")))?;
    if context.height.is_multiple_of(ctx.state.params.epoch_blocks) {
        staking::next_epoch(&mut ctx).map_err(|e| invariant(format!("epoch: {e}")))?;
    }
    Ok(())
}
