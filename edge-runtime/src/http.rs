//! The kiosk's HTTP endpoint (loopback by default): `GET /` a small auto-refreshing page,
//! `GET /image.png?label=7&seed=42&count=1` a PNG, `POST /next[?label=7]` to advance the kiosk,
//! `POST /reload` to load the model file again. Parameters are parsed strictly and bounded; junk
//! gets a 4xx with the reason; a flood gets 503 rather than a growing queue.

use std::sync::mpsc::{self, Sender, TrySendError};
use std::sync::{Arc, Mutex};

use tiny_http::{Header, Method, Request, Response, Server};

use crate::kiosk::Event;
use crate::model::Generator;
use crate::render;

/// Largest grid one request may ask for.
pub const MAX_COUNT: usize = 64;
const MAX_VALUE_LEN: usize = 40;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImageQuery {
    pub label: Option<String>,
    pub seed: Option<u64>,
    pub count: Option<usize>,
}

/// Parses `label=7&seed=42&count=4`: known keys only, each at most once, bounded values.
pub fn parse_query(query: &str) -> Result<ImageQuery, String> {
    let mut q = ImageQuery::default();
    if query.is_empty() {
        return Ok(q);
    }
    for pair in query.split('&') {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{}` is not key=value", clip(pair)))?;
        if value.is_empty()
            || value.len() > MAX_VALUE_LEN
            || !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("bad value for `{}`", clip(key)));
        }
        let dup = || format!("`{key}` given twice");
        match key {
            "label" => {
                if q.label.replace(value.to_string()).is_some() {
                    return Err(dup());
                }
            }
            "seed" => {
                let seed = value
                    .parse()
                    .map_err(|_| "seed must be an unsigned 64-bit integer".to_string())?;
                if q.seed.replace(seed).is_some() {
                    return Err(dup());
                }
            }
            "count" => {
                let count = value
                    .parse()
                    .ok()
                    .filter(|c| (1..=MAX_COUNT).contains(c))
                    .ok_or_else(|| format!("count must be 1..={MAX_COUNT}"))?;
                if q.count.replace(count).is_some() {
                    return Err(dup());
                }
            }
            other => return Err(format!("unknown parameter `{}`", clip(other))),
        }
    }
    Ok(q)
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_VALUE_LEN).collect()
}

fn text(status: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("static header")
}

const PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>gan-edge-runtime</title>
<style>body{background:#111;color:#ddd;font-family:sans-serif;text-align:center}img{image-rendering:pixelated;width:280px}</style>
</head><body><h1>{name}</h1><p><img id="img" src="/image.png?seed={seed}{label}"></p><p>{links}</p>
<script>setInterval(()=>{document.getElementById('img').src='/image.png?seed='+Math.floor(Math.random()*1e9)+'{label}'},3000)</script>
<p><small>{attribution}</small></p></body></html>"#;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Answers one request.
fn handle(
    request: &Request,
    generator: &Mutex<Generator>,
    events: &Sender<Event>,
) -> Response<std::io::Cursor<Vec<u8>>> {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let query = match parse_query(query) {
        Ok(q) => q,
        Err(e) => return text(400, &e),
    };
    let mut g = match generator.lock() {
        Ok(g) => g,
        Err(_) => return text(500, "generator unavailable"),
    };
    let label = match query
        .label
        .as_deref()
        .map(|l| g.info.class_index(l))
        .transpose()
    {
        Ok(l) => l,
        Err(e) => return text(400, &e.to_string()),
    };
    match (request.method(), path) {
        (Method::Get, "/") => {
            let links: String = g
                .info
                .class_names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("<a href=\"/?label={i}\">{}</a> ", escape(n)))
                .collect();
            let page = PAGE
                .replace("{name}", &escape(&g.info.name))
                .replace("{seed}", &rand::random::<u32>().to_string())
                .replace(
                    "{label}",
                    &label.map(|l| format!("&label={l}")).unwrap_or_default(),
                )
                .replace("{links}", &links)
                .replace("{attribution}", &escape(&g.info.attribution));
            Response::from_string(page)
                .with_header(header("Content-Type", "text/html; charset=utf-8"))
        }
        (Method::Get, "/image.png") => {
            let seed = query.seed.unwrap_or_else(rand::random);
            match render::grid_png(&mut g, query.count.unwrap_or(1), label, seed, 8) {
                Ok(png) => {
                    Response::from_data(png).with_header(header("Content-Type", "image/png"))
                }
                Err(e) => text(500, &e.to_string()),
            }
        }
        (Method::Post, "/next") => {
            let _ = events.send(Event::Next { label });
            text(202, "ok")
        }
        (Method::Post, "/reload") => {
            let _ = events.send(Event::Reload);
            text(202, "reload requested")
        }
        (_, "/" | "/image.png" | "/next" | "/reload") => text(405, "method not allowed"),
        _ => text(404, "not found"),
    }
}

/// Requests waiting for the worker; beyond this a flood is answered 503 at once, so memory
/// stays bounded and the display loop keeps the generator most of the time.
pub const QUEUE_LEN: usize = 8;

/// Serves until the process ends: this thread only queues requests (or refuses them when the
/// queue is full); one worker thread answers them in order.
pub fn serve(server: Arc<Server>, generator: Arc<Mutex<Generator>>, events: Sender<Event>) {
    let (queue, work) = mpsc::sync_channel::<Request>(QUEUE_LEN);
    std::thread::spawn(move || {
        for request in work {
            let response = handle(&request, &generator, &events);
            let status = response.status_code().0;
            if let Err(e) = request.respond(response) {
                tracing::debug!("HTTP client went away: {e}");
            } else {
                tracing::debug!(status, "HTTP request answered");
            }
        }
    });
    let mut refused = 0u64;
    for request in server.incoming_requests() {
        if let Err(TrySendError::Full(request) | TrySendError::Disconnected(request)) =
            queue.try_send(request)
        {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(refused, "HTTP queue full: answering 503");
            }
            let busy = text(503, "busy, try again").with_header(header("Retry-After", "1"));
            let _ = request.respond(busy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_strict_and_bounded() {
        assert_eq!(parse_query("").unwrap(), ImageQuery::default());
        let q = parse_query("label=7&seed=42&count=4").unwrap();
        assert_eq!(
            (q.label.as_deref(), q.seed, q.count),
            (Some("7"), Some(42), Some(4))
        );
        for bad in [
            "seed=-1",
            "seed=abc",
            "count=0",
            "count=65",
            "label=7&label=8",
            "x=1",
            "label",
            "label=<script>",
            "seed=99999999999999999999999",
        ] {
            assert!(parse_query(bad).is_err(), "{bad} accepted");
        }
    }
}
