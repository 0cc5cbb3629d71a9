//! A task's secrets: container `secrets`, `logConfiguration.secretOptions`
//! and `repositoryCredentials`, fetched as the task's execution role from
//! berth's Secrets Manager and Parameter Store when the task starts, and
//! held in memory only (the container's environment is where they land).
use crate::client::{ApiClient, ClientError};
use crate::engine::RegistryAuth;
use berth_api::agent::TaskCredentialsResponse;
use berth_model::secrets::{json_key, value_from, ValueFrom};
use std::time::Duration;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// GetParameters takes at most this many names.
const PARAMETERS_PER_CALL: usize = 10;

/// Where secret values come from.
#[async_trait::async_trait]
pub trait SecretSource: Send + Sync {
    /// A Secrets Manager secret's value (`SecretString`), selected by stage or version.
    async fn secret(
        &self,
        role: &TaskCredentialsResponse,
        region: &str,
        secret_id: &str,
        version_stage: Option<&str>,
        version_id: Option<&str>,
    ) -> Result<String, String>;

    /// Parameters' decrypted values by the names asked; the names not found come back in Err.
    async fn parameters(
        &self,
        role: &TaskCredentialsResponse,
        region: &str,
        names: &[String],
    ) -> Result<Vec<(String, String)>, String>;
}

/// The region a `valueFrom` ARN names, else the task's.
fn region_of<'a>(value: &'a str, task_region: &'a str) -> &'a str {
    match value.strip_prefix("arn:") {
        Some(rest) => rest
            .split(':')
            .nth(2)
            .filter(|r| !r.is_empty())
            .unwrap_or(task_region),
        None => task_region,
    }
}

/// Resolves `(name, valueFrom)` pairs into `(name, value)`, in order. An
/// error is the reason ECS gives after `unable to pull secrets or registry auth: `.
pub async fn resolve(
    source: &dyn SecretSource,
    role: &TaskCredentialsResponse,
    task_region: &str,
    wanted: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, Option<String>)> =
        wanted.iter().map(|(n, _)| (n.clone(), None)).collect();
    // Parameters are fetched in batches per region, as the ECS agent does.
    let mut by_region: Vec<(String, Vec<(usize, String)>)> = vec![];
    for (i, (_, from)) in wanted.iter().enumerate() {
        let parsed =
            value_from(from).map_err(|e| format!("execution resource retrieval failed: {e}"))?;
        match parsed {
            ValueFrom::Secret {
                secret_id,
                json_key: key,
                version_stage,
                version_id,
            } => {
                let region = region_of(&secret_id, task_region);
                let value = source
                    .secret(role, region, &secret_id, version_stage.as_deref(), version_id.as_deref())
                    .await
                    .map_err(|e| {
                        format!("execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret {secret_id} from secrets manager: {e}")
                    })?;
                let value = match key {
                    Some(k) => json_key(&value, &k).map_err(|e| {
                        format!("execution resource retrieval failed: unable to retrieve secret from asm: {e}: {secret_id}")
                    })?,
                    None => value,
                };
                out[i].1 = Some(value);
            }
            ValueFrom::Parameter { name } => {
                let region = region_of(&name, task_region).to_string();
                match by_region.iter_mut().find(|(r, _)| *r == region) {
                    Some((_, names)) => names.push((i, name)),
                    None => by_region.push((region, vec![(i, name)])),
                }
            }
        }
    }
    for (region, names) in by_region {
        for chunk in names.chunks(PARAMETERS_PER_CALL) {
            let asked: Vec<String> = chunk.iter().map(|(_, n)| n.clone()).collect();
            let values = source.parameters(role, &region, &asked).await.map_err(|e| {
                format!("execution resource retrieval failed: unable to retrieve secrets from ssm: service call has been retried 1 time(s): {e}")
            })?;
            for (i, name) in chunk {
                out[*i].1 = values
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone());
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(n, v)| (n, v.unwrap_or_default()))
        .collect())
}

