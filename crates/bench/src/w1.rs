//! Workload W1: AE + container, then N contentInstance creates and N latest retrieves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode, Uri};
use hyper_util::client::legacy::connect::Connect;
use indicatif::ProgressBar;
use serde_json::json;
use tokio::task::JoinSet;

use crate::args::BenchArgs;
use crate::client::{Connections, CseClient, Reply, RequestIds, Target};
use crate::error::BenchError;
use crate::progress;
use crate::report::{Cleanup, Phase, PhaseReport, RunReport};
use crate::stats::Tally;

const STEP_AE: &str = "registering the AE";
const STEP_CNT: &str = "creating the container";
const RSC_OK: u16 = 2000;
const RSC_CREATED: u16 = 2001;
const RSC_DELETED: u16 = 2002;

/// Arguments checked once for all runs of an invocation.
pub(crate) struct Settings {
    target: Target,
    count: u64,
    origin: Option<String>,
    admin: String,
    admin_header: HeaderValue,
    rvi: String,
    rvi_header: HeaderValue,
    keep: bool,
    timeout: Duration,
}

impl Settings {
    pub fn from_args(args: &BenchArgs, target: &Target) -> Result<Self, BenchError> {
        if args.count == 0 {
            return Err(BenchError::InvalidArgument {
                what: "--count",
                reason: "must be at least 1".into(),
            });
        }
        if args.clients.contains(&0) {
            return Err(BenchError::InvalidArgument {
                what: "--clients",
                reason: "every value must be at least 1".into(),
            });
        }
        if let Some(origin) = &args.origin {
            header("--origin", origin)?;
        }
        Ok(Self {
            target: target.clone(),
            count: args.count,
            origin: args.origin.clone(),
            admin: args.admin.clone(),
            admin_header: header("--admin", &args.admin)?,
            rvi: args.rvi.clone(),
            rvi_header: header("--rvi", &args.rvi)?,
            keep: args.keep,
            timeout: args.timeout,
        })
    }
}

fn header(what: &'static str, value: &str) -> Result<HeaderValue, BenchError> {
    HeaderValue::from_str(value).map_err(|_| BenchError::InvalidHeader {
        what,
        value: value.to_owned(),
    })
}

/// One pass of W1 with `clients` concurrent clients.
pub(crate) async fn run<C>(
    settings: &Settings,
    clients: u32,
    connector: C,
    connections: &Connections,
    hide_progress: bool,
) -> Result<RunReport, BenchError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let opened_before = connections.count();
    let run_id = format!("{:08x}", rand::random::<u32>());
    let origin = settings
        .origin
        .clone()
        .unwrap_or_else(|| format!("Cbench-{run_id}"));
    let origin_header = header("--origin", &origin)?;
    let ae_name = format!("bench-{run_id}");
    let ids = Arc::new(RequestIds::new(format!("bench-{run_id}")));
    let pool: Vec<CseClient<C>> = (0..clients.max(1))
        .map(|_| {
            CseClient::new(
                connector.clone(),
                settings.timeout,
                settings.rvi_header.clone(),
                ids.clone(),
            )
        })
        .collect();
    // The first client also does setup and cleanup, so a run opens exactly one connection per client.
    let Some(setup) = pool.first() else {
        return Err(BenchError::InvalidArgument {
            what: "--clients",
            reason: "no client".into(),
        });
    };
    let target = &settings.target;

    let base = target.uri("")?;
    let ae =
        json!({"m2m:ae": {"rn": ae_name, "api": "Nbench", "rr": false, "srv": [settings.rvi]}});
    tracing::debug!(%origin, %ae_name, "registering AE");
    let reply = setup_step(
        setup,
        STEP_AE,
        Method::POST,
        &base,
        &origin_header,
        Some(2),
        &ae,
    )
    .await?;
    if !reply.is(RSC_CREATED, StatusCode::CREATED) {
        return Err(reply.refused(STEP_AE));
    }
    // Later requests must come from the AE-ID the CSE assigned, which may differ from the origin.
    let ae_id = reply
        .json()
        .and_then(|v| v["m2m:ae"]["aei"].as_str().map(str::to_owned))
        .unwrap_or_else(|| origin.clone());
    let ae_header = header("AE-ID", &ae_id)?;
    let ae_uri = target.uri(&ae_name)?;

    let capacity = settings.count.saturating_add(10);
    let cnt =
        json!({"m2m:cnt": {"rn": "cnt", "mni": capacity, "mbs": capacity.saturating_mul(100)}});
    let created = setup_step(
        setup,
        STEP_CNT,
        Method::POST,
        &ae_uri,
        &ae_header,
        Some(3),
        &cnt,
    )
    .await
    .and_then(|reply| {
        if reply.is(RSC_CREATED, StatusCode::CREATED) {
            Ok(())
        } else {
            Err(reply.refused(STEP_CNT))
        }
    });
    if let Err(err) = created {
        let cleanup = cleanup(settings, setup, &ae_uri, &ae_id, &ae_header).await;
        tracing::debug!(?cleanup, "cleanup after failed container creation");
        return Err(err);
    }

    let bar = |phase: Phase| {
        progress::bar(
            settings.count,
            format!("c={clients} {phase}"),
            hide_progress,
        )
    };
    let create = PhaseRequest {
        method: Method::POST,
        uri: target.uri(&format!("{ae_name}/cnt"))?,
        origin: ae_header.clone(),
        ty: Some(4),
        body: cin_body,
        rsc: RSC_CREATED,
        status: StatusCode::CREATED,
    };
    let retrieve = PhaseRequest {
        method: Method::GET,
        uri: target.uri(&format!("{ae_name}/cnt/la"))?,
        origin: ae_header.clone(),
        ty: None,
        body: |_| Bytes::new(),
        rsc: RSC_OK,
        status: StatusCode::OK,
    };
    let measured = async {
        let c = measure(
            Phase::Create,
            &pool,
            settings.count,
            create,
            connections,
            bar(Phase::Create),
        )
        .await?;
        let r = measure(
            Phase::Retrieve,
            &pool,
            settings.count,
            retrieve,
            connections,
            bar(Phase::Retrieve),
        )
        .await?;
        Ok::<_, BenchError>(vec![c, r])
    }
    .await;
    let cleanup = cleanup(settings, setup, &ae_uri, &ae_id, &ae_header).await;
    let phases = measured?;

    if phases.iter().all(|p| p.ok == 0) {
        return Err(BenchError::all_failed(clients, &phases));
    }

    Ok(RunReport {
        clients,
        origin,
        ae_id,
        ae_name,
        phases,
        cleanup,
        connections: connections.count().saturating_sub(opened_before),
    })
}

