//! No secret is ever shown: a whole run with a Redis password, a PostgreSQL password, both admin
//! tokens and the JWT secret set, at debug level, with right and wrong credentials, and every
//! log line, answer, `/metrics` page, settings dump and start-up error searched for each.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use sluice_tests::process::binary;
use sluice_tests::servers::RedisServer;

use crate::stack::{Options, Stack};

/// The secrets of the run, each unlike anything else it prints.
struct Secrets {
    redis_password: String,
    postgres_password: String,
    ingest_token: String,
    gateway_token: String,
    jwt_secret: String,
}

impl Secrets {
    fn new() -> Self {
        let tag = sluice_tests::unique_prefix("s").replace(':', "");
        Self {
            redis_password: format!("redispw{tag}"),
            postgres_password: format!("postgrespw{tag}"),
            ingest_token: format!("ingesttoken{tag}"),
            gateway_token: format!("gatewaytoken{tag}"),
            jwt_secret: format!("jwtsecret{tag}-padded-to-32-bytes-at-least"),
        }
    }

    fn all(&self) -> [(&str, &str); 5] {
        [
            ("the Redis password", &self.redis_password),
            ("the PostgreSQL password", &self.postgres_password),
            ("the ingest admin token", &self.ingest_token),
            ("the gateway admin token", &self.gateway_token),
            ("the JWT secret", &self.jwt_secret),
        ]
    }
}

/// `url` with `password` after its user.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    match rest.split_once('@') {
        Some((user, host)) => format!(
            "{scheme}://{}:{password}@{host}",
            user.split(':').next().unwrap_or(user)
        ),
        None => format!("{scheme}://:{password}@{rest}"),
    }
}

#[tokio::test]
async fn no_secret_appears_in_any_log_answer_metric_or_dump() {
    let _machine = crate::MACHINE.read().await;
    let secrets = Secrets::new();
    let redis = RedisServer::start().await.expect("a private Redis");
    let mut admin = sluice_tests::redis_at(&redis.url()).await.expect("redis");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(&secrets.redis_password)
        .query_async(&mut admin)
        .await
        .expect("requirepass");
    let redis_url = with_password(&redis.url(), &secrets.redis_password);
    // The shared server trusts local clients: the password is set, never asked for.
    let postgres = with_password(
        &sluice_tests::postgres_admin_url(),
        &secrets.postgres_password,
    );
    let extra = [
        ("INGEST__ADMIN_TOKEN", secrets.ingest_token.as_str()),
        ("GATEWAY__ADMIN_TOKEN", secrets.gateway_token.as_str()),
        ("STREAM__AUTH__JWT_SECRET", secrets.jwt_secret.as_str()),
    ];
    let stack = Stack::start_with(
        "secrets",
        1,
        Options {
            redis_url: Some(redis_url),
            postgres_admin_url: Some(postgres),
            extra: &extra,
            rust_log: Some("debug"),
            ..Options::default()
        },
    )
    .await;
    let mut seen = answers(&stack, &secrets).await;
    seen.push((
        "settings dumps and start-up errors".into(),
        dumps(&stack, &secrets),
    ));
    for service in std::iter::once(&stack.ingest)
        .chain([&stack.gateway])
        .chain(&stack.workers)
    {
        seen.push(("a service's log".into(), service.logs()));
    }
    assert!(
        seen.iter().any(|(_, text)| text.contains("DEBUG")),
        "the run logged at debug level"
    );
    for (what, text) in &seen {
        for (name, secret) in secrets.all() {
            assert!(!text.contains(secret), "{name} appears in {what}:\n{text}");
        }
    }
    stack.stop().await;
}

/// Every kind of answer the run gives, with right and wrong credentials.
async fn answers(stack: &Stack, secrets: &Secrets) -> Vec<(String, String)> {
    let accepted = stack.produce(200, 4).await;
    stack
        .assert_exactly_once(&accepted, Duration::from_secs(30))
        .await;
    let gateway = &stack.gateway_url;
    let ingest = &stack.ingest_url;
    let jwt = token(&secrets.jwt_secret);
    let wrong = "wrong-token-of-twenty-chars";
    let requests = [
        (
            format!("{ingest}/admin/dead-letters"),
            Some(secrets.ingest_token.as_str()),
        ),
        (format!("{ingest}/admin/dead-letters"), Some(wrong)),
        (
            format!("{gateway}/admin/dead-letters"),
            Some(secrets.gateway_token.as_str()),
        ),
        (format!("{gateway}/admin/dead-letters"), None),
        (format!("{gateway}/stats?token={jwt}"), None),
        (format!("{gateway}/stats?token={wrong}"), None),
        (format!("{gateway}/stats"), None),
        (format!("{ingest}/stats?token={jwt}"), None),
        (format!("{ingest}/metrics"), None),
        (format!("{gateway}/metrics"), None),
        (format!("{ingest}/health"), None),
        (format!("{ingest}/ready"), None),
        (format!("{gateway}/ready"), None),
        (format!("{ingest}/openapi.json"), None),
        (format!("{ingest}/messages?limit=5"), None),
    ];
    let mut seen = Vec::new();
    let mut statuses = Vec::new();
    for (url, bearer) in requests {
        let request = stack.http.get(&url);
        let request = match bearer {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let answer = request.send().await.expect("an answer");
        statuses.push(answer.status().as_u16());
        let head = format!("{:?}", answer.headers());
        let body = answer.text().await.expect("a body");
        seen.push((
            format!("the answer to GET {url}"),
            format!("{head}\n{body}"),
        ));
    }
    // Right credentials pass, wrong ones are refused: the run used them all.
    assert_eq!(
        &statuses[..7],
        &[200, 401, 200, 401, 200, 401, 401],
        "{seen:?}"
    );
    seen
}

/// `--print-settings` of each binary, and the error of a start with a bad URL that holds a
/// password.
fn dumps(stack: &Stack, secrets: &Secrets) -> String {
    let mut out = String::new();
    for name in ["sluice-ingest", "sluice-gateway", "sluice-worker"] {
        let output = std::process::Command::new(binary(name).expect(name))
            .arg("--print-settings")
            .envs(stack.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let dump = String::from_utf8_lossy(&output.stdout);
        assert!(dump.contains("[redacted]"), "{dump}");
        out.push_str(&dump);
    }
    let bad = format!("posgres://app:{}@db:5432/sluice", secrets.postgres_password);
    let output = std::process::Command::new(binary("sluice-worker").expect("worker"))
        .envs(stack.env.iter().map(|(k, v)| (k, v)))
        .env("SLUICE__POSTGRES__URL", &bad)
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && said.contains("SLUICE__POSTGRES__URL"),
        "{said}"
    );
    out.push_str(&said);
    out
}

/// A JWT signed with `secret`, valid for a minute.
fn token(secret: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    jsonwebtoken::encode(
        &Header::default(),
        &serde_json::json!({"sub": "dashboard", "exp": now + 60}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("a token")
}
