//! Host name resolution without glibc's getaddrinfo (which a static binary cannot use: it would
//! dlopen the NSS modules) and without a resolver library (hickory cost every binary half a
//! megabyte). What the libc resolver does for a server's name: `/etc/hosts` first, then A and AAAA
//! queries over UDP to the nameservers of `/etc/resolv.conf`, with its `search` domains, `ndots`,
//! `timeout` and `attempts`. No resolv.conf means 127.0.0.1, as in libc; never a public resolver.
//!
//! The one resolver of every binary here: kube-kit's API client (hyper-util's connector) and
//! kubeadm_download (reqwest's resolver hook) each wrap [`StubResolver::lookup`] in their HTTP
//! stack's resolver trait. Their connectors parse IP literals themselves: only names reach it.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The error of an async lookup, as hyper-util and reqwest take it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// The resolver. Files are read per lookup (one per client connection), so a changed resolv.conf
/// is seen without restarting anything.
#[derive(Clone, Debug)]
pub struct StubResolver {
    hosts: PathBuf,
    resolv_conf: PathBuf,
}

impl Default for StubResolver {
    fn default() -> Self {
        StubResolver {
            hosts: "/etc/hosts".into(),
            resolv_conf: "/etc/resolv.conf".into(),
        }
    }
}

impl StubResolver {
    /// A resolver reading other files than `/etc/hosts` and `/etc/resolv.conf`.
    pub fn with_files(hosts: impl Into<PathBuf>, resolv_conf: impl Into<PathBuf>) -> Self {
        StubResolver {
            hosts: hosts.into(),
            resolv_conf: resolv_conf.into(),
        }
    }

    /// Every address of `host` (blocking: at most timeout x attempts x servers x names).
    pub fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let host = host.trim_end_matches('.');
        if host.is_empty() {
            return Err("empty host name".into());
        }
        let from_hosts = std::fs::read_to_string(&self.hosts)
            .map(|text| hosts_lookup(&text, host))
            .unwrap_or_default();
        if !from_hosts.is_empty() {
            return Ok(from_hosts);
        }
        let conf = ResolvConf::parse(&std::fs::read_to_string(&self.resolv_conf).unwrap_or_default());
        conf.lookup(host)
    }

    /// [`resolve`](Self::resolve) on tokio's blocking pool, for an HTTP client's connector: the
    /// addresses with port 0 (the connector sets the URL's port). Must be polled within a tokio
    /// runtime (hyper-util's and reqwest's connectors are). The error names the host.
    pub fn lookup(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<Vec<SocketAddr>, BoxError>> + Send + 'static {
        let resolver = self.clone();
        let host = host.to_string();
        async move {
            let found = tokio::task::spawn_blocking(move || {
                resolver
                    .resolve(&host)
                    .map_err(|e| format!("cannot resolve {host}: {e}"))
            })
            .await
            .map_err(|e| -> BoxError { format!("resolver task: {e}").into() })??;
            Ok(found.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect())
        }
    }
}

/// Addresses `/etc/hosts` gives `host` (names compare case-insensitively).
fn hosts_lookup(text: &str, host: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(ip) = fields.next().and_then(|a| a.parse::<IpAddr>().ok()) else {
            continue;
        };
        if fields.any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(host)) && !found.contains(&ip) {
            found.push(ip);
        }
    }
    found
}

#[derive(Debug, Clone, PartialEq)]
struct ResolvConf {
    servers: Vec<SocketAddr>,
    search: Vec<String>,
    ndots: usize,
    timeout: Duration,
    attempts: usize,
}

