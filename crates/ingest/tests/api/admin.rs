//! `/admin/dead-letters`: off by default, token-guarded, list / requeue / purge.

use sluice_proto::events::DeadLetter;

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

const TOKEN: &str = "test-admin-token-0123456789";

async fn add_dead_letters(app: &mut TestApp, payloads: &[&[u8]]) {
    for payload in payloads {
        add_with_reason(app, payload, "test").await;
    }
}

#[tokio::test]
async fn admin_is_off_unless_a_token_is_configured() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(app.url("/admin/dead-letters"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    let body = assert_error(r, 404, "not_found").await;
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("admin endpoints are off")
            && message.contains("SLUICE__INGEST__ADMIN_TOKEN"),
        "{message}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_refused() {
    let app = spawn_app_with(&[("INGEST__ADMIN_TOKEN", TOKEN)]).await;
    let r = app
        .http
        .get(app.url("/admin/dead-letters"))
        .send()
        .await
        .expect("sent");
    assert!(r.headers().contains_key("www-authenticate"));
    assert_error(r, 401, "missing_credentials").await;
    let r = app
        .http
        .delete(app.url("/admin/dead-letters"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .expect("sent");
    assert_error(r, 401, "invalid_credentials").await;
    app.cleanup().await;
}

#[tokio::test]
async fn dead_letters_are_listed_requeued_and_purged() {
    let mut app = spawn_app_with(&[("INGEST__ADMIN_TOKEN", TOKEN)]).await;
    add_dead_letters(&mut app, &[b"first".as_slice(), b"second", b"third"]).await;

    let admin = app.admin(TOKEN);
    let page = admin.dead_letters(2, 0, None).await.expect("a page");
    assert_eq!(page.total, 3);
    let payloads: Vec<&str> = page
        .dead_letters
        .iter()
        .map(|d| d["payload"].as_str().expect("payload"))
        .collect();
    assert_eq!(payloads, ["third", "second"], "newest first");

    let r = admin
        .requeue_dead_letters(Some(2), None)
        .await
        .expect("requeued");
    assert_eq!(r.requeued, 2);
    assert_eq!(
        app.pending().await,
        ["first", "second"],
        "oldest first, at the consuming end"
    );

    assert_eq!(
        admin.purge_dead_letters(false, None).await.expect("purged"),
        1
    );
    let r = app
        .http
        .get(app.url("/admin/dead-letters?limit=0"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    assert_error(r, 400, "invalid_query").await;
    app.cleanup().await;
}

async fn add_with_reason(app: &mut TestApp, payload: &[u8], reason: &str) {
    let letter = DeadLetter::new(payload, reason.into(), chrono::Utc::now(), "w", 1 << 14);
    let _: () = redis::cmd("LPUSH")
        .arg(&app.keys.dead_messages)
        .arg(serde_json::to_string(&letter).expect("json"))
        .query_async(&mut app.redis)
        .await
        .expect("LPUSH");
}

#[tokio::test]
async fn dead_letters_are_listed_requeued_and_deleted_by_reason() {
    let mut app = spawn_app_with(&[("INGEST__ADMIN_TOKEN", TOKEN)]).await;
    add_with_reason(
        &mut app,
        b"a",
        "value too long for type character varying(4000)",
    )
    .await;
    add_with_reason(
        &mut app,
        b"b",
        "not a valid envelope: missing field `user_id`",
    )
    .await;
    add_with_reason(&mut app, b"c", "Value too long for column content").await;
    add_with_reason(
        &mut app,
        b"d",
        "not a valid envelope: expected value at line 1",
    )
    .await;
    add_dead_letters(&mut app, &[b"\xff\xfe".as_slice()]).await;
    let admin = app.admin(TOKEN);

    // Case aside, newest first; an unreadable entry matches no reason.
    let page = admin
        .dead_letters(20, 0, Some("VALUE TOO LONG"))
        .await
        .expect("a page");
    let payloads: Vec<&str> = page
        .dead_letters
        .iter()
        .map(|d| d["payload"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(payloads, ["c", "a"]);
    assert_eq!(page.total, 5, "the total is of every entry");
    assert_eq!(page.next_offset, None, "every entry was examined");
    // A page of one match ends after it, and the next starts where it stopped examining.
    let first = admin
        .dead_letters(1, 0, Some("envelope"))
        .await
        .expect("a page");
    assert_eq!(first.dead_letters[0]["payload"], "d");
    let next = first.next_offset.expect("more to examine");
    let second = admin
        .dead_letters(1, next, Some("envelope"))
        .await
        .expect("a page");
    assert_eq!(second.dead_letters[0]["payload"], "b");

    let r = admin
        .requeue_dead_letters(None, Some("envelope"))
        .await
        .expect("requeued");
    assert_eq!((r.requeued, r.unreadable), (2, 0));
    assert_eq!(app.pending().await, ["b", "d"], "in their order");
    let left = admin.dead_letters(20, 0, None).await.expect("a page");
    assert_eq!(left.total, 3);
    assert_eq!(
        admin
            .purge_dead_letters(false, Some("too long"))
            .await
            .expect("purged"),
        2
    );
    let left = admin.dead_letters(20, 0, None).await.expect("a page");
    assert_eq!(left.total, 1, "the unreadable one is left");

    for query in [
        "only=unreadable&reason=x",
        &format!("reason={}", "x".repeat(201)),
    ] {
        let r = app
            .http
            .delete(app.url(&format!("/admin/dead-letters?{query}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("sent");
        assert_error(r, 400, "invalid_query").await;
    }
    assert_eq!(
        admin.dead_letters(20, 0, None).await.expect("a page").total,
        1,
        "nothing deleted by a refused call"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_dead_letter_that_is_not_utf8_is_requeued_byte_for_byte() {
    let mut app = spawn_app_with(&[("INGEST__ADMIN_TOKEN", TOKEN)]).await;
    let raw: &[u8] = b"\xff{\"user_id\": \xc3\x28}\x00";
    add_dead_letters(&mut app, &[raw]).await;
    let admin = app.admin(TOKEN);
    let page = admin.dead_letters(20, 0, None).await.expect("a page");
    let letter = &page.dead_letters[0];
    assert_eq!(letter["payload_hex"], "ff7b22757365725f6964223a20c3287d00");
    assert!(
        letter["payload"]
            .as_str()
            .expect("text")
            .contains('\u{fffd}')
    );

    let r = admin
        .requeue_dead_letters(None, None)
        .await
        .expect("requeued");
    assert_eq!(r.requeued, 1);
    let pending: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(&app.keys.pending_messages)
        .arg(0)
        .arg(-1)
        .query_async(&mut app.redis)
        .await
        .expect("LRANGE");
    assert_eq!(pending, [raw.to_vec()], "the exact bytes, not U+FFFD");
    app.cleanup().await;
}

async fn admin_json(request: reqwest::RequestBuilder) -> serde_json::Value {
    let response = request.bearer_auth(TOKEN).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_requeue_of_many_goes_in_chunks_and_keeps_the_order_behind_what_is_pending() {
    let mut app = spawn_app_with(&[("INGEST__ADMIN_TOKEN", TOKEN)]).await;
    let _: () = redis::cmd("LPUSH")
        .arg(&app.keys.pending_messages)
        .arg("already pending")
        .query_async(&mut app.redis)
        .await
        .expect("LPUSH");
    // Four chunks' worth, oldest pushed first.
    let payloads: Vec<String> = (0..1_800).map(|i| format!("m{i:04}")).collect();
    let bytes: Vec<&[u8]> = payloads.iter().map(|p| p.as_bytes()).collect();
    add_dead_letters(&mut app, &bytes).await;

    let r = app
        .admin(TOKEN)
        .requeue_dead_letters(None, None)
        .await
        .expect("requeued");
    assert_eq!((r.requeued, r.unreadable), (1_800, 0));
    let pending = app.pending().await;
    assert_eq!(
        pending[0], "already pending",
        "requeued behind what was pending"
    );
    assert_eq!(pending[1..], payloads[..], "every one, once, oldest first");
    app.cleanup().await;
}

#[tokio::test]
async fn unreadable_dead_letters_are_skipped_reported_and_purged_alone() {
    let mut app = spawn_app_with(&[("INGEST__ADMIN_TOKEN", TOKEN)]).await;
    // Oldest first: three entries requeue cannot read, then two it can.
    for raw in [
        "not json",
        r#"{"payload": 42}"#,
        r#"{"payload_hex": "7B7D"}"#,
    ] {
        let _: () = redis::cmd("LPUSH")
            .arg(&app.keys.dead_messages)
            .arg(raw)
            .query_async(&mut app.redis)
            .await
            .expect("LPUSH");
    }
    add_dead_letters(&mut app, &[b"kept 1".as_slice(), b"kept 2"]).await;

    let admin = app.admin(TOKEN);
    let requeue_one = || admin.requeue_dead_letters(Some(1), None);
    let r = requeue_one().await.expect("requeued");
    assert_eq!((r.requeued, r.unreadable), (0, 1));
    let r = requeue_one().await.expect("requeued");
    assert_eq!(
        r.unreadable, 1,
        "the next unreadable one, not the same again"
    );
    let r = requeue_one().await.expect("requeued");
    assert_eq!(r.unreadable, 1);
    let r = requeue_one().await.expect("requeued");
    assert_eq!((r.requeued, r.unreadable), (1, 0));
    assert_eq!(app.pending().await, ["kept 1"]);

    assert_eq!(
        admin.purge_dead_letters(true, None).await.expect("purged"),
        3
    );
    let page = admin.dead_letters(20, 0, None).await.expect("a page");
    assert_eq!(page.total, 1, "{page:?}");
    assert_eq!(page.dead_letters[0]["payload"], "kept 2");
    let r = app
        .http
        .delete(app.url("/admin/dead-letters?only=everything"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    assert_error(r, 400, "invalid_query").await;
    app.cleanup().await;
}

/// `POST /admin/dead-letters/{id}/requeue` with the token.
async fn requeue_one(app: &TestApp, id: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/admin/dead-letters/{id}/requeue")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent")
}

/// A page of `limit` dead letters after `offset`, through the typed client, as JSON.
async fn page(app: &TestApp, limit: usize, offset: u64) -> serde_json::Value {
    let page = app.admin(TOKEN).dead_letters(limit, offset, None).await;
    serde_json::to_value(page.expect("a page")).expect("json")
}

#[tokio::test]
async fn dead_letters_are_paged_newest_first_each_with_its_id() {
    let mut app = spawn_app_with(&[("INGEST__ADMIN_TOKEN", TOKEN)]).await;
    add_dead_letters(&mut app, &[b"m0".as_slice(), b"m1", b"m2", b"m3"]).await;
    let second = page(&app, 2, 1).await;
    assert_eq!(
        (second["total"].as_u64(), second["offset"].as_u64()),
        (Some(4), Some(1))
    );
    let letters = second["dead_letters"].as_array().expect("array");
    let payloads: Vec<&str> = letters
        .iter()
        .map(|d| d["payload"].as_str().expect("payload"))
        .collect();
    assert_eq!(payloads, ["m2", "m1"]);
    let stored: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(&app.keys.dead_messages)
        .arg(1)
        .arg(1)
        .query_async(&mut app.redis)
        .await
        .expect("LRANGE");
    assert_eq!(
        letters[0]["id"],
        sluice_admin::letters::dead_letter_id(&stored[0])
    );
    assert_eq!(
        page(&app, 100, 9).await["dead_letters"],
        serde_json::json!([])
    );
    let r = app
        .http
        .get(app.url("/admin/dead-letters?offset=-1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    assert_error(r, 400, "invalid_query").await;
    app.cleanup().await;
}

#[tokio::test]
async fn one_dead_letter_is_found_by_its_id_wherever_it_moved_and_requeued_or_deleted() {
    let mut app = spawn_app_with(&[("INGEST__ADMIN_TOKEN", TOKEN)]).await;
    // More than two search chunks, oldest pushed first: "m1199" is the newest.
    let payloads: Vec<String> = (0..1_200).map(|i| format!("m{i:04}")).collect();
    let bytes: Vec<&[u8]> = payloads.iter().map(|p| p.as_bytes()).collect();
    add_dead_letters(&mut app, &bytes).await;
    let listed = page(&app, 1, 600).await;
    let id = listed["dead_letters"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(listed["dead_letters"][0]["payload"], "m0599");
    // Newer dead letters push it 700 places further than the page said.
    let newer: Vec<String> = (0..700).map(|i| format!("n{i:04}")).collect();
    add_dead_letters(
        &mut app,
        &newer.iter().map(|p| p.as_bytes()).collect::<Vec<_>>(),
    )
    .await;

    let url = format!("/admin/dead-letters/{id}/requeue?near=600");
    let r = admin_json(app.http.post(app.url(&url))).await;
    assert_eq!(r, serde_json::json!({"requeued": 1, "unreadable": 0}));
    assert_eq!(app.pending().await, ["m0599"], "that one, once");
    assert_eq!(page(&app, 1, 0).await["total"], 1_899);
    let r = app
        .http
        .post(app.url(&url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    assert_error(r, 404, "dead_letter_not_found").await;

    // Searched from far past the end, it is still found (the search wraps to the newest).
    let oldest = page(&app, 1, 1898).await;
    let oldest_id = oldest["dead_letters"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let delete = app
        .http
        .delete(app.url(&format!("/admin/dead-letters/{oldest_id}?near=5000")));
    assert_eq!(admin_json(delete).await, serde_json::json!({"purged": 1}));
    assert_eq!(page(&app, 1, 0).await["total"], 1_898);
    assert_eq!(app.pending().await, ["m0599"], "a delete requeues nothing");

    let r = app
        .http
        .delete(app.url("/admin/dead-letters/nope"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    assert_error(r, 404, "dead_letter_not_found").await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_unreadable_dead_letter_is_refused_requeue_but_can_be_deleted() {
    let mut app = spawn_app_with(&[("INGEST__ADMIN_TOKEN", TOKEN)]).await;
    let _: () = redis::cmd("LPUSH")
        .arg(&app.keys.dead_messages)
        .arg("not json")
        .query_async(&mut app.redis)
        .await
        .expect("LPUSH");
    let listed = page(&app, 100, 0).await;
    let letter = &listed["dead_letters"][0];
    assert_eq!(letter["unreadable"], "not json");
    let id = letter["id"].as_str().expect("id");
    assert_error(requeue_one(&app, id).await, 409, "dead_letter_unreadable").await;
    assert_eq!(page(&app, 100, 0).await["total"], 1, "left where it was");
    let r = admin_json(
        app.http
            .delete(app.url(&format!("/admin/dead-letters/{id}"))),
    )
    .await;
    assert_eq!(r["purged"], 1);
    assert_eq!(page(&app, 100, 0).await["total"], 0);
    assert!(app.pending().await.is_empty());
    app.cleanup().await;
}

/// LPUSHes raw entries onto `dead_messages`, as something other than a worker might.
async fn add_raw(app: &mut TestApp, entries: &[&[u8]]) {
    for entry in entries {
        let _: () = redis::cmd("LPUSH")
            .arg(&app.keys.dead_messages)
            .arg(*entry)
            .query_async(&mut app.redis)
            .await
            .expect("LPUSH");
    }
}

#[tokio::test]
async fn every_entry_is_listed_whatever_its_shape_and_pages_are_bounded_in_bytes() {
    let mut app = spawn_app_with(&[("INGEST__ADMIN_TOKEN", TOKEN)]).await;
    add_dead_letters(&mut app, &[b"readable".as_slice()]).await;
    let huge = vec![0xffu8; 3 << 20];
    add_raw(
        &mut app,
        &[
            huge.as_slice(),
            br#"{"payload":{"an":"object"},"reason":"r"}"#,
            b"\xc3\x28 not UTF-8",
            huge.as_slice(),
        ],
    )
    .await;
    add_dead_letters(&mut app, &[b"newest".as_slice()]).await;
    // Newest first: a letter, 3 MiB of garbage (the page's byte budget ends the page there).
    let first = page(&app, 25, 0).await;
    let letters = first["dead_letters"].as_array().expect("letters");
    assert_eq!(first["total"], 6);
    assert_eq!(letters.len(), 2, "{first}");
    assert_eq!(letters[0]["payload"], "newest");
    assert_eq!(letters[1]["bytes"], 3 << 20);
    assert_eq!(
        letters[1]["unreadable_hex"].as_str().map(str::len),
        Some(8192)
    );
    assert_eq!(first["next_offset"], 2);
    let body = serde_json::to_string(&first).expect("json");
    assert!(body.len() < 64 * 1024, "a page of {} bytes", body.len());
    // The rest, from the offset the page gave: the odd shapes are listed, as unreadable.
    let rest = page(&app, 25, 2).await;
    let letters = rest["dead_letters"].as_array().expect("letters");
    assert_eq!(letters.len(), 3, "{rest}");
    assert_eq!(
        letters[0]["unreadable_hex"].as_str().map(|h| &h[..6]),
        Some("c32820")
    );
    assert!(
        letters[1]["unreadable"]
            .as_str()
            .is_some_and(|t| t.contains("object"))
    );
    assert!(letters[1].get("payload").is_none());
    let last = page(&app, 25, 5).await;
    assert_eq!(last["dead_letters"][0]["payload"], "readable");
    assert!(last["next_offset"].is_null());
    // Requeue takes the letters and leaves the four unreadable entries.
    let requeued = app.admin(TOKEN).requeue_dead_letters(None, None).await;
    assert_eq!(
        requeued.map(|r| (r.requeued, r.unreadable)).ok(),
        Some((2, 4))
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_dead_letter_that_kept_only_its_first_bytes_is_listed_but_never_requeued() {
    let mut app = spawn_app_with(&[("INGEST__ADMIN_TOKEN", TOKEN)]).await;
    let letter = DeadLetter::new(
        &[b'x'; 5_000],
        "long".into(),
        chrono::Utc::now(),
        "w",
        1_024,
    );
    add_raw(
        &mut app,
        &[serde_json::to_vec(&letter).expect("json").as_slice()],
    )
    .await;
    let listed = page(&app, 100, 0).await;
    let shown = &listed["dead_letters"][0];
    assert_eq!(
        (
            shown["payload_bytes"].as_u64(),
            shown["payload"].as_str().map(str::len)
        ),
        (Some(5_000), Some(1_024))
    );
    let id = shown["id"].as_str().expect("id");
    assert_error(requeue_one(&app, id).await, 409, "dead_letter_unreadable").await;
    let requeued = app.admin(TOKEN).requeue_dead_letters(None, None).await;
    assert_eq!(requeued.map(|r| r.requeued).ok(), Some(0));
    assert!(
        app.pending().await.is_empty(),
        "no part of a message is queued"
    );
    app.cleanup().await;
}

/// A brute force: wrong tokens are refused before any work, and past five a minute from one
/// address that address is answered 429 without its token being read, the right one included;
/// another address is not held up.
#[tokio::test]
async fn wrong_tokens_are_refused_before_any_work_then_their_address_is_throttled() {
    // Nothing listens where Redis should be: any call that reached Redis would answer 503.
    let nowhere = format!("redis://127.0.0.1:{}", sluice_tests::process::free_port());
    let app = spawn_app_with(&[
        ("INGEST__ADMIN_TOKEN", TOKEN),
        ("REDIS__URL", nowhere.as_str()),
    ])
    .await;
    let call = |http: &reqwest::Client, token: &str| {
        http.get(app.url("/admin/dead-letters"))
            .bearer_auth(token)
            .send()
    };
    let wrong = "x".repeat(TOKEN.len());
    for _ in 0..sluice_admin::throttle::MAX_FAILURES {
        let r = call(&app.http, &wrong).await.expect("sent");
        assert_error(r, 401, "invalid_credentials").await;
    }
    for token in [wrong.as_str(), TOKEN] {
        let r = call(&app.http, token).await.expect("sent");
        let wait: u64 = r.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("secs");
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
        assert_error(r, 429, "too_many_failures").await;
    }
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let r = call(&elsewhere, TOKEN).await.expect("sent");
    assert_error(r, 503, "redis_unavailable").await;
    // Counted for the operator, by reason.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent");
    let metrics = metrics.text().await.expect("text");
    for reason in ["wrong_token", "throttled"] {
        let series = format!("sluice_auth_failures_total{{reason=\"{reason}\"}}");
        assert!(metrics.contains(&series), "{series} in:\n{metrics}");
    }
    app.cleanup().await;
}
