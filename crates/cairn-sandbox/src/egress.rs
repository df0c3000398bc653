//! Network for sandboxes whose policy allows it, without reaching the host.
//!
//! A sandbox never gets a network interface of its own: it keeps its empty
//! network namespace. A policy with network gets this proxy instead: the
//! host listens on a Unix socket, bind-mounted into the sandbox, and the
//! kernel driver relays `127.0.0.1:3128` inside the sandbox to it, with
//! `HTTP_PROXY`/`HTTPS_PROXY` pointing there — which `pip`, `requests`,
//! `urllib` and `curl` all follow. The proxy speaks HTTP `CONNECT` (for
//! HTTPS) and absolute-URI HTTP requests, resolves the name itself and
//! connects only to public addresses on allowed ports (never loopback,
//! private, link-local… see [`cairn_core::net::is_public`]), to the address
//! it vetted, so DNS tricks cannot redirect it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::Semaphore;

/// The socket's name in its folder (mounted at `/run/cairn` in a sandbox).
pub(crate) const SOCKET: &str = "egress.sock";

/// The largest request head the proxy reads.
const MAX_HEAD: usize = 16 * 1024;
/// Connections relayed at once, over all sandboxes.
const MAX_CONNECTIONS: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where egress may go.
#[derive(Debug, Clone)]
pub struct EgressRules {
    /// Ports a sandbox may connect to (default 80 and 443).
    pub ports: Vec<u16>,
    /// Exceptions to "public addresses only": exact address and port pairs
    /// an operator trusts (an internal package mirror, say).
    pub allow: Vec<SocketAddr>,
    /// When not empty, the only host names (as the request names them,
    /// case aside) the proxy connects to: a package index and its file hosts.
    pub hosts: Vec<String>,
}

impl Default for EgressRules {
    fn default() -> Self {
        EgressRules { ports: vec![80, 443], allow: Vec::new(), hosts: Vec::new() }
    }
}

/// The running egress proxy. Cloning shares it; it stops when the runtime
/// stops.
#[derive(Debug, Clone)]
pub struct Egress {
    dir: PathBuf,
}

impl Egress {
    /// Listens on `<dir>/egress.sock` (replacing a stale socket).
    pub fn start(dir: &Path, rules: EgressRules) -> std::io::Result<Egress> {
        std::fs::create_dir_all(dir)?;
        let socket = dir.join(SOCKET);
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)?;
        // Any sandbox user may connect (a container's is not Cairn's own);
        // the proxy reaches only what the rules allow, whoever asks.
        std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        let (rules, permits) = (Arc::new(rules), Arc::new(Semaphore::new(MAX_CONNECTIONS)));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                serve_one(stream, &rules, &permits).await;
            }
        });
        Ok(Egress { dir: dir.to_owned() })
    }

    /// The same proxy on a TCP port of 127.0.0.1, for host programs that
    /// must not reach private addresses either (the tools' browser).
    pub async fn start_tcp(rules: EgressRules) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (rules, permits) = (Arc::new(rules), Arc::new(Semaphore::new(MAX_CONNECTIONS)));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                serve_one(stream, &rules, &permits).await;
            }
        });
        Ok(address)
    }

    /// The folder holding the socket, to mount into a sandbox.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Relays one client connection in a task of its own, within the cap on
/// connections at once.
async fn serve_one<S>(stream: S, rules: &Arc<EgressRules>, permits: &Arc<Semaphore>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(permit) = permits.clone().acquire_owned().await else { return };
    let rules = rules.clone();
    tokio::spawn(async move {
        if let Err(error) = relay(stream, &rules).await {
            tracing::debug!(%error, "egress connection ended");
        }
        drop(permit);
    });
}

async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    status: &str,
    why: &str,
) -> std::io::Result<()> {
    let body = format!("cairn egress: {why}\n");
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.get_mut().write_all(head.as_bytes()).await?;
    stream.get_mut().write_all(body.as_bytes()).await
}

