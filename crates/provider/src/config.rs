//! The agent's configuration: a TOML file, each field overridable by an `OGPU_PROVIDER_*`
//! environment variable (for example `OGPU_PROVIDER_API`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ogpu_core::{Amount, PoolId};
use serde::{Deserialize, Serialize};

use crate::pricing::Pricing;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// The node API the agent works through.
    pub api: String,
    /// The provider's keystore, relative to the config file's directory.
    pub key: PathBuf,
    /// Where tasks are staged and run, relative to the config file's directory.
    pub work_dir: PathBuf,
    pub region: String,
    /// The provider stake the agent keeps bonded; it tops the stake up to this at start.
    pub stake: Amount,
    /// Tasks run at once: one per device slot. Each gets an equal share of the memory.
    pub slots: usize,
    /// The longest time limit (`workload.limits.timeout_s`) a task may have for this
    /// provider to take it.
    pub max_task_s: u32,
    pub pricing: Pricing,
    /// Pools to subscribe to, by id, or `"*"` for every pool whose workload this machine
    /// runs (joined as they are created).
    pub pools: Vec<String>,
    /// The stake put into each pool joined.
    pub pool_stake: Amount,
    /// A `libonnxruntime.so` for onnx tasks that ask for `engine=ort` (the build needs the
    /// `ort` feature), relative to the config file's directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onnxruntime: Option<PathBuf>,
    /// Where the agent serves its dashboard: 127.0.0.1 only, port 0 for any free one (the
    /// agent prints the link).
    pub dashboard: SocketAddr,
}

impl Default for ProviderConfig {
    fn default() -> ProviderConfig {
        ProviderConfig {
            api: "http://127.0.0.1:8080".into(),
            key: "provider.key".into(),
            work_dir: "work".into(),
            region: "local".into(),
            stake: Amount::ogpu(500),
            slots: 1,
            max_task_s: 24 * 3_600,
            pricing: Pricing::default(),
            pools: Vec::new(),
            pool_stake: Amount::ogpu(10),
            onnxruntime: None,
            dashboard: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("environment variable {name}: {reason}")]
    Env { name: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// Which pools the agent subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolChoice {
    Every,
    These(Vec<PoolId>),
}

impl ProviderConfig {
    /// Reads `path`, applies the environment's overrides, and resolves relative paths
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<ProviderConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut config: ProviderConfig =
            toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })?;
        config.apply_env(|name| std::env::var(name).ok())?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.key = base.join(&config.key);
        config.work_dir = base.join(&config.work_dir);
        config.onnxruntime = config.onnxruntime.map(|library| base.join(library));
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            text.parse().map_err(|e: T::Err| ConfigError::Env { name: name.into(), reason: e.to_string() })
        }
        for name in
            ["API", "KEY", "WORK_DIR", "REGION", "STAKE", "SLOTS", "MAX_TASK_S", "POOLS", "ONNXRUNTIME", "DASHBOARD"]
        {
            let full = format!("OGPU_PROVIDER_{name}");
            let Some(value) = var(&full) else { continue };
            match name {
                "API" => self.api = value,
                "KEY" => self.key = value.into(),
                "WORK_DIR" => self.work_dir = value.into(),
                "REGION" => self.region = value,
                "STAKE" => self.stake = parsed(&full, &value)?,
                "SLOTS" => self.slots = parsed(&full, &value)?,
                "MAX_TASK_S" => self.max_task_s = parsed(&full, &value)?,
                "ONNXRUNTIME" => self.onnxruntime = Some(value.into()),
                "DASHBOARD" => self.dashboard = parsed(&full, &value)?,
                _ => self.pools = value.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect(),
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.slots == 0 {
            return Err(ConfigError::Invalid("slots must be at least 1".into()));
        }
        // The dashboard shows the agent's state to whoever reaches it: this machine only.
        if self.dashboard.ip() != std::net::Ipv4Addr::LOCALHOST {
            return Err(ConfigError::Invalid(format!("dashboard: {} is not on 127.0.0.1", self.dashboard)));
        }
        self.pool_choice().map(|_| ())
    }

    pub fn pool_choice(&self) -> Result<PoolChoice, ConfigError> {
        if self.pools.iter().any(|p| p == "*") {
            return Ok(PoolChoice::Every);
        }
        let ids = self.pools.iter().map(|p| {
            p.parse().map(PoolId).map_err(|_| ConfigError::Invalid(format!("pools: {p:?} is not a pool id or \"*\"")))
        });
        ids.collect::<Result<_, _>>().map(PoolChoice::These)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_every_field_reads_back() {
        let config = ProviderConfig { pools: vec!["*".into()], slots: 2, ..ProviderConfig::default() };
        let text = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<ProviderConfig>(&text).unwrap(), config);
        assert_eq!(config.pool_choice().unwrap(), PoolChoice::Every);
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let mut config = ProviderConfig::default();
        let env = |name: &str| match name {
            "OGPU_PROVIDER_API" => Some("http://10.0.0.1:9000".to_string()),
            "OGPU_PROVIDER_SLOTS" => Some("4".to_string()),
            "OGPU_PROVIDER_POOLS" => Some("*".to_string()),
            "OGPU_PROVIDER_ONNXRUNTIME" => Some("/opt/ort/libonnxruntime.so".to_string()),
            _ => None,
        };
        config.apply_env(env).unwrap();
        assert_eq!((config.api.as_str(), config.slots), ("http://10.0.0.1:9000", 4));
        assert_eq!(config.onnxruntime, Some(PathBuf::from("/opt/ort/libonnxruntime.so")));
        assert_eq!(config.pool_choice().unwrap(), PoolChoice::Every);
        let bad = |name: &str| (name == "OGPU_PROVIDER_STAKE").then(|| "lots".to_string());
        assert!(matches!(config.apply_env(bad), Err(ConfigError::Env { .. })));
    }

    #[test]
    fn bad_values_are_named() {
        let zero = ProviderConfig { slots: 0, ..ProviderConfig::default() };
        assert!(zero.validate().unwrap_err().to_string().contains("slots"));
        let pools = ProviderConfig { pools: vec!["nope".into()], ..ProviderConfig::default() };
        assert!(pools.validate().unwrap_err().to_string().contains("nope"));
        assert!(toml::from_str::<ProviderConfig>("unknown = 1").is_err());
    }
}
