//! The kiosk's HTTP endpoint (loopback by default): `GET /` the kiosk page (what the display
//! shows, with buttons), `GET /frame.png` and `/frame.json` the current screen and its caption,
//! `GET /image.png?label=7&seed=42&count=1` a PNG (an attribute-conditional model takes
//! `?hair=long03&glasses=none` instead of `label`), `POST /next[?label=7 | ?hair=long03…]` to
//! advance the kiosk, `POST /attributes[?hair=long03…]` to fix exactly those attributes (none:
//! all drawn) on a new image,
//! `POST /reload` to load the model file again, `GET /stats` the server's counters. Parameters
//! are parsed strictly and bounded; junk gets a 4xx with the reason; floods are held off by
//! [`crate::http_server`].

use std::net::TcpListener;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use gan_contract::ModelInfo;

use crate::ask::Ask;
use crate::http_server::{self, Counters, Limits, Method, Request, Response};
use crate::kiosk::Event;
use crate::latest_frame::LatestFrame;
use crate::model::Generator;
use crate::render;

/// Largest grid one request may ask for.
pub const MAX_COUNT: usize = 64;
const MAX_VALUE_LEN: usize = 40;

/// Attributes one query may name.
const MAX_ATTRIBUTES: usize = 32;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImageQuery {
    pub label: Option<String>,
    pub seed: Option<u64>,
    pub count: Option<usize>,
    /// Every other `name=class` pair, in order: attributes, checked against the model by
    /// [`Ask::parse`] (which refuses names the model does not have).
    pub attributes: Vec<(String, String)>,
}

impl ImageQuery {
    /// What the query asks `info`'s model for.
    pub fn ask(&self, info: &ModelInfo) -> crate::Result<Ask> {
        let pairs = self
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()));
        Ask::parse(info, self.label.as_deref(), pairs)
    }
}

/// Parses `label=7&seed=42&count=4` (or `hair=long03&…`): each key at most once, bounded
/// values of letters, digits, `-` and `_`.
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
            name => {
                if q.attributes.iter().any(|(k, _)| k == name) {
                    return Err(dup());
                }
                if q.attributes.len() == MAX_ATTRIBUTES
                    || name.is_empty()
                    || name.len() > MAX_VALUE_LEN
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(format!("unknown parameter `{}`", clip(name)));
                }
                q.attributes.push((name.to_string(), value.to_string()));
            }
        }
    }
    Ok(q)
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_VALUE_LEN).collect()
}

