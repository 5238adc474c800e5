//! A kiosk session as the binary runs it: the kiosk loop plus its event sources (SIGTERM/SIGINT
//! to stop, SIGHUP to reload, the HTTP endpoint, keys on stdin), started and wired together.

use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::display::Display;
use crate::error::{EdgeError, Result};
use crate::http_server::Limits;
use crate::kiosk::{self, Kiosk, KioskOptions};
use crate::latest_frame::LatestFrame;
use crate::model::Generator;
use crate::model_watch::ModelWatch;
use crate::{http, keys};

/// Where a session takes requests from besides its timer.
pub struct Inputs {
    /// The HTTP address to listen on, if any.
    pub http: Option<String>,
    /// Read keys (a terminal) or lines (a pipe) from stdin.
    pub stdin: bool,
}

/// What a finished session did.
pub struct Report {
    pub frames: u64,
    pub display_errors: u64,
    pub reloads: u64,
}

fn setup(what: &str, e: std::io::Error) -> EdgeError {
    EdgeError::Runtime(format!("cannot install {what}: {e}"))
}

/// Runs the kiosk until a signal, `q`, or `options.frames` ends it.
pub fn run(
    generator: Generator,
    display: Display,
    watch: ModelWatch,
    inputs: Inputs,
    options: KioskOptions,
) -> Result<Report> {
    let generator = Arc::new(Mutex::new(generator));
    // The web page shows what the display shows: only a kiosk with HTTP publishes its frames.
    let latest = inputs
        .http
        .as_ref()
        .map(|_| Arc::new(LatestFrame::default()));
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| setup("the signal handlers", e))?;
    }
    let (tx, rx) = kiosk::channel();
    let mut hangups = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .map_err(|e| setup("the SIGHUP handler", e))?;
    let reload = tx.clone();
    std::thread::spawn(move || {
        for _ in hangups.forever() {
            if reload.send(kiosk::Event::Reload).is_err() {
                break;
            }
        }
    });
    if let (Some(address), Some(latest)) = (inputs.http, &latest) {
        let listener = TcpListener::bind(&address)
            .map_err(|e| EdgeError::Runtime(format!("cannot listen on {address}: {e}")))?;
        tracing::info!("HTTP on http://{address}/");
        let (g, tx, frame) = (Arc::clone(&generator), tx.clone(), Arc::clone(latest));
        std::thread::spawn(move || http::serve(listener, g, frame, tx, Limits::default()));
    }
    // Restores the terminal when the session returns, whatever the reader thread is doing.
    let raw_mode = if inputs.stdin {
        keys::RawMode::enable()
    } else {
        None
    };
    if inputs.stdin {
        let (g, tx, raw) = (Arc::clone(&generator), tx.clone(), raw_mode.is_some());
        std::thread::spawn(move || keys::stdin_events(tx, g, raw));
    }
    drop(tx);
    let mut kiosk = Kiosk::new(generator, display, options);
    kiosk.watch_model(watch);
    if let Some(latest) = latest {
        kiosk.publish_to(latest);
    }
    kiosk.run(rx, &stop)?;
    Ok(Report {
        frames: kiosk.frames_shown,
        display_errors: kiosk.display_errors,
        reloads: kiosk.reloads,
    })
}