impl ResolvConf {
    /// resolv.conf(5), as far as a lookup needs it; libc's defaults for what is missing.
    fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf {
            servers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // libc uses the first three; a zone index (fe80::1%eth0) is not supported.
                    if let Some(ip) = words.next().and_then(|a| a.parse::<IpAddr>().ok()) {
                        if conf.servers.len() < 3 {
                            conf.servers.push(SocketAddr::new(ip, 53));
                        }
                    }
                }
                // The last of `search` and `domain` wins.
                Some("search") | Some("domain") => {
                    conf.search = words.map(|d| d.trim_end_matches('.').to_string()).collect();
                }
                Some("options") => {
                    for option in words {
                        let number =
                            |prefix: &str| option.strip_prefix(prefix).and_then(|n| n.parse::<u64>().ok());
                        if let Some(n) = number("ndots:") {
                            conf.ndots = n.min(15) as usize;
                        } else if let Some(n) = number("timeout:") {
                            conf.timeout = Duration::from_secs(n.clamp(1, 30));
                        } else if let Some(n) = number("attempts:") {
                            conf.attempts = n.clamp(1, 5) as usize;
                        }
                    }
                }
                _ => {}
            }
        }
        if conf.servers.is_empty() {
            conf.servers
                .push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
        }
        conf
    }

    /// The names to try, in libc's order: as given first when it has at least `ndots` dots,
    /// else the search domains first.
    fn candidates(&self, host: &str) -> Vec<String> {
        let searched = self.search.iter().map(|d| format!("{host}.{d}"));
        if host.matches('.').count() >= self.ndots {
            std::iter::once(host.to_string()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(host.to_string())).collect()
        }
    }

    fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let mut last_error = String::from("no answer");
        for name in self.candidates(host) {
            match self.query(&name) {
                Ok(Answer::Addresses(found)) => return Ok(found),
                Ok(Answer::NoSuchName) => last_error = format!("{name}: no such name"),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// A and AAAA for `name`, each server in turn, `attempts` rounds.
    fn query(&self, name: &str) -> Result<Answer, String> {
        let mut last_error = String::new();
        for _ in 0..self.attempts {
            for server in &self.servers {
                match ask(*server, name, self.timeout) {
                    Ok(answer) => return Ok(answer),
                    Err(e) => last_error = format!("nameserver {}: {e}", server.ip()),
                }
            }
        }
        Err(last_error)
    }
}

#[derive(Debug, PartialEq)]
enum Answer {
    Addresses(Vec<IpAddr>),
    /// NXDOMAIN, or the name exists with neither A nor AAAA records: try the next candidate.
    NoSuchName,
}

/// Both queries go out at once on one socket; the answer is complete when both replies are in.
fn ask(server: SocketAddr, name: &str, timeout: Duration) -> Result<Answer, String> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    socket.connect(server).map_err(|e| e.to_string())?;
    let id = (RandomState::new().hash_one(name) & 0xfffe) as u16;
    for (offset, qtype) in [(0, TYPE_A), (1, TYPE_AAAA)] {
        socket
            .send(&encode_query(id + offset, name, qtype)?)
            .map_err(|e| e.to_string())?;
    }
    let deadline = Instant::now() + timeout;
    let mut replies: [Option<Reply>; 2] = [None, None];
    let mut buf = [0u8; 1500];
    while replies.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out".into());
        }
        socket.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("timed out".into())
            }
            Err(e) => return Err(e.to_string()),
        };
        // Replies to other ids (a late answer to an earlier try) are ignored.
        if let Ok(reply) = decode_reply(&buf[..n]) {
            if reply.id == id || reply.id == id + 1 {
                let slot = usize::from(reply.id - id);
                replies[slot] = Some(reply);
            }
        }
    }
    let mut addresses = Vec::new();
    for reply in replies.into_iter().flatten() {
        match reply.rcode {
            0 | 3 => addresses.extend(reply.addresses),
            2 => return Err("server failure".into()),
            5 => return Err("query refused".into()),
            other => return Err(format!("response code {other}")),
        }
    }
    Ok(if addresses.is_empty() {
        Answer::NoSuchName
    } else {
        Answer::Addresses(addresses)
    })
}

fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut msg = Vec::with_capacity(32 + name.len());
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&0x0100u16.to_be_bytes()); // a standard query, recursion desired
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a valid host name"));
        }
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    if msg.len() > 12 + 255 {
        return Err(format!("{name:?} is too long for DNS"));
    }
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&1u16.to_be_bytes()); // class IN
    Ok(msg)
}

#[derive(Debug)]
struct Reply {
    id: u16,
    rcode: u8,
    addresses: Vec<IpAddr>,
}

