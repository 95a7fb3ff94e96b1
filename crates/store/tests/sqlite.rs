//! The SQLite store against a real database file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use m2mtrust_model::{Resource, ResourceType, Timestamp};
use m2mtrust_store::{DiscoveryQuery, Durability, SqliteStore, Store, StoreError, StoreExt};
use serde_json::json;

fn res(ty: ResourceType, ri: &str, pi: &str, srn: &str, extra: serde_json::Value) -> Resource {
    let mut attrs = json!({"ri": ri, "pi": pi, "rn": srn.rsplit('/').next().unwrap(), "ty": ty.0,
        "ct": "20260101T000000", "lt": "20260101T000000", "et": "20990101T000000"});
    if let Some(m) = extra.as_object() {
        for (k, v) in m {
            attrs[k] = v.clone();
        }
    }
    Resource {
        ty,
        srn: srn.into(),
        attrs: attrs.as_object().unwrap().clone(),
    }
}

fn open(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir.path().join("db.sqlite"), Durability::Full).unwrap())
}

#[tokio::test]
async fn insert_read_delete_subtree() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let cb = res(ResourceType::CSE_BASE, "cb", "", "cse-in", json!({}));
    let ae = res(
        ResourceType::AE,
        "Cae",
        "cb",
        "cse-in/ae",
        json!({"lbl": ["x"]}),
    );
    let cnt = res(
        ResourceType::CONTAINER,
        "cnt1",
        "Cae",
        "cse-in/ae/cnt",
        json!({}),
    );
    let other = res(ResourceType::AE, "Cae2", "cb", "cse-in/ae2", json!({}));
    store
        .write(move |w| -> Result<(), StoreError> {
            for r in [&cb, &ae, &cnt, &other] {
                w.insert(r)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let got = store
        .read(|r| r.get_by_srn("cse-in/ae/cnt"))
        .unwrap()
        .unwrap();
    assert_eq!(got.ri(), "cnt1");
    let q = DiscoveryQuery {
        root_srn: "cse-in".into(),
        filter: m2mtrust_model::FilterCriteria {
            labels: vec!["x".into()],
            ..Default::default()
        },
        limit: 10,
        ..Default::default()
    };
    let found = store.read(|r| r.discover(&q)).unwrap();
    assert_eq!(
        found.iter().map(|r| r.ri()).collect::<Vec<_>>(),
        vec!["Cae"]
    );

    let deleted = store.write(|w| w.delete_subtree("Cae")).await.unwrap();
    assert_eq!(
        deleted
            .iter()
            .map(|d| d.resource.ri().to_string())
            .collect::<Vec<_>>(),
        vec!["Cae", "cnt1"]
    );
    assert!(store.read(|r| r.get("cnt1")).unwrap().is_none());
    // "cse-in/ae2" shares the prefix "cse-in/ae" but is not in its subtree.
    assert!(store.read(|r| r.get("Cae2")).unwrap().is_some());
}

#[tokio::test]
async fn a_failed_job_leaves_nothing_and_does_not_affect_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = res(
                ResourceType::CONTAINER,
                &format!("c{i}"),
                "p",
                &format!("p/c{i}"),
                json!({}),
            );
            store
                .write(move |w| -> Result<(), StoreError> {
                    w.insert(&r)?;
                    if i % 2 == 1 {
                        // Odd jobs fail after writing: their insert must be rolled back.
                        return Err(StoreError::Duplicate("forced".into()));
                    }
                    Ok(())
                })
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 25);
    let children = store.read(|r| r.children("p", None)).unwrap();
    assert_eq!(children.len(), 25);
    assert!(
        children
            .iter()
            .all(|c| c.ri()[1..].parse::<u32>().unwrap() % 2 == 0)
    );
}

