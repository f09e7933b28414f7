//! Property tests of the canonical encoding of every on-chain type.
//!
//! Each value round-trips; decoding is strict (an extra byte or a missing one is an
//! error); and decoding any byte string, random or a mutated encoding, never panics and
//! accepts only the one encoding of the value it returns.

use std::collections::BTreeSet;
use std::fmt::Debug;

use borsh::{BorshDeserialize, BorshSerialize};
use ogpu_core::block::{BlockHeader, SignedHeader};
use ogpu_core::encoding::{Canonical, DecodeError, decode_bounded};
use ogpu_core::sealed::{Envelope, ReaderKey};
use ogpu_core::spec::{
    Device, DeviceKind, DeviceProfile, Limits, Market, PoolSpec, Ratio, Requirements, TaskSpec, Training,
    VerificationPolicy, Workload, WorkloadKind, limits,
};
use ogpu_core::tx::{ParamChange, ParamKey, ResultClaim, StakeRole, Trace, VerificationReport};
use ogpu_core::vote::{Chit, Evidence, SignedChit};
use ogpu_core::vrf::VrfProof;
use ogpu_core::{
    Address, Amount, BlobHash, Block, ChainId, Hash, PoolId, ProposalId, PublicKey, SecretKey, Signature, TaskId,
    Transaction, TxBody,
};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

// ---------------------------------------------------------------------------------------
// Strategies for the building blocks.

fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

fn task_id() -> impl Strategy<Value = TaskId> {
    hash().prop_map(TaskId)
}

fn pool_id() -> impl Strategy<Value = PoolId> {
    hash().prop_map(PoolId)
}

fn blob_hash() -> impl Strategy<Value = BlobHash> {
    hash().prop_map(BlobHash)
}

fn amount() -> impl Strategy<Value = Amount> {
    any::<u128>().prop_map(Amount::from_base_units)
}

fn positive_amount() -> impl Strategy<Value = Amount> {
    (1..=u128::MAX).prop_map(Amount::from_base_units)
}

fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address)
}

fn public_key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey)
}

fn signature() -> impl Strategy<Value = Signature> {
    any::<[u8; 64]>().prop_map(Signature)
}

fn chain_id() -> impl Strategy<Value = ChainId> {
    "[a-z0-9-]{1,32}".prop_map(|text| text.parse().expect("the regex only makes valid chain ids"))
}

/// A key with a real signature, so that round trips can be checked to keep it valid.
fn secret_key() -> impl Strategy<Value = SecretKey> {
    select(vec!["alice", "bob", "carol", "validator-0"]).prop_map(SecretKey::from_name)
}

/// Text that passes the spec checks on names and models (1 to 64 bytes, no control
/// characters), with multi-byte characters to exercise UTF-8.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ._é漢-]{1,16}"
}

fn workload_kind() -> impl Strategy<Value = WorkloadKind> {
    select(vec![WorkloadKind::Wasm, WorkloadKind::Onnx, WorkloadKind::Train, WorkloadKind::Container])
}

fn stake_role() -> impl Strategy<Value = StakeRole> {
    select(vec![StakeRole::Validator, StakeRole::Provider])
}

fn param_key() -> impl Strategy<Value = ParamKey> {
    select(ParamKey::ALL.to_vec())
}

// ---------------------------------------------------------------------------------------
// Strategies for specs and profiles: valid-shaped, as `validate` accepts them.

fn workload() -> impl Strategy<Value = Workload> {
    let input_name = "[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,15}";
    let limits = (1..=u64::MAX, 1..=1u32 << 20, 1..=u32::MAX).prop_map(|(fuel, memory_mb, timeout_s)| Limits {
        fuel,
        memory_mb,
        timeout_s,
    });
    let env = btree_map("[A-Z_][A-Z0-9_]{0,15}", "[^\\x00]{0,16}", 0..4);
    let parts = (workload_kind(), blob_hash(), btree_map(input_name, blob_hash(), 0..4), vec(".{0,16}", 0..4));
    let training = (1..=1u64 << 40, 1..=1u64 << 40).prop_map(|(steps, every)| Training {
        steps,
        // Within the checkpoints a spec may declare.
        checkpoint_every: every.max(steps.div_ceil(limits::CHECKPOINTS - 1)),
    });
    (parts, env, training, limits).prop_map(|((kind, program, inputs, args), env, training, limits)| {
        // Only a container takes an environment, and OGPU_ names are the runtime's; only a
        // container declares its training, and proof of learning of one needs it.
        let (env, training) = match kind {
            WorkloadKind::Container => {
                (env.into_iter().filter(|(name, _)| !name.starts_with("OGPU_")).collect(), Some(training))
            }
            _ => Default::default(),
        };
        Workload { kind, program, inputs, args, env, training, limits }
    })
}

