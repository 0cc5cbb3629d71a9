//! A small SigV4-signing client for berth's endpoint: ECS JSON 1.1 calls and
//! the agent channel share it.
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
    endpoint: String,
    host: String,
    credentials: Credentials,
    http: reqwest::Client,
}

pub const ECS_TARGET: &str = berth_api::ecs::TARGET_PREFIX;

impl ApiClient {
    pub fn new(endpoint: &str, credentials: Credentials) -> Result<ApiClient, ClientError> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let host = endpoint
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(&endpoint)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| ClientError::Transport {
                endpoint: endpoint.clone(),
                source,
            })?;
        Ok(ApiClient {
            endpoint,
            host,
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
        let resp = self.post(service, &headers, body, timeout).await?;
        let transport = |source| ClientError::Transport {
            endpoint: self.endpoint.clone(),
            source,
        };
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
    /// POSTs `body` with `headers`, signed with SigV4 for `service`.
    async fn post(
        &self,
        service: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let date = amz_now();
        let signer = Signer {
            access_key_id: &self.credentials.access_key_id,
            secret_access_key: &self.credentials.secret_access_key,
            region: &self.credentials.region,
            service,
        };
        let auth = signer.authorization("POST", &self.host, "/", headers, &body, &date);
        let mut request = self
            .http
            .post(format!("{}/", self.endpoint))
            .timeout(timeout)
            .header("x-amz-date", date)
            .header("authorization", auth);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .body(body)
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                endpoint: self.endpoint.clone(),
                source,
            })
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
        let resp = self
            .post("ec2", &headers, form.into_bytes(), Duration::from_secs(10))
            .await?;
        let transport = |source| ClientError::Transport {
            endpoint: self.endpoint.clone(),
            source,
        };
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
