//! Checks of the built image from the outside in: its config as a registry serves it, its
//! filesystem as `crane export` flattens it, and its binaries running from that filesystem as
//! the image's user (`chroot --userspec`), with nothing else in it.

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use super::probe::{self, DnsServer, FakeApiserver};
use super::{BIN_DIR, CMD, EMULATOR, OPERATOR, USER};

/// Host name the operator is pointed at to prove it resolves names through DNS.
const PROBE_HOST: &str = "kube-apiserver.image-check.test";

/// The image config (`crane config`) has the entrypoint, cmd, user, platform and labels.
pub fn config(config_json: &str, labels: &[(&str, String)]) -> anyhow::Result<()> {
    let mut expected = vec![
        r#""architecture":"amd64""#.to_owned(),
        r#""os":"linux""#.to_owned(),
        format!(r#""Entrypoint":[{}]"#, json_string(&entrypoint())),
        format!(r#""Cmd":[{}]"#, json_string(CMD)),
        format!(r#""User":{}"#, json_string(USER)),
    ];
    expected.extend(
        labels
            .iter()
            .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v))),
    );
    let missing: Vec<_> = expected
        .iter()
        .filter(|e| !config_json.contains(e.as_str()))
        .collect();
    ensure!(
        missing.is_empty(),
        "the image config lacks {missing:?}; it is:\n{config_json}"
    );
    Ok(())
}

/// The exported filesystem holds exactly the two binaries in /usr/local/bin (and its parent
/// folders), owned by 0:0 with mode 0755, both statically linked.
pub fn filesystem(rootfs: &Path) -> anyhow::Result<()> {
    let mut found = Vec::new();
    walk(rootfs, rootfs, &mut found)?;
    found.sort();
    let mut expected: Vec<String> = ["usr/", "usr/local/", "usr/local/bin/"]
        .iter()
        .map(|d| format!("{d} 0:0 755"))
        .collect();
    expected.extend([OPERATOR, EMULATOR].map(|b| format!("{BIN_DIR}/{b} 0:0 755")));
    expected.sort();
    ensure!(
        found == expected,
        "the image filesystem differs from what was expected\n  found:    {found:?}\n  expected: {expected:?}"
    );
    for binary in [OPERATOR, EMULATOR] {
        assert_static(&rootfs.join(BIN_DIR).join(binary))?;
    }
    Ok(())
}

/// `path relative to root[/ for folders] uid:gid mode` of every entry under `dir`.
fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = fs::symlink_metadata(entry.path())?;
        let rel = entry.path().strip_prefix(root)?.display().to_string();
        let slash = if meta.is_dir() { "/" } else { "" };
        let kind_ok = meta.is_dir() || meta.is_file();
        found.push(format!(
            "{rel}{slash}{} {}:{} {:o}",
            if kind_ok { "" } else { " (not a file)" },
            meta.uid(),
            meta.gid(),
            meta.mode() & 0o7777
        ));
        if meta.is_dir() {
            walk(root, &entry.path(), found)?;
        }
    }
    Ok(())
}

/// Fails unless `path` is a 64-bit x86-64 ELF executable without a program interpreter
/// (`PT_INTERP`): the kernel runs it with no dynamic loader and no shared libraries.
pub fn assert_static(path: &Path) -> anyhow::Result<()> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    match elf_interpreter(&bytes) {
        Ok(None) => Ok(()),
        Ok(Some(interp)) => bail!(
            "{} is dynamically linked (interpreter {interp}); build it with -C target-feature=+crt-static",
            path.display()
        ),
        Err(why) => bail!("{} is not an x86-64 ELF executable: {why}", path.display()),
    }
}

/// The `PT_INTERP` path of an ELF64 little-endian x86-64 file, if it has one.
fn elf_interpreter(elf: &[u8]) -> Result<Option<String>, &'static str> {
    const PT_INTERP: u32 = 3;
    const EM_X86_64: u16 = 62;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err("no ELF64 little-endian header");
    }
    if u16_at(18) != Some(EM_X86_64) {
        return Err("not built for x86-64");
    }
    let phoff = u64_at(32).ok_or("truncated header")? as usize;
    let phentsize = usize::from(u16_at(54).ok_or("truncated header")?);
    let phnum = usize::from(u16_at(56).ok_or("truncated header")?);
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph).ok_or("truncated program headers")? == PT_INTERP {
            let offset = u64_at(ph + 8).ok_or("truncated program headers")? as usize;
            let size = u64_at(ph + 32).ok_or("truncated program headers")? as usize;
            let path = elf
                .get(offset..offset + size)
                .ok_or("truncated interpreter")?;
            return Ok(Some(
                String::from_utf8_lossy(path)
                    .trim_end_matches('\0')
                    .to_owned(),
            ));
        }
    }
    Ok(None)
}

