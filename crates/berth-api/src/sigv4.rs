//! AWS Signature Version 4 verification, header and query-string forms.
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// AWS refuses requests whose clock is further than this from its own.
pub const MAX_SKEW_SECS: i64 = 15 * 60;
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

// RFC 3986 unreserved characters stay as they are; everything else is %XX.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// What a request looks like to the verifier.
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Header names in any case; repeated headers appear repeatedly.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No signature at all.
    Missing,
    /// A signature whose parts are missing or malformed.
    Incomplete(String),
    UnknownKey,
    Mismatch,
    /// Outside the allowed clock skew; the message says by how much.
    Expired(String),
    /// Temporary credentials past their expiration.
    ExpiredToken,
}

/// A parsed signature, ready to verify once the key's secret is known.
#[derive(Debug, Clone)]
pub struct Signature {
    pub credential: Credential,
    amz_date: String,
    signed_headers: Vec<String>,
    signature: String,
    query_form: bool,
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            (dec(k), dec(v))
        })
        .collect()
}

fn header<'a>(parts: &'a RequestParts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn parse_credential(s: &str) -> Result<Credential, AuthFailure> {
    let bits: Vec<&str> = s.split('/').collect();
    if bits.len() != 5 || bits[4] != "aws4_request" || bits.iter().any(|b| b.is_empty()) {
        return Err(AuthFailure::Incomplete(format!(
            "Credential should be scoped to a valid region, not '{}'. Credential should be scoped correctly with the form <key>/<date>/<region>/<service>/aws4_request.",
            bits.get(2).unwrap_or(&"")
        )));
    }
    Ok(Credential {
        access_key_id: bits[0].to_string(),
        date: bits[1].to_string(),
        region: bits[2].to_string(),
        service: bits[3].to_string(),
    })
}

/// The session token of temporary credentials (`X-Amz-Security-Token`, header or query).
pub fn security_token(parts: &RequestParts) -> Option<String> {
    if let Some(t) = header(parts, "x-amz-security-token") {
        return Some(t.to_string());
    }
    query_pairs(parts.query)
        .into_iter()
        .find_map(|(k, v)| (k == "X-Amz-Security-Token").then_some(v))
}

/// Finds and parses the signature in the Authorization header or the query string.
pub fn parse(parts: &RequestParts) -> Result<Signature, AuthFailure> {
    if let Some(auth) = header(parts, "authorization") {
        let rest = auth.strip_prefix(ALGORITHM).ok_or_else(|| {
            AuthFailure::Incomplete(format!(
                "Unsupported authorization type; expected {ALGORITHM}."
            ))
        })?;
        let mut cred = None;
        let mut signed = None;
        let mut sig = None;
        for field in rest.split(',') {
            let field = field.trim();
            if let Some(v) = field.strip_prefix("Credential=") {
                cred = Some(v);
            } else if let Some(v) = field.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = field.strip_prefix("Signature=") {
                sig = Some(v);
            }
        }
        let need = |name: &str| {
            AuthFailure::Incomplete(format!(
                "Authorization header requires '{name}' parameter. Authorization={auth}"
            ))
        };
        let credential = parse_credential(cred.ok_or_else(|| need("Credential"))?)?;
        let signed = signed.ok_or_else(|| need("SignedHeaders"))?;
        let signature = sig.ok_or_else(|| need("Signature"))?.to_string();
        let amz_date = header(parts, "x-amz-date").ok_or_else(|| {
            AuthFailure::Incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into())
        })?;
        return Ok(Signature {
            credential,
            amz_date: amz_date.to_string(),
            signed_headers: signed.split(';').map(|h| h.to_ascii_lowercase()).collect(),
            signature,
            query_form: false,
        });
    }
    let q = query_pairs(parts.query);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("X-Amz-Signature").is_none() && get("X-Amz-Algorithm").is_none() {
        return Err(AuthFailure::Missing);
    }
    let need = |name: &str| {
        AuthFailure::Incomplete(format!(
            "AWS query-string parameters must include '{name}'."
        ))
    };
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(need("X-Amz-Algorithm"));
    }
    let credential =
        parse_credential(get("X-Amz-Credential").ok_or_else(|| need("X-Amz-Credential"))?)?;
    Ok(Signature {
        credential,
        amz_date: get("X-Amz-Date")
            .ok_or_else(|| need("X-Amz-Date"))?
            .to_string(),
        signed_headers: get("X-Amz-SignedHeaders")
            .ok_or_else(|| need("X-Amz-SignedHeaders"))?
            .split(';')
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        signature: get("X-Amz-Signature")
            .ok_or_else(|| need("X-Amz-Signature"))?
            .to_string(),
        query_form: true,
    })
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The key derived from a secret for one day, region and service. It
/// changes once a day, so each thread keeps the few it used last instead of
/// running four HMACs for every request.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    type Entry = (String, String, String, String, Vec<u8>);
    const KEPT: usize = 8;
    thread_local! {
        static KEYS: std::cell::RefCell<Vec<Entry>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    KEYS.with_borrow_mut(|keys| {
        let hit = keys
            .iter()
            .position(|(s, d, r, v, _)| s == secret && d == date && r == region && v == service);
        if let Some(i) = hit {
            return keys[i].4.clone();
        }
        let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        let k_region = hmac(&k_date, region.as_bytes());
        let k_service = hmac(&k_region, service.as_bytes());
        let key = hmac(&k_service, b"aws4_request");
        if keys.len() == KEPT {
            keys.remove(0);
        }
        let (s, d, r, v) = (secret.into(), date.into(), region.into(), service.into());
        keys.push((s, d, r, v, key.clone()));
        key
    })
}

