//! The kiosk's HTTP endpoint (loopback by default): `GET /` a small auto-refreshing page,
//! `GET /image.png?label=7&seed=42&count=1` a PNG, `POST /next[?label=7]` to advance the kiosk,
//! `POST /reload` to load the model file again, `GET /stats` the server's counters. Parameters
//! are parsed strictly and bounded; junk gets a 4xx with the reason; floods are held off by
//! [`crate::http_server`].

use std::net::TcpListener;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use crate::http_server::{self, Counters, Limits, Method, Request, Response};
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

fn text(status: u16, body: &str) -> Response {
    Response::text(status, body)
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
    counters: &Counters,
) -> Response {
    let path = request.path.as_str();
    if (request.method, path) == (Method::Get, "/stats") {
        return Response::new(200, "application/json", counters.to_json());
    }
    let query = match parse_query(&request.query) {
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
    match (request.method, path) {
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
            Response::new(200, "text/html; charset=utf-8", page)
        }
        (Method::Get, "/image.png") => {
            let seed = query.seed.unwrap_or_else(rand::random);
            match render::grid_png(&mut g, query.count.unwrap_or(1), label, seed, 8) {
                Ok(png) => Response::new(200, "image/png", png),
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
        (_, "/" | "/image.png" | "/next" | "/reload" | "/stats") => text(405, "method not allowed"),
        _ => text(404, "not found"),
    }
}

/// Serves the kiosk's endpoint on `listener` until the process ends.
pub fn serve(
    listener: TcpListener,
    generator: Arc<Mutex<Generator>>,
    events: Sender<Event>,
    limits: Limits,
) {
    let counters = Arc::new(Counters::default());
    let c = Arc::clone(&counters);
    http_server::serve(listener, limits, counters, move |request| {
        handle(request, &generator, &events, &c)
    });
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