/// The exported filesystem plus the /dev a container runtime adds, entered with
/// `chroot --userspec=65532:65532` and an empty environment: a container minus the namespaces.
pub struct Jail {
    chroot: PathBuf,
    rootfs: PathBuf,
}

impl Jail {
    /// A jail on `rootfs`; needs root and GNU `chroot`.
    pub fn new(rootfs: &Path) -> anyhow::Result<Self> {
        let chroot = super::find_program("chroot")?;
        // Only the process inside runs as 65532; it must be able to enter its own root.
        fs::set_permissions(rootfs, fs::Permissions::from_mode(0o755))?;
        let dev = rootfs.join("dev");
        fs::create_dir_all(&dev)?;
        fs::set_permissions(&dev, fs::Permissions::from_mode(0o755))?;
        // The character devices every OCI runtime creates. They matter: statically linked,
        // the getrandom crate cannot find glibc's getrandom() and reads /dev/urandom instead.
        for (name, minor) in [
            ("null", "3"),
            ("zero", "5"),
            ("full", "7"),
            ("random", "8"),
            ("urandom", "9"),
        ] {
            let output = Command::new("mknod")
                .args(["-m", "666"])
                .arg(dev.join(name))
                .args(["c", "1", minor])
                .output()
                .context("running mknod")?;
            ensure!(
                output.status.success(),
                "creating /dev/{name} in the image's filesystem failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(Self {
            chroot,
            rootfs: rootfs.to_owned(),
        })
    }

