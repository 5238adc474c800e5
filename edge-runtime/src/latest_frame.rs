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
    /// The attributes the kiosk holds fixed, as (name, class): the page's pickers show them.
    pub fixed: Vec<(String, String)>,
    pub screen: Canvas,
}

/// What the page needs of a frame besides its pixels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub number: u64,
    pub caption: String,
    pub fixed: Vec<(String, String)>,
}

/// The latest frame, shared between the kiosk loop (writer) and the HTTP worker (reader).
#[derive(Default)]
pub struct LatestFrame(Mutex<Option<Frame>>);

impl LatestFrame {
    pub fn set(&self, frame: Frame) {
        *self.lock() = Some(frame);
    }

    /// The frame's number, caption and fixed attributes, if one was drawn.
    pub fn summary(&self) -> Option<Summary> {
        self.lock().as_ref().map(|f| Summary {
            number: f.number,
            caption: f.caption.clone(),
            fixed: f.fixed.clone(),
        })
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
