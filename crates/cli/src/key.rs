//! `ogpu key`: encrypted key files (argon2id + XChaCha20-Poly1305, see
//! `ogpu_core::keystore`). The password comes from `OGPU_PASSWORD`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ogpu_core::keystore::{Kdf, Keystore};
use ogpu_core::{Address, SecretKey};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Generate a key and write it, encrypted, to FILE.
    New {
        file: PathBuf,
        /// Cheap key derivation, for throwaway devnet keys only.
        #[arg(long)]
        devnet: bool,
    },
    /// Print the address and public key of a key file.
    Show { file: PathBuf },
}

fn password() -> Result<String> {
    std::env::var("OGPU_PASSWORD")
        .context("set OGPU_PASSWORD to the key file's password (it may be empty for devnet keys)")
}

/// Generates a key, writes it to `file` sealed with the password from `OGPU_PASSWORD`,
/// and returns its address. Never overwrites a file.
pub fn create(file: &Path, devnet: bool) -> Result<Address> {
    if file.exists() {
        bail!("{} exists; refusing to overwrite a key", file.display());
    }
    let key = SecretKey::generate(&mut rand_core::OsRng);
    let costs = if devnet { Kdf::DEVNET } else { Kdf::STANDARD };
    let sealed = Keystore::seal(&key, &password()?, costs, &mut rand_core::OsRng)?;
    std::fs::write(file, sealed.to_json()).with_context(|| format!("writing {}", file.display()))?;
    Ok(Address::of(&key.public()))
}

pub fn run(command: KeyCommand) -> Result<()> {
    match command {
        KeyCommand::New { file, devnet } => {
            println!("{}", create(&file, devnet)?);
            Ok(())
        }
        KeyCommand::Show { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let key = Keystore::from_json(&text)?.open(&password()?)?;
            println!("address     {}", Address::of(&key.public()));
            println!("public key  {}", key.public());
            Ok(())
        }
    }
}
