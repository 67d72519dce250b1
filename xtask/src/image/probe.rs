//! Stand-ins for what a pod's network gives the operator, so the image's binary can be seen
//! resolving a name and calling out over HTTP: a DNS server answering one name (like the
//! cluster DNS behind the kubelet's `/etc/resolv.conf`) and an HTTP listener playing the
//! kube-apiserver.

use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Loopback address of the probe DNS server (port 53: `resolv.conf` cannot name another).
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 53, 1);

const TYPE_A: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;

/// A DNS server on [`DNS_ADDR`]:53 answering `name` with 127.0.0.1 and every other name with
/// NXDOMAIN; stopped when dropped.
pub struct DnsServer {
    stop: Arc<AtomicBool>,
    queries: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds the socket (needs root for port 53) and starts answering.
    pub fn start(name: &str) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind((DNS_ADDR, 53)).with_context(|| {
            format!("binding the probe DNS server to {DNS_ADDR}:53 (needs root and a free port)")
        })?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let (thread_stop, thread_queries, name) = (stop.clone(), queries.clone(), name.to_owned());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !thread_stop.load(Ordering::Relaxed) {
                let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Some((qname, reply)) = answer(&buf[..len], &name) else {
                    continue;
                };
                if let Ok(mut q) = thread_queries.lock() {
                    q.push(qname);
                }
                let _ = socket.send_to(&reply, peer);
            }
        });
        Ok(Self {
            stop,
            queries,
            thread: Some(thread),
        })
    }

    /// Every name asked so far, in order.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().map(|q| q.clone()).unwrap_or_default()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The queried name and the reply to one query: an A record 127.0.0.1 for `name`, no record
/// for its other types (AAAA), NXDOMAIN for other names. `None` for what is not a query.
fn answer(query: &[u8], name: &str) -> Option<(String, Vec<u8>)> {
    if query.len() < 12 || query[2] & 0x80 != 0 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    let mut labels = Vec::new();
    let mut pos = 12;
    loop {
        let len = usize::from(*query.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question = query.get(12..pos + 4)?;
    let qname = labels.join(".");
    let known = qname == name.to_lowercase();
    let with_address = known && qtype == TYPE_A;
    let mut reply = Vec::with_capacity(question.len() + 28);
    reply.extend_from_slice(&query[..2]); // id
    reply.push(0x80 | (query[2] & 0x01)); // response, recursion desired as asked
    reply.push(0x80 | if known { 0 } else { RCODE_NXDOMAIN }); // recursion available
    reply.extend_from_slice(&[0, 1, 0, u8::from(with_address), 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if with_address {
        reply.extend_from_slice(&[0xc0, 12]); // the name of the question
        reply.extend_from_slice(&[0, 1, 0, 1]); // A, IN
        reply.extend_from_slice(&5u32.to_be_bytes()); // TTL
        reply.extend_from_slice(&[0, 4, 127, 0, 0, 1]);
    }
    Some((qname, reply))
}

/// A throwaway self-signed CA certificate (PEM), made with `openssl` in `dir`: a kubeconfig
/// names one, as the in-cluster config always does, so kube's TLS setup never falls back to
/// system roots, which an empty image has none of.
pub fn throwaway_ca_pem(dir: &Path) -> anyhow::Result<String> {
    let out = dir.join("probe-ca.crt");
    let output = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-keyout",
            "/dev/null",
            "-subj",
            "/CN=image-check",
            "-days",
            "1",
        ])
        .arg("-out")
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (install the openssl package)")?;
    if !output.status.success() {
        bail!(
            "openssl could not make the probe CA: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))
}

/// A TCP listener on 127.0.0.1 that answers the first HTTP request with 503.
pub struct FakeApiserver {
    listener: TcpListener,
}

impl FakeApiserver {
    /// Listens on a free loopback port.
    pub fn start() -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("binding the fake kube-apiserver")?;
        listener.set_nonblocking(true)?;
        Ok(Self { listener })
    }

    /// Its address.
    pub fn addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Waits for the first request until `deadline`, polling `gave_up` (the client exited)
    /// meanwhile; returns its request line and `Host` header.
    pub fn first_request(
        &self,
        deadline: Instant,
        mut gave_up: impl FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<(String, String)> {
        let mut stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    gave_up()?;
                    if Instant::now() > deadline {
                        bail!("no HTTP request reached the fake kube-apiserver in time");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e).context("accepting on the fake kube-apiserver"),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let mut host = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((key, value)) = line.split_once(':')
                && key.eq_ignore_ascii_case("host")
            {
                host = value.trim().to_owned();
            }
        }
        let _ = stream.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        Ok((request_line.trim().to_owned(), host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recursive query for `name` of type `qtype`, id 0x1234.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn the_probe_name_resolves_to_loopback() {
        let (name, reply) = answer(
            &query("api.image-check.test", TYPE_A),
            "api.image-check.test",
        )
        .unwrap();
        assert_eq!(name, "api.image-check.test");
        assert_eq!(&reply[..4], &[0x12, 0x34, 0x81, 0x80]);
        assert_eq!(&reply[6..8], &[0, 1], "one answer");
        assert_eq!(&reply[reply.len() - 4..], &[127, 0, 0, 1]);
    }

    #[test]
    fn other_types_of_the_probe_name_have_no_record() {
        let (_, reply) =
            answer(&query("api.image-check.test", 28), "api.image-check.test").unwrap();
        assert_eq!(reply[3] & 0x0f, 0, "NOERROR");
        assert_eq!(&reply[6..8], &[0, 0], "no answer");
    }

    #[test]
    fn search_domain_candidates_do_not_exist() {
        let q = query("api.image-check.test.svc.cluster.local", TYPE_A);
        let (_, reply) = answer(&q, "api.image-check.test").unwrap();
        assert_eq!(reply[3] & 0x0f, RCODE_NXDOMAIN);
    }

    #[test]
    fn replies_are_not_answered() {
        let mut q = query("api.image-check.test", TYPE_A);
        q[2] |= 0x80;
        assert!(answer(&q, "api.image-check.test").is_none());
    }
}
