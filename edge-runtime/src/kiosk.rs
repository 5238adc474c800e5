//! The kiosk loop: shows a new image on demand (stdin keys, HTTP) and by timer, or walks the
//! latent space smoothly; display errors are logged and retried, a replaced model file is
//! reloaded (a removed or broken one leaves the loaded model running), SIGTERM/SIGINT end it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embedded_graphics::geometry::OriginDimensions;

use gan_contract::AttributeRequest;

use crate::ask::Ask;
use crate::canvas::Canvas;
use crate::display::Display;
use crate::error::Result;
use crate::latent::{sample, slerp};
use crate::latest_frame::{Frame, LatestFrame};
use crate::model::Generator;
use crate::model_watch::{Change, ModelWatch};
use crate::screen::{self, Picture};

/// How often the model file is looked at.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What can make the kiosk change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new image (with this class, if given; with exactly these attributes fixed, if given,
    /// the others drawn afresh; else with the fixed ones kept).
    Next {
        label: Option<usize>,
        attributes: Option<AttributeRequest>,
    },
    /// Attribute models: the same face with the chosen attribute's class stepped by `delta`
    /// (from the class shown), which then stays fixed.
    Step {
        delta: i64,
    },
    /// Attribute models: choose another attribute for [`Event::Step`] (by `delta` in the list).
    Select {
        delta: i64,
    },
    /// Load the model file again (HTTP POST /reload, key r, SIGHUP).
    Reload,
    Quit,
}

pub struct KioskOptions {
    /// New image this often (None: only on demand).
    pub interval: Option<Duration>,
    /// Latent walk at this many frames per second, `steps` frames between two latent points.
    pub walk: Option<(f32, u32)>,
    pub seed: u64,
    /// Stop after this many frames (demos, tests, soak runs).
    pub frames: Option<u64>,
}

/// Where the walk is: from latent `a` to `b`, frame `step` of `steps`.
struct Walk {
    a: Vec<f32>,
    b: Vec<f32>,
    step: u32,
    steps: u32,
}

pub struct Kiosk {
    generator: Arc<Mutex<Generator>>,
    display: Display,
    options: KioskOptions,
    seed: u64,
    /// Class chosen by the user (kept until another is chosen); otherwise classes cycle.
    fixed_label: Option<usize>,
    /// Attributes fixed by the user (kept until changed); the others are drawn per image.
    fixed_attributes: AttributeRequest,
    /// The attribute [`Event::Step`] changes.
    selected: usize,
    /// The condition values of the image on screen.
    shown: Vec<i64>,
    walk: Option<Walk>,
    watch: Option<ModelWatch>,
    /// Where each drawn screen is also published (for the web page), if anywhere.
    latest: Option<Arc<LatestFrame>>,
    pub frames_shown: u64,
    pub display_errors: u64,
    pub reloads: u64,
}

impl Kiosk {
    pub fn new(generator: Arc<Mutex<Generator>>, display: Display, options: KioskOptions) -> Self {
        let seed = options.seed;
        Self {
            generator,
            display,
            options,
            seed,
            fixed_label: None,
            fixed_attributes: AttributeRequest::default(),
            selected: 0,
            shown: Vec::new(),
            walk: None,
            watch: None,
            latest: None,
            frames_shown: 0,
            display_errors: 0,
            reloads: 0,
        }
    }

    /// Publish every screen drawn, with its caption, to `latest`.
    pub fn publish_to(&mut self, latest: Arc<LatestFrame>) {
        self.latest = Some(latest);
    }

    /// Follow the model file: reload it when it changes or on [`Event::Reload`].
    pub fn watch_model(&mut self, watch: ModelWatch) {
        self.watch = Some(watch);
    }

    /// Reloads the model if its file changed (always, when `force`).
    pub fn check_model(&mut self, force: bool) {
        let Some(watch) = &mut self.watch else {
            if force {
                tracing::warn!("reload asked for, but this kiosk does not follow a model file");
            }
            return;
        };
        if watch.check(&self.generator, force) == Change::Reloaded {
            self.reloads += 1;
            // The new model may have another latent size or class list.
            self.walk = None;
        }
    }

