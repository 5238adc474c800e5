//! A small HTTP/1.1 server that holds under floods: a bounded number of open connections, each
//! read by its own short-lived thread under a deadline, and one worker answering requests in
//! order from a bounded queue. tiny_http, used before, started a thread per open connection with
//! no bound and no read timeout, so idle or slow-header clients could pile up threads.
//!
//! - At most [`Limits::max_connections`] connections are open. A new one beyond that closes the
//!   connection that has waited longest for its request head (slowloris clients lose their
//!   slot to real requests), or, when every open connection is already being answered, is
//!   refused with `503` at once. Both are counted.
//! - A request head must arrive within [`Limits::header_timeout`], a body within
//!   [`Limits::body_timeout`]; otherwise the connection is closed (counted).
//! - Requests wait for the worker in a queue of [`Limits::queue`]; beyond that `503` at once.
//! - One request per connection (`Connection: close`).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Largest request body accepted (the endpoints take none of substance).
const MAX_BODY: usize = 1024;
/// Headers parsed per request.
const MAX_HEADERS: usize = 32;
/// Stack of a connection thread: parsing needs little.
const CONNECTION_STACK: usize = 128 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    /// Requests waiting for the worker.
    pub queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            queue: 8,
        }
    }
}

/// What the server has done, for `/stats` and the logs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections open now.
    pub open: AtomicUsize,
    pub accepted: AtomicU64,
    /// Closed to make room for a newer connection while still waiting for their request head.
    pub evicted: AtomicU64,
    /// Refused at once: every open connection was being answered.
    pub refused: AtomicU64,
    /// Closed because the head or body did not arrive in time.
    pub timed_out: AtomicU64,
    /// Answered 503 because the worker's queue was full.
    pub busy: AtomicU64,
    pub answered: AtomicU64,
}

