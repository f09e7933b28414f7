//! Genesis: the chain's first state, read from a TOML file that names the chain, its
//! parameters, the initial allocations and the initial validators with their stake.

use ogpu_core::{Address, Amount, ChainId, Hash, PublicKey};
use serde::{Deserialize, Serialize};

use crate::params::{Params, SUPPLY_CAP};
use crate::state::{Account, State, Supply, Validator};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: ChainId,
    pub genesis_time_ms: u64,
    #[serde(default)]
    pub params: Params,
    #[serde(default)]
    pub allocations: Vec<Allocation>,
    pub validators: Vec<GenesisValidator>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub address: Address,
    pub amount: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    pub public_key: PublicKey,
    pub stake: Amount,
}

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("not a valid genesis file: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("genesis needs at least one validator")]
    NoValidators,
    #[error("validator {0} is listed twice")]
    DuplicateValidator(Address),
    #[error("validator {address} stakes {stake:?}, below the minimum {min:?}")]
    StakeBelowMinimum { address: Address, stake: Amount, min: Amount },
    #[error("genesis holds more than the supply cap of 21,000,000 oGPU")]
    OverCap,
    #[error("invalid genesis parameters: {0}")]
    Params(#[from] crate::params::ParamError),
    #[error("halving_blocks must be at least 1")]
    ZeroHalving,
}

impl Genesis {
    pub fn from_toml(text: &str) -> Result<Genesis, GenesisError> {
        Ok(toml::from_str(text)?)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a genesis always serializes")
    }

    /// The hash that stands in for the parent of block 1.
    pub fn hash(&self) -> Hash {
        Hash::tagged("ogpu/genesis", &[self.to_toml().as_bytes()])
    }

    pub fn into_state(self) -> Result<State, GenesisError> {
        if self.validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        self.params.validate()?;
        if self.params.halving_blocks == 0 {
            return Err(GenesisError::ZeroHalving);
        }
        let mut minted = Amount::ZERO;
        let mut add = |amount: Amount| -> Result<(), GenesisError> {
            minted = minted.checked_add(amount).filter(|m| *m <= SUPPLY_CAP).ok_or(GenesisError::OverCap)?;
            Ok(())
        };
        let mut accounts = imbl::OrdMap::new();
        for allocation in &self.allocations {
            add(allocation.amount)?;
            let account: &mut Account = accounts.entry(allocation.address).or_default();
            account.balance = account.balance.checked_add(allocation.amount).ok_or(GenesisError::OverCap)?;
        }
        let mut validators = imbl::OrdMap::new();
        for v in &self.validators {
            let address = Address::of(&v.public_key);
            if v.stake < self.params.min_validator_stake {
                return Err(GenesisError::StakeBelowMinimum {
                    address,
                    stake: v.stake,
                    min: self.params.min_validator_stake,
                });
            }
            add(v.stake)?;
            let record = Validator { key: v.public_key, stake: v.stake, jailed_until: 0 };
            if validators.insert(address, record).is_some() {
                return Err(GenesisError::DuplicateValidator(address));
            }
        }
        let active_set = validators.iter().map(|(a, v): (&Address, &Validator)| (*a, (v.key, v.stake))).collect();
        Ok(State {
            last_block: self.hash(),
            randomness: Hash::tagged("ogpu/genesis-randomness", &[self.chain_id.as_str().as_bytes()]),
            chain_id: self.chain_id,
            height: 0,
            time_ms: self.genesis_time_ms,
            params: self.params,
            supply: Supply { minted, burned: Amount::ZERO },
            reward_pool: Amount::ZERO,
            accounts,
            validators,
            active_set,
            providers: Default::default(),
            unbonding: Default::default(),
            next_unbonding: 0,
            pools: Default::default(),
            tasks: Default::default(),
            timers: Default::default(),
            proposals: Default::default(),
            punished: Default::default(),
        })
    }
}
