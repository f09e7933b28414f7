//! `ogpu stake`: locking stake as a validator or a provider, unbonding it, and taking back
//! what has finished unbonding.

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use ogpu_core::tx::{StakeRole, TxBody};
use ogpu_core::{Address, Amount};

use crate::client::{ClientArgs, Format};

#[derive(Clone, Copy, ValueEnum)]
pub enum Role {
    Validator,
    Provider,
}

impl From<Role> for StakeRole {
    fn from(role: Role) -> StakeRole {
        match role {
            Role::Validator => StakeRole::Validator,
            Role::Provider => StakeRole::Provider,
        }
    }
}

#[derive(Subcommand)]
pub enum StakeCommand {
    /// Lock AMOUNT oGPU of the signing key's balance as stake in ROLE.
    #[command(alias = "stake")]
    Add { role: Role, amount: Amount },
    /// Start unbonding AMOUNT oGPU of stake in ROLE; it stays slashable until withdrawn.
    Unstake { role: Role, amount: Amount },
    /// Take back every amount that has finished unbonding.
    Withdraw,
    /// What an account has staked and what is unbonding.
    Status {
        /// Another account than the signing key's.
        address: Option<Address>,
    },
}

pub fn run(args: ClientArgs, command: StakeCommand) -> Result<()> {
    let (body, done) = match command {
        StakeCommand::Status { address } => return status(&args, address),
        StakeCommand::Add { role, amount } => (TxBody::Stake { role: role.into(), amount }, "staked"),
        StakeCommand::Unstake { role, amount } => (TxBody::Unstake { role: role.into(), amount }, "unbonding"),
        StakeCommand::Withdraw => (TxBody::Withdraw, "withdrawn"),
    };
    let what = body.kind();
    let wallet = args.wallet()?;
    let hash = wallet.settle(body, what)?;
    if args.format == Format::Json {
        println!("{}", serde_json::json!({ "tx": hash, "done": done }));
    } else {
        println!("{done} ({hash})");
    }
    status(&args, Some(wallet.address()))
}

fn status(args: &ClientArgs, address: Option<Address>) -> Result<()> {
    let address = args.account_or_own(address)?;
    let account = args.client()?.account(&address)?;
    if args.format == Format::Json {
        let status =
            serde_json::json!({ "address": address, "staked": account.staked, "unbonding": account.unbonding });
        println!("{status}");
    } else {
        println!("{address}: {} oGPU staked, {} oGPU unbonding", account.staked, account.unbonding);
    }
    Ok(())
}
