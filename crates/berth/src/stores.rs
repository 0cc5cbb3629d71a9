//! Opening the store a command names, and `berth store copy` between two.
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// etcd's credentials and TLS, as etcd's own clients take them.
#[derive(clap::Args, Clone, Default)]
pub struct EtcdAuth {
    /// etcd's user, when etcd has auth on (its password in --etcd-password-file).
    #[arg(long, requires = "etcd_password_file")]
    pub etcd_user: Option<String>,
    #[arg(long, requires = "etcd_user")]
    pub etcd_password_file: Option<PathBuf>,
    /// For https:// endpoints: the CA that signed etcd's certificate (PEM; etcdctl's --cacert).
    #[arg(long)]
    pub etcd_ca_file: Option<PathBuf>,
    /// This server's client certificate, when etcd has --client-cert-auth (PEM; etcdctl's --cert).
    #[arg(long, requires = "etcd_key_file")]
    pub etcd_cert_file: Option<PathBuf>,
    /// Its key (PEM; etcdctl's --key).
    #[arg(long, requires = "etcd_cert_file")]
    pub etcd_key_file: Option<PathBuf>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

impl EtcdAuth {
    pub fn options(&self, endpoints: &[String]) -> Result<berth_store::EtcdOptions> {
        let user = match (&self.etcd_user, &self.etcd_password_file) {
            (Some(u), Some(f)) => {
                let password = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?;
                Some((u.clone(), password.trim_end().to_string()))
            }
            _ => None,
        };
        let identity = match (&self.etcd_cert_file, &self.etcd_key_file) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            _ => None,
        };
        let ca_pem = self.etcd_ca_file.as_deref().map(read).transpose()?;
        let tls = (ca_pem.is_some() || identity.is_some())
            .then_some(berth_store::EtcdTls { ca_pem, identity });
        Ok(berth_store::EtcdOptions {
            endpoints: endpoints.to_vec(),
            user,
            tls,
        })
    }
}

pub async fn connect_etcd(endpoints: &[String], auth: &EtcdAuth) -> Result<berth_store::EtcdStore> {
    let options = auth.options(endpoints)?;
    berth_store::EtcdStore::connect(&options)
        .await
        .with_context(|| format!("connecting to etcd at {}", endpoints.join(",")))
}

pub fn open_embedded(dir: &Path) -> Result<berth_store::EmbeddedStore> {
    berth_store::EmbeddedStore::open(dir)
        .with_context(|| format!("opening the store in {}", dir.display()))
}

/// A store named on the command line: `embedded:DIR` or `etcd:URL,URL…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Embedded(PathBuf),
    Etcd(Vec<String>),
}

impl std::str::FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Location, String> {
        match s.split_once(':') {
            Some(("embedded", dir)) if !dir.is_empty() => Ok(Location::Embedded(dir.into())),
            Some(("etcd", urls)) => {
                let endpoints: Vec<String> = urls
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(String::from)
                    .collect();
                if endpoints.is_empty() {
                    return Err("etcd: needs the cluster's client URLs, comma-separated".into());
                }
                Ok(Location::Etcd(endpoints))
            }
            _ => Err(format!(
                "{s:?} names no store: use embedded:DIR (a data directory) or etcd:URL[,URL…]"
            )),
        }
    }
}

impl Location {
    async fn open(&self, auth: &EtcdAuth) -> Result<Arc<dyn berth_store::Store>> {
        Ok(match self {
            // redb locks its file: a server still running on the directory stops the copy here.
            Location::Embedded(dir) => Arc::new(open_embedded(dir)?),
            Location::Etcd(endpoints) => Arc::new(connect_etcd(endpoints, auth).await?),
        })
    }
}

/// `berth store copy`: every resource of `from` into the empty `to`, checked by count and checksum.
pub async fn copy(from: &Location, to: &Location, auth: &EtcdAuth) -> Result<()> {
    if from == to {
        bail!("--from and --to name the same store");
    }
    let source = from.open(auth).await?;
    let destination = to.open(auth).await?;
    let skip = berth_server::state::COORDINATION_PREFIX;
    let copied = berth_store::copy::copy(&*source, &*destination, skip)
        .await
        .context("copying the store")?;
    println!(
        "copied {} keys; source and copy both hold {} keys with SHA-256 {}",
        copied.keys, copied.keys, copied.checksum
    );
    println!(
        "Give the servers on the new store the same secrets key (--secrets-key-file; by default secrets.key in the old data directory): secrets are sealed with it."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_a_directory_or_etcd_endpoints() {
        assert_eq!(
            "embedded:/var/lib/berth".parse(),
            Ok(Location::Embedded("/var/lib/berth".into()))
        );
        assert_eq!(
            "etcd:http://127.0.0.1:2379, http://127.0.0.1:22379".parse(),
            Ok(Location::Etcd(vec![
                "http://127.0.0.1:2379".into(),
                "http://127.0.0.1:22379".into()
            ]))
        );
        assert!("etcd:".parse::<Location>().is_err());
        assert!("embedded:".parse::<Location>().is_err());
        assert!("/var/lib/berth".parse::<Location>().is_err());
        assert!("s3:bucket".parse::<Location>().is_err());
    }
}
