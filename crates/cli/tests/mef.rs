//! `m2mtrust mef enrollee …`: the operator's factory credentials, sealed in the data folder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn m2mtrust(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_m2mtrust"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn enrollees_are_added_listed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let key = "00112233445566778899aabbccddeeff";
    let add = |id: &str, extra: &[&str]| {
        let mut args = vec![
            "mef",
            "enrollee",
            "add",
            "--data",
            data,
            "--kpm-id",
            id,
            "--kpm-hex",
            key,
        ];
        args.extend_from_slice(extra);
        m2mtrust(&args)
    };
    let (code, out, err) = add(
        "factory-1@mef.m2mtrust.example",
        &["--assign-ae-id", "Csensor1", "--valid-days", "30"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("10-factory-1@mef.m2mtrust.example"), "{out}");
    let (code, _, _) = add(
        "factory-2@mef.m2mtrust.example",
        &["--assign-cse-id", "/id-mn"],
    );
    assert_eq!(code, 0);
    // Refusals: duplicate (1), bad KpmID, short key, no assignment, zero days (2).
    assert_eq!(
        add("factory-1@mef.m2mtrust.example", &["--assign-ae-id", "Cx"]).0,
        1
    );
    assert_eq!(add("no-issuer", &["--assign-ae-id", "Cx"]).0, 2);
    let short = m2mtrust(&[
        "mef",
        "enrollee",
        "add",
        "--data",
        data,
        "--kpm-id",
        "s@mef.m2mtrust.example",
        "--kpm-hex",
        "0011",
        "--assign-ae-id",
        "Cx",
    ]);
    assert_eq!(short.0, 2);
    assert_eq!(add("n@mef.m2mtrust.example", &[]).0, 2);
    assert_eq!(
        add(
            "z@mef.m2mtrust.example",
            &["--assign-ae-id", "Cx", "--valid-days", "0"]
        )
        .0,
        2
    );
    assert_eq!(
        add("a@mef.m2mtrust.example", &["--assign-ae-id", "/id-mn"]).0,
        2,
        "a CSE-ID is not an AE-ID"
    );

    let (code, list, _) = m2mtrust(&["mef", "enrollee", "list", "--data", data]);
    assert_eq!(code, 0);
    assert!(
        list.contains("10-factory-1@mef.m2mtrust.example") && list.contains("Csensor1"),
        "{list}"
    );
    assert!(
        list.contains("10-factory-2@mef.m2mtrust.example") && list.contains("/id-mn"),
        "{list}"
    );
    assert!(!list.contains(key), "{list}");
    assert_eq!(list.lines().count(), 3, "header and two enrollees: {list}");

    assert_eq!(
        m2mtrust(&[
            "mef",
            "enrollee",
            "remove",
            "--data",
            data,
            "--kpm-id",
            "factory-1@mef.m2mtrust.example"
        ])
        .0,
        0
    );
    assert_eq!(
        m2mtrust(&[
            "mef",
            "enrollee",
            "remove",
            "--data",
            data,
            "--kpm-id",
            "factory-1@mef.m2mtrust.example"
        ])
        .0,
        1
    );
    let (_, list, _) = m2mtrust(&["mef", "enrollee", "list", "--data", data]);
    assert!(!list.contains("factory-1"), "{list}");
    // Factory keys are not connection credentials: the CSE's credential list shows them as kind kpm.
    let (_, creds, _) = m2mtrust(&["credential", "list", "--data", data]);
    assert!(
        creds.contains("10-factory-2@mef.m2mtrust.example") && creds.contains("kpm"),
        "{creds}"
    );
}