/// The addresses among a reply's answers (a CNAME chain's A/AAAA records included, whatever
/// owner name they carry: the server answered the question we asked).
fn decode_reply(msg: &[u8]) -> Result<Reply, String> {
    let u16_at = |at: usize| -> Result<u16, String> {
        msg.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated reply".to_string())
    };
    let id = u16_at(0)?;
    let flags = u16_at(2)?;
    if flags & 0x8000 == 0 {
        return Err("not a reply".into());
    }
    let (questions, answers) = (u16_at(4)?, u16_at(6)?);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(msg, at)? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        at = skip_name(msg, at)?;
        let (rtype, class, len) = (u16_at(at)?, u16_at(at + 2)?, usize::from(u16_at(at + 8)?));
        let data = msg.get(at + 10..at + 10 + len).ok_or("truncated answer")?;
        match (rtype, class, data.len()) {
            (TYPE_A, 1, 4) => addresses.push(IpAddr::from([data[0], data[1], data[2], data[3]])),
            (TYPE_AAAA, 1, 16) => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(data);
                addresses.push(IpAddr::from(octets));
            }
            _ => {}
        }
        at += 10 + len;
    }
    Ok(Reply {
        id,
        rcode: (flags & 0x000f) as u8,
        addresses,
    })
}

