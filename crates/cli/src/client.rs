//! What every client command shares: where the API is, whose key signs, and how to print
//! (`--api`/`OGPU_API`, `--key`/`OGPU_KEY` with the password from `OGPU_PASSWORD` or a
//! prompt, `-o table|json`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ogpu_client::{Client, Wallet};
use ogpu_core::keystore::Keystore;
use ogpu_core::{Address, Hash, SecretKey};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(clap::Args, Clone)]
pub struct ClientArgs {
    /// The node API to talk to.
    #[arg(long, env = "OGPU_API", default_value = "http://127.0.0.1:8080", global = true)]
    pub api: String,
    /// The key file that signs (an encrypted keystore).
    #[arg(long, env = "OGPU_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// Print tables for people or one JSON document for programs.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table", global = true)]
    pub format: Format,
}

impl ClientArgs {
    pub fn client(&self) -> Result<Client> {
        Ok(Client::new(&self.api)?)
    }

    /// `address`, or the signing key's when none is named.
    pub fn account_or_own(&self, address: Option<Address>) -> Result<Address> {
        match address {
            Some(address) => Ok(address),
            None => Ok(Address::of(&self.signing_key().context("name an ADDRESS or a signing key")?.public())),
        }
    }

    /// The signing key's wallet on the node at `--api`.
    pub fn wallet(&self) -> Result<Wallet> {
        Ok(Wallet::new(self.signing_key()?, self.client()?)?)
    }

    pub fn signing_key(&self) -> Result<SecretKey> {
        let path = self.key.as_deref().context("this command signs: pass --key FILE or set OGPU_KEY")?;
        open_key(path)
    }
}

/// The id (a task's, a pool's) written as 64 hex digits in `text`.
pub fn parse_hash(text: &str, what: &str) -> Result<Hash> {
    text.parse().with_context(|| format!("{text:?} is not {what} (64 hex digits)"))
}

/// Opens a keystore with the password from `OGPU_PASSWORD`, or asked for on a terminal.
pub fn open_key(path: &Path) -> Result<SecretKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the key file {}", path.display()))?;
    let keystore = Keystore::from_json(&text).with_context(|| format!("{} is not a key file", path.display()))?;
    let password = match std::env::var("OGPU_PASSWORD") {
        Ok(password) => password,
        Err(_) if std::io::stdin().is_terminal() => {
            rpassword::prompt_password(format!("password for {}: ", path.display()))?
        }
        Err(_) => bail!("set OGPU_PASSWORD to the password of {} (empty for devnet keys)", path.display()),
    };
    keystore.open(&password).with_context(|| format!("cannot open {}", path.display()))
}
