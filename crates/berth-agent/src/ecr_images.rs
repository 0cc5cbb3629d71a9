//! Images named for ECR (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO…`):
//! mapped to berth's registry before Docker sees them, so no pull ever goes
//! to AWS, and pulled with an ECR login of the task's execution role (or,
//! on a container instance without one, of the agent's own key, as ECS uses
//! the instance role).
use crate::client::ApiClient;
use crate::engine::RegistryAuth;
use berth_api::agent::TaskCredentialsResponse;
use berth_model::ecr;

/// A written image name and the name Docker is given for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// `{registry}/{account}/{region}/{repo}{:tag|@digest}`.
    pub image: String,
    /// The repository as written and as mapped, to word errors as written.
    pub written_repository: String,
    pub mapped_repository: String,
    pub region: String,
}

/// The name in berth's registry at `registry_host` for an ECR image name.
pub fn map(image: &str, registry_host: &str) -> Option<Mapped> {
    let parsed = ecr::parse_image(image)?;
    let mapped_repository = ecr::repository_uri(registry_host, &parsed.scope, parsed.repository);
    let written_repository = image[..image.len() - parsed.reference.len()].to_string();
    Some(Mapped {
        image: format!("{mapped_repository}{}", parsed.reference),
        written_repository,
        mapped_repository,
        region: parsed.scope.region,
    })
}

/// Docker's words about the mapped name, told of the name as written.
pub fn reword(message: &str, mapped: &Mapped) -> String {
    message.replace(&mapped.mapped_repository, &mapped.written_repository)
}

/// The registry's host in a login's `proxyEndpoint` (`http://host:port`).
fn host_of(endpoint: &str) -> &str {
    endpoint
        .split_once("://")
        .map_or(endpoint, |(_, h)| h)
        .trim_end_matches('/')
}

/// A login for berth's registry, and the registry's host.
#[async_trait::async_trait]
pub trait RegistryLogins: Send + Sync {
    /// `role`: the execution role's session; None to log in as the host itself.
    async fn login(
        &self,
        region: &str,
        role: Option<&TaskCredentialsResponse>,
    ) -> Result<Option<RegistryAuth>, String>;
}

/// Logins from berth's ECR API (GetAuthorizationToken), as the role or the agent.
pub struct ApiLogins {
    pub client: ApiClient,
    /// A fleet host acts for no account: only an execution role logs it in.
    pub fleet: bool,
}

#[async_trait::async_trait]
impl RegistryLogins for ApiLogins {
    async fn login(
        &self,
        region: &str,
        role: Option<&TaskCredentialsResponse>,
    ) -> Result<Option<RegistryAuth>, String> {
        let client = match role {
            Some(r) => self.client.as_role(r, region),
            None if self.fleet => return Ok(None),
            None => self.client.in_region(region),
        };
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            authorization_token: String,
            proxy_endpoint: String,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer {
            authorization_data: Vec<Data>,
        }
        let answer: Answer = client
            .call_service(
                "ecr",
                berth_api::ecr::TARGET_PREFIX,
                "GetAuthorizationToken",
                &serde_json::json!({}),
                std::time::Duration::from_secs(10),
            )
            .await
            .map_err(|e| e.to_string())?;
        let data = answer
            .authorization_data
            .into_iter()
            .next()
            .ok_or("GetAuthorizationToken answered no login")?;
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&data.authorization_token)
            .map_err(|e| format!("unreadable authorization token: {e}"))?;
        let text = String::from_utf8(decoded).map_err(|e| e.to_string())?;
        let (username, password) = text
            .split_once(':')
            .ok_or("the authorization token is not user:password")?;
        Ok(Some(RegistryAuth {
            username: username.to_string(),
            password: password.to_string(),
            server: host_of(&data.proxy_endpoint).to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_names_map_to_berths_registry_and_others_stay() {
        let m = map(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/web:v2",
            "127.0.0.1:4511",
        )
        .unwrap();
        assert_eq!(m.image, "127.0.0.1:4511/123456789012/eu-west-1/team/web:v2");
        assert_eq!(m.region, "eu-west-1");
        let d = map(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:ab",
            "r:1",
        )
        .unwrap();
        assert_eq!(d.image, "r:1/123456789012/us-east-1/web@sha256:ab");
        assert_eq!(map("nginx:latest", "r:1"), None);
        assert_eq!(map("127.0.0.1:5000/web:1", "r:1"), None);
        let said = "manifest for 127.0.0.1:4511/123456789012/eu-west-1/team/web:v2 not found";
        assert_eq!(
            reword(said, &m),
            "manifest for 123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/web:v2 not found"
        );
        assert_eq!(host_of("http://127.0.0.1:4511"), "127.0.0.1:4511");
        assert_eq!(host_of("https://r.example/"), "r.example");
    }
}
