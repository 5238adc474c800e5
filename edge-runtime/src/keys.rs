//! Kiosk keys from stdin: single keystrokes when stdin is a terminal (raw mode, restored when the
//! guard drops), whole lines otherwise (pipes, serial consoles, tests).

use std::io::{BufRead, Read};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use gan_contract::AttributeRequest;

use crate::kiosk::Event;
use crate::model::Generator;

/// Puts the terminal on stdin into non-canonical, no-echo mode; restores it on drop. Owned by
/// the main thread so the terminal is restored even while the reader thread is blocked.
pub struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    /// None when stdin is not a terminal (or cannot be switched).
    pub fn enable() -> Option<Self> {
        // SAFETY: termios calls on fd 0 with structs we own.
        unsafe {
            if libc::isatty(0) != 1 {
                return None;
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            raw.c_lflag &= !(libc::ICANON | libc::ECHO);
            raw.c_cc[libc::VMIN] = 1;
            raw.c_cc[libc::VTIME] = 0;
            (libc::tcsetattr(0, libc::TCSANOW, &raw) == 0).then_some(Self { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `enable`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

/// The event a key or line means: `q` quits, `r` reloads the model file, space/enter/empty line
/// shows a new image, a class name or index picks that class. An attribute model's keys: `a`/`A`
/// choose the next/previous attribute, `+`/`-` step its class on the same face, `c` clears the
/// fixed attributes, and a line of `name=class` pairs fixes exactly those. Unknown keys are
/// logged and ignored.
fn event_for(key: &str, generator: &Mutex<Generator>) -> Option<Event> {
    let next = |attributes| Event::Next {
        label: None,
        attributes,
    };
    let key = key.trim();
    match key {
        "q" | "quit" => return Some(Event::Quit),
        "r" | "reload" => return Some(Event::Reload),
        "" => return Some(next(None)),
        _ => {}
    }
    let g = generator.lock().ok()?;
    let event = if g.info.attributes.is_empty() {
        g.info
            .class_index(key)
            .map(|label| Event::Next {
                label: Some(label),
                attributes: None,
            })
            .map_err(crate::EdgeError::from)
    } else {
        match key {
            "+" | "=" => Ok::<_, crate::EdgeError>(Event::Step { delta: 1 }),
            "-" => Ok(Event::Step { delta: -1 }),
            "a" => Ok(Event::Select { delta: 1 }),
            "A" => Ok(Event::Select { delta: -1 }),
            "c" | "clear" => Ok(next(Some(AttributeRequest::default()))),
            line => {
                let words: Vec<String> = line
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect();
                crate::ask::pairs(&words)
                    .map_err(crate::EdgeError::Request)
                    .and_then(|pairs| Ok(AttributeRequest::parse(&g.info.attributes, pairs)?))
                    .map(|request| next(Some(request)))
            }
        }
    };
    match event {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    }
}

/// Reads keys (raw terminal) or lines until stdin closes or the kiosk stops listening.
pub fn stdin_events(events: Sender<Event>, generator: Arc<Mutex<Generator>>, raw: bool) {
    let stdin = std::io::stdin();
    if raw {
        for byte in stdin.lock().bytes() {
            let Ok(byte) = byte else { break };
            let key = (byte as char).to_string();
            if let Some(event) = event_for(&key, &generator) {
                if events.send(event).is_err() {
                    break;
                }
            }
        }
    } else {
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if let Some(event) = event_for(&line, &generator) {
                if events.send(event).is_err() {
                    break;
                }
            }
        }
    }
}
