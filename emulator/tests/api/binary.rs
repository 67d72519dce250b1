//! The `alicloud-emulator` binary: listening line, flags/env, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn binary_prints_listening_line_serves_and_exits_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alicloud-emulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--rds-instance",
            "cn-hangzhou/rm-bin",
            "--quota",
            "*=50",
        ])
        .env("ALICLOUD_EMULATOR_ACCOUNT", "a:b,c:d")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read line");
        line
    })
    .await
    .expect("reader");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    let state: serde_json::Value = reqwest::get(format!("{url}/_emulator/state"))
        .await
        .expect("state")
        .json()
        .await
        .expect("json");
    assert_eq!(state["instances"][0]["dbInstanceId"], "rm-bin");
    assert_eq!(
        state["instances"][0]["connections"][0]["connectionString"],
        "rm-bin-internal.mysql.rds.aliyuncs.com"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut exited = None;
    for _ in 0..50 {
        if let Some(s) = child.try_wait().expect("try_wait") {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if exited.is_none() {
        let _ = child.kill();
    }
    assert!(
        exited.is_some_and(|s| s.success()),
        "exit status {exited:?}"
    );
}
