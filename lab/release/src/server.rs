//! Serving a release tree over HTTP, with faults chosen by URL prefix so that a client only needs a
//! different `base_url` to meet them:
//!
//! - `/_redirect/<path>`: 302 to `/<path>` (every file);
//! - `/_fault/<kind>/<path>`: the fault applies to binaries only; channel and checksum files are
//!   served normally, so a client gets as far as the download before it meets the fault. Kinds are
//!   listed in [`FAULTS`].
//!
//! `/_stats` returns `{"requests": N}`: how many requests were served, so tests can prove that an
//! idempotent run made none.

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The faults `/_fault/<kind>/` can inject into binary downloads.
pub const FAULTS: &[(&str, &str)] = &[
    ("404", "the binary is missing"),
    ("500", "every binary request fails with 500"),
    (
        "500once",
        "the first binary request fails with 500, later ones succeed",
    ),
    (
        "truncate",
        "half the body is sent, then the connection is cut (Content-Length promises all)",
    ),
    ("corrupt", "one byte of the body is flipped"),
    ("slow", "the body trickles out over about 5 seconds"),
];

struct Shared {
    root: PathBuf,
    requests: AtomicU64,
    failed_once: AtomicU64,
    /// A limited link (bytes per second) shared by every download, or None.
    link: Option<Link>,
}

/// One link that every response's body goes through: each piece takes the next free slot of
/// `len / bandwidth` seconds, so concurrent downloads share the bandwidth as they would a real link.
struct Link {
    bandwidth: u64,
    free_at: tokio::sync::Mutex<tokio::time::Instant>,
}

/// Pieces a limited body is sent in.
const PIECE: usize = 64 * 1024;

impl Link {
    /// When a piece of `len` bytes has gone through the link (reserving its slot now).
    async fn reserve(&self, len: usize) -> tokio::time::Instant {
        let mut free_at = self.free_at.lock().await;
        let start = (*free_at).max(tokio::time::Instant::now());
        let done = start + Duration::from_secs_f64(len as f64 / self.bandwidth as f64);
        *free_at = done;
        done
    }
}

type AppState = Arc<Shared>;

fn router(state: AppState) -> Router {
    Router::new()
        .route("/_stats", get(stats))
        .route("/_redirect/{*path}", get(redirect))
        .route("/_fault/{kind}/{*path}", get(faulty))
        .route("/{*path}", get(plain))
        .with_state(state)
}

/// Serves `root` on `listener` until the future is dropped.
pub async fn serve(root: PathBuf, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_limited(root, listener, None).await
}

/// [`serve`] through a link of `bandwidth` bytes per second shared by all downloads (None: unlimited).
pub async fn serve_limited(
    root: PathBuf,
    listener: tokio::net::TcpListener,
    bandwidth: Option<u64>,
) -> std::io::Result<()> {
    let state = Arc::new(Shared {
        root,
        requests: AtomicU64::new(0),
        failed_once: AtomicU64::new(0),
        link: bandwidth.filter(|b| *b > 0).map(|bandwidth| Link {
            bandwidth,
            free_at: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }),
    });
    axum::serve(listener, router(state)).await
}

/// A release server on a loopback port, running on its own thread until dropped.
pub struct ReleaseServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReleaseServer {
    /// Starts serving `root` on `127.0.0.1` at a free port.
    pub fn start(root: &Path) -> std::io::Result<Self> {
        Self::start_on(root, "127.0.0.1:0".parse().map_err(std::io::Error::other)?)
    }

    pub fn start_on(root: &Path, addr: SocketAddr) -> std::io::Result<Self> {
        Self::start_limited(root, addr, None)
    }

    /// [`ReleaseServer::start_on`] with every body sent through a link of `bandwidth` bytes per
    /// second, shared by concurrent downloads (None: unlimited).
    pub fn start_limited(root: &Path, addr: SocketAddr, bandwidth: Option<u64>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let root = root.to_path_buf();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    _ = serve_limited(root, listener, bandwidth) => {}
                    _ = stopped => {}
                }
            });
        });
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the equivalent of `https://dl.k8s.io/release`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ReleaseServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn stats(State(state): State<AppState>) -> Response<Body> {
    // Asking for the count is not itself counted.
    let body = serde_json::json!({ "requests": state.requests.load(Ordering::SeqCst) }).to_string();
    with_type(Response::new(Body::from(body)), "application/json")
}