impl Counters {
    /// The counters as a JSON object.
    pub fn to_json(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{{\"open\":{},\"accepted\":{},\"evicted\":{},\"refused\":{},\"timed_out\":{},\"busy\":{},\"answered\":{}}}",
            self.open.load(Ordering::Relaxed),
            get(&self.accepted),
            get(&self.evicted),
            get(&self.refused),
            get(&self.timed_out),
            get(&self.busy),
            get(&self.answered)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub path: String,
    /// What follows `?` in the target, or empty.
    pub query: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn busy() -> Self {
        Self::text(503, "busy, try again").with_header("Retry-After", "1")
    }

    fn bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A request on its way to the worker, with the channel its answer goes back on.
type Job = (Request, mpsc::Sender<Response>);

/// Connections still waiting for their request head, oldest first: the ones a newcomer may
/// evict.
#[derive(Default)]
struct Waiting {
    next_id: u64,
    connections: VecDeque<(u64, TcpStream)>,
}

struct Shared {
    limits: Limits,
    counters: Arc<Counters>,
    waiting: Mutex<Waiting>,
    queue: SyncSender<Job>,
}

/// Serves `listener` until the process ends; `handler` answers every request, one at a time, on
/// one worker thread.
pub fn serve(
    listener: TcpListener,
    limits: Limits,
    counters: Arc<Counters>,
    handler: impl Fn(&Request) -> Response + Send + 'static,
) {
    let (queue, jobs) = mpsc::sync_channel::<Job>(limits.queue);
    std::thread::spawn(move || work(jobs, handler));
    let shared = Arc::new(Shared {
        limits,
        counters,
        waiting: Mutex::default(),
        queue,
    });
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => admit(&shared, stream),
            Err(e) => {
                tracing::warn!("HTTP accept failed: {e}");
                // Out of file descriptors, say: give the open connections time to finish.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn work(jobs: Receiver<Job>, handler: impl Fn(&Request) -> Response) {
    for (request, reply) in jobs {
        // The connection may have gone away meanwhile; then nobody waits for the answer.
        let _ = reply.send(handler(&request));
    }
}

/// Takes a new connection on, making room for it if the bound is reached.
fn admit(shared: &Arc<Shared>, stream: TcpStream) {
    let c = &shared.counters;
    if c.open.load(Ordering::SeqCst) >= shared.limits.max_connections {
        let oldest = lock(&shared.waiting).connections.pop_front();
        match oldest {
            Some((_, old)) => {
                let _ = old.shutdown(Shutdown::Both);
                let evicted = c.evicted.fetch_add(1, Ordering::Relaxed) + 1;
                if evicted.is_power_of_two() {
                    tracing::warn!(
                        evicted,
                        "HTTP connections at the bound: closing the oldest idle ones"
                    );
                }
            }
            None => {
                let refused = c.refused.fetch_add(1, Ordering::Relaxed) + 1;
                if refused.is_power_of_two() {
                    tracing::warn!(
                        refused,
                        "HTTP connections at the bound, all busy: answering 503"
                    );
                }
                let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                let _ = (&stream).write_all(&Response::busy().bytes());
                return;
            }
        }
    }
    c.open.fetch_add(1, Ordering::SeqCst);
    c.accepted.fetch_add(1, Ordering::Relaxed);
    let id = {
        let mut w = lock(&shared.waiting);
        w.next_id += 1;
        let id = w.next_id;
        match stream.try_clone() {
            Ok(handle) => w.connections.push_back((id, handle)),
            Err(e) => tracing::debug!("cannot keep a handle to evict the connection by: {e}"),
        }
        id
    };
    let for_thread = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("http-conn".into())
        .stack_size(CONNECTION_STACK)
        .spawn(move || {
            connection(&for_thread, id, stream);
            forget(&for_thread, id);
            for_thread.counters.open.fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start an HTTP connection thread: {e}");
        forget(shared, id);
        c.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Drops connection `id` from the evictable ones (its head arrived, or it is done).
fn forget(shared: &Shared, id: u64) {
    lock(&shared.waiting).connections.retain(|(i, _)| *i != id);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data (a list of handles) stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One connection: read its request under the deadlines, queue it, write the answer.
fn connection(shared: &Shared, id: u64, mut stream: TcpStream) {
    let limits = shared.limits;
    let answer = match read_request(&mut stream, &limits) {
        Ok(Some(request)) => {
            forget(shared, id);
            let (reply, answer) = mpsc::channel();
            match shared.queue.try_send((request, reply)) {
                Ok(()) => answer
                    .recv()
                    .unwrap_or_else(|_| Response::text(500, "worker gone")),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    let busy = shared.counters.busy.fetch_add(1, Ordering::Relaxed) + 1;
                    if busy.is_power_of_two() {
                        tracing::warn!(busy, "HTTP queue full: answering 503");
                    }
                    Response::busy()
                }
            }
        }
        Ok(None) => return,
        Err(Failure::TimedOut) => {
            shared.counters.timed_out.fetch_add(1, Ordering::Relaxed);
            Response::text(408, "request took too long")
        }
        Err(Failure::Bad(status, why)) => Response::text(status, why),
    };
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    match stream.write_all(&answer.bytes()) {
        Ok(()) => {
            shared.counters.answered.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(status = answer.status, "HTTP request answered");
        }
        Err(e) => tracing::debug!("HTTP client went away: {e}"),
    }
    let _ = stream.shutdown(Shutdown::Write);
}

enum Failure {
    TimedOut,
    Bad(u16, &'static str),
}

/// The request on `stream`, or None when the client closed (or was evicted) before sending one.
fn read_request(stream: &mut TcpStream, limits: &Limits) -> Result<Option<Request>, Failure> {
    let mut buf = Vec::with_capacity(1024);
    let deadline = Instant::now() + limits.header_timeout;
    let (request, head_len, body_len) = loop {
        if !read_some(stream, &mut buf, deadline, MAX_HEAD)? {
            return Ok(None);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let body_len = content_length(parsed.headers)?;
                break (to_request(&parsed)?, head_len, body_len);
            }
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(Failure::Bad(431, "request head too large"))
            }
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Failure::Bad(431, "too many headers"))
            }
            Err(_) => return Err(Failure::Bad(400, "not an HTTP request")),
        }
    };
    // The body is read and thrown away: no endpoint takes one.
    let deadline = Instant::now() + limits.body_timeout;
    while buf.len() < head_len + body_len {
        if !read_some(stream, &mut buf, deadline, head_len + body_len)? {
            return Ok(None);
        }
    }
    Ok(Some(request))
}

/// Reads what has arrived into `buf` (up to `max` bytes in all) before `deadline`; false when
/// the peer closed.
fn read_some(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    max: usize,
) -> Result<bool, Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Failure::TimedOut);
    }
    stream
        .set_read_timeout(Some(left))
        .map_err(|_| Failure::TimedOut)?;
    let mut chunk = [0u8; 1024];
    let room = (max - buf.len().min(max)).clamp(1, chunk.len());
    match stream.read(&mut chunk[..room]) {
        Ok(0) => Ok(false),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Err(Failure::TimedOut)
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
        // Reset, or shut down by an eviction.
        Err(_) => Ok(false),
    }
}

fn content_length(headers: &[httparse::Header]) -> Result<usize, Failure> {
    let Some(h) = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
    else {
        return Ok(0);
    };
    let n: usize = std::str::from_utf8(h.value)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or(Failure::Bad(400, "bad Content-Length"))?;
    if n > MAX_BODY {
        return Err(Failure::Bad(413, "request body too large"));
    }
    Ok(n)
}

fn to_request(parsed: &httparse::Request) -> Result<Request, Failure> {
    let target = parsed.path.ok_or(Failure::Bad(400, "no request target"))?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method: match parsed.method {
            Some("GET") => Method::Get,
            Some("POST") => Method::Post,
            _ => Method::Other,
        },
        path: path.to_string(),
        query: query.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(limits: Limits) -> (u16, Arc<Counters>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        std::thread::spawn(move || {
            serve(listener, limits, c, |r| {
                Response::text(200, &format!("{:?} {} {}", r.method, r.path, r.query))
            })
        });
        (port, counters)
    }

    fn get(port: u16, request: &[u8]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(request).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn answers_and_closes() {
        let (port, counters) = server(Limits::default());
        let out = get(port, b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.contains("Connection: close") && out.ends_with("Get /a b=1"),
            "{out}"
        );
        let out = get(port, b"POST /n HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        assert!(out.ends_with("Post /n "), "{out}");
        assert!(get(port, b"junk\r\n\r\n").starts_with("HTTP/1.1 400"));
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert!(get(port, big.as_bytes()).starts_with("HTTP/1.1 413"));
        assert!(counters.answered.load(Ordering::Relaxed) >= 4);
    }

    #[test]
    fn slow_heads_time_out_and_idle_ones_make_room() {
        let limits = Limits {
            max_connections: 4,
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (port, counters) = server(limits);
        // A head that never ends is answered 408 at the deadline.
        let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let mut out = String::new();
        slow.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 408"), "{out}");
        assert_eq!(counters.timed_out.load(Ordering::Relaxed), 1);
        // Eight idle connections on a bound of four: the oldest are closed for the newer ones,
        // and a real request still gets its answer.
        let idle: Vec<TcpStream> = (0..8)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        assert!(get(port, b"GET /x HTTP/1.1\r\n\r\n").ends_with("Get /x "));
        assert!(counters.evicted.load(Ordering::Relaxed) >= 5);
        drop(idle);
    }
}