fn market() -> impl Strategy<Value = Market> {
    prop_oneof![
        3 => (positive_amount(), 1..=limits::MAX_BID_WINDOW)
            .prop_map(|(max_price, bid_window)| Market::Auction { max_price, bid_window }),
        1 => pool_id().prop_map(|pool| Market::Pool { pool }),
    ]
}

fn requirements() -> impl Strategy<Value = Requirements> {
    (any::<u32>(), any::<u64>(), vec(text(), 0..4), 0..=limits::MAX_REPUTATION).prop_map(
        |(gpus, min_vram_mb, models, min_reputation)| Requirements { gpus, min_vram_mb, models, min_reputation },
    )
}

fn verification() -> impl Strategy<Value = VerificationPolicy> {
    let replicate = (2..=limits::REPLICAS).prop_flat_map(|n| (Just(n), n / 2 + 1..=n)).prop_flat_map(|(n, quorum)| {
        (0..Ratio::ONE.0).prop_map(move |t| VerificationPolicy::Replicate { n, quorum, tolerance: Ratio(t) })
    });
    let spot_check = (1..=Ratio::ONE.0, 0..Ratio::ONE.0)
        .prop_map(|(p, t)| VerificationPolicy::SpotCheck { p: Ratio(p), tolerance: Ratio(t) });
    let proof_of_learning = (1..=limits::SEGMENTS, 0..Ratio::ONE.0).prop_map(|(segments, tolerance)| {
        VerificationPolicy::ProofOfLearning { segments, tolerance: Ratio(tolerance) }
    });
    prop_oneof![Just(VerificationPolicy::None), replicate, spot_check, proof_of_learning,]
}

fn task_spec() -> impl Strategy<Value = TaskSpec> {
    (text(), workload(), market(), requirements(), 1..=limits::MAX_DEADLINE_BLOCKS, verification())
        .prop_map(|(name, mut workload, market, requirements, deadline_blocks, verification)| {
            // A pool job takes its pool's verification; proof of learning is for training,
            // by the train runtime or by a container (which declares its training).
            let verification = match market {
                Market::Pool { .. } => VerificationPolicy::None,
                Market::Auction { .. } => verification,
            };
            if let VerificationPolicy::ProofOfLearning { .. } = verification
                && workload.kind != WorkloadKind::Container
            {
                workload.kind = WorkloadKind::Train;
            }
            TaskSpec { name, workload, market, requirements, deadline_blocks, verification, private: None }
        })
        .prop_flat_map(|spec| {
            // Only an auction task may be private.
            let private = match spec.market {
                Market::Auction { .. } => option::of(reader_key()).boxed(),
                Market::Pool { .. } => Just(None).boxed(),
            };
            (Just(spec), private).prop_map(|(spec, private)| TaskSpec { private, ..spec })
        })
}

fn reader_key() -> impl Strategy<Value = ReaderKey> {
    any::<[u8; 32]>().prop_map(ReaderKey)
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (any::<[u8; 32]>(), any::<[u8; 24]>(), vec(any::<u8>(), 48)).prop_map(|(ephemeral, nonce, sealed_key)| Envelope {
        ephemeral,
        nonce,
        sealed_key: sealed_key.try_into().expect("48 bytes"),
    })
}

fn device_profile() -> impl Strategy<Value = DeviceProfile> {
    let device = (select(vec![DeviceKind::Gpu, DeviceKind::Cpu]), text(), any::<u64>(), any::<u32>())
        .prop_map(|(kind, model, memory_mb, gflops)| Device { kind, model, memory_mb, gflops });
    (vec(device, 1..=4), text(), option::of(reader_key())).prop_map(|(devices, region, reader)| DeviceProfile {
        devices,
        region,
        reader,
    })
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (text(), workload_kind(), blob_hash(), positive_amount(), 0..=Ratio::ONE.0, amount()).prop_map(
        |(name, kind, model, price_per_job, rate, min_stake)| PoolSpec {
            name,
            kind,
            model,
            price_per_job,
            verification_rate: Ratio(rate),
            min_stake,
        },
    )
}