/// Lower-case hex of `bytes` (a table lookup per nibble, not a char iterator).
fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    hex_lower(&Sha256::digest(data))
}

fn canonical_query(query: &str, query_form: bool) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = query_pairs(query)
        .into_iter()
        .filter(|(k, _)| !(query_form && k == "X-Amz-Signature"))
        .map(|(k, v)| {
            (
                utf8_percent_encode(&k, UNRESERVED).to_string(),
                utf8_percent_encode(&v, UNRESERVED).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Appends a header value trimmed, with each run of whitespace as one space.
fn push_canonical_header_value(out: &mut String, v: &str) {
    let mut words = v.split_whitespace();
    if let Some(first) = words.next() {
        out.push_str(first);
    }
    for w in words {
        out.push(' ');
        out.push_str(w);
    }
}

/// Equality that takes the same time wherever the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Signature {
    /// Checks the clock skew, then the signature itself with the key's secret.
    pub fn verify(&self, parts: &RequestParts, secret: &str, now: i64) -> Result<(), AuthFailure> {
        let t = crate::amz_date::parse_amz_date(&self.amz_date).ok_or_else(|| {
            AuthFailure::Incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{}'.",
                self.amz_date
            ))
        })?;
        let fmt = crate::amz_date::format_amz_date;
        if t < now - MAX_SKEW_SECS {
            return Err(AuthFailure::Expired(format!(
                "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                self.amz_date,
                fmt(now - MAX_SKEW_SECS),
                fmt(now)
            )));
        }
        if t > now + MAX_SKEW_SECS {
            return Err(AuthFailure::Expired(format!(
                "Signature not yet current: {} is still later than {} ({} + 15 min.)",
                self.amz_date,
                fmt(now + MAX_SKEW_SECS),
                fmt(now)
            )));
        }
        if !self.amz_date.starts_with(&self.credential.date) {
            return Err(AuthFailure::Mismatch);
        }
        let body_hash = sha256_hex(parts.body);
        let mut candidates = vec![header(parts, "x-amz-content-sha256")
            .map(str::to_string)
            .unwrap_or(body_hash)];
        if self.query_form {
            candidates.push(UNSIGNED_PAYLOAD.to_string());
        }
        for payload_hash in candidates {
            let expected = self.signature_for(parts, secret, &payload_hash)?;
            if constant_time_eq(expected.as_bytes(), self.signature.as_bytes()) {
                return Ok(());
            }
        }
        Err(AuthFailure::Mismatch)
    }

    fn signature_for(
        &self,
        parts: &RequestParts,
        secret: &str,
        payload_hash: &str,
    ) -> Result<String, AuthFailure> {
        let path = if parts.path.is_empty() {
            "/"
        } else {
            parts.path
        };
        // The canonical request, built in one buffer.
        let mut canonical = String::with_capacity(512);
        canonical.push_str(parts.method);
        canonical.push('\n');
        canonical.extend(utf8_percent_encode(path, UNRESERVED_AND_SLASH));
        canonical.push('\n');
        canonical.push_str(&canonical_query(parts.query, self.query_form));
        canonical.push('\n');
        for name in &self.signed_headers {
            canonical.push_str(name);
            canonical.push(':');
            let mut values = 0;
            for (_, v) in parts
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            {
                if values > 0 {
                    canonical.push(',');
                }
                push_canonical_header_value(&mut canonical, v);
                values += 1;
            }
            if values == 0 {
                return Err(AuthFailure::Mismatch);
            }
            canonical.push('\n');
        }
        canonical.push('\n');
        for (i, name) in self.signed_headers.iter().enumerate() {
            if i > 0 {
                canonical.push(';');
            }
            canonical.push_str(name);
        }
        canonical.push('\n');
        canonical.push_str(payload_hash);
        let c = &self.credential;
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{}/{}/{}/aws4_request\n{}",
            self.amz_date,
            c.date,
            c.region,
            c.service,
            sha256_hex(canonical.as_bytes())
        );
        let k_signing = signing_key(secret, &c.date, &c.region, &c.service);
        Ok(hex_lower(&hmac(&k_signing, string_to_sign.as_bytes())))
    }
}