#[tokio::test]
async fn duplicates_are_reported_and_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        let a = res(ResourceType::CONTAINER, "c1", "p", "p/a", json!({}));
        let b = res(ResourceType::CONTAINER, "c2", "p", "p/a", json!({}));
        store.write(move |w| w.insert(&a)).await.unwrap();
        let err = store.write(move |w| w.insert(&b)).await.unwrap_err();
        assert!(matches!(err, StoreError::Duplicate(_)), "{err:?}");
    }
    let store = open(&dir);
    assert!(store.read(|r| r.get("c1")).unwrap().is_some());
    assert!(store.read(|r| r.get("c2")).unwrap().is_none());
}

#[tokio::test]
async fn edge_children_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let now = Timestamp::parse("20500101T000000").unwrap();
    store
        .write(move |w| -> Result<(), StoreError> {
            w.insert(&res(
                ResourceType::CONTENT_INSTANCE,
                "i1",
                "c",
                "c/i1",
                json!({"et": "20400101T000000"}),
            ))?;
            w.insert(&res(
                ResourceType::CONTENT_INSTANCE,
                "i2",
                "c",
                "c/i2",
                json!({}),
            ))?;
            w.insert(&res(
                ResourceType::CONTENT_INSTANCE,
                "i3",
                "c",
                "c/i3",
                json!({}),
            ))?;
            Ok(())
        })
        .await
        .unwrap();
    let oldest = store
        .read(|r| r.edge_child("c", ResourceType::CONTENT_INSTANCE, false, now))
        .unwrap();
    assert_eq!(oldest.unwrap().ri(), "i2", "the expired i1 is skipped");
    let newest = store
        .read(|r| r.edge_child("c", ResourceType::CONTENT_INSTANCE, true, now))
        .unwrap();
    assert_eq!(newest.unwrap().ri(), "i3");
    let expired = store.read(|r| r.expired(now, 10)).unwrap();
    assert_eq!(
        expired.iter().map(|r| r.ri()).collect::<Vec<_>>(),
        vec!["i1"]
    );
}

#[tokio::test]
async fn credentials_round_trip_and_never_print_their_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let record = m2mtrust_store::CredentialRecord {
        id: "12-dev@m2mtrust.example".into(),
        kind: "psk".into(),
        sealed_secret: Some(vec![1, 2, 3, 4]),
        binding: "ae".into(),
        bound_ids: vec!["Cdev".into()],
        created: Timestamp(5),
        expires: Some(Timestamp(50)),
    };
    let r = record.clone();
    store.write(move |w| w.put_credential(&r)).await.unwrap();
    let dup = record.clone();
    assert!(matches!(
        store.write(move |w| w.put_credential(&dup)).await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(
        store
            .read(|r| r.credential("12-dev@m2mtrust.example"))
            .unwrap(),
        Some(record.clone())
    );
    assert_eq!(store.read(|r| r.credentials()).unwrap().len(), 1);
    assert!(!format!("{record:?}").contains("[1, 2, 3, 4]"));
    assert!(!record.is_expired(Timestamp(49)) && record.is_expired(Timestamp(50)));
    assert!(
        store
            .write(|w| w.remove_credential("12-dev@m2mtrust.example"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .write(|w| w.remove_credential("12-dev@m2mtrust.example"))
            .await
            .unwrap()
    );
    assert!(
        store
            .read(|r| r.credential("12-dev@m2mtrust.example"))
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_version_2_database_gains_credential_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE credentials (id TEXT PRIMARY KEY, kind TEXT NOT NULL, secret BLOB,
                 binding TEXT NOT NULL, bound_ids TEXT NOT NULL, created INTEGER NOT NULL);
             INSERT INTO credentials VALUES ('12-old@m2mtrust.example', 'psk', x'01', 'ae', '[\"Cold\"]', 7);
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, Durability::Full).unwrap());
    let old = store
        .read(|r| r.credential("12-old@m2mtrust.example"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (old.bound_ids.clone(), old.expires),
        (vec!["Cold".to_string()], None)
    );
    drop(store);
    // Opening again is a no-op.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, Durability::Full).unwrap());
    assert_eq!(store.read(|r| r.credentials()).unwrap().len(), 1);
}