// ---------------------------------------------------------------------------------------
// Strategies for consensus messages, transactions and blocks.

fn block_header() -> impl Strategy<Value = BlockHeader> {
    (
        chain_id(),
        any::<u64>(),
        hash(),
        public_key(),
        any::<u64>(),
        hash(),
        hash(),
        hash(),
        any::<[u8; 80]>().prop_map(VrfProof),
    )
        .prop_map(|(chain_id, height, parent, proposer, time_ms, tx_root, state_root, randomness, proof)| {
            BlockHeader {
                chain_id,
                height,
                parent,
                proposer,
                time_ms,
                tx_root,
                state_root,
                randomness,
                randomness_proof: proof,
            }
        })
}

fn signed_header() -> impl Strategy<Value = SignedHeader> {
    prop_oneof![
        (block_header(), signature()).prop_map(|(header, signature)| SignedHeader { header, signature }),
        (block_header(), secret_key()).prop_map(|(header, key)| header.sign(&key)),
    ]
}

fn chit() -> impl Strategy<Value = Chit> {
    (chain_id(), address(), any::<u64>(), any::<u64>(), hash())
        .prop_map(|(chain_id, poller, poll, height, preferred)| Chit { chain_id, poller, poll, height, preferred })
}

fn signed_chit() -> impl Strategy<Value = SignedChit> {
    prop_oneof![
        (chit(), public_key(), signature()).prop_map(|(chit, voter, signature)| SignedChit { chit, voter, signature }),
        (chit(), secret_key()).prop_map(|(chit, key)| chit.sign(&key)),
    ]
}

fn evidence() -> impl Strategy<Value = Evidence> {
    prop_oneof![
        (signed_header(), signed_header()).prop_map(|(a, b)| Evidence::DoubleProposal(a, b)),
        (signed_chit(), signed_chit()).prop_map(|(a, b)| Evidence::DoubleChit(a, b)),
    ]
}

fn tx_body() -> impl Strategy<Value = TxBody> {
    let claim = (hash(), option::of((hash(), any::<u32>()))).prop_map(|(output, trace)| ResultClaim {
        output,
        trace: trace.map(|(root, checkpoints)| Trace { root, checkpoints }),
    });
    let report = (address(), any::<bool>(), any::<u32>())
        .prop_map(|(subject, pass, distance_ppm)| VerificationReport { subject, pass, distance_ppm });
    prop_oneof![
        (address(), amount()).prop_map(|(to, amount)| TxBody::Transfer { to, amount }),
        (stake_role(), amount()).prop_map(|(role, amount)| TxBody::Stake { role, amount }),
        (stake_role(), amount()).prop_map(|(role, amount)| TxBody::Unstake { role, amount }),
        Just(TxBody::Withdraw),
        device_profile().prop_map(|profile| TxBody::RegisterProvider { profile }),
        device_profile().prop_map(|profile| TxBody::UpdateProvider { profile }),
        task_spec().prop_map(|spec| TxBody::SubmitTask { spec }),
        task_id().prop_map(|task| TxBody::CancelTask { task }),
        (task_id(), hash()).prop_map(|(task, commitment)| TxBody::CommitBid { task, commitment }),
        (task_id(), amount(), hash()).prop_map(|(task, price, salt)| TxBody::RevealBid { task, price, salt }),
        task_id().prop_map(|task| TxBody::StartTask { task }),
        pool_spec().prop_map(|spec| TxBody::CreatePool { spec }),
        (pool_id(), amount()).prop_map(|(pool, stake)| TxBody::JoinPool { pool, stake }),
        pool_id().prop_map(|pool| TxBody::LeavePool { pool }),
        (task_id(), hash()).prop_map(|(task, commitment)| TxBody::CommitResult { task, commitment }),
        (task_id(), claim, hash(), option::of(blob_hash()))
            .prop_map(|(task, claim, salt, sealed)| TxBody::RevealResult { task, claim, salt, sealed }),
        (task_id(), report).prop_map(|(task, report)| TxBody::Report { task, report }),
        (task_id(), amount()).prop_map(|(task, bond)| TxBody::Challenge { task, bond }),
        evidence().prop_map(|evidence| TxBody::Evidence { evidence: Box::new(evidence) }),
        (param_key(), any::<u128>()).prop_map(|(key, value)| TxBody::Propose { change: ParamChange { key, value } }),
        (hash(), any::<bool>())
            .prop_map(|(proposal, approve)| TxBody::Vote { proposal: ProposalId(proposal), approve }),
        (task_id(), amount()).prop_map(|(task, max_price)| TxBody::TopUpTask { task, max_price }),
        (task_id(), address(), vec(envelope(), 0..4)).prop_map(|(task, to, keys)| TxBody::PostKeys { task, to, keys }),
        (task_id(), ".{0,16}").prop_map(|(task, reason)| TxBody::DeclineTask { task, reason }),
    ]
}

