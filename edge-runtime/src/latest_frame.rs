//! The screen the kiosk drew last, as PNG with its caption, so the web page shows what the
//! display shows.

use std::sync::Mutex;

/// One drawn screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Counts every frame drawn, from 1: the page reloads the picture when it changes.
    pub number: u64,
    pub caption: String,
    pub png: Vec<u8>,
}

/// The latest frame, shared between the kiosk loop (writer) and the HTTP worker (reader).
#[derive(Debug, Default)]
pub struct LatestFrame(Mutex<Option<Frame>>);

impl LatestFrame {
    pub fn set(&self, frame: Frame) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(frame);
    }

    pub fn get(&self) -> Option<Frame> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
