//! `GET /messages`: keyset pagination, filters, query errors.

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

/// Inserts `n` rows spread over channels 1..=3 and users 1..=2; returns their ids oldest first.
async fn seed(app: &TestApp, n: usize) -> Vec<Uuid> {
    let client = app.db.client().await.expect("client");
    let mut ids = Vec::new();
    for i in 0..n {
        let id = Uuid::now_v7();
        let channel = (i % 3 + 1) as i64;
        let user = (i % 2 + 1) as i64;
        client
            .execute(
                "INSERT INTO messages (id, user_id, channel_id, content, created_at) \
                 VALUES ($1, $2, $3, $4, now())",
                &[&id, &user, &channel, &format!("m{i}")],
            )
            .await
            .expect("insert");
        ids.push(id);
    }
    ids
}

async fn get(app: &TestApp, query: &str) -> Value {
    let r = app
        .http
        .get(app.url(&format!("/messages?{query}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("json")
}

fn ids(page: &Value) -> Vec<Uuid> {
    page["messages"]
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["id"].as_str().expect("id").parse().expect("uuid"))
        .collect()
}

#[tokio::test]
async fn pages_walk_every_row_newest_first() {
    let app = spawn_app().await;
    let seeded = seed(&app, 23).await;
    let mut walked = Vec::new();
    let mut query = "limit=10".to_owned();
    loop {
        let page = get(&app, &query).await;
        walked.extend(ids(&page));
        match page["next_before"].as_str() {
            Some(cursor) => query = format!("limit=10&before={cursor}"),
            None => break,
        }
    }
    let mut newest_first = seeded.clone();
    newest_first.reverse();
    assert_eq!(walked, newest_first);
    app.cleanup().await;
}

#[tokio::test]
async fn filters_by_channel_and_user() {
    let app = spawn_app().await;
    seed(&app, 12).await;
    let page = get(&app, "channel_id=2&user_id=").await;
    let messages = page["messages"].as_array().expect("array");
    assert_eq!(messages.len(), 4);
    assert!(messages.iter().all(|m| m["channel_id"] == 2));
    let page = get(&app, "channel_id=1&user_id=1").await;
    let messages = page["messages"].as_array().expect("array");
    assert_eq!(messages.len(), 2, "i ≡ 0 mod 6");
    assert!(
        messages
            .iter()
            .all(|m| m["channel_id"] == 1 && m["user_id"] == 1)
    );
    let first = &messages[0];
    for field in [
        "id",
        "user_id",
        "channel_id",
        "content",
        "created_at",
        "inserted_at",
    ] {
        assert!(!first[field].is_null(), "{field} in {first}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn bad_query_parameters_get_400_naming_each() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(app.url("/messages?limit=501&channel_id=-1&before=yesterday"))
        .send()
        .await
        .expect("sent");
    let body = assert_error(r, 400, "invalid_query").await;
    let fields = body["error"]["fields"].as_object().expect("fields");
    assert!(
        fields.contains_key("limit")
            && fields.contains_key("channel_id")
            && fields.contains_key("before")
    );
    app.cleanup().await;
}

#[tokio::test]
async fn pages_come_from_the_read_replica_when_one_is_set() {
    // A "replica" that holds other rows than the primary, so the answer shows where it came from.
    let replica = sluice_tests::TestDb::create("replica")
        .await
        .expect("database");
    let settings = sluice_core::settings::PostgresSettings {
        url: replica.url.clone().into(),
        ..Default::default()
    };
    let pool = sluice_core::connect::postgres_pool(&settings).expect("pool");
    let mut client = pool.get().await.expect("connection");
    sluice_core::schema::migrate(&mut client)
        .await
        .expect("schema");
    let on_replica = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO messages (id, user_id, channel_id, content, created_at) \
             VALUES ($1, 1, 1, 'from the replica', now())",
            &[&on_replica],
        )
        .await
        .expect("insert");
    drop((client, pool));

    let app = spawn_app_with(&[("POSTGRES__READ_URL", &replica.url)]).await;
    seed(&app, 3).await;
    let page = get(&app, "limit=10").await;
    assert_eq!(ids(&page), [on_replica], "{page}");
    assert_eq!(page["messages"][0]["content"], "from the replica");
    // Readiness still asks the primary.
    let ready = app.http.get(app.url("/ready")).send().await.expect("sent");
    assert_eq!(ready.status().as_u16(), 200);
    app.cleanup().await;
    replica.drop_db().await.expect("dropped");
}

/// The plan nodes of `EXPLAIN (FORMAT JSON)`, flattened.
fn plan_nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    for child in plan["Plans"].as_array().into_iter().flatten() {
        plan_nodes(child, out);
    }
}

#[tokio::test]
async fn every_filter_combination_is_one_index_range_scan() {
    use sluice_ingest::routes::list::ListQuery;
    use sluice_ingest::store::PageQuery;

    let app = spawn_app().await;
    seed(&app, 30).await;
    let client = app.db.client().await.expect("client");
    // Whatever the table's size, a plan that could avoid a scan of a whole partition must.
    client
        .batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        .await
        .expect("SET");
    let channel = Some(sluice_proto::message::ChannelId::try_from(2).expect("id"));
    let user = Some(sluice_proto::message::UserId::try_from(1).expect("id"));
    for (channel_id, user_id) in [(None, None), (channel, None), (None, user), (channel, user)] {
        for before in [None, Some(Uuid::now_v7())] {
            let query = ListQuery {
                limit: 50,
                channel_id,
                user_id,
                before,
            };
            let sql = PageQuery::new(&query).sql();
            // Literal values in place of the parameters, for EXPLAIN.
            let literal = sql.replace("channel_id = $1", "channel_id = 2").replace(
                &format!("user_id = ${}", 1 + usize::from(channel_id.is_some())),
                "user_id = 1",
            );
            let literal = (1..=4).rev().fold(literal, |sql, n| {
                let value = if sql.contains(&format!("id < ${n}")) {
                    format!("'{}'", before.unwrap_or_default())
                } else {
                    "50".to_owned()
                };
                sql.replace(&format!("${n}"), &value)
            });
            let row = client
                .query_one(&format!("EXPLAIN (FORMAT JSON) {literal}"), &[])
                .await
                .expect("EXPLAIN");
            let plan: Value = row.get(0);
            let mut nodes = Vec::new();
            plan_nodes(&plan[0]["Plan"], &mut nodes);
            for node in &nodes {
                let kind = node["Node Type"].as_str().unwrap_or("");
                assert!(!kind.contains("Seq Scan"), "{literal}: {plan:#}");
                assert!(
                    node.get("Filter").is_none(),
                    "{literal}: a row-by-row filter: {plan:#}"
                );
            }
            assert!(
                nodes
                    .iter()
                    .any(|n| n["Node Type"].as_str() == Some("Index Scan")),
                "{literal}: {plan:#}"
            );
        }
    }
    app.cleanup().await;
}

#[tokio::test]
async fn reads_that_cannot_finish_never_take_readiness_down() {
    let app = spawn_app_with(&[
        ("INGEST__READ_CONCURRENCY", "2"),
        ("INGEST__READ_TIMEOUT_MS", "500"),
    ])
    .await;
    seed(&app, 5).await;
    // Every read of `messages` waits behind this lock until its statement timeout.
    let mut locker = app.db.client().await.expect("client");
    let lock = locker.transaction().await.expect("BEGIN");
    lock.batch_execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("LOCK");
    let reads: Vec<_> = (0..64)
        .map(|_| {
            let (http, url) = (
                app.http.clone(),
                app.url("/messages?channel_id=1&user_id=2"),
            );
            tokio::spawn(async move {
                let r = http.get(url).send().await.expect("sent");
                let status = r.status().as_u16();
                let body: Value = r.json().await.expect("json");
                (
                    status,
                    body["error"]["code"].as_str().unwrap_or("").to_owned(),
                )
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let ready = app.http.get(app.url("/ready")).send().await.expect("sent");
    assert_eq!(ready.status().as_u16(), 200, "ready while reads are stuck");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let mut answers = std::collections::BTreeMap::<(u16, String), usize>::new();
    for read in reads {
        *answers.entry(read.await.expect("read")).or_default() += 1;
    }
    // Two ran, until their statement timeout; the rest were refused at once.
    assert_eq!(
        answers.keys().cloned().collect::<Vec<_>>(),
        [
            (503, "read_timeout".to_owned()),
            (503, "server_busy".to_owned())
        ],
        "{answers:?}"
    );
    assert!(
        answers[&(503, "read_timeout".to_owned())] >= 2,
        "{answers:?}"
    );
    lock.rollback().await.expect("ROLLBACK");
    let page = get(&app, "channel_id=1").await;
    assert!(!ids(&page).is_empty());
    app.cleanup().await;
}
