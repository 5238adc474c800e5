//! A desktop window as the display (cargo feature `window`): the embedded-graphics simulator on
//! SDL2 showing the same kiosk screen at 1:1, so a maker can lay out and try the kiosk on a
//! desktop before flashing a Pi.

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics_simulator::{
    OutputSettingsBuilder, SimulatorDisplay, SimulatorEvent, Window,
};

use crate::canvas::draws_on_canvas;

pub struct WindowSink {
    canvas: SimulatorDisplay<Rgb888>,
    window: Window,
    /// The window was closed: the kiosk keeps running, drawing nowhere, until it is stopped.
    closed: bool,
}

impl WindowSink {
    /// A window of `size` pixels; it opens on the first frame.
    pub fn new(size: Size) -> Self {
        let settings = OutputSettingsBuilder::new()
            .scale(1)
            .pixel_spacing(0)
            .build();
        Self {
            canvas: SimulatorDisplay::new(size),
            window: Window::new("gan-edge-runtime kiosk", &settings),
            closed: false,
        }
    }

    pub fn present(&mut self) {
        if self.closed {
            return;
        }
        self.window.update(&self.canvas);
        if self.window.events().any(|e| e == SimulatorEvent::Quit) {
            tracing::info!("kiosk window closed");
            self.closed = true;
        }
    }
}

draws_on_canvas!(impl[] WindowSink);