/// The registry an image is pulled from (`host[:port]`, Docker Hub's when none is named).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "https://index.docker.io/v1/",
    }
}

/// The login a `repositoryCredentials` secret holds, for `image`'s registry.
pub async fn registry_auth(
    source: &dyn SecretSource,
    role: &TaskCredentialsResponse,
    task_region: &str,
    credentials_parameter: &str,
    image: &str,
) -> Result<RegistryAuth, String> {
    let id = match value_from(credentials_parameter) {
        Ok(ValueFrom::Secret { secret_id, .. }) => secret_id,
        _ => credentials_parameter.to_string(),
    };
    let region = region_of(&id, task_region);
    let text = source
        .secret(role, region, &id, None, None)
        .await
        .map_err(|e| format!("execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret {id} from secrets manager: {e}"))?;
    let field = |k: &str| {
        json_key(&text, k).map_err(|_| {
            format!("execution resource retrieval failed: private registry credentials in {id} must be a JSON object with username and password")
        })
    };
    Ok(RegistryAuth {
        username: field("username")?,
        password: field("password")?,
        server: registry_of(image).to_string(),
    })
}

/// The secrets of berth's API, as the execution role.
pub struct ApiSecrets {
    pub client: ApiClient,
}

fn said(e: ClientError) -> String {
    e.to_string()
}

#[async_trait::async_trait]
impl SecretSource for ApiSecrets {
    async fn secret(
        &self,
        role: &TaskCredentialsResponse,
        region: &str,
        secret_id: &str,
        version_stage: Option<&str>,
        version_id: Option<&str>,
    ) -> Result<String, String> {
        let answer: berth_api::secretsmanager::GetSecretValueResponse = self
            .client
            .as_role(role, region)
            .call_service(
                "secretsmanager",
                berth_api::secretsmanager::TARGET_PREFIX,
                "GetSecretValue",
                &berth_api::secretsmanager::GetSecretValueRequest {
                    secret_id: Some(secret_id.to_string()),
                    version_stage: version_stage.map(String::from),
                    version_id: version_id.map(String::from),
                },
                CALL_TIMEOUT,
            )
            .await
            .map_err(said)?;
        answer
            .secret_string
            .ok_or_else(|| format!("the secret {secret_id} holds a binary value, not a string"))
    }

    async fn parameters(
        &self,
        role: &TaskCredentialsResponse,
        region: &str,
        names: &[String],
    ) -> Result<Vec<(String, String)>, String> {
        let answer: berth_api::ssm::GetParametersResult = self
            .client
            .as_role(role, region)
            .call_service(
                "ssm",
                berth_api::ssm::TARGET_PREFIX,
                "GetParameters",
                &berth_api::ssm::GetParametersRequest {
                    names: Some(names.to_vec()),
                    with_decryption: Some(true),
                },
                CALL_TIMEOUT,
            )
            .await
            .map_err(said)?;
        let invalid = answer.invalid_parameters.unwrap_or_default();
        if !invalid.is_empty() {
            return Err(format!("invalid parameters: {}", invalid.join(", ")));
        }
        // berth answers every name asked (none was invalid), in the order asked.
        let found = answer.parameters.unwrap_or_default();
        Ok(names
            .iter()
            .zip(found)
            .map(|(asked, p)| (asked.clone(), p.value.unwrap_or_default()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Values by secret id / parameter name, counting calls.
    #[derive(Default)]
    struct Fake {
        secrets: HashMap<String, String>,
        parameters: HashMap<String, String>,
        calls: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl SecretSource for Fake {
        async fn secret(
            &self,
            _: &TaskCredentialsResponse,
            region: &str,
            id: &str,
            stage: Option<&str>,
            _: Option<&str>,
        ) -> Result<String, String> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("secret {region} {id} {stage:?}"));
            self.secrets.get(id).cloned().ok_or_else(|| {
                "ResourceNotFoundException: Secrets Manager can't find the specified secret.".into()
            })
        }

        async fn parameters(
            &self,
            _: &TaskCredentialsResponse,
            region: &str,
            names: &[String],
        ) -> Result<Vec<(String, String)>, String> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("parameters {region} {}", names.len()));
            let missing: Vec<&str> = names
                .iter()
                .filter(|n| !self.parameters.contains_key(*n))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(format!("invalid parameters: {}", missing.join(", ")));
            }
            Ok(names
                .iter()
                .map(|n| (n.clone(), self.parameters[n].clone()))
                .collect())
        }
    }