    /// `/usr/local/bin/<binary>` run as the image's user inside the jail.
    fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(&self.chroot);
        command
            .env_clear()
            .arg(format!("--userspec={USER}"))
            .arg(&self.rootfs)
            .arg(format!("/{BIN_DIR}/{binary}"))
            .stdin(Stdio::null());
        command
    }

    /// Stdout of `binary ARGS`; fails with its stderr unless it exits 0.
    fn output(&self, binary: &str, args: &[&str]) -> anyhow::Result<String> {
        let output = self
            .command(binary)
            .args(args)
            .output()
            .with_context(|| format!("running {} in {}", binary, self.rootfs.display()))?;
        ensure!(
            output.status.success(),
            "`{binary} {}` from the image, as {USER}, failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A file the container runtime would mount (resolv.conf, a kubeconfig), readable by all.
    fn mount_file(&self, path: &str, content: &str) -> anyhow::Result<()> {
        let path = self.rootfs.join(path);
        let dir = path.parent().context("file without a folder")?;
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        Ok(())
    }
}

/// Both binaries print the crate version, and the operator's `run --help` parses.
pub fn binaries_run(jail: &Jail, version: &str) -> anyhow::Result<()> {
    for binary in [OPERATOR, EMULATOR] {
        let printed = jail.output(binary, &["--version"])?;
        let expected = format!("{binary} {version}");
        ensure!(
            printed.trim() == expected,
            "`{binary} --version` from the image printed {printed:?}, expected {expected:?}"
        );
    }
    let help = jail.output(OPERATOR, &["run", "--help"])?;
    ensure!(
        help.contains("--dbs-endpoint"),
        "`{OPERATOR} run --help` from the image does not list --dbs-endpoint:\n{help}"
    );
    Ok(())
}

/// A child process killed when dropped, so no check leaves a binary running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The emulator from the image listens on a loopback port and serves its admin API.
pub fn emulator_serves(jail: &Jail) -> anyhow::Result<()> {
    let mut child = Running(
        jail.command(EMULATOR)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the emulator from the image")?,
    );
    let stdout = child.0.stdout.take().context("emulator stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .context("the emulator from the image did not print `listening on http://ADDR` in 20 s")?;
    let addr = line
        .strip_prefix("listening on http://")
        .with_context(|| format!("unexpected first line from the emulator: {line:?}"))?
        .trim_end_matches('/');
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /_emulator/state HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    ensure!(
        response.starts_with("HTTP/1.1 200") && response.contains('{'),
        "GET /_emulator/state on the emulator from the image answered:\n{response}"
    );
    drop(child);
    Ok(())
}

/// The operator from the image, given a kubeconfig naming the kube-apiserver by host name,
/// resolves that name through the DNS server of its `/etc/resolv.conf` (the kubelet's
/// cluster-DNS layout: search domains, `ndots:5`) and sends it an HTTP request. Cloud endpoints
/// (`*.aliyuncs.com`) are resolved the same way, by glibc's built-in DNS client.
pub fn operator_calls_out_by_name(jail: &Jail, log: &Path) -> anyhow::Result<()> {
    let dns = DnsServer::start(PROBE_HOST)?;
    let apiserver = FakeApiserver::start()?;
    let port = apiserver.addr()?.port();
    jail.mount_file(
        "etc/resolv.conf",
        &format!(
            "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver {}\noptions ndots:5\n",
            probe::DNS_ADDR
        ),
    )?;
    let ca = probe::throwaway_ca_pem(log.parent().context("log without a folder")?)?;
    jail.mount_file("probe/ca.crt", &ca)?;
    jail.mount_file(
        "probe/kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: probe\n  cluster:\n    server: http://{PROBE_HOST}:{port}\n    certificate-authority: /probe/ca.crt\nusers:\n- name: probe\n  user: {{}}\ncontexts:\n- name: probe\n  context:\n    cluster: probe\n    user: probe\ncurrent-context: probe\n"
        ),
    )?;
    let log_file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = Running(
        jail.command(OPERATOR)
            .arg(CMD)
            .env("KUBECONFIG", "/probe/kubeconfig")
            .env("ALICLOUD_DB_OPERATOR_METRICS_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("starting the operator from the image")?,
    );
    let operator_log = || fs::read_to_string(log).unwrap_or_default();
    let (request, host) =
        apiserver.first_request(Instant::now() + Duration::from_secs(30), || {
            match child.0.try_wait()? {
                Some(status) => bail!(
                    "the operator from the image exited ({status}) before calling the kube-apiserver:\n{}",
                    operator_log()
                ),
                None => Ok(()),
            }
        })
        .with_context(|| {
            format!(
                "DNS queries seen: {:?}; operator log:\n{}",
                dns.queries(),
                operator_log()
            )
        })?;
    drop(child);
    let expected_host = format!("{PROBE_HOST}:{port}");
    ensure!(
        host == expected_host && request.starts_with("GET /"),
        "the operator from the image sent {request:?} with host {host:?}, expected a GET to {expected_host}"
    );
    ensure!(
        dns.queries().iter().any(|q| q == PROBE_HOST),
        "the operator reached the kube-apiserver without asking DNS for {PROBE_HOST}: {:?}",
        dns.queries()
    );
    Ok(())
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Absolute path of the operator in the image.
pub fn entrypoint() -> String {
    format!("/{BIN_DIR}/{OPERATOR}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamically_linked_executable_has_an_interpreter() {
        // The test binary itself is linked against the system's libc.
        let me = fs::read(std::env::current_exe().unwrap()).unwrap();
        let interp = elf_interpreter(&me)
            .unwrap()
            .expect("test binary is dynamic");
        assert!(interp.contains("ld-linux"), "{interp}");
    }

    #[test]
    fn non_elf_files_are_refused() {
        assert!(elf_interpreter(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn a_config_without_the_user_is_refused() {
        let config = r#"{"architecture":"amd64","os":"linux","config":{"Cmd":["run"],"Entrypoint":["/usr/local/bin/alicloud-db-operator"]}}"#;
        let err = super::config(config, &[]).unwrap_err().to_string();
        assert!(err.contains("User"), "{err}");
        let with_user = config.replace(r#""Cmd""#, r#""User":"65532:65532","Cmd""#);
        super::config(&with_user, &[]).unwrap();
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string(r#"a "b" \c"#), r#""a \"b\" \\c""#);
    }
}