/// The kiosk page: what the display shows (`/frame.png`, reloaded when `/frame.json` says a new
/// frame was drawn), a "next" button and one per class, sized for a phone.
const PAGE: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name}</title>
<style>
body{margin:0;background:#111;color:#ddd;font-family:sans-serif;text-align:center}
main{max-width:480px;margin:0 auto;padding:12px}
h1{font-size:1.3rem;margin:.4rem 0}
#frame{width:100%;image-rendering:pixelated;background:#000;border-radius:6px}
#caption{font-size:1.1rem;min-height:1.4em}
button{font-size:1.15rem;min-width:3rem;min-height:3rem;margin:4px;border:0;border-radius:8px;background:#333;color:#eee}
#next{background:#2a6;min-width:9rem}
label{display:inline-block;margin:4px 6px;text-align:left}
select{font-size:1.05rem;min-height:2.6rem;border-radius:8px;background:#333;color:#eee;border:0}
small{color:#999}
</style></head><body><main>
<h1>{name}</h1>
<img id="frame" src="/frame.png" alt="what the display shows">
<p id="caption">{caption}</p>
<p><button id="next" onclick="next()">next</button></p>
<p id="classes">{buttons}</p>
<p><small>{attribution}</small></p>
</main>
<script>
let shown = {number};
async function next(label) {
  await fetch('/next' + (label === undefined ? '' : '?label=' + label), {method: 'POST'});
}
async function pick() {
  const picks = [...document.querySelectorAll('select[data-attr]')]
    .filter(s => s.value !== '')
    .map(s => encodeURIComponent(s.dataset.attr) + '=' + encodeURIComponent(s.value));
  await fetch('/attributes' + (picks.length ? '?' + picks.join('&') : ''), {method: 'POST'});
}
async function poll() {
  try {
    const r = await fetch('/frame.json');
    if (r.ok) {
      const f = await r.json();
      if (f.number !== shown) {
        shown = f.number;
        document.getElementById('frame').src = '/frame.png?n=' + f.number;
        document.getElementById('caption').textContent = f.caption;
        for (const s of document.querySelectorAll('select[data-attr]')) {
          s.value = (f.fixed || {})[s.dataset.attr] || '';
        }
      }
    }
  } catch (e) {}
  setTimeout(poll, 300);
}
poll();
</script></body></html>"#;

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
    latest: &LatestFrame,
    events: &Sender<Event>,
    counters: &Counters,
) -> Response {
    let path = request.path.as_str();
    // These take no parameters; a query string only defeats caches.
    match (request.method, path) {
        (Method::Get, "/stats") => {
            return Response::new(200, "application/json", counters.to_json())
        }
        (Method::Get, "/frame.png") => {
            return match latest.png() {
                Some(Ok(png)) => {
                    Response::new(200, "image/png", png).with_header("Cache-Control", "no-store")
                }
                Some(Err(e)) => Response::text(500, &e.to_string()),
                None => Response::text(404, "no frame drawn yet"),
            }
        }
        (Method::Get, "/frame.json") => {
            let f = latest.summary().unwrap_or_default();
            let fixed: serde_json::Map<String, serde_json::Value> =
                f.fixed.into_iter().map(|(k, v)| (k, v.into())).collect();
            let json =
                serde_json::json!({ "number": f.number, "caption": f.caption, "fixed": fixed });
            return Response::new(200, "application/json", json.to_string())
                .with_header("Cache-Control", "no-store");
        }
        _ => {}
    }
    let query = match parse_query(&request.query) {
        Ok(q) => q,
        Err(e) => return Response::text(400, &e),
    };
    let mut g = match generator.lock() {
        Ok(g) => g,
        Err(_) => return Response::text(500, "generator unavailable"),
    };
    let ask = match query.ask(&g.info) {
        Ok(ask) => ask,
        Err(e) => return Response::text(400, &e.to_string()),
    };
    match (request.method, path) {
        (Method::Get, "/") => {
            let buttons: String = g
                .info
                .class_names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    format!(
                        "<button class=\"class\" onclick=\"next({i})\">{}</button>",
                        escape(n)
                    )
                })
                .collect();
            let frame = latest.summary().unwrap_or_default();
            // An attribute model: one picker per attribute, "any" leaving it to chance; the
            // classes the kiosk holds fixed (by keys, pickers or POST) are the selected ones.
            let pickers: String = g
                .info
                .attributes
                .iter()
                .map(|a| {
                    let fixed = frame.fixed.iter().find(|(n, _)| *n == a.name);
                    let options: String = a
                        .classes
                        .iter()
                        .map(|c| {
                            let selected = if fixed.is_some_and(|(_, f)| f == c) {
                                " selected"
                            } else {
                                ""
                            };
                            format!("<option{selected}>{}</option>", escape(c))
                        })
                        .collect();
                    format!(
                        "<label>{name} <select data-attr=\"{name}\" onchange=\"pick()\">\
                         <option value=\"\">any</option>{options}</select></label>",
                        name = escape(&a.name)
                    )
                })
                .collect();
            let page = PAGE
                .replace("{name}", &escape(&g.info.name))
                .replace("{caption}", &escape(&frame.caption))
                .replace("{number}", &frame.number.to_string())
                .replace("{buttons}", &(buttons + &pickers))
                .replace("{attribution}", &escape(&g.info.attribution));
            Response::new(200, "text/html; charset=utf-8", page)
        }
        (Method::Get, "/image.png") => {
            let seed = query.seed.unwrap_or_else(rand::random);
            match render::grid_png(&mut g, query.count.unwrap_or(1), &ask, seed, 8, None) {
                Ok(png) => Response::new(200, "image/png", png),
                Err(e) => Response::text(500, &e.to_string()),
            }
        }
        (Method::Post, "/next") => {
            let attributes = (!query.attributes.is_empty()).then_some(ask.attributes);
            let _ = events.send(Event::Next {
                label: ask.label,
                attributes,
            });
            Response::text(202, "ok")
        }
        (Method::Post, "/attributes") if !g.info.attributes.is_empty() => {
            let _ = events.send(Event::Next {
                label: None,
                attributes: Some(ask.attributes),
            });
            Response::text(202, "ok")
        }
        (Method::Post, "/reload") => {
            let _ = events.send(Event::Reload);
            Response::text(202, "reload requested")
        }
        (Method::Post, "/attributes") => Response::text(400, "this model takes no attributes"),
        (
            _,
            "/" | "/image.png" | "/next" | "/attributes" | "/reload" | "/stats" | "/frame.png"
            | "/frame.json",
        ) => Response::text(405, "method not allowed"),
        _ => Response::text(404, "not found"),
    }
}

/// Serves the kiosk's endpoint on `listener` until the process ends.
pub fn serve(
    listener: TcpListener,
    generator: Arc<Mutex<Generator>>,
    latest: Arc<LatestFrame>,
    events: Sender<Event>,
    limits: Limits,
) {
    let counters = Arc::new(Counters::default());
    let c = Arc::clone(&counters);
    http_server::serve(listener, limits, counters, move |request| {
        handle(request, &generator, &latest, &events, &c)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_strict_and_bounded() {
        assert_eq!(parse_query("").unwrap(), ImageQuery::default());
        let q = parse_query("hair=long03&glasses=none&seed=1").unwrap();
        assert_eq!(
            q.attributes,
            [
                ("hair".into(), "long03".into()),
                ("glasses".into(), "none".into())
            ]
        );
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
            "hair=long&hair=short",
            "label",
            "label=<script>",
            "seed=99999999999999999999999",
        ] {
            assert!(parse_query(bad).is_err(), "{bad} accepted");
        }
    }
}
