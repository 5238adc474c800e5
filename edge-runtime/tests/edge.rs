//! The edge runtime with the real ONNX Runtime library and the shipped MNIST generator:
//! generated PNGs, the framebuffer-file sink in both pixel formats, the HTTP endpoint on
//! loopback, and bad input.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use gan_edge_runtime::framebuffer::{Framebuffer, Geometry, PixelFormat};

mod common;
use common::{
    edge, eventually, faces_model, fails_with, fixture, free_port, http, kiosk, model, stop,
};

fn generate_png(seed: &str, extra: &[&str]) -> image::RgbImage {
    let m = model();
    let mut args = vec![
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--count",
        "10",
        "--seed",
        seed,
        "--out",
        "-",
    ];
    args.extend(extra);
    let o = edge(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    image::load_from_memory(&o.stdout)
        .expect("stdout is a PNG")
        .to_rgb8()
}

#[test]
fn generate_writes_real_pngs_that_depend_on_the_seed() {
    let a = generate_png("1", &[]);
    // 10 digits of 28×28 in one row of 10 columns with a 1-pixel border.
    assert_eq!(a.dimensions(), (10 * 29 + 1, 29 + 1));
    let values: Vec<u8> = a.pixels().map(|p| p[0]).collect();
    assert!(
        values.iter().any(|&v| v > 200) && values.iter().any(|&v| v < 30),
        "digits are light on dark"
    );
    assert!(
        a.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
        "MNIST is gray"
    );
    assert_eq!(a, generate_png("1", &[]), "same seed, same image");
    assert_ne!(a, generate_png("2", &[]), "different seeds differ");
    assert_ne!(
        generate_png("1", &["--label", "3"]),
        generate_png("1", &["--label", "8"])
    );
    // --out to a file, scaled.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.png");
    let m = model();
    let o = edge(&[
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--count",
        "4",
        "--label-name",
        "7",
        "--scale",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(image::open(&out).unwrap().width(), (2 * 29 + 1) * 3);
}

#[test]
fn framebuffer_file_pixels_in_both_formats() {
    for (format, bpp) in [(PixelFormat::Rgb565, 2usize), (PixelFormat::Xrgb8888, 4)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fb");
        let mut fb = Framebuffer::open_file(&path, Geometry::packed(8, 4, format)).unwrap();
        fb.clear(Rgb888::BLACK).unwrap();
        Rectangle::new(Point::new(2, 1), Size::new(3, 2))
            .into_styled(PrimitiveStyle::with_fill(Rgb888::new(255, 0, 0)))
            .draw(&mut fb)
            .unwrap();
        Pixel(Point::new(7, 3), Rgb888::new(0, 0, 255))
            .draw(&mut fb)
            .unwrap();
        Pixel(Point::new(99, 99), Rgb888::WHITE)
            .draw(&mut fb)
            .unwrap(); // clipped, not a panic
        fb.present().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 8 * 4 * bpp);
        let at = |x: usize, y: usize| format.decode(&bytes[(y * 8 + x) * bpp..]);
        assert_eq!(at(2, 1), Rgb888::RED);
        assert_eq!(at(4, 2), Rgb888::RED);
        assert_eq!(at(5, 2), Rgb888::BLACK);
        assert_eq!(at(7, 3), Rgb888::BLUE);
        if format == PixelFormat::Rgb565 {
            assert_eq!(&bytes[(8 + 2) * 2..(8 + 2) * 2 + 2], &[0x00, 0xf8]);
        } else {
            assert_eq!(&bytes[(8 + 2) * 4..(8 + 2) * 4 + 4], &[0, 0, 255, 255]);
        }
    }
}

/// The kiosk's framebuffer frame shows the same picture as its PNG frame (same seed).
#[test]
fn kiosk_draws_the_same_screen_on_framebuffer_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let png = dir.path().join("k.png");
    let common = [
        "--model",
        m.to_str().unwrap(),
        "--frames",
        "1",
        "--seed",
        "7",
        "--no-http",
        "--no-stdin",
    ];
    let mut a = vec!["kiosk", "--display"];
    let png_spec = format!("png:{}", png.display());
    a.push(&png_spec);
    a.extend(["--size", "160x120"]);
    a.extend(common);
    assert!(edge(&a).status.success());
    let expected = image::open(&png).unwrap().to_rgb8();
    for (name, format, tol) in [
        ("rgb565", PixelFormat::Rgb565, 8i32),
        ("xrgb8888", PixelFormat::Xrgb8888, 0),
    ] {
        let fb = dir.path().join(format!("fb-{name}"));
        let spec = format!("fb:{}", fb.display());
        let mut b = vec![
            "kiosk",
            "--display",
            &spec,
            "--fb-geometry",
            "160x120",
            "--fb-format",
            name,
        ];
        b.extend(common);
        let o = edge(&b);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let bytes = std::fs::read(&fb).unwrap();
        let bpp = format.bytes_per_pixel();
        assert_eq!(bytes.len(), 160 * 120 * bpp);
        // Compare the picture and caption (the status line carries a timing that differs).
        let mut lit = 0;
        for y in 0..100 {
            for x in 0..160 {
                let got = format.decode(&bytes[(y * 160 + x) * bpp..]);
                let want = expected.get_pixel(x as u32, y as u32);
                for (g, w) in [(got.r(), want[0]), (got.g(), want[1]), (got.b(), want[2])] {
                    assert!(
                        (g as i32 - w as i32).abs() <= tol,
                        "{name} pixel ({x},{y}): {got:?} vs {want:?}"
                    );
                }
                lit += (got.g() > 128) as usize;
            }
        }
        assert!(
            lit > 200,
            "{name}: the digit is drawn ({lit} bright pixels)"
        );
    }
}

#[test]
fn http_endpoint_answers_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let spec = format!("png:{}", dir.path().join("k.png").display());
    let m = model();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge-runtime"))
        .args([
            "kiosk",
            "--model",
            m.to_str().unwrap(),
            "--display",
            &spec,
            "--http",
            &addr,
            "--interval",
            "0",
            "--no-stdin",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "kiosk did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    let get = |path: &str| {
        http(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
    };
    let (status, body) = get("/image.png?label=3&seed=9");
    assert_eq!(status, 200);
    let img = image::load_from_memory(&body).unwrap();
    assert_eq!((img.width(), img.height()), (30 * 8, 30 * 8));
    assert_eq!(
        get("/image.png?label=3&seed=9").1,
        body,
        "same request, same image"
    );
    assert_eq!(get("/image.png?count=4&seed=1").0, 200);
    let (status, page) = get("/");
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("/frame.png") && page.contains(">7</button>"),
        "{page}"
    );
    // The screen the kiosk drew last, and its caption.
    eventually("a frame drawn", || get("/frame.png").0 == 200);
    let (_, frame) = get("/frame.png");
    assert_eq!(image::load_from_memory(&frame).unwrap().width(), 320);
    let (_, json) = get("/frame.json");
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert!(json["number"].as_u64().unwrap() >= 1, "{json}");
    assert!(json["caption"].as_str().unwrap().contains("seed"), "{json}");
    for junk in [
        "/image.png?seed=abc",
        "/image.png?label=11",
        "/image.png?count=100000",
        "/image.png?zzz=1",
        "/image.png?label=%3Cscript%3E",
    ] {
        assert_eq!(get(junk).0, 400, "{junk}");
    }
    assert_eq!(get("/etc/passwd").0, 404);
    let (status, _) = http(
        port,
        "POST /next?label=5 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 202);
    let (status, body) = http(
        port,
        "POST /attributes?hair=long01 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    // Still serving after the junk.
    assert_eq!(get("/image.png?seed=2").0, 200);
    // SIGTERM ends it cleanly.
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
}

#[test]
fn bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let m = m.to_str().unwrap();
    fails_with(
        &edge(&["generate", "--model", "/no/model.onnx", "--out", "-"]),
        &["/no/model.onnx", "cannot read"],
    );
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"definitely not protobuf").unwrap();
    fails_with(
        &edge(&["generate", "--model", junk.to_str().unwrap(), "--out", "-"]),
        &["junk.onnx", "not a loadable ONNX model"],
    );
    fails_with(
        &edge(&["generate", "--model", m, "--label", "12", "--out", "-"]),
        &["unknown label `12`"],
    );
    fails_with(
        &edge(&[
            "generate",
            "--model",
            m,
            "--label-name",
            "seven",
            "--out",
            "-",
        ]),
        &["unknown label `seven`"],
    );
    fails_with(
        &edge(&["generate", "--model", m, "--count", "0", "--out", "-"]),
        &["--count"],
    );
    fails_with(
        &edge(&["generate", "--model", m, "--count", "100000", "--out", "-"]),
        &["--count"],
    );
    fails_with(
        &edge(&[
            "generate",
            "--model",
            m,
            "--count",
            "4",
            "--columns",
            "5",
            "--out",
            "-",
        ]),
        &["--columns", "1..=--count (4)"],
    );
    fails_with(
        &edge(&[
            "kiosk",
            "--model",
            m,
            "--display",
            "fb:/dev/fb-does-not-exist",
            "--no-http",
            "--no-stdin",
        ]),
        &["/dev/fb-does-not-exist", "cannot open"],
    );
    let fb = dir.path().join("fb");
    let spec = format!("fb:{}", fb.display());
    fails_with(
        &edge(&[
            "kiosk",
            "--model",
            m,
            "--display",
            &spec,
            "--fb-geometry",
            "10x10",
            "--fb-format",
            "bgr233",
            "--no-http",
            "--no-stdin",
        ]),
        &["bgr233"],
    );
    // A regular file without a geometry is not a framebuffer device.
    std::fs::write(&fb, [0u8; 16]).unwrap();
    fails_with(
        &edge(&[
            "kiosk",
            "--model",
            m,
            "--display",
            &spec,
            "--no-http",
            "--no-stdin",
        ]),
        &["not a framebuffer device", "--fb-geometry"],
    );
    fails_with(
        &edge(&[
            "kiosk",
            "--model",
            m,
            "--display",
            "hdmi",
            "--no-http",
            "--no-stdin",
        ]),
        &["unknown display"],
    );
}

#[test]
fn models_that_break_the_contract_are_refused_and_unconditional_ones_work() {
    let no_meta = fixture("no-metadata.onnx");
    fails_with(
        &edge(&["generate", "--model", &no_meta, "--out", "-"]),
        &["no-metadata.onnx", "metadata lacks"],
    );
    let wrong = fixture("wrong-input.onnx");
    fails_with(
        &edge(&["generate", "--model", &wrong, "--out", "-"]),
        &["wrong-input.onnx", "inputs are [\"noise\"]"],
    );
    let tiny = fixture("tiny-unconditional.onnx");
    fails_with(
        &edge(&["generate", "--model", &tiny, "--label", "1", "--out", "-"]),
        &["unconditional"],
    );
    let o = edge(&[
        "generate", "--model", &tiny, "--count", "4", "--seed", "3", "--out", "-",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 2×2 grid of 2×2 images with a 1-pixel border.
    assert_eq!(
        image::load_from_memory(&o.stdout).unwrap().width(),
        2 * 3 + 1
    );
}

/// `--model` picks what the kiosk shows: the shipped faces model draws colour faces, different
/// ones for different latents, and its card's attribution reaches the HTTP page.
#[test]
fn the_shipped_faces_model_draws_colour_faces() {
    let m = faces_model();
    let m = m.to_str().unwrap();
    let grid = |seed: &str| {
        let o = edge(&[
            "generate", "--model", m, "--count", "16", "--seed", seed, "--out", "-",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        image::load_from_memory(&o.stdout).unwrap().to_rgb8()
    };
    let a = grid("1");
    // 4×4 faces of 64×64 with a 1-pixel border.
    assert_eq!(a.dimensions(), (4 * 65 + 1, 4 * 65 + 1));
    let coloured = a
        .pixels()
        .filter(|p| p[0].abs_diff(p[1]) > 40 || p[1].abs_diff(p[2]) > 40)
        .count();
    assert!(coloured > 2_000, "faces are in colour ({coloured} pixels)");
    let face = |img: &image::RgbImage, i: u32| {
        image::imageops::crop_imm(img, 1 + 65 * (i % 4), 1 + 65 * (i / 4), 64, 64).to_image()
    };
    for i in 1..16 {
        assert_ne!(face(&a, 0), face(&a, i), "face {i} repeats face 0");
    }
    assert_ne!(a, grid("2"));

    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("k.png");
    let spec = format!("png:{}", png.display());
    let o = edge(&[
        "kiosk",
        "--model",
        m,
        "--display",
        &spec,
        "--size",
        "160x120",
        "--frames",
        "2",
        "--seed",
        "5",
        "--no-http",
        "--no-stdin",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let frame = image::open(&png).unwrap().to_rgb8();
    assert!(
        frame.pixels().any(|p| p[0].abs_diff(p[2]) > 40),
        "a colour face on screen"
    );

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = kiosk(
        &[
            "--model",
            m,
            "--display",
            &spec,
            "--size",
            "160x120",
            "--no-stdin",
            "--http",
            &addr,
        ],
        &dir.path().join("kiosk.log"),
    );
    eventually("the kiosk listens", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let (status, body) = http(
        port,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    stop(child);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("Lisa Wischofsky"));
}

#[test]
fn a_missing_library_names_the_fix() {
    let m = model();
    let o = Command::new(env!("CARGO_BIN_EXE_edge-runtime"))
        .args([
            "generate",
            "--model",
            m.to_str().unwrap(),
            "--out",
            "-",
            "--ort-lib",
            "/nowhere/libonnxruntime.so",
        ])
        .env("ORT_DYLIB_PATH", "/nowhere/either.so")
        .output()
        .unwrap();
    // A named library that is missing is reported (with the fix), even though a fetched one exists.
    fails_with(
        &o,
        &[
            "/nowhere/libonnxruntime.so",
            "does not exist",
            "scripts/fetch-onnxruntime",
        ],
    );
}