/// Transactions with arbitrary bytes for key and signature, and properly signed ones.
fn transaction() -> impl Strategy<Value = Transaction> {
    prop_oneof![
        (chain_id(), public_key(), any::<u64>(), amount(), tx_body(), signature()).prop_map(
            |(chain_id, sender, nonce, fee, body, signature)| Transaction {
                chain_id,
                sender,
                nonce,
                fee,
                body,
                signature,
            },
        ),
        signed_transaction(),
    ]
}

fn signed_transaction() -> impl Strategy<Value = Transaction> {
    (secret_key(), chain_id(), any::<u64>(), amount(), tx_body())
        .prop_map(|(key, chain_id, nonce, fee, body)| Transaction::sign(&key, chain_id, nonce, fee, body))
}

fn block() -> impl Strategy<Value = Block> {
    (signed_header(), vec(transaction(), 0..4)).prop_map(|(signed, txs)| Block { signed, txs })
}

// ---------------------------------------------------------------------------------------
// Decoding every type the way the chain does.

/// Strict decoding for the types without a [`Canonical`] bound of their own: they travel
/// inside transactions, so a transaction's limit bounds them.
fn decode_inner<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_bounded(bytes, Transaction::MAX_ENCODED_LEN)
}

fn encode_inner<T: BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("encoding into a Vec cannot fail")
}

/// A value of any of the types that go on chain on their own or inside a transaction.
#[derive(Debug, Clone, PartialEq)]
enum OnChain {
    Transaction(Transaction),
    Block(Block),
    SignedChit(SignedChit),
    TaskSpec(TaskSpec),
    DeviceProfile(DeviceProfile),
    PoolSpec(PoolSpec),
}

impl OnChain {
    fn encode(&self) -> Vec<u8> {
        match self {
            OnChain::Transaction(tx) => tx.encode(),
            OnChain::Block(block) => block.encode(),
            OnChain::SignedChit(chit) => encode_inner(chit),
            OnChain::TaskSpec(spec) => encode_inner(spec),
            OnChain::DeviceProfile(profile) => encode_inner(profile),
            OnChain::PoolSpec(spec) => encode_inner(spec),
        }
    }

    /// Decodes `bytes` as a value of the same type as `self`.
    fn decode_same_type(&self, bytes: &[u8]) -> Result<OnChain, DecodeError> {
        Ok(match self {
            OnChain::Transaction(_) => OnChain::Transaction(Transaction::decode(bytes)?),
            OnChain::Block(_) => OnChain::Block(Block::decode(bytes)?),
            OnChain::SignedChit(_) => OnChain::SignedChit(decode_inner(bytes)?),
            OnChain::TaskSpec(_) => OnChain::TaskSpec(decode_inner(bytes)?),
            OnChain::DeviceProfile(_) => OnChain::DeviceProfile(decode_inner(bytes)?),
            OnChain::PoolSpec(_) => OnChain::PoolSpec(decode_inner(bytes)?),
        })
    }
}

