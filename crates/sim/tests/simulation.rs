//! Safety, liveness, evidence and determinism of the consensus engine in the simulator.

use std::collections::BTreeSet;

use ogpu_consensus::Params;
use ogpu_core::Hash;
use ogpu_core::rng::DetRng;
use ogpu_core::vote::Evidence;
use ogpu_sim::{Config, Partition, Report, StakeDistribution, Strategy, run};

/// Parameters for small networks: every poll asks nearly everyone, so few polls decide.
fn small_params() -> Params {
    Params { k: 10, alpha_pref: 7, alpha_conf: 7, beta: 8, concurrent_polls: 4, ..Params::default() }
}

/// A random adversarial setting for `seed`: 5 to 8 validators, equal or Pareto stake, loss
/// up to 5%, a partition that heals, and byzantine validators holding at most 20% of stake.
fn adversarial(seed: u64) -> Config {
    let mut rng = DetRng::new(&Hash::tagged("ogpu/sim-test", &[&seed.to_le_bytes()]), "setting", &[]);
    let validators = 5 + rng.below(4) as usize;
    let mut config = Config::new(validators, seed);
    config.params = small_params();
    config.duration_ms = 3_000;
    // Loss up to 5%: with one of six validators mute, the quorum scaled to six (5 of 6)
    // has no slack, so any lost query or chit fails a poll, and at 10% loss beta polls in a
    // row almost never succeed: such runs finalize nothing, which proves nothing about
    // safety (docs/security.md records this limit of small validator sets).
    config.loss = rng.below(6) as f64 / 100.0;
    if rng.below(2) == 0 {
        config.stake = StakeDistribution::Pareto { shape: 1.5 };
    }
    if rng.below(2) == 0 {
        let start_ms = rng.below(1_000) as u64;
        let side = (0..validators).filter(|_| rng.below(2) == 0).collect();
        config.partitions.push(Partition { start_ms, end_ms: start_ms + 500 + rng.below(1_000) as u64, side });
    }
    // One byzantine validator, drawn among those holding at most a fifth of the stake.
    let stakes = ogpu_sim::stakes(&config);
    let total: u128 = stakes.iter().sum();
    let small: Vec<usize> = (0..validators).filter(|i| stakes[*i] * 5 <= total).collect();
    if !small.is_empty() {
        let byzantine = small[rng.below(small.len() as u128) as usize];
        config.byzantine.push((byzantine, Strategy::ALL[rng.below(4) as usize]));
    }
    config
}

fn byzantine_share(config: &Config, report_stake: &[u128]) -> f64 {
    let total: u128 = report_stake.iter().sum();
    let bad: u128 = config.byzantine.iter().map(|(i, _)| report_stake[*i]).sum();
    bad as f64 / total as f64
}

/// The run of `adversarial(seed)`, longer (12 s instead of 3) when no honest validator
/// accepted anything in the first: a run that accepts nothing is safe without showing
/// anything. In 3 s of loss, a partition and a byzantine peer, about one setting in 25
/// finalizes nothing yet.
fn run_until_accepted(seed: u64) -> Report {
    let report = run(adversarial(seed)).expect("valid parameters");
    if report.acceptances.iter().any(|blocks| !blocks.is_empty()) {
        return report;
    }
    let mut longer = adversarial(seed);
    longer.duration_ms = 12_000;
    run(longer).expect("valid parameters")
}

