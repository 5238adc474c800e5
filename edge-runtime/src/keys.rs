//! Kiosk keys from stdin: single keystrokes when stdin is a terminal (raw mode, restored when the
//! guard drops), whole lines otherwise (pipes, serial consoles, tests).

use std::io::{BufRead, Read};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

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
/// shows a new image, a class name or index picks that class. Unknown keys are logged and ignored.
fn event_for(key: &str, generator: &Mutex<Generator>) -> Option<Event> {
    match key.trim() {
        "q" | "quit" => Some(Event::Quit),
        "r" | "reload" => Some(Event::Reload),
        "" => Some(Event::Next { label: None }),
        other => match generator.lock().ok()?.info.class_index(other) {
            Ok(label) => Some(Event::Next { label: Some(label) }),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        },
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
