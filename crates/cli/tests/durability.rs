//! SIGKILL during a create loop loses no acknowledged resource; a restart keeps everything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, call, register};
use serde_json::json;

#[test]
fn sigkill_loses_no_acknowledged_content_instance() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]);
    let ae = register(&s, "Cdur", "dur");
    assert_eq!(
        s.call(
            "POST",
            "/cse-in/dur",
            Some(&ae),
            Some(3),
            Some(&json!({"m2m:cnt": {"rn": "c"}}))
        )
        .rsc(),
        2001
    );

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (acked, stop, ae, addr) = (acked.clone(), stop.clone(), ae.clone(), s.addr);
        writers.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"m2m:cin": {"con": format!("w{w}-{i}")}}).to_string();
                // A request cut off by the kill panics in the helper; treat it as unacknowledged.
                let r = std::panic::catch_unwind(|| {
                    call(
                        addr,
                        "POST",
                        "/cse-in/dur/c",
                        Some(&ae),
                        Some(4),
                        Some(&body),
                        &[],
                    )
                });
                match r {
                    Ok(r) if r.rsc() == 2001 => {
                        let ri = r.json()["m2m:cin"]["ri"].as_str().unwrap().to_string();
                        acked.lock().unwrap().push(ri);
                    }
                    _ => return,
                }
                i += 1;
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // SIGKILL: no shutdown code runs.
    s.kill();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "the loop made progress before the kill ({} acknowledged)",
        acked.len()
    );

    let s = Server::start(dir.path(), &[]);
    let mut missing = Vec::new();
    for ri in &acked {
        let r = s.call("GET", &format!("/{ri}"), Some(&ae), None, None);
        if r.rsc() != 2000 {
            missing.push(ri.clone());
        }
    }
    eprintln!(
        "{} acknowledged contentInstances checked after SIGKILL and restart",
        acked.len()
    );
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged instances lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    let cnt = s.call("GET", "/cse-in/dur/c", Some(&ae), None, None).json();
    assert!(
        cnt["m2m:cnt"]["cni"].as_u64().unwrap() >= acked.len() as u64,
        "{cnt}"
    );
}