#[test]
fn no_two_honest_validators_ever_accept_different_blocks_at_one_height() {
    let seeds: Vec<u64> = (0..1_000).collect();
    let failures: Vec<(u64, u64, usize)> = std::thread::scope(|scope| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
        let chunks: Vec<Vec<u64>> =
            (0..threads).map(|t| seeds.iter().copied().skip(t).step_by(threads).collect()).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .filter_map(|seed| {
                            let report = run_until_accepted(seed);
                            let accepted = report.acceptances.iter().map(Vec::len).max().unwrap_or(0);
                            (report.safety_violations > 0 || accepted == 0).then_some((
                                seed,
                                report.safety_violations,
                                accepted,
                            ))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a simulation thread panicked")).collect()
    });
    assert!(
        failures.is_empty(),
        "safety violated or nothing accepted; replay with adversarial(seed): (seed, violations, most accepted) {failures:?}"
    );
}

#[test]
fn the_adversarial_settings_keep_byzantine_stake_at_or_below_a_fifth() {
    for seed in 0..1_000 {
        let config = adversarial(seed);
        let stakes = ogpu_sim::stakes(&config);
        assert!(byzantine_share(&config, &stakes) <= 0.2 + 1e-9, "seed {seed}: {:?}", config.byzantine);
    }
}

fn assert_keeps_finalizing(report: &Report, from_ms: f64, until_ms: f64, bound_ms: f64) {
    for (node, acceptances) in report.acceptances.iter().enumerate() {
        let mut last = from_ms;
        for (_, at) in acceptances.iter().filter(|(_, at)| (from_ms..until_ms).contains(at)) {
            assert!(
                at - last <= bound_ms,
                "validator {node} waited {:.0} ms for a block after {last:.0} ms",
                at - last
            );
            last = *at;
        }
        assert!(until_ms - last <= bound_ms, "validator {node} accepted nothing after {last:.0} ms");
    }
}

#[test]
fn honest_validators_keep_finalizing_with_a_mute_tenth_loss_and_after_a_partition_heals() {
    let mut config = Config::new(10, 7);
    config.params = small_params();
    config.duration_ms = 12_000;
    config.loss = 0.02;
    config.byzantine = vec![(3, Strategy::Mute)];
    config.partitions = vec![Partition { start_ms: 3_000, end_ms: 5_000, side: [0, 1, 2, 4].into() }];
    let report = run(config).unwrap();
    assert_eq!(report.safety_violations, 0);
    // Before the partition and after it heals, every honest validator accepts a block at
    // least every 2.5 s (a block takes under 1 s; a missed proposer slot adds 1 s).
    assert_keeps_finalizing(&report, 0.0, 3_000.0, 2_500.0);
    assert_keeps_finalizing(&report, 5_000.0, 12_000.0, 2_500.0);
}

#[test]
fn liveness_holds_against_each_byzantine_strategy() {
    for strategy in Strategy::ALL {
        let mut config = Config::new(10, 11);
        config.params = small_params();
        config.duration_ms = 8_000;
        config.byzantine = vec![(0, strategy), (5, strategy)];
        let report = run(config).unwrap();
        assert_eq!(report.safety_violations, 0, "{strategy:?}");
        assert_keeps_finalizing(&report, 0.0, 8_000.0, 3_000.0);
    }
}

#[test]
fn an_equivocating_proposer_and_voter_leave_evidence_that_verifies() {
    let kinds = |strategy| {
        let mut config = Config::new(6, 3);
        config.params = small_params();
        config.duration_ms = 6_000;
        config.byzantine = vec![(0, strategy), (1, strategy), (2, strategy)];
        let report = run(config).unwrap();
        report.evidence.iter().map(|e| matches!(e, Evidence::DoubleProposal(..))).collect::<BTreeSet<bool>>()
    };
    assert!(kinds(Strategy::EquivocatingProposer).contains(&true), "a double proposal is caught");
    assert!(kinds(Strategy::EquivocatingVoter).contains(&false), "a double chit is caught");
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let setting = |seed| {
        let mut config = adversarial(seed);
        config.duration_ms = 2_000;
        config
    };
    let first = run(setting(5)).unwrap();
    let again = run(setting(5)).unwrap();
    assert_eq!(first.trace_hash, again.trace_hash);
    assert_eq!(first.finality_ms, again.finality_ms);
    assert_ne!(run(setting(6)).unwrap().trace_hash, first.trace_hash);
}