/// Signs requests the way an AWS SDK does (header form); for tests and the load generator.
pub struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl Signer<'_> {
    /// The Authorization header for a request carrying `headers` plus host and x-amz-date.
    pub fn authorization(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        amz_date: &str,
    ) -> String {
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        all.push(("host".into(), host.into()));
        all.push(("x-amz-date".into(), amz_date.into()));
        all.sort();
        let signed: Vec<String> = all.iter().map(|(k, _)| k.clone()).collect();
        let date = amz_date.get(..8).unwrap_or_default();
        let sig = Signature {
            credential: Credential {
                access_key_id: self.access_key_id.into(),
                date: date.into(),
                region: self.region.into(),
                service: self.service.into(),
            },
            amz_date: amz_date.into(),
            signed_headers: signed.clone(),
            signature: String::new(),
            query_form: false,
        };
        let parts = RequestParts {
            method,
            path,
            query: "",
            headers: all,
            body,
        };
        let s = sig
            .signature_for(&parts, self.secret_access_key, &sha256_hex(body))
            .unwrap_or_default();
        format!(
            "{ALGORITHM} Credential={}/{date}/{}/{}/aws4_request, SignedHeaders={}, Signature={s}",
            self.access_key_id,
            self.region,
            self.service,
            signed.join(";")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The "get-vanilla" case of AWS's published SigV4 test suite.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn vanilla(auth: &str, date: &str) -> Vec<(String, String)> {
        vec![
            ("Host".into(), "example.amazonaws.com".into()),
            ("X-Amz-Date".into(), date.into()),
            ("Authorization".into(), auth.into()),
        ]
    }

    const VANILLA_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

    fn vanilla_parts(body: &[u8]) -> RequestParts<'_> {
        let headers = vanilla(VANILLA_AUTH, "20150830T123600Z");
        RequestParts {
            method: "GET",
            path: "/",
            query: "",
            headers,
            body,
        }
    }

    #[test]
    fn verifies_the_aws_test_suite_vanilla_request() {
        let parts = vanilla_parts(b"");
        let sig = parse(&parts).unwrap();
        assert_eq!(sig.credential.access_key_id, "AKIDEXAMPLE");
        assert_eq!(sig.credential.service, "service");
        sig.verify(&parts, SECRET, 1_440_938_160).unwrap();
        assert_eq!(
            sig.verify(&parts, "wrong", 1_440_938_160),
            Err(AuthFailure::Mismatch)
        );
        // Again, now that this thread keeps both derived keys.
        sig.verify(&parts, SECRET, 1_440_938_160).unwrap();
        assert_eq!(
            sig.verify(&parts, "wrong", 1_440_938_160),
            Err(AuthFailure::Mismatch)
        );
    }

    #[test]
    fn kept_signing_keys_match_the_derivation_for_each_scope() {
        let derive = |secret: &str, date: &str, region: &str, service: &str| {
            let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
            let k = hmac(&k, region.as_bytes());
            let k = hmac(&k, service.as_bytes());
            hmac(&k, b"aws4_request")
        };
        // More scopes than a thread keeps, twice over, so entries are evicted and made again.
        for _ in 0..2 {
            for i in 0..12 {
                let (secret, region) = (format!("s{}", i % 3), format!("r{i}"));
                for date in ["20261130", "20261201"] {
                    assert_eq!(
                        signing_key(&secret, date, &region, "ecs"),
                        derive(&secret, date, &region, "ecs")
                    );
                }
            }
        }
    }

    #[test]
    fn a_tampered_body_does_not_verify() {
        let parts = vanilla_parts(b"x");
        let sig = parse(&parts).unwrap();
        assert_eq!(
            sig.verify(&parts, SECRET, 1_440_938_160),
            Err(AuthFailure::Mismatch)
        );
    }

    #[test]
    fn stale_and_future_requests_are_expired() {
        let parts = vanilla_parts(b"");
        let sig = parse(&parts).unwrap();
        let late = sig
            .verify(&parts, SECRET, 1_440_938_160 + 16 * 60)
            .unwrap_err();
        match late {
            AuthFailure::Expired(m) => {
                assert_eq!(m, "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T125200Z - 15 min.)")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            sig.verify(&parts, SECRET, 1_440_938_160 - 16 * 60),
            Err(AuthFailure::Expired(_))
        ));
        assert!(sig.verify(&parts, SECRET, 1_440_938_160 + 14 * 60).is_ok());
    }

    #[test]
    fn missing_and_incomplete_signatures() {
        let none = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: vec![],
            body: b"",
        };
        assert_eq!(parse(&none).unwrap_err(), AuthFailure::Missing);
        let partial = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: vec![(
                "Authorization".into(),
                "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00".into(),
            )],
            body: b"",
        };
        assert!(matches!(
            parse(&partial).unwrap_err(),
            AuthFailure::Incomplete(_)
        ));
    }

    #[test]
    fn signer_and_verifier_agree() {
        let signer = Signer {
            access_key_id: "AK",
            secret_access_key: "SK",
            region: "eu-west-3",
            service: "ecs",
        };
        let target = [(
            "X-Amz-Target",
            "AmazonEC2ContainerServiceV20141113.ListClusters",
        )];
        let auth = signer.authorization(
            "POST",
            "127.0.0.1:9",
            "/",
            &target,
            b"{}",
            "20261124T060000Z",
        );
        let headers = vec![
            ("host".into(), "127.0.0.1:9".into()),
            ("x-amz-date".into(), "20261124T060000Z".into()),
            (
                "x-amz-target".into(),
                "AmazonEC2ContainerServiceV20141113.ListClusters".into(),
            ),
            ("authorization".into(), auth),
        ];
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body: b"{}",
        };
        let sig = parse(&parts).unwrap();
        assert_eq!(sig.credential.region, "eu-west-3");
        let now = crate::amz_date::parse_amz_date("20261124T060000Z").unwrap();
        sig.verify(&parts, "SK", now).unwrap();
    }
}
