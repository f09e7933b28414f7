//! `ogpu gov`: the chain's parameters and the proposals that change them. Validators
//! propose and vote; a proposal passes with two thirds of the stake when its voting ends.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ogpu_client::types::ProposalView;
use ogpu_core::tx::{ParamChange, ParamKey, TxBody};
use ogpu_core::{Amount, ProposalId};
use serde_json::json;

use crate::client::{ClientArgs, Format};

#[derive(Subcommand)]
pub enum GovCommand {
    /// Every governable parameter and its value now.
    Params,
    /// Propose setting PARAMETER (as `gov params` names it) to VALUE: oGPU for amounts, a
    /// whole number for the rest. The signing key must be a validator's.
    Propose { parameter: String, value: String },
    /// Vote on a proposal with the signing validator's stake.
    Vote {
        id: String,
        #[arg(value_parser = ["yes", "no"])]
        vote: String,
    },
    /// Proposals in their voting period, with the votes so far.
    List,
}

pub fn run(args: ClientArgs, command: GovCommand) -> Result<()> {
    match command {
        GovCommand::Params => params(&args),
        GovCommand::Propose { parameter, value } => {
            let key = parse_key(&parameter)?;
            let change = ParamChange { key, value: parse_value(key, &value)? };
            let wallet = args.wallet()?;
            let id = wallet.settle(TxBody::Propose { change }, "the proposal")?;
            match args.format {
                Format::Json => println!("{}", json!({ "proposal": id })),
                Format::Table => println!("proposal {id}: set {} to {}", name(key), shown(key, change.value)),
            }
            Ok(())
        }
        GovCommand::Vote { id, vote } => {
            let proposal = ProposalId(crate::client::parse_hash(&id, "a proposal id")?);
            let wallet = args.wallet()?;
            let tx = wallet.settle(TxBody::Vote { proposal, approve: vote == "yes" }, "the vote")?;
            match args.format {
                Format::Json => println!("{}", json!({ "proposal": proposal.0, "vote": vote, "tx": tx })),
                Format::Table => println!("voted {vote} on {id}"),
            }
            Ok(())
        }
        GovCommand::List => list(&args),
    }
}

/// The parameter's name as the chain's JSON and this command write it (`min_fee`).
fn name(key: ParamKey) -> String {
    serde_json::to_value(key).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn parse_key(text: &str) -> Result<ParamKey> {
    match ParamKey::ALL.into_iter().find(|key| name(*key) == text) {
        Some(key) => Ok(key),
        None => {
            let all: Vec<String> = ParamKey::ALL.into_iter().map(name).collect();
            bail!("{text:?} is not a parameter; the parameters are {}", all.join(", "))
        }
    }
}

fn parse_value(key: ParamKey, text: &str) -> Result<u128> {
    if key.is_amount() {
        let amount: Amount = text.parse().with_context(|| format!("{} is an amount of oGPU, like 0.5", name(key)))?;
        Ok(amount.base_units())
    } else {
        text.parse().with_context(|| format!("{} is a whole number", name(key)))
    }
}

fn shown(key: ParamKey, value: u128) -> String {
    if key.is_amount() { format!("{} oGPU", Amount::from_base_units(value)) } else { value.to_string() }
}

fn params(args: &ClientArgs) -> Result<()> {
    let params = args.client()?.params()?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string(&params)?);
        return Ok(());
    }
    for key in ParamKey::ALL {
        println!("{:<24} {}", name(key), shown(key, params.get(key)));
    }
    Ok(())
}

fn list(args: &ClientArgs) -> Result<()> {
    let listed = args.client()?.proposals()?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string(&listed)?);
        return Ok(());
    }
    for ProposalView { id, proposal } in &listed.proposals {
        let yes = proposal.votes.values().filter(|approve| **approve).count();
        let (key, value) = (proposal.change.key, proposal.change.value);
        println!(
            "{} set {} to {}, by {}, {yes} yes / {} no, voting ends #{}",
            id.0,
            name(key),
            shown(key, value),
            proposal.proposer,
            proposal.votes.len() - yes,
            proposal.voting_ends
        );
    }
    Ok(())
}