    /// Moves on to a new image (with this class, if given; with exactly these attributes fixed,
    /// if given).
    pub fn advance(&mut self, label: Option<usize>, attributes: Option<AttributeRequest>) {
        self.seed = self.seed.wrapping_add(1);
        if label.is_some() {
            self.fixed_label = label;
        }
        if let Some(attributes) = attributes {
            self.fixed_attributes = attributes;
        }
        self.walk = None;
    }

    /// Steps the selected attribute's class by `delta` from the one shown, and fixes it; the
    /// latent and the other attributes stay, so only that part of the face changes.
    pub fn step(&mut self, delta: i64) {
        let classes = self.attribute_classes();
        let k = self.selected;
        let (Some(&count), Some(&shown)) = (classes.get(k), self.shown.get(k)) else {
            tracing::warn!("this model has no attributes to step");
            return;
        };
        let class = (shown + delta).rem_euclid(count as i64) as usize;
        self.fixed_attributes.fixed.resize(classes.len(), None);
        self.fixed_attributes.fixed[k] = Some(class);
    }

    /// Chooses the attribute `delta` places on in the list.
    pub fn select(&mut self, delta: i64) {
        let count = self.attribute_classes().len();
        if count > 0 {
            self.selected = (self.selected as i64 + delta).rem_euclid(count as i64) as usize;
        }
    }

    /// The class count of each attribute of the loaded model.
    fn attribute_classes(&self) -> Vec<usize> {
        self.generator.lock().map_or_else(
            |_| Vec::new(),
            |g| g.info.attributes.iter().map(|a| a.classes.len()).collect(),
        )
    }

    /// What the current frame asks for, made to fit the loaded model (a reloaded one may have
    /// other classes or attributes).
    fn ask(&mut self, g: &Generator) -> Ask {
        let classes = g.info.num_classes();
        if self.fixed_label.is_some_and(|l| l >= classes) {
            self.fixed_label = None;
        }
        let attributes = &g.info.attributes;
        let fits = self.fixed_attributes.fixed.len() <= attributes.len()
            && self
                .fixed_attributes
                .fixed
                .iter()
                .zip(attributes)
                .all(|(c, a)| c.is_none_or(|c| c < a.classes.len()));
        if !fits {
            self.fixed_attributes = AttributeRequest::default();
        }
        self.fixed_attributes.fixed.resize(attributes.len(), None);
        if self.selected >= attributes.len() {
            self.selected = 0;
        }
        let label = (classes > 0).then(|| {
            self.fixed_label
                .unwrap_or((self.seed % classes as u64) as usize)
        });
        Ask {
            label,
            attributes: self.fixed_attributes.clone(),
        }
    }

    /// Latent and conditions of the current frame.
    fn current(&mut self, g: &Generator) -> (Vec<f32>, Ask) {
        let dim = g.info.latent_dim;
        if self.walk.as_ref().is_some_and(|w| w.a.len() != dim) {
            self.walk = None;
        }
        let label = self.ask(g);
        match self.options.walk {
            None => (sample(self.seed, 1, dim), label),
            Some((_, steps)) => {
                let seed = self.seed;
                let w = self.walk.get_or_insert_with(|| Walk {
                    a: sample(seed, 1, dim),
                    b: sample(seed.wrapping_add(1), 1, dim),
                    step: 0,
                    steps: steps.max(1),
                });
                let z = slerp(&w.a, &w.b, w.step as f32 / w.steps as f32);
                w.step += 1;
                if w.step > w.steps {
                    self.seed = self.seed.wrapping_add(1);
                    let next = sample(self.seed.wrapping_add(1), 1, dim);
                    w.a = std::mem::replace(&mut w.b, next);
                    w.step = 1;
                }
                (z, label)
            }
        }
    }

