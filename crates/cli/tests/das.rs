//! The Dynamic Authorization System server over real TLS (TS-0003 §7.3.2.2 step 3, §7.3.2.3
//! steps 3 and 5): `m2mtrust up` and `m2mtrust das serve` answer NOTIFY requests carrying
//! `m2m:seci` from hosting CSEs (CSE-ID certificates) and originators (AE-ID certificates,
//! PSKs), decide with the policies `m2mtrust das policy` manages, and issue tokens that verify
//! with the data folder's DAS public key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use common::{Function, Server, free_port, m2mtrust};
use m2mtrust_client::{Client, ClientOptions, Credential, KpsaId, PrivateKeyPem, PskKey, notify};
use m2mtrust_das::{TokenVerifier, TrustedIssuer, VerificationKey};
use m2mtrust_model::Response;
use serde_json::{Value, json};

const HCSE: &str = "//m2mtrust.example/id-in";
const AE1: &str = "//m2mtrust.example/id-in/Cae1";

/// Issues a CSE-ID (`--cse-id`) or AE-ID (`--ae-id`) certificate from the data folder's CA.
fn cert(data: &Path, out: &Path, kind: &str, id: &str) -> Credential {
    let prefix = out.join(id.trim_start_matches('/'));
    let (code, _, err) = m2mtrust(&[
        "cert",
        "issue",
        "--data",
        data.to_str().unwrap(),
        kind,
        id,
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    Credential::Certificate {
        chain_pem: std::fs::read(format!("{}.pem", prefix.display())).unwrap(),
        key_pem: PrivateKeyPem::new(
            std::fs::read_to_string(format!("{}-key.pem", prefix.display())).unwrap(),
        ),
    }
}

/// The example PSK `up` creates, bound to the AE-ID `Cexample`.
fn example_psk(data: &Path) -> Credential {
    let hex = std::fs::read_to_string(data.join("keys/example-psk.hex")).unwrap();
    Credential::Psk {
        kpsa_id: KpsaId::parse("example-ae@m2mtrust.example").unwrap(),
        key: PskKey::from_hex(hex.trim()).unwrap(),
    }
}

fn client(data: &Path, addr: std::net::SocketAddr, credential: Credential) -> Client {
    let options = ClientOptions::new(credential)
        .with_trust_anchors(std::fs::read(data.join("pki/ca.pem")).unwrap())
        .with_server_name("localhost")
        .with_timeout(Duration::from_secs(20));
    Client::new(&format!("https://127.0.0.1:{}/das", addr.port()), options).unwrap()
}

async fn ask(client: &Client, from: &str, dreq: Value) -> Response {
    let req = notify("das", from, json!({"m2m:seci": {"sit": 1, "dreq": dreq}}));
    client.send(&req).await.unwrap()
}

fn seci(r: &Response) -> &Value {
    &r.content.as_ref().expect("content")["m2m:seci"]
}

fn verifier(data: &Path) -> TokenVerifier {
    let public = std::fs::read_to_string(data.join("pki/das-public.pem")).unwrap();
    TokenVerifier::new(vec![TrustedIssuer {
        issuer: "das.m2mtrust.example".into(),
        keys: vec![VerificationKey::es256_public_pem(&public).unwrap()],
    }])
}

fn policy_add(data: &Path, args: &[&str]) -> String {
    let mut all = vec!["das", "policy", "add", "--data", data.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, out, err) = m2mtrust(&all);
    assert_eq!(code, 0, "{out}{err}");
    let id = out.trim().to_owned();
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "{out:?}"
    );
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_and_indirect_authorization_through_up() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let data = dir.path();
    let das = s.das_addr.expect("up prints the DAS endpoint");
    let hcse = client(data, das, cert(data, certs.path(), "--cse-id", "/id-in"));
    let mn = client(data, das, cert(data, certs.path(), "--cse-id", "/id-mn"));
    let ae1 = client(data, das, cert(data, certs.path(), "--ae-id", "Cae1"));
    let psk = client(data, das, example_psk(data));
    let direct = json!({"or": AE1, "trt": 2, "op": 2, "trid": "cse-in/ae1/cnt1",
        "oip": {"ip4": "127.0.0.1"}, "rts": "20261124T110000"});

    // No policy: nothing granted, no dres.
    let r = ask(&hcse, "/id-in", direct.clone()).await;
    assert_eq!(r.status.0, 2000, "{:?}", r.content);
    assert_eq!(r.content, Some(json!({"m2m:seci": {"sit": 2}})));

    // A policy: dynamicACPInfo and a token for the hosting CSE.
    let policy = policy_add(
        data,
        &[
            "--originator",
            "C*",
            "--target",
            "cse-in/ae1/*",
            "--operations",
            "3",
            "--lifetime-secs",
            "600",
            "--role-id",
            "reader@das.m2mtrust.example",
        ],
    );
    let r = ask(&hcse, "/id-in", direct.clone()).await;
    assert_eq!(r.status.0, 2000, "{:?}", r.content);
    let dres = &seci(&r)["dres"];
    assert_eq!(seci(&r)["sit"], json!(2));
    assert_eq!(
        dres["dai"]["gp"],
        json!({"acr": [{"acor": [AE1], "acop": 3}]})
    );
    let pl = m2mtrust_das::parse_m2m_timestamp(dres["dai"]["pl"].as_str().unwrap()).unwrap();
    let left = (pl - Utc::now()).num_seconds();
    assert!((590..=601).contains(&left), "pl {pl} is {left} s away");
    let jwt = dres["tkns"][0].as_str().unwrap().to_owned();
    let claims = verifier(data).verify(&jwt, HCSE, AE1, Utc::now()).unwrap();
    assert_eq!(claims.audience, vec![HCSE.to_string()]);
    assert_eq!(claims.holder, AE1);
    let pm = &claims.permissions.as_ref().unwrap().pm[0];
    assert_eq!(pm.ris, Some(vec!["cse-in/ae1/cnt1".to_string()]));
    assert_eq!(pm.pv, Some(json!({"acr": [{"acor": [AE1], "acop": 3}]})));
    assert_eq!(
        pm.rids,
        Some(vec!["reader@das.m2mtrust.example".to_string()])
    );
    assert!(claims.token_id.ends_with("@das.m2mtrust.example"));
    // ...for that CSE and that holder only.
    assert!(
        verifier(data)
            .verify(&jwt, "//m2mtrust.example/id-mn", AE1, Utc::now())
            .is_err()
    );
    // An operation outside the policy (delete) is not granted.
    let mut delete = direct.clone();
    delete["op"] = json!(4);
    let r = ask(&hcse, "/id-in", delete).await;
    assert_eq!(r.content, Some(json!({"m2m:seci": {"sit": 2}})));
    // The proposed lifetime shortens the grant.
    let mut short = direct.clone();
    let ppl = m2mtrust_das::to_m2m_timestamp(Utc::now() + chrono::TimeDelta::seconds(120));
    short["ppl"] = json!(ppl);
    let r = ask(&hcse, "/id-in", short).await;
    assert_eq!(seci(&r)["dres"]["dai"]["pl"], json!(ppl));

    // Indirect: the originator asks for itself; the audience is the CSE named by trid.
    let own = json!({"or": AE1, "op": 1, "trid": "/id-in/cse-in/ae1/cnt1"});
    let r = ask(&ae1, "Cae1", own.clone()).await;
    assert_eq!(r.status.0, 2000, "{:?}", r.content);
    let dres = &seci(&r)["dres"];
    assert!(dres.get("dai").is_none(), "{dres}");
    let own_jwt = dres["tkns"][0].as_str().unwrap().to_owned();
    let own_claims = verifier(data)
        .verify(&own_jwt, HCSE, AE1, Utc::now())
        .unwrap();
    assert_eq!(
        own_claims.permissions.unwrap().pm[0].ris,
        Some(vec!["/id-in/cse-in/ae1/cnt1".to_string()])
    );
    // ...with the SP-relative From too.
    let r = ask(&ae1, "/id-in/Cae1", own.clone()).await;
    assert_eq!(r.status.0, 2000, "{:?}", r.content);

    // Token-ID resolution: the audience CSE gets the token back, another CSE nothing.
    let tids = json!({"or": AE1, "op": 1,
        "tids": [own_claims.token_id, "unknown@das.m2mtrust.example"]});
    let r = ask(&hcse, "/id-in", tids.clone()).await;
    assert_eq!(r.status.0, 2000, "{:?}", r.content);
    assert_eq!(seci(&r)["dres"]["tkns"], json!([own_jwt]));
    let r = ask(&mn, "/id-mn", tids.clone()).await;
    assert_eq!(r.status.0, 2000, "{:?}", r.content);
    assert_eq!(r.content, Some(json!({"m2m:seci": {"sit": 2}})));
    // ...and only for the holder.
    let mut other_holder = tids.clone();
    other_holder["or"] = json!("Cae2");
    let r = ask(&hcse, "/id-in", other_holder).await;
    assert_eq!(r.content, Some(json!({"m2m:seci": {"sit": 2}})));
    // Tokens of `das token issue` are resolvable too.
    let (code, out, err) = m2mtrust(&[
        "das",
        "token",
        "issue",
        "--data",
        data.to_str().unwrap(),
        "--holder",
        "Cae1",
        "--resource",
        "cse-in/ae1",
        "--operations",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");
    let issued = out.trim().to_owned();
    let issued_id = verifier(data)
        .verify(&issued, HCSE, AE1, Utc::now())
        .unwrap()
        .token_id;
    let r = ask(
        &hcse,
        "/id-in",
        json!({"or": "Cae1", "op": 2, "tids": [issued_id]}),
    )
    .await;
    assert_eq!(seci(&r)["dres"]["tkns"], json!([issued]), "{:?}", r.content);
    // An AE cannot resolve Token-IDs.
    let r = ask(&ae1, "Cae1", tids.clone()).await;
    assert_eq!(r.status.0, 4103, "{:?}", r.content);

    // An AE asking for another originator.
    let r = ask(
        &ae1,
        "Cae1",
        json!({"or": "Cae2", "op": 2, "trid": "/id-in/cse-in/ae1/x"}),
    )
    .await;
    assert_eq!(r.status.0, 4103, "{:?}", r.content);
    assert!(
        r.debug_message().unwrap().contains("Cae2"),
        "{:?}",
        r.content
    );
    // From not bound to the TLS peer: an AE certificate, a PSK and a CSE certificate.
    let r = ask(
        &ae1,
        "Cae2",
        json!({"or": "Cae2", "op": 2, "trid": "/id-in/x"}),
    )
    .await;
    assert_eq!(r.status.0, 4106, "{:?}", r.content);
    let r = ask(&psk, "Cae1", own.clone()).await;
    assert_eq!(r.status.0, 4106, "{:?}", r.content);
    let r = ask(&mn, "/id-in", direct.clone()).await;
    assert_eq!(r.status.0, 4106, "{:?}", r.content);
    // The example PSK's own AE is an originator like any other.
    let r = ask(
        &psk,
        "Cexample",
        json!({"or": "Cexample", "op": 2, "trid": "/id-in/cse-in/ae1"}),
    )
    .await;
    assert_eq!(r.status.0, 2000, "{:?}", r.content);
    assert!(seci(&r)["dres"]["tkns"][0].is_string(), "{:?}", r.content);

    // Malformed content.
    for (what, body) in [
        (
            "no or",
            json!({"m2m:seci": {"sit": 1, "dreq": {"op": 2, "trid": "x"}}}),
        ),
        (
            "wrong sit",
            json!({"m2m:seci": {"sit": 2, "dreq": direct.clone()}}),
        ),
        ("not seci", json!({"m2m:sgn": {"vrq": true}})),
        (
            "bad ppl",
            json!({"m2m:seci": {"sit": 1, "dreq": {"or": AE1, "op": 2, "trid": "x", "ppl": "tomorrow"}}}),
        ),
    ] {
        let req = notify("das", "/id-in", body);
        let r = hcse.send(&req).await.unwrap();
        assert_eq!(r.status.0, 4000, "{what}: {:?}", r.content);
        assert!(!r.debug_message().unwrap_or("").is_empty(), "{what}");
    }

    // The policy is listed, then removed: nothing is granted any more.
    let (code, out, err) = m2mtrust(&[
        "das",
        "policy",
        "list",
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["id"], json!(policy));
    assert_eq!(
        list[0]["originators"],
        json!(["//m2mtrust.example/id-in/C*"])
    );
    assert_eq!(list[0]["targets"], json!(["cse-in/ae1/*"]));
    assert_eq!(list[0]["operations"], json!(3));
    assert_eq!(list[0]["grant"], json!("both"));
    let (code, out, _) = m2mtrust(&["das", "policy", "list", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&policy) && out.contains("cse-in/ae1/*"),
        "{out}"
    );
    let (code, _, err) = m2mtrust(&[
        "das",
        "policy",
        "remove",
        "--data",
        data.to_str().unwrap(),
        "--id",
        &policy,
    ]);
    assert_eq!(code, 0, "{err}");
    let r = ask(&hcse, "/id-in", direct.clone()).await;
    assert_eq!(r.status.0, 2000);
    assert_eq!(r.content, Some(json!({"m2m:seci": {"sit": 2}})));
    let (code, _, err) = m2mtrust(&[
        "das",
        "policy",
        "remove",
        "--data",
        data.to_str().unwrap(),
        "--id",
        &policy,
    ]);
    assert_eq!(code, 1, "removing it twice: {err}");
    assert!(err.contains(&policy), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn das_serve_alone_and_grant_modes() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let data = dir.path();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _das = Function::start(&[
        "das",
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        &listen,
        "--log",
        "warn",
    ]);
    let addr = listen.parse().unwrap();
    let hcse = client(data, addr, cert(data, certs.path(), "--cse-id", "/id-in"));
    let ae1 = client(data, addr, cert(data, certs.path(), "--ae-id", "Cae1"));

    // acp only: a hosting CSE gets dai and no token; the originator itself gets nothing.
    policy_add(
        data,
        &[
            "--originator",
            AE1,
            "--target",
            "all",
            "--operations",
            "2",
            "--grant",
            "acp",
        ],
    );
    let direct = json!({"or": "Cae1", "op": 2, "trid": "/id-in/cse-in/x"});
    let r = ask(&hcse, "/id-in", direct.clone()).await;
    assert_eq!(r.status.0, 2000, "{:?}", r.content);
    let dres = &seci(&r)["dres"];
    assert!(
        dres.get("dai").is_some() && dres.get("tkns").is_none(),
        "{dres}"
    );
    let r = ask(&ae1, "Cae1", direct.clone()).await;
    assert_eq!(r.content, Some(json!({"m2m:seci": {"sit": 2}})));

    // token only, on a later policy for create: the first covering policy decides per operation.
    policy_add(
        data,
        &[
            "--originator",
            "all",
            "--target",
            "/id-in/*",
            "--operations",
            "1",
            "--grant",
            "token",
        ],
    );
    let mut create = direct.clone();
    create["op"] = json!(1);
    let r = ask(&hcse, "/id-in", create).await;
    let dres = &seci(&r)["dres"];
    assert!(
        dres.get("dai").is_none() && dres.get("tkns").is_some(),
        "{dres}"
    );
    let jwt = dres["tkns"][0].as_str().unwrap();
    let claims = verifier(data).verify(jwt, HCSE, AE1, Utc::now()).unwrap();
    assert_eq!(claims.permissions.unwrap().pm[0].rids, None);
}

#[test]
fn policy_commands_refuse_bad_input_as_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let base = ["das", "policy", "add", "--data", data];
    for (what, extra) in [
        (
            "no target",
            vec!["--originator", "all", "--operations", "2"],
        ),
        (
            "operations 0",
            vec![
                "--originator",
                "all",
                "--target",
                "all",
                "--operations",
                "0",
            ],
        ),
        (
            "operations 64",
            vec![
                "--originator",
                "all",
                "--target",
                "all",
                "--operations",
                "64",
            ],
        ),
        (
            "bad grant",
            vec![
                "--originator",
                "all",
                "--target",
                "all",
                "--operations",
                "2",
                "--grant",
                "tokens",
            ],
        ),
        (
            "bad target",
            vec![
                "--originator",
                "all",
                "--target",
                "a/*/b",
                "--operations",
                "2",
            ],
        ),
        (
            "bad originator",
            vec![
                "--originator",
                "//x",
                "--target",
                "all",
                "--operations",
                "2",
            ],
        ),
        (
            "lifetime 0",
            vec![
                "--originator",
                "all",
                "--target",
                "all",
                "--operations",
                "2",
                "--lifetime-secs",
                "0",
            ],
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        let (code, out, err) = m2mtrust(&args);
        assert_eq!(code, 2, "{what}: {out}{err}");
    }
    let (code, out, _) = m2mtrust(&["das", "policy", "list", "--data", data, "--json"]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));
    let (code, _, err) = m2mtrust(&["das", "policy", "remove", "--data", data, "--id", "pnope"]);
    assert_eq!(code, 1, "{err}");
    let (code, out, _) = m2mtrust(&["das", "policy", "add", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("first covering policy") && out.contains("/*"),
        "{out}"
    );
}