async fn redirect(State(state): State<AppState>, UrlPath(path): UrlPath<String>) -> Response<Body> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let mut response = status(StatusCode::FOUND, "moved");
    if let Ok(location) = HeaderValue::from_str(&format!("/{path}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn plain(State(state): State<AppState>, UrlPath(path): UrlPath<String>) -> Response<Body> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    match read(&state.root, &path).await {
        Some(data) if state.link.is_some() => limited(state, data),
        Some(data) => file_response(data),
        None => status(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

/// The body in pieces, each sent when the shared link has carried it.
fn limited(state: AppState, data: Vec<u8>) -> Response<Body> {
    let promised = data.len();
    let data = Bytes::from(data);
    let stream = futures_util::stream::unfold(0usize, move |offset| {
        let (data, state) = (data.clone(), state.clone());
        async move {
            if offset >= data.len() {
                return None;
            }
            let end = (offset + PIECE).min(data.len());
            if let Some(link) = &state.link {
                tokio::time::sleep_until(link.reserve(end - offset).await).await;
            }
            Some((Ok::<Bytes, std::io::Error>(data.slice(offset..end)), end))
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(promised));
    with_type(response, "application/octet-stream")
}

async fn faulty(
    State(state): State<AppState>,
    UrlPath((kind, path)): UrlPath<(String, String)>,
) -> Response<Body> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let Some(data) = read(&state.root, &path).await else {
        return status(StatusCode::NOT_FOUND, "404 page not found");
    };
    if !is_binary(&path) {
        return file_response(data);
    }
    match kind.as_str() {
        "404" => status(StatusCode::NOT_FOUND, "404 page not found"),
        "500" => status(StatusCode::INTERNAL_SERVER_ERROR, "injected failure"),
        "500once" if state.failed_once.fetch_add(1, Ordering::SeqCst) == 0 => {
            status(StatusCode::INTERNAL_SERVER_ERROR, "injected failure (once)")
        }
        "truncate" => truncated(data),
        "corrupt" => {
            let mut data = data;
            let middle = data.len() / 2;
            if let Some(byte) = data.get_mut(middle) {
                *byte ^= 0xff;
            }
            file_response(data)
        }
        "slow" => slow(data),
        _ => file_response(data),
    }
}

fn is_binary(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    !(name.ends_with(".txt") || name.contains(".sha") || name.ends_with(".md5"))
}

/// Reads a file under root, refusing anything that would climb out of it.
async fn read(root: &Path, path: &str) -> Option<Vec<u8>> {
    let relative = Path::new(path);
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = root.join(relative);
    if !tokio::fs::metadata(&full).await.ok()?.is_file() {
        return None;
    }
    tokio::fs::read(full).await.ok()
}

fn file_response(data: Vec<u8>) -> Response<Body> {
    with_type(Response::new(Body::from(data)), "application/octet-stream")
}

fn truncated(data: Vec<u8>) -> Response<Body> {
    let promised = data.len();
    let half = Bytes::from(data).slice(..promised / 2);
    // Half the body, a pause so that it really reaches the client, then the connection is cut.
    let stream = futures_util::stream::unfold(Some(half), |piece| async move {
        match piece {
            Some(half) => Some((Ok(half), None)),
            None => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Err(std::io::Error::other("injected truncation")), None))
            }
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(promised));
    with_type(response, "application/octet-stream")
}

fn slow(data: Vec<u8>) -> Response<Body> {
    const PIECES: usize = 10;
    let promised = data.len();
    let data = Bytes::from(data);
    let step = promised.div_ceil(PIECES).max(1);
    let stream = futures_util::stream::unfold(0usize, move |offset| {
        let data = data.clone();
        async move {
            if offset >= data.len() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let end = (offset + step).min(data.len());
            Some((Ok::<Bytes, std::io::Error>(data.slice(offset..end)), end))
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(promised));
    with_type(response, "application/octet-stream")
}

fn status(code: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = code;
    with_type(response, "text/plain; charset=utf-8")
}

fn with_type(mut response: Response<Body>, content_type: &'static str) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::ReleaseServer;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Instant;

    /// The body of `GET /path` (HTTP/1.1, connection closed after it).
    fn get(addr: SocketAddr, path: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("headers");
        response.split_off(split + 4)
    }

    #[test]
    fn downloads_share_a_limited_link_and_arrive_whole() {
        let dir = std::env::temp_dir().join(format!("lab-release-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let blob: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.join("blob"), &blob).unwrap();
        let server =
            ReleaseServer::start_limited(&dir, "127.0.0.1:0".parse().unwrap(), Some(1_000_000)).unwrap();
        let addr = server.addr();
        let started = Instant::now();
        let bodies: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let jobs: Vec<_> = (0..2).map(|_| scope.spawn(move || get(addr, "blob"))).collect();
            jobs.into_iter().map(|j| j.join().unwrap()).collect()
        });
        let elapsed = started.elapsed().as_secs_f64();
        for body in &bodies {
            assert!(body == &blob, "a body of {} bytes, not the file", body.len());
        }
        // 800 KB through one 1 MB/s link: at least 0.8 s (a lower bound only: the link is on).
        assert!(
            elapsed >= 0.75,
            "two 400 KB downloads at 1 MB/s took {elapsed:.2} s"
        );
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