    /// Generates and shows one frame; returns the generation time.
    pub fn show(&mut self) -> Result<Duration> {
        let generator = Arc::clone(&self.generator);
        let mut g = generator
            .lock()
            .map_err(|_| crate::error::EdgeError::Runtime("generator lock poisoned".into()))?;
        let (z, ask) = self.current(&g);
        let conditions = ask.conditions(&g.info, 1, self.seed);
        let started = Instant::now();
        let image = g.generate(&z, &conditions)?;
        let took = started.elapsed();
        self.shown = conditions;
        let info = &g.info;
        let caption = match (ask.label, info.attributes.get(self.selected)) {
            (None, Some(a)) => {
                let fixed = ask.attributes.fixed.iter().flatten().count();
                format!(
                    "{} {}{}  seed {}",
                    a.name,
                    a.classes[self.shown[self.selected] as usize],
                    if fixed > 0 {
                        format!(" ({fixed} fixed)")
                    } else {
                        String::new()
                    },
                    self.seed
                )
            }
            (Some(l), _) => format!(
                "{} {}  seed {}",
                if info.dataset == "mnist" {
                    "digit"
                } else {
                    "class"
                },
                info.class_names[l],
                self.seed
            ),
            (None, None) => format!("seed {}", self.seed),
        };
        let status = format!(
            "{} | {:.1} ms | #{}",
            info.name,
            took.as_secs_f64() * 1e3,
            self.frames_shown + 1
        );
        let picture = Picture {
            data: &image,
            channels: info.channels,
            height: info.height,
            width: info.width,
        };
        let _ = screen::draw(&mut self.display, &picture, &caption, &status);
        if let Some(latest) = &self.latest {
            let mut screen = Canvas::new(self.display.size());
            let _ = screen::draw(&mut screen, &picture, &caption, &status);
            let fixed = ask
                .attributes
                .fixed
                .iter()
                .zip(&info.attributes)
                .filter_map(|(class, a)| Some((a.name.clone(), a.classes[(*class)?].clone())))
                .collect();
            latest.set(Frame {
                // Every drawn frame ends shown or as a display error.
                number: self.frames_shown + self.display_errors + 1,
                caption,
                fixed,
                screen,
            });
        }
        drop(g);
        match self.display.present() {
            Ok(()) => self.frames_shown += 1,
            Err(e) => {
                // Not fatal: the next frame tries again (and reopens the device).
                self.display_errors += 1;
                tracing::warn!("display write failed, will retry: {e}");
            }
        }
        Ok(took)
    }

    /// Runs until `q`, a signal, or the frame limit.
    pub fn run(&mut self, events: Receiver<Event>, stop: &AtomicBool) -> Result<()> {
        let tick = match (self.options.walk, self.options.interval) {
            (Some((fps, _)), _) => Some(Duration::from_secs_f32(1.0 / fps.max(0.1))),
            (None, interval) => interval,
        };
        let mut next_at = tick.map(|t| Instant::now() + t);
        let mut watch_at = Instant::now() + WATCH_EVERY;
        loop {
            if let Err(e) = self.show() {
                tracing::warn!("frame failed: {e}");
            }
            if self
                .options
                .frames
                .is_some_and(|n| self.frames_shown + self.display_errors >= n)
            {
                return Ok(());
            }
            // Wait for an event or the next tick, waking every 100 ms to notice signals.
            loop {
                if stop.load(Ordering::SeqCst) {
                    tracing::info!("signal received, exiting");
                    return Ok(());
                }
                if Instant::now() >= watch_at {
                    watch_at = Instant::now() + WATCH_EVERY;
                    let before = self.reloads;
                    self.check_model(false);
                    if self.reloads > before {
                        break;
                    }
                }
                let wait = next_at.map_or(Duration::from_millis(100), |t| {
                    t.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(100))
                });
                let event = match events.recv_timeout(wait) {
                    Ok(event) => Some(event),
                    Err(RecvTimeoutError::Timeout) => None,
                    // Every sender gone (stdin closed, no HTTP): only the timer or signals remain.
                    Err(RecvTimeoutError::Disconnected) => {
                        if tick.is_none() {
                            return Ok(());
                        }
                        std::thread::sleep(wait);
                        None
                    }
                };
                match event {
                    Some(Event::Quit) => return Ok(()),
                    Some(Event::Reload) => {
                        self.check_model(true);
                        break;
                    }
                    Some(Event::Next { label, attributes }) => {
                        self.advance(label, attributes);
                        break;
                    }
                    Some(Event::Step { delta }) => {
                        self.step(delta);
                        break;
                    }
                    Some(Event::Select { delta }) => {
                        self.select(delta);
                        break;
                    }
                    None => {
                        if let (Some(t), Some(tick)) = (next_at, tick) {
                            if Instant::now() >= t {
                                next_at = Some(t + tick);
                                if self.options.walk.is_none() {
                                    self.advance(None, None);
                                }
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A channel for kiosk events.
pub fn channel() -> (Sender<Event>, Receiver<Event>) {
    mpsc::channel()
}
