//! `ogpu wallet`: an account's keys and money. The balance is split by where the money
//! sits: what the account may spend, what its tasks hold in escrow and trust locks, what
//! it has staked and what is unbonding.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use ogpu_client::types::Account;
use ogpu_core::tx::TxBody;
use ogpu_core::{Address, Amount};

use crate::client::{ClientArgs, Format};

#[derive(Subcommand)]
pub enum WalletCommand {
    /// Generate a key and write it, sealed with OGPU_PASSWORD, to FILE; print its address.
    New {
        file: PathBuf,
        /// Cheap key derivation, for throwaway devnet keys only.
        #[arg(long)]
        devnet: bool,
    },
    /// Print the address of the signing key (--key).
    Address,
    /// The account's money: available, in escrow, in trust locks, staked and unbonding.
    Balance {
        /// Another account than the signing key's.
        address: Option<Address>,
    },
    /// Send AMOUNT oGPU (for example 1.5) to ADDRESS and wait for the chain's verdict.
    Send { to: Address, amount: Amount },
    /// The account's latest finalized transactions.
    History {
        /// Another account than the signing key's.
        address: Option<Address>,
    },
}

pub fn run(args: ClientArgs, command: WalletCommand) -> Result<()> {
    let json = args.format == Format::Json;
    match command {
        WalletCommand::New { file, devnet } => {
            let address = crate::key::create(&file, devnet)?;
            if json { println!("{}", serde_json::json!({ "address": address })) } else { println!("{address}") }
        }
        WalletCommand::Address => {
            let address = Address::of(&args.signing_key()?.public());
            if json { println!("{}", serde_json::json!({ "address": address })) } else { println!("{address}") }
        }
        WalletCommand::Balance { address } => {
            let account = args.client()?.account(&args.account_or_own(address)?)?;
            if json { println!("{}", serde_json::to_string(&account)?) } else { print_balance(&account)? }
        }
        WalletCommand::Send { to, amount } => {
            let wallet = args.wallet()?;
            let hash = wallet.settle(TxBody::Transfer { to, amount }, "the transfer")?;
            if json {
                println!("{}", serde_json::json!({ "tx": hash, "to": to, "amount": amount }));
            } else {
                println!("sent {amount} oGPU to {to} in {hash}");
            }
        }
        WalletCommand::History { address } => {
            let history = args.client()?.account_txs(&args.account_or_own(address)?)?;
            if json {
                println!("{}", serde_json::to_string(&history)?);
                return Ok(());
            }
            for tx in &history.txs {
                let height = tx.height.map_or("-".into(), |h| format!("#{h}"));
                let kind = tx.kind.as_deref().unwrap_or("?");
                let fee = tx.fee.map_or("-".into(), |f| format!("fee {f}"));
                let verdict = tx.error.as_deref().map_or("applied".into(), |e| format!("refused: {e}"));
                println!("{height:>8} {} {kind:<16} {fee:<14} {verdict}", tx.hash);
            }
        }
    }
    Ok(())
}

fn print_balance(account: &Account) -> Result<()> {
    let parts = [
        ("available", account.balance),
        ("escrow", account.escrow),
        ("trust lock", account.trust_lock),
        ("staked", account.staked),
        ("unbonding", account.unbonding),
    ];
    let total = parts.iter().try_fold(Amount::ZERO, |sum, (_, part)| sum.checked_add(*part));
    println!("account     {}", account.address);
    for (name, amount) in parts {
        println!("{name:<11} {amount} oGPU");
    }
    println!("total       {} oGPU", total.context("the holdings overflow")?);
    Ok(())
}
