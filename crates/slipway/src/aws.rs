//! A small AWS client for what `slipway bootstrap` creates: S3 buckets (with versioning)
//! and a DynamoDB table. Requests are signed with Signature Version 4 over plain HTTPS
//! (or HTTP for an emulator); credentials are handed in, never looked up here.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Static credentials for signing.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// One service in one region at one endpoint.
#[derive(Debug, Clone)]
pub struct Service {
    /// `https://s3.eu-west-1.amazonaws.com` or an emulator's `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub region: String,
    /// The signing name: `s3` or `dynamodb`.
    pub name: &'static str,
}

/// An answer: status and body text.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Signs and sends requests.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    credentials: Credentials,
}

impl Client {
    pub fn new(credentials: Credentials) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("cannot set up an HTTP client")?;
        Ok(Self { http, credentials })
    }

    /// Sends `method path?query` with `body` to `service`, signed; extra headers are signed too.
    pub async fn send(
        &self,
        service: &Service,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Response> {
        let base = service.endpoint.trim_end_matches('/');
        let url = if query.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{query}")
        };
        let parsed = reqwest::Url::parse(&url).with_context(|| format!("invalid URL {url}"))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => bail!("no host in {url}"),
        };
        let signed = sign(
            &Request {
                method,
                host: &host,
                path,
                query,
                headers,
                body: &body,
            },
            service,
            &self.credentials,
            &amz_date(std::time::SystemTime::now()),
        );
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = self.http.request(method, parsed);
        for (name, value) in headers.iter().map(|(n, v)| (*n, v.as_str())) {
            request = request.header(name, value);
        }
        for (name, value) in &signed {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {} at {base}", service.name))?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Ok(Response { status, body })
    }
}

/// What is signed of a request.
struct Request<'a> {
    method: &'a str,
    host: &'a str,
    path: &'a str,
    /// Already in canonical form: `name=value` pairs sorted, encoded, `&`-joined (a bare
    /// `versioning` is written `versioning=`).
    query: &'a str,
    headers: &'a [(&'a str, String)],
    body: &'a [u8],
}

/// The headers that carry a Signature Version 4 signature of `request`, made at `amz_date`
/// (`YYYYMMDDTHHMMSSZ`).
fn sign(
    request: &Request<'_>,
    service: &Service,
    credentials: &Credentials,
    amz_date: &str,
) -> Vec<(String, String)> {
    let payload_hash = hex(&Sha256::digest(request.body));
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    headers.push(("host".into(), request.host.to_owned()));
    headers.push(("x-amz-date".into(), amz_date.to_owned()));
    let mut added = vec![("x-amz-date".to_owned(), amz_date.to_owned())];
    if service.name == "s3" {
        headers.push(("x-amz-content-sha256".into(), payload_hash.clone()));
        added.push(("x-amz-content-sha256".into(), payload_hash.clone()));
    }
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".into(), token.clone()));
        added.push(("x-amz-security-token".into(), token.clone()));
    }
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let path = if request.path.is_empty() {
        "/"
    } else {
        request.path
    };
    let canonical_request = format!(
        "{}\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        request.method, request.query
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/{}/{}/aws4_request", service.region, service.name);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [service.region.as_str(), service.name, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    added.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
    ));
    added
}

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding, for checksum headers.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The SHA-256 of `bytes`, base64: the value of `x-amz-checksum-sha256`.
pub fn checksum_sha256(bytes: &[u8]) -> String {
    base64(&Sha256::digest(bytes))
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
fn amz_date(now: std::time::SystemTime) -> String {
    // `2026-12-01T09:30:00Z` -> `20261201T093000Z`
    humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of AWS's Signature Version 4 documentation ("get-vanilla-query" style
    /// request to IAM): the same inputs must give the published signature.
    #[test]
    fn signs_as_the_aws_documentation_example() {
        let credentials = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let service = Service {
            endpoint: "https://iam.amazonaws.com".into(),
            region: "us-east-1".into(),
            name: "iam",
        };
        let headers = [(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        )];
        let signed = sign(
            &Request {
                method: "GET",
                host: "iam.amazonaws.com",
                path: "/",
                query: "Action=ListUsers&Version=2010-05-08",
                headers: &headers,
                body: b"",
            },
            &service,
            &credentials,
            "20150830T123600Z",
        );
        let authorization = &signed.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn dates_are_compact_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        assert_eq!(amz_date(t), "20150830T123600Z");
    }
}