/// The offset after a (possibly compressed) name.
fn skip_name(msg: &[u8], mut at: usize) -> Result<usize, String> {
    loop {
        let len = *msg.get(at).ok_or("truncated name")?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => return Ok(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::thread;

    #[test]
    fn hosts_file_names_match_case_insensitively_and_skip_comments() {
        let text = "127.0.0.1 localhost\n# 10.0.0.9 api.example\n10.0.0.1 API.example api # the VIP\n\
                    fd00::1 api.example.\nnot-an-ip api.example\n";
        assert_eq!(
            hosts_lookup(text, "api.example"),
            vec!["10.0.0.1".parse::<IpAddr>().unwrap(), "fd00::1".parse().unwrap()]
        );
        assert_eq!(
            hosts_lookup(text, "api"),
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert!(hosts_lookup(text, "nope").is_empty());
    }

    #[test]
    fn resolv_conf_as_libc_reads_it() {
        let conf = ResolvConf::parse(
            "domain old.example\nsearch corp.example lab.example.\nnameserver 10.0.0.2\nnameserver fd00::53\n\
             nameserver 10.0.0.3\nnameserver 10.0.0.4\noptions ndots:2 timeout:1 attempts:3 rotate\n",
        );
        assert_eq!(conf.search, ["corp.example", "lab.example"]);
        assert_eq!(conf.servers.len(), 3, "libc uses three");
        assert_eq!(conf.servers[1], "[fd00::53]:53".parse().unwrap());
        assert_eq!(
            (conf.ndots, conf.timeout, conf.attempts),
            (2, Duration::from_secs(1), 3)
        );
        // Fewer dots than ndots: the search list first.
        assert_eq!(
            conf.candidates("api"),
            ["api.corp.example", "api.lab.example", "api"]
        );
        assert_eq!(conf.candidates("k8s.api.example")[0], "k8s.api.example");
        // Nothing configured: the local resolver, never a public one.
        let empty = ResolvConf::parse("");
        assert_eq!(empty.servers, ["127.0.0.1:53".parse().unwrap()]);
        assert_eq!(empty.candidates("api"), ["api"]);
    }

    /// One name a test nameserver knows: (name, rcode, A records, AAAA records).
    type Zone = (&'static str, u8, Vec<[u8; 4]>, Vec<[u8; 16]>);

    /// A nameserver on loopback answering from a table, with the A answer behind a CNAME and
    /// compressed names, as real servers send them.
    fn nameserver(table: Vec<Zone>) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                let query = &buf[..n];
                let end = skip_name(query, 12).unwrap();
                let qtype = u16::from_be_bytes([query[end], query[end + 1]]);
                let mut labels = Vec::new();
                let mut at = 12;
                while query[at] != 0 {
                    let l = usize::from(query[at]);
                    labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + l]).to_string());
                    at += 1 + l;
                }
                let name = labels.join(".");
                let entry = table.iter().find(|(n, ..)| *n == name);
                let rcode = entry.map_or(3, |e| e.1);
                let mut reply = query[..end + 4].to_vec();
                reply[2] = 0x81;
                reply[3] = 0x80 | rcode;
                let mut answers = 0u16;
                if let Some((_, _, a, aaaa)) = entry {
                    if qtype == TYPE_A && !a.is_empty() {
                        // name CNAME real.<name>: pointer to the question's name at offset 12.
                        reply.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 7, 4]);
                        reply.extend_from_slice(b"real");
                        reply.extend_from_slice(&[0xc0, 12]);
                        answers += 1;
                        for ip in a {
                            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                            reply.extend_from_slice(ip);
                            answers += 1;
                        }
                    }
                    if qtype == TYPE_AAAA {
                        for ip in aaaa {
                            reply.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
                            reply.extend_from_slice(ip);
                            answers += 1;
                        }
                    }
                }
                reply[6..8].copy_from_slice(&answers.to_be_bytes());
                socket.send_to(&reply, peer).unwrap();
            }
        });
        addr
    }

    fn conf(servers: Vec<SocketAddr>, search: &[&str]) -> ResolvConf {
        ResolvConf {
            servers,
            search: search.iter().map(|s| s.to_string()).collect(),
            ndots: 1,
            timeout: Duration::from_millis(300),
            attempts: 1,
        }
    }

    #[test]
    fn queries_a_and_aaaa_and_walks_the_search_list() {
        let server = nameserver(vec![
            (
                "api.lab.test",
                0,
                vec![[10, 213, 0, 1], [10, 213, 0, 2]],
                vec![[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
            ),
            ("v6only.lab.test", 0, vec![], vec![[0xfd; 16]]),
            ("empty.lab.test", 0, vec![], vec![]),
        ]);
        let c = conf(vec![server], &["lab.test"]);
        let found = c.lookup("api").unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.contains(&"10.213.0.2".parse().unwrap()));
        assert!(found.contains(&"fd00::1".parse().unwrap()));
        assert_eq!(c.lookup("v6only").unwrap(), vec![IpAddr::from([0xfd; 16])]);
        let missing = c.lookup("nope").unwrap_err();
        assert!(missing.contains("no such name"), "{missing}");
        assert!(c.lookup("empty").unwrap_err().contains("no such name"));
    }

    #[test]
    fn a_dead_server_is_skipped_and_a_refusing_one_reported() {
        // Nothing listens on the first: its query times out, the second answers.
        let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = nameserver(vec![("api.lab.test", 0, vec![[10, 0, 0, 1]], vec![])]);
        let c = conf(vec![dead.local_addr().unwrap(), server], &[]);
        assert_eq!(
            c.lookup("api.lab.test").unwrap(),
            vec![IpAddr::from([10, 0, 0, 1])]
        );
        let refusing = nameserver(vec![("api.lab.test", 5, vec![], vec![])]);
        let err = conf(vec![refusing], &[]).lookup("api.lab.test").unwrap_err();
        assert!(err.contains("refused"), "{err}");
        let err = conf(vec![dead.local_addr().unwrap()], &[])
            .lookup("api.lab.test")
            .unwrap_err();
        assert!(err.contains("timed out"), "{err}");
    }

    #[test]
    fn hosts_file_answers_before_any_query_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), "10.9.9.9 api.lab.test\n").unwrap();
        // resolv.conf points at a port nothing answers on: a query would fail.
        std::fs::write(
            dir.path().join("resolv.conf"),
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .unwrap();
        let r = StubResolver::with_files(dir.path().join("hosts"), dir.path().join("resolv.conf"));
        assert_eq!(
            r.resolve("api.lab.test.").unwrap(),
            vec![IpAddr::from([10, 9, 9, 9])]
        );
        assert!(encode_query(1, "a..b", TYPE_A).is_err());
        assert!(encode_query(1, &"x".repeat(64), TYPE_A).is_err());
        assert!(r.resolve("").is_err());
    }

    #[test]
    fn lookup_runs_on_the_blocking_pool_and_names_the_host_it_could_not_resolve() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("hosts"),
            "10.9.9.9 api.lab.test\nfd00::9 api.lab.test\n",
        )
        .unwrap();
        let r = StubResolver::with_files(dir.path().join("hosts"), dir.path().join("resolv.conf"));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(
            rt.block_on(r.lookup("api.lab.test")).unwrap(),
            [
                "10.9.9.9:0".parse::<SocketAddr>().unwrap(),
                "[fd00::9]:0".parse().unwrap()
            ]
        );
        // Refused before any query: no nameserver is asked.
        let err = rt.block_on(r.lookup("a..b")).unwrap_err().to_string();
        assert!(err.starts_with("cannot resolve a..b: "), "{err}");
    }
}