/// Sends a setup request; a missing response is fatal since nothing can be measured without it.
async fn setup_step<C>(
    client: &CseClient<C>,
    step: &'static str,
    method: Method,
    uri: &Uri,
    origin: &HeaderValue,
    ty: Option<u16>,
    body: &serde_json::Value,
) -> Result<Reply, BenchError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let body = Bytes::from(body.to_string());
    client
        .send(method, uri, origin, ty, body)
        .await
        .map_err(|e| match e.handshake_failure() {
            Some(reason) => BenchError::Handshake {
                step,
                url: uri.to_string(),
                reason,
            },
            None => BenchError::Transport {
                step,
                url: uri.to_string(),
                reason: e.to_string(),
            },
        })
}

/// A 20-50 byte value that differs per request, like a small sensor reading.
fn cin_body(index: u64) -> Bytes {
    let cin = json!({"m2m:cin": {"con": format!("m2mtrust bench value {index:08}"), "cnf": "text/plain:0"}});
    Bytes::from(cin.to_string())
}

/// The request a phase repeats; `body` gets the request index.
struct PhaseRequest {
    method: Method,
    uri: Uri,
    origin: HeaderValue,
    ty: Option<u16>,
    body: fn(u64) -> Bytes,
    rsc: u16,
    status: StatusCode,
}

/// Sends `count` requests spread over all clients, each client sending one at a time.
async fn measure<C>(
    phase: Phase,
    pool: &[CseClient<C>],
    count: u64,
    request: PhaseRequest,
    connections: &Connections,
    bar: ProgressBar,
) -> Result<PhaseReport, BenchError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let opened_before = connections.count();
    let request = Arc::new(request);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    let started = Instant::now();
    for client in pool {
        let (client, request, next, bar) =
            (client.clone(), request.clone(), next.clone(), bar.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    break;
                }
                let body = (request.body)(index);
                let sent = client
                    .send(
                        request.method.clone(),
                        &request.uri,
                        &request.origin,
                        request.ty,
                        body,
                    )
                    .await;
                match sent {
                    Ok(reply) if reply.is(request.rsc, request.status) => tally.ok(reply.latency),
                    Ok(reply) => tally.error(reply.kind(), || reply.dbg()),
                    Err(err) => tally.error(err.to_string(), || None),
                }
                bar.inc(1);
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(joined) = workers.join_next().await {
        total.merge(joined.map_err(|e| BenchError::Worker(e.to_string()))?);
    }
    let elapsed = started.elapsed();
    let opened = connections.count().saturating_sub(opened_before);
    bar.finish_and_clear();
    Ok(total.into_phase(phase, elapsed, opened))
}

/// Deletes the AE (and so everything below it) as itself, falling back to the admin originator.
async fn cleanup<C>(
    settings: &Settings,
    client: &CseClient<C>,
    ae_uri: &Uri,
    ae_id: &str,
    ae_header: &HeaderValue,
) -> Cleanup
where
    C: Connect + Clone + Send + Sync + 'static,
{
    if settings.keep {
        return Cleanup::Kept;
    }
    let attempt = |origin: HeaderValue| async move {
        match client
            .send(Method::DELETE, ae_uri, &origin, None, Bytes::new())
            .await
        {
            Ok(reply) if reply.is(RSC_DELETED, StatusCode::OK) => Ok(()),
            Ok(reply) => Err(match reply.dbg() {
                Some(dbg) => format!("{}: {dbg}", reply.kind()),
                None => reply.kind(),
            }),
            Err(err) => Err(err.to_string()),
        }
    };
    let as_ae = match attempt(ae_header.clone()).await {
        Ok(()) => return Cleanup::Deleted,
        Err(why) => why,
    };
    tracing::debug!(%ae_id, reason = %as_ae, "AE could not delete itself, trying admin");
    match attempt(settings.admin_header.clone()).await {
        Ok(()) => Cleanup::DeletedByAdmin,
        Err(as_admin) => Cleanup::Failed {
            reason: format!("as {ae_id}: {as_ae}; as {}: {as_admin}", settings.admin),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cin_values_are_20_to_50_bytes() {
        for i in [0, 7, 99_999_999, u64::MAX] {
            let body: serde_json::Value = serde_json::from_slice(&cin_body(i)).unwrap();
            let con = body["m2m:cin"]["con"].as_str().unwrap();
            assert!((20..=50).contains(&con.len()), "{con}");
        }
    }
}
