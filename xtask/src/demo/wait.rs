//! The demo's waits, each with a deadline and, when it passes, what a user needs to see why:
//! the operator's log and the objects' conditions.

use std::time::{Duration, Instant};

use anyhow::bail;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::Session;
use super::progress::{self, ObjectStatus, ProgressLine};
use super::samples::Samples;

/// Waits until the operator answers `/readyz` with 200, or fails with its log.
pub async fn operator_ready(
    session: &mut Session,
    http: &reqwest::Client,
    addr: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("http://{addr}/readyz");
    loop {
        let operator = session.operator()?;
        if let Some(status) = operator.exited() {
            bail!(
                "the operator exited ({status}) while starting; its log:\n{}",
                operator.log_tail(40)
            );
        }
        let ready = http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the operator did not answer {url} within 60 s; its log:\n{}",
                operator.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Shows progress until every sample object is Ready; on timeout, fails with each object's
/// conditions and the operator's log.
pub async fn all_ready(
    session: &mut Session,
    client: &kube::Client,
    samples: &Samples,
    timeout: Duration,
) -> anyhow::Result<Vec<ObjectStatus>> {
    let expected: Vec<String> = samples.objects.iter().map(|o| o.name.clone()).collect();
    let started = Instant::now();
    let mut line = ProgressLine::new();
    loop {
        let objects = progress::observe(client).await?;
        line.show(
            started.elapsed(),
            &progress::ready_summary(&objects, &expected),
        );
        let all_there = expected
            .iter()
            .all(|name| objects.iter().any(|o| &o.name == name));
        if all_there && objects.iter().all(|o| o.ready) {
            line.finish();
            return Ok(objects);
        }
        give_up_if_stuck(
            session,
            &mut line,
            started,
            timeout,
            &objects,
            &format!("Not every object is Ready after {timeout:?}. Their conditions:"),
            "Ready",
        )?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Shows progress until the sample objects and Secrets are gone: the custom resources once the
/// operator released their cloud resources, then the credentials Secret once nothing uses it.
pub async fn all_deleted(
    session: &mut Session,
    client: &kube::Client,
    samples: &Samples,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut line = ProgressLine::new();
    loop {
        let objects = progress::observe(client).await?;
        let mut remaining = progress::deletion_summary(&objects);
        let mut secrets_left = 0;
        for s in &samples.secrets {
            let api: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
            if let Some(secret) = api.get_opt(&s.name).await? {
                secrets_left += 1;
                let finalizers = secret.metadata.finalizers.unwrap_or_default();
                if !finalizers.is_empty() {
                    remaining.push_str(&format!(
                        " · secret/{}: held by {}",
                        s.name,
                        finalizers.join(",")
                    ));
                }
            }
        }
        line.show(started.elapsed(), &remaining);
        if objects.is_empty() && secrets_left == 0 {
            line.finish();
            println!(
                "    all gone after {}s (the credentials Secret last: the operator holds it \
                 until no object uses it)",
                started.elapsed().as_secs()
            );
            return Ok(());
        }
        give_up_if_stuck(
            session,
            &mut line,
            started,
            timeout,
            &objects,
            &format!("Still there after {timeout:?}:"),
            "the deletion",
        )?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Fails when the operator has exited, or when `timeout` has passed since `started`: then it
/// prints `heading`, every object's phase and conditions, and the operator's log first.
fn give_up_if_stuck(
    session: &mut Session,
    line: &mut ProgressLine,
    started: Instant,
    timeout: Duration,
    objects: &[ObjectStatus],
    heading: &str,
    waiting_for: &str,
) -> anyhow::Result<()> {
    let operator = session.operator()?;
    if let Some(status) = operator.exited() {
        line.finish();
        bail!(
            "the operator exited ({status}); its log:\n{}",
            operator.log_tail(40)
        );
    }
    if started.elapsed() > timeout {
        line.finish();
        eprintln!("{heading}");
        for o in objects {
            eprintln!("  {} {}/{}: {}", o.kind, o.namespace, o.name, o.phase);
            for c in &o.conditions {
                eprintln!("    {c}");
            }
        }
        eprintln!("The operator's log (last 40 lines):");
        eprintln!("{}", operator.log_tail(40));
        bail!("timed out after {timeout:?} waiting for {waiting_for}");
    }
    Ok(())
}