    fn role() -> TaskCredentialsResponse {
        TaskCredentialsResponse {
            role_arn: "arn:aws:iam::111111111111:role/exec".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            session_token: "t".into(),
            expiration: 0,
        }
    }

    const DB: &str = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:db-AbCdEf";

    #[tokio::test]
    async fn secrets_json_keys_and_parameters_resolve_in_order_with_parameters_batched() {
        let mut fake = Fake::default();
        fake.secrets
            .insert(DB.into(), r#"{"user":"app","password":"pw"}"#.into());
        for i in 0..12 {
            fake.parameters.insert(format!("/p/{i}"), format!("v{i}"));
        }
        let mut wanted = vec![
            ("WHOLE".to_string(), DB.to_string()),
            ("PASS".to_string(), format!("{DB}:password::")),
        ];
        for i in 0..12 {
            wanted.push((format!("P{i}"), format!("/p/{i}")));
        }
        let out = resolve(&fake, &role(), "us-east-1", &wanted).await.unwrap();
        assert_eq!(
            out[0],
            ("WHOLE".into(), r#"{"user":"app","password":"pw"}"#.into())
        );
        assert_eq!(out[1], ("PASS".into(), "pw".into()));
        assert_eq!(out[13], ("P11".into(), "v11".into()));
        let calls = fake.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            [
                format!("secret eu-west-1 {DB} None"),
                format!("secret eu-west-1 {DB} None"),
                "parameters us-east-1 10".to_string(),
                "parameters us-east-1 2".to_string(),
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_value_names_what_failed() {
        let fake = Fake::default();
        let e = resolve(&fake, &role(), "us-east-1", &[("A".into(), DB.into())])
            .await
            .unwrap_err();
        assert!(e.contains(&format!("failed to fetch secret {DB}")), "{e}");
        assert!(e.contains("ResourceNotFoundException"), "{e}");
        let e = resolve(&fake, &role(), "us-east-1", &[("A".into(), "/nope".into())])
            .await
            .unwrap_err();
        assert!(e.ends_with("invalid parameters: /nope"), "{e}");
        let mut fake = Fake::default();
        fake.secrets.insert(DB.into(), r#"{"user":"app"}"#.into());
        let e = resolve(
            &fake,
            &role(),
            "us-east-1",
            &[("A".into(), format!("{DB}:password::"))],
        )
        .await
        .unwrap_err();
        assert!(e.contains("json key password"), "{e}");
    }

    #[tokio::test]
    async fn registry_credentials_come_from_a_json_secret_for_the_images_registry() {
        let mut fake = Fake::default();
        fake.secrets
            .insert(DB.into(), r#"{"username":"u","password":"p"}"#.into());
        let auth = registry_auth(&fake, &role(), "us-east-1", DB, "127.0.0.1:5000/app:1")
            .await
            .unwrap();
        assert_eq!(
            (
                auth.username.as_str(),
                auth.password.as_str(),
                auth.server.as_str()
            ),
            ("u", "p", "127.0.0.1:5000")
        );
        assert_eq!(registry_of("nginx:1"), "https://index.docker.io/v1/");
        assert_eq!(registry_of("team/app"), "https://index.docker.io/v1/");
        assert_eq!(registry_of("localhost/app"), "localhost");
        fake.secrets.insert(DB.into(), "not json".into());
        let e = registry_auth(&fake, &role(), "us-east-1", DB, "r.example/app")
            .await
            .unwrap_err();
        assert!(e.contains("username and password"), "{e}");
    }
}