fn on_chain() -> impl Strategy<Value = OnChain> {
    prop_oneof![
        3 => transaction().prop_map(OnChain::Transaction),
        1 => block().prop_map(OnChain::Block),
        1 => signed_chit().prop_map(OnChain::SignedChit),
        1 => task_spec().prop_map(OnChain::TaskSpec),
        1 => device_profile().prop_map(OnChain::DeviceProfile),
        1 => pool_spec().prop_map(OnChain::PoolSpec),
    ]
}

/// Bytes that decoding must survive: pure noise; a valid encoding cut at some point and
/// continued with noise; or a valid encoding with a few bytes overwritten. The last two get
/// deep into the decoder, and the last often decodes.
fn noisy_bytes<S: Strategy<Value = Vec<u8>>>(valid: impl Fn() -> S) -> impl Strategy<Value = Vec<u8>> {
    let cut_and_continued = (valid(), any::<Index>(), vec(any::<u8>(), 0..200)).prop_map(|(mut bytes, cut, tail)| {
        bytes.truncate(cut.index(bytes.len() + 1));
        bytes.extend(tail);
        bytes
    });
    let overwritten = (valid(), any::<Index>(), vec(any::<u8>(), 1..8)).prop_map(|(mut bytes, at, noise)| {
        let at = at.index(bytes.len());
        let end = bytes.len().min(at + noise.len());
        bytes[at..end].copy_from_slice(&noise[..end - at]);
        bytes
    });
    prop_oneof![vec(any::<u8>(), 0..2000), cut_and_continued, overwritten]
}

/// Decoding `bytes` must not panic, and a value it accepts must encode back to exactly
/// `bytes`: no value has a second encoding.
fn assert_only_canonical<T>(
    bytes: &[u8],
    decode: fn(&[u8]) -> Result<T, DecodeError>,
    encode: fn(&T) -> Vec<u8>,
) -> Result<(), TestCaseError>
where
    T: Debug,
{
    if let Ok(value) = decode(bytes) {
        prop_assert_eq!(encode(&value), bytes, "{:?} decoded from a non-canonical encoding", value);
    }
    Ok(())
}

