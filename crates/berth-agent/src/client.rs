//! A small SigV4-signing client for berth's endpoint: ECS JSON 1.1 calls and
//! the agent channel share it.
use crate::servers::Servers;
use berth_api::sigv4::Signer;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {endpoint}: {source}")]
    Transport {
        endpoint: String,
        source: reqwest::Error,
    },
    /// The server answered with an AWS-style error.
    #[error("{code}: {message}")]
    Api { code: String, message: String },
    #[error("unreadable answer: {0}")]
    Decode(String),
}

#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// A role session's token (X-Amz-Security-Token).
    pub session_token: Option<String>,
    pub region: String,
}

#[derive(Clone)]
pub struct ApiClient {
    /// Shared by every copy of the client, so they all move on from a server that failed.
    servers: std::sync::Arc<Servers>,
    credentials: Credentials,
    http: reqwest::Client,
}

pub const ECS_TARGET: &str = berth_api::ecs::TARGET_PREFIX;

impl ApiClient {
    /// A client of the first of `endpoints` that answers (servers sharing one store).
    pub fn new<S: AsRef<str>>(
        endpoints: &[S],
        credentials: Credentials,
    ) -> Result<ApiClient, ClientError> {
        let servers = Servers::new(endpoints)
            .ok_or_else(|| ClientError::Decode("no server endpoint given".into()))?;
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| ClientError::Transport {
                endpoint: servers.get(0).url.clone(),
                source,
            })?;
        Ok(ApiClient {
            servers: std::sync::Arc::new(servers),
            credentials,
            http,
        })
    }

    /// The same endpoint, signing with other credentials.
    pub fn with_credentials(&self, credentials: Credentials) -> ApiClient {
        ApiClient {
            credentials,
            ..self.clone()
        }
    }

    /// The same endpoint, signing as a role session (a task's execution role) in `region`.
    pub fn as_role(
        &self,
        role: &berth_api::agent::TaskCredentialsResponse,
        region: &str,
    ) -> ApiClient {
        self.with_credentials(Credentials {
            access_key_id: role.access_key_id.clone(),
            secret_access_key: role.secret_access_key.clone(),
            session_token: Some(role.session_token.clone()),
            region: region.to_string(),
        })
    }

    /// The same key, signing for another region.
    pub fn in_region(&self, region: &str) -> ApiClient {
        let mut credentials = self.credentials.clone();
        credentials.region = region.to_string();
        self.with_credentials(credentials)
    }

    /// Calls `prefix.operation` with a JSON body; `timeout` bounds the whole call.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        prefix: &str,
        operation: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClientError> {
        self.call_service("ecs", prefix, operation, request, timeout)
            .await
    }

    /// Like `call`, signed for another SigV4 service (`ecr`).
    pub async fn call_service<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        service: &str,
        prefix: &str,
        operation: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClientError> {
        let body = serde_json::to_vec(request).map_err(|e| ClientError::Decode(e.to_string()))?;
        let target = format!("{prefix}.{operation}");
        let mut headers = vec![
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        if let Some(t) = &self.credentials.session_token {
            headers.push(("x-amz-security-token", t.as_str()));
        }
        let (resp, endpoint) = self.post(service, &headers, body, timeout).await?;
        let transport = |source| ClientError::Transport { endpoint, source };
        let ok = resp.status().is_success();
        let bytes = resp.bytes().await.map_err(transport)?;
        if !ok {
            #[derive(serde::Deserialize)]
            struct Err {
                #[serde(rename = "__type", default)]
                code: String,
                #[serde(default)]
                message: String,
            }
            let e: Err = serde_json::from_slice(&bytes)
                .map_err(|_| ClientError::Decode(String::from_utf8_lossy(&bytes).into_owned()))?;
            return Err(ClientError::Api {
                code: e.code,
                message: e.message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

impl ApiClient {
    /// POSTs `body` with `headers`, signed with SigV4 for `service`, to the
    /// server in use; answers the response and the endpoint that gave it.
    ///
    /// A server that cannot be connected to never saw the request, so the next
    /// one is tried at once (each at most once). One that failed after the
    /// request was sent, or answered a server error, may have acted on it: the
    /// caller gets that answer, and its next call goes to the next server.
    async fn post(
        &self,
        service: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(reqwest::Response, String), ClientError> {
        let body = bytes::Bytes::from(body);
        let mut at = self.servers.current();
        for tried in 1..=self.servers.len() {
            let server = self.servers.get(at);
            let endpoint = server.url.clone();
            match self
                .send(server, service, headers, body.clone(), timeout)
                .await
            {
                Err(source) if source.is_connect() && tried < self.servers.len() => {
                    tracing::warn!(%endpoint, error = %source, "server unreachable; trying the next");
                    self.servers.move_past(at);
                    at = self.servers.current();
                }
                Err(source) => {
                    self.servers.move_past(at);
                    return Err(ClientError::Transport { endpoint, source });
                }
                Ok(resp) => {
                    if resp.status().is_server_error() {
                        self.servers.move_past(at);
                    }
                    return Ok((resp, endpoint));
                }
            }
        }
        unreachable!("the loop returns on its last try")
    }

    async fn send(
        &self,
        server: &crate::servers::Server,
        service: &str,
        headers: &[(&str, &str)],
        body: bytes::Bytes,
        timeout: Duration,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let date = amz_now();
        let signer = Signer {
            access_key_id: &self.credentials.access_key_id,
            secret_access_key: &self.credentials.secret_access_key,
            region: &self.credentials.region,
            service,
        };
        let auth = signer.authorization("POST", &server.host, "/", headers, &body, &date);
        let mut request = self
            .http
            .post(format!("{}/", server.url))
            .timeout(timeout)
            .header("x-amz-date", date)
            .header("authorization", auth);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(body).send().await
    }

    /// One EC2 query-protocol action (form parameters, signed for service
    /// `ec2`); answers the XML document.
    pub async fn ec2(&self, params: &[(&str, &str)]) -> Result<String, ClientError> {
        let mut form = String::from("Version=2016-11-15");
        for (k, v) in params {
            form.push('&');
            form.push_str(&urlencode(k));
            form.push('=');
            form.push_str(&urlencode(v));
        }
        let headers = [(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        let (resp, endpoint) = self
            .post("ec2", &headers, form.into_bytes(), Duration::from_secs(10))
            .await?;
        let transport = |source| ClientError::Transport { endpoint, source };
        let ok = resp.status().is_success();
        let text = resp.text().await.map_err(transport)?;
        if ok {
            Ok(text)
        } else {
            Err(ClientError::Api {
                code: "Ec2Error".into(),
                message: text,
            })
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn amz_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    berth_api::amz_date::format_amz_date(secs)
}

/// Seconds since the epoch, as ECS timestamps are.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
