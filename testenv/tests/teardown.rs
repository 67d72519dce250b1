//! A control plane leaves nothing behind: no process, no folder, also when a test panics.

use std::path::Path;
use std::time::{Duration, Instant};

use alicloud_testenv::{ControlPlane, Options};

fn alive(pid: u32) -> bool {
    // A zombie still answers kill(0); read its state instead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.split_whitespace().nth(2).is_none_or(|state| state != "Z"))
}

fn assert_gone(pids: &[u32], dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "processes {pids:?} still running"
    );
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn panicking_test_still_stops_the_control_plane_and_removes_its_folder() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let plane = rt
            .block_on(ControlPlane::start(Options {
                crds_dir: None,
                ..Default::default()
            }))
            .expect("control plane starts");
        let version = rt
            .block_on(async { plane.client().await.apiserver_version().await })
            .expect("/version");
        tx.send((plane.pids(), plane.dir().to_path_buf(), version.git_version))
            .expect("send");
        panic!("a failing test");
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    let (pids, dir, version) = rx.recv().expect("the plane had started");
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver and kube-controller-manager"
    );
    assert!(version.starts_with("v1."));
    assert_gone(&pids, &dir);
}