fn round_trip<T>(
    value: &T,
    decode: fn(&[u8]) -> Result<T, DecodeError>,
    encode: fn(&T) -> Vec<u8>,
) -> Result<(), TestCaseError>
where
    T: Debug + PartialEq,
{
    prop_assert_eq!(&decode(&encode(value))?, value);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_transaction_round_trips(tx in transaction()) {
        round_trip(&tx, Transaction::decode, Transaction::encode)?;
    }

    #[test]
    fn every_block_round_trips(block in block()) {
        round_trip(&block, Block::decode, Block::encode)?;
    }

    #[test]
    fn every_signed_chit_round_trips(chit in signed_chit()) {
        round_trip(&chit, decode_inner, encode_inner)?;
    }

    #[test]
    fn every_task_spec_round_trips(spec in task_spec()) {
        round_trip(&spec, decode_inner, encode_inner)?;
    }

    #[test]
    fn every_device_profile_round_trips(profile in device_profile()) {
        round_trip(&profile, decode_inner, encode_inner)?;
    }

    #[test]
    fn every_pool_spec_round_trips(spec in pool_spec()) {
        round_trip(&spec, decode_inner, encode_inner)?;
    }

    #[test]
    fn a_signed_transaction_still_verifies_after_a_round_trip(tx in signed_transaction()) {
        let decoded = Transaction::decode(&tx.encode())?;
        prop_assert_eq!(decoded.sender.verify(&decoded.signing_bytes(), &decoded.signature), Ok(()));
        prop_assert_eq!(decoded.hash(), tx.hash());
    }

    #[test]
    fn generated_specs_profiles_and_pools_are_valid(
        spec in task_spec(),
        profile in device_profile(),
        pool in pool_spec(),
    ) {
        prop_assert_eq!(spec.validate(), Ok(()));
        prop_assert_eq!(profile.validate(), Ok(()));
        prop_assert_eq!(pool.validate(), Ok(()));
    }

    #[test]
    fn an_encoding_followed_by_any_extra_byte_is_rejected(value in on_chain(), extra in any::<u8>()) {
        let mut bytes = value.encode();
        bytes.push(extra);
        prop_assert!(value.decode_same_type(&bytes).is_err());
    }

    #[test]
    fn every_strict_prefix_of_an_encoding_is_rejected(value in on_chain()) {
        let bytes = value.encode();
        for len in 0..bytes.len() {
            prop_assert!(value.decode_same_type(&bytes[..len]).is_err(), "a prefix of {} bytes decoded", len);
        }
    }

    #[test]
    fn a_flipped_byte_is_rejected_or_reads_as_another_value_encoded_exactly_so(
        value in on_chain(),
        at in any::<Index>(),
        flip in 1..=u8::MAX,
    ) {
        let mut bytes = value.encode();
        let at = at.index(bytes.len());
        bytes[at] ^= flip;
        if let Ok(other) = value.decode_same_type(&bytes) {
            prop_assert_ne!(&other, &value);
            prop_assert_eq!(other.encode(), bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_decode_as_a_transaction_only_in_canonical_form(
        bytes in noisy_bytes(|| transaction().prop_map(|tx| tx.encode())),
    ) {
        assert_only_canonical(&bytes, Transaction::decode, Transaction::encode)?;
    }

    #[test]
    fn arbitrary_bytes_decode_as_a_block_only_in_canonical_form(
        bytes in noisy_bytes(|| block().prop_map(|block| block.encode())),
    ) {
        assert_only_canonical(&bytes, Block::decode, Block::encode)?;
    }
}

// ---------------------------------------------------------------------------------------
// The generators cover every transaction kind.

/// The name of a body's variant, splitting evidence by kind. The match has no wildcard, so
/// a new variant does not compile until this file generates it.
fn variant(body: &TxBody) -> &'static str {
    match body {
        TxBody::Transfer { .. } => "Transfer",
        TxBody::Stake { .. } => "Stake",
        TxBody::Unstake { .. } => "Unstake",
        TxBody::Withdraw => "Withdraw",
        TxBody::RegisterProvider { .. } => "RegisterProvider",
        TxBody::UpdateProvider { .. } => "UpdateProvider",
        TxBody::SubmitTask { .. } => "SubmitTask",
        TxBody::CancelTask { .. } => "CancelTask",
        TxBody::CommitBid { .. } => "CommitBid",
        TxBody::RevealBid { .. } => "RevealBid",
        TxBody::StartTask { .. } => "StartTask",
        TxBody::CreatePool { .. } => "CreatePool",
        TxBody::JoinPool { .. } => "JoinPool",
        TxBody::LeavePool { .. } => "LeavePool",
        TxBody::CommitResult { .. } => "CommitResult",
        TxBody::RevealResult { .. } => "RevealResult",
        TxBody::Report { .. } => "Report",
        TxBody::Challenge { .. } => "Challenge",
        TxBody::Evidence { evidence } => match **evidence {
            Evidence::DoubleProposal(..) => "Evidence::DoubleProposal",
            Evidence::DoubleChit(..) => "Evidence::DoubleChit",
        },
        TxBody::Propose { .. } => "Propose",
        TxBody::Vote { .. } => "Vote",
        TxBody::TopUpTask { .. } => "TopUpTask",
        TxBody::PostKeys { .. } => "PostKeys",
        TxBody::DeclineTask { .. } => "DeclineTask",
    }
}

#[test]
fn the_body_generator_yields_every_variant_and_both_kinds_of_evidence() {
    let expected: BTreeSet<&str> = [
        "Transfer",
        "Stake",
        "Unstake",
        "Withdraw",
        "RegisterProvider",
        "UpdateProvider",
        "SubmitTask",
        "CancelTask",
        "CommitBid",
        "RevealBid",
        "StartTask",
        "CreatePool",
        "JoinPool",
        "LeavePool",
        "CommitResult",
        "RevealResult",
        "Report",
        "Challenge",
        "Evidence::DoubleProposal",
        "Evidence::DoubleChit",
        "Propose",
        "Vote",
        "TopUpTask",
        "PostKeys",
        "DeclineTask",
    ]
    .into();
    let mut runner = TestRunner::deterministic();
    let strategy = tx_body();
    let seen: BTreeSet<&str> = (0..1_000)
        .map(|_| variant(&strategy.new_tree(&mut runner).expect("bodies always generate").current()))
        .collect();
    assert_eq!(seen, expected);
}

// ---------------------------------------------------------------------------------------
// Written-down vectors: the canonical bytes and hashes of fixed values, so that any change
// to the encoding (a field reordered, a type widened, a tag renumbered) fails here rather
// than splitting nodes of two versions.

/// A transfer and a stake, signed by a key derived from a name, and what they encode and
/// hash to.
#[test]
fn transactions_encode_and_hash_as_written_down() {
    let key = SecretKey::from_name("vector");
    let chain: ChainId = "ogpu-vector".parse().unwrap();
    let transfer = Transaction::sign(
        &key,
        chain.clone(),
        7,
        Amount::from_base_units(100_000_000_000_000),
        TxBody::Transfer { to: Address([0xAB; 20]), amount: Amount::ogpu(3) },
    );
    let stake = Transaction::sign(
        &key,
        chain,
        8,
        Amount::from_base_units(100_000_000_000_000),
        TxBody::Stake { role: StakeRole::Validator, amount: Amount::ogpu(1_000) },
    );
    for (tx, encoded, hash) in [(&transfer, TRANSFER_BYTES, TRANSFER_HASH), (&stake, STAKE_BYTES, STAKE_HASH)] {
        assert_eq!(ogpu_core::hex::encode(&tx.encode()), encoded, "{:?}", tx.body);
        assert_eq!(tx.hash().to_string(), hash, "{:?}", tx.body);
    }
}

/// A header and a chit, likewise.
#[test]
fn headers_and_chits_encode_and_hash_as_written_down() {
    let key = SecretKey::from_name("vector");
    let chain: ChainId = "ogpu-vector".parse().unwrap();
    let header = BlockHeader {
        chain_id: chain.clone(),
        height: 42,
        parent: Hash([1; 32]),
        proposer: key.public(),
        time_ms: 1_700_000_000_000,
        tx_root: Hash([2; 32]),
        state_root: Hash([3; 32]),
        randomness: Hash([4; 32]),
        randomness_proof: VrfProof([5; 80]),
    };
    assert_eq!(header.hash().to_string(), HEADER_HASH);
    let chit = Chit { chain_id: chain, poller: Address([6; 20]), poll: 9, height: 42, preferred: Hash([7; 32]) };
    assert_eq!(ogpu_core::hex::encode(&borsh::to_vec(&chit.sign(&key)).unwrap()), CHIT_BYTES);
}

const TRANSFER_BYTES: &str = "0b0000006f6770752d766563746f7272c87db5818086845d5c634539901dc4a40f3fd786605db696e45ae761e31ac2070000000000000000407a10f35a0000000000000000000000abababababababababababababababababababab00002cf61a24a22900000000000000008a375ba36dd0316b7decd4a1abef739e0305a68294a03762368f347652a74a6ff192e82dd7a2d27b4fdb20eff6616670a74f0502284a30d92e0a8c3090ef8f07";
const TRANSFER_HASH: &str = "e15ba745c84f876b6b4d7f21c0d148d3d94e0fc8d8526caabec58ed8b0b1b586";
const STAKE_BYTES: &str = "0b0000006f6770752d766563746f7272c87db5818086845d5c634539901dc4a40f3fd786605db696e45ae761e31ac2080000000000000000407a10f35a0000000000000000000001000000a0dec5adc935360000000000000050e5f7300795c640bf74b0a190e06b37c77555865e3479875f1429a92671a559c57c5f13c8f7859d088d93734a6dedc4c8a796b664bebe588b97b89146f44704";
const STAKE_HASH: &str = "1a3f765df5f7ffe1151cdb383b8fb5bca43c209c34bdfc492613157f10240cfe";
const HEADER_HASH: &str = "0b488beed55dd440a58d78436a4c088b34e4b5e217a1cba2ccaf576183ca31b5";
const CHIT_BYTES: &str = "0b0000006f6770752d766563746f72060606060606060606060606060606060606060609000000000000002a00000000000000070707070707070707070707070707070707070707070707070707070707070772c87db5818086845d5c634539901dc4a40f3fd786605db696e45ae761e31ac2a15a8e8bea22c8215d7b383c1e7aeddfe2fd2379ab4b44c89787f71ce0e03c31e12e47005bfc95312d2e9f264047926e19dfbaa80455e8b20493042b36d3f80a";
