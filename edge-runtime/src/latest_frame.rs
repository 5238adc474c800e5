//! The screen the kiosk drew last, with its caption, so the web page shows what the display
//! shows. The kiosk only copies its pixels; the PNG is encoded when the page asks for it, so a
//! kiosk nobody watches pays nothing for it beyond the copy.

use std::sync::{Mutex, MutexGuard};

use crate::canvas::Canvas;
use crate::error::Result;

/// One drawn screen.
pub struct Frame {
    /// Counts every frame drawn, from 1: the page reloads the picture when it changes.
    pub number: u64,
    pub caption: String,
    pub screen: Canvas,
}

/// The latest frame, shared between the kiosk loop (writer) and the HTTP worker (reader).
#[derive(Default)]
pub struct LatestFrame(Mutex<Option<Frame>>);

impl LatestFrame {
    pub fn set(&self, frame: Frame) {
        *self.lock() = Some(frame);
    }

    /// The frame's number and caption, if one was drawn.
    pub fn summary(&self) -> Option<(u64, String)> {
        self.lock().as_ref().map(|f| (f.number, f.caption.clone()))
    }

    /// The frame as PNG bytes, if one was drawn.
    pub fn png(&self) -> Option<Result<Vec<u8>>> {
        self.lock().as_ref().map(|f| f.screen.png())
    }

    fn lock(&self) -> MutexGuard<'_, Option<Frame>> {
        // A frame is replaced whole, so a panicked holder leaves nothing half written.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