/// Splits `host:port` (`[v6]:port` too); `default_port` when there is none.
fn host_port(authority: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
        _ => (authority, default_port?),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// Resolves and vets a destination: the first address that is public (or
/// explicitly allowed) on an allowed port.
async fn vet(host: &str, port: u16, rules: &EgressRules) -> Result<SocketAddr, String> {
    if !rules.hosts.is_empty() && !rules.hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host)) {
        return Err(format!("{host} is not the package index; only {} may be reached", rules.hosts.join(", ")));
    }
    let addresses: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    if let Some(allowed) = addresses.iter().find(|a| rules.allow.contains(a)) {
        return Ok(*allowed);
    }
    if !rules.ports.contains(&port) {
        return Err(format!("port {port} is not allowed (allowed: {:?})", rules.ports));
    }
    // Any private address among them refuses the whole name: a name that
    // resolves to the host is an attack, not a fallback.
    match addresses.iter().find(|a| !cairn_core::net::is_public(a.ip())) {
        Some(private) => Err(format!("{host} resolves to {}, which is not a public address", private.ip())),
        None => addresses.first().copied().ok_or_else(|| format!("{host} has no address")),
    }
}

async fn relay<S: AsyncRead + AsyncWrite + Unpin>(stream: S, rules: &EgressRules) -> std::io::Result<()> {
    let mut client = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let read = client.read_until(b'\n', &mut head).await?;
        if read == 0 {
            return Ok(());
        }
        if head.len() > MAX_HEAD {
            return refuse(&mut client, "431 Request Header Fields Too Large", "request head too large").await;
        }
        if head[before..] == *b"\r\n" || head[before..] == *b"\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return refuse(&mut client, "400 Bad Request", "malformed request line").await;
    };
    let connect = method.eq_ignore_ascii_case("CONNECT");
    let (authority, path) = if connect {
        (target.to_owned(), String::new())
    } else if let Some(rest) = target.strip_prefix("http://") {
        let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
        (authority.to_owned(), path)
    } else {
        return refuse(&mut client, "400 Bad Request", "only CONNECT and http:// requests are proxied").await;
    };
    let Some((host, port)) = host_port(&authority, (!connect).then_some(80)) else {
        return refuse(&mut client, "400 Bad Request", "no host in the request").await;
    };
    let address = match vet(&host, port, rules).await {
        Ok(address) => address,
        Err(why) => {
            tracing::info!(%host, port, reason = %why, "sandbox egress refused");
            return refuse(&mut client, "403 Forbidden", &why).await;
        }
    };
    let mut upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(error)) => return refuse(&mut client, "502 Bad Gateway", &format!("{host}: {error}")).await,
        Err(_) => return refuse(&mut client, "504 Gateway Timeout", &format!("{host} did not answer")).await,
    };
    tracing::info!(%host, port, %address, "sandbox egress");
    if connect {
        client.get_mut().write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
    } else {
        // One request per connection: the next may be for another host.
        let mut forwarded = format!("{method} {path} {version}\r\n");
        for line in lines.filter(|l| !l.is_empty()) {
            let name = line.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
            if !matches!(name.as_str(), "proxy-connection" | "proxy-authorization" | "connection" | "keep-alive") {
                forwarded.push_str(line);
                forwarded.push_str("\r\n");
            }
        }
        forwarded.push_str("Connection: close\r\n\r\n");
        upstream.write_all(forwarded.as_bytes()).await?;
    }
    // Bytes the client sent after the head (a request body, a TLS hello).
    let early = client.buffer().to_vec();
    upstream.write_all(&early).await?;
    let mut client = client.into_inner();
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn authorities_are_split() {
        assert_eq!(host_port("example.org:443", None), Some(("example.org".into(), 443)));
        assert_eq!(host_port("example.org", Some(80)), Some(("example.org".into(), 80)));
        assert_eq!(host_port("[::1]:8080", None), Some(("::1".into(), 8080)));
        assert_eq!(host_port("example.org", None), None);
        assert_eq!(host_port(":80", None), None);
    }
}
