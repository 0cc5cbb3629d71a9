//! The server's TOML configuration: accounts and their access keys, and the
//! platform's fleet (the keys its hosts sign with, the public address pool).
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    #[serde(default)]
    pub fleet: FleetConfig,
}

/// The platform's own part: keys for `berth agent --fleet` hosts, and the
/// pool that `assignPublicIp` takes addresses from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    #[serde(default)]
    pub public_ip_pool: Option<String>,
}

/// The principal a fleet key maps to: no account, only the fleet operations.
pub const FLEET: &str = "fleet";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub id: String,
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// An IAM user name for the key; without it the key acts as the account root.
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
    #[error("parsing {0}: {1}")]
    Parse(String, toml::de::Error),
    #[error("account id {0:?} is not 12 digits")]
    BadAccountId(String),
    #[error("access key {0:?} is listed more than once")]
    DuplicateKey(String),
    #[error("access key {0:?} has an empty id or secret")]
    EmptyKey(String),
    #[error("[fleet] public_ip_pool {0:?} is not an IPv4 CIDR block (like 203.0.113.0/24)")]
    BadPool(String),
}

/// Who an access key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: String,
    pub user: Option<String>,
    pub secret: String,
}

impl Config {
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(name.clone(), e))?;
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse(name, e))?;
        cfg.keys()?;
        cfg.public_ip_pool()?;
        Ok(cfg)
    }

    /// The public address pool, checked.
    pub fn public_ip_pool(&self) -> Result<Option<berth_model::vpc::Cidr>, ConfigError> {
        match &self.fleet.public_ip_pool {
            None => Ok(None),
            Some(p) => berth_model::vpc::Cidr::parse(p)
                .map(Some)
                .ok_or_else(|| ConfigError::BadPool(p.clone())),
        }
    }

    /// Every access key with its principal, checked for duplicates and shape.
    pub fn keys(&self) -> Result<HashMap<String, Principal>, ConfigError> {
        let mut out = HashMap::new();
        for a in &self.accounts {
            if a.id.len() != 12 || !a.id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConfigError::BadAccountId(a.id.clone()));
            }
            for k in &a.keys {
                if k.access_key_id.is_empty() || k.secret_access_key.is_empty() {
                    return Err(ConfigError::EmptyKey(k.access_key_id.clone()));
                }
                let p = Principal {
                    account: a.id.clone(),
                    user: k.user.clone(),
                    secret: k.secret_access_key.clone(),
                };
                if out.insert(k.access_key_id.clone(), p).is_some() {
                    return Err(ConfigError::DuplicateKey(k.access_key_id.clone()));
                }
            }
        }
        for k in &self.fleet.keys {
            if k.access_key_id.is_empty() || k.secret_access_key.is_empty() {
                return Err(ConfigError::EmptyKey(k.access_key_id.clone()));
            }
            let p = Principal {
                account: FLEET.into(),
                user: None,
                secret: k.secret_access_key.clone(),
            };
            if out.insert(k.access_key_id.clone(), p).is_some() {
                return Err(ConfigError::DuplicateKey(k.access_key_id.clone()));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let cfg: Config = toml::from_str(
            r#"
            [[accounts]]
            id = "222222222222"
            keys = [{ access_key_id = "AKIAEXAMPLE", secret_access_key = "s3cret" }]
            "#,
        )
        .unwrap();
        let keys = cfg.keys().unwrap();
        assert_eq!(keys["AKIAEXAMPLE"].account, "222222222222");
        assert_eq!(keys["AKIAEXAMPLE"].user, None);
    }

    #[test]
    fn refuses_bad_ids_and_duplicates() {
        let bad: Config = toml::from_str("[[accounts]]\nid = \"12\"\n").unwrap();
        assert!(matches!(bad.keys(), Err(ConfigError::BadAccountId(_))));
        let dup: Config = toml::from_str(
            r#"
            [[accounts]]
            id = "111111111111"
            keys = [{ access_key_id = "K", secret_access_key = "a" }]
            [[accounts]]
            id = "222222222222"
            keys = [{ access_key_id = "K", secret_access_key = "b" }]
            "#,
        )
        .unwrap();
        assert!(matches!(dup.keys(), Err(ConfigError::DuplicateKey(_))));
    }

    #[test]
    fn fleet_keys_map_to_the_fleet_not_an_account() {
        let cfg: Config = toml::from_str(
            r#"
            [fleet]
            keys = [{ access_key_id = "FLEETKEY", secret_access_key = "s" }]
            public_ip_pool = "127.0.100.0/24"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.keys().unwrap()["FLEETKEY"].account, FLEET);
        assert_eq!(
            cfg.public_ip_pool()
                .unwrap()
                .map(|c| c.to_string())
                .as_deref(),
            Some("127.0.100.0/24")
        );
        let bad: Config = toml::from_str("[fleet]\npublic_ip_pool = \"127.0.100.7/24\"\n").unwrap();
        assert!(matches!(bad.public_ip_pool(), Err(ConfigError::BadPool(_))));
    }
}
