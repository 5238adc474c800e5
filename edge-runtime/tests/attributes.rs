//! Faces on demand with the shipped attribute-conditional model: `generate --attr`, the kiosk's
//! HTTP parameters, its page's pickers and its keys (through a pipe), in the real binary.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{edge, eventually, faces_attr_model, fails_with, free_port, http, model};

#[test]
fn generate_draws_the_asked_attributes_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let m = faces_attr_model();
    let m = m.to_str().unwrap();
    let png = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let args = [
            &["generate", "--model", m, "--count", "4", "--seed", "5"][..],
            extra,
            &["--out", out.to_str().unwrap()],
        ]
        .concat();
        let o = edge(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        image::open(&out).unwrap().to_rgb8()
    };
    let green = png(
        "green.png",
        &["--attr", "hairColor=3eac2c", "--attr", "glasses=variant02"],
    );
    assert_eq!(green.dimensions(), (2 * 65 + 1, 2 * 65 + 1));
    assert_eq!(
        green,
        png(
            "again.png",
            &["--attr", "hairColor=3eac2c", "--attr", "glasses=variant02"]
        )
    );
    // One row of the same four faces.
    let row = png(
        "row.png",
        &[
            "--attr",
            "hairColor=3eac2c",
            "--attr",
            "glasses=variant02",
            "--columns",
            "4",
        ],
    );
    assert_eq!(row.dimensions(), (4 * 65 + 1, 65 + 1));
    let cell = |img: &image::RgbImage, column: u32, line: u32| {
        image::imageops::crop_imm(img, 1 + 65 * column, 1 + 65 * line, 64, 64).to_image()
    };
    for i in 0..4 {
        assert_eq!(cell(&row, i, 0), cell(&green, i % 2, i / 2), "face {i}");
    }
    let white = png(
        "white.png",
        &["--attr", "hairColor=afafaf", "--attr", "glasses=variant02"],
    );
    assert_ne!(green, white, "the hair colour asked for changes the faces");
    png("open.png", &[]);
    let out = dir.path().join("never.png");
    let out = out.to_str().unwrap();
    for (attr, wanted) in [
        (
            "hair=curly",
            &["attribute `hair` has no class `curly`", "long01", "short19"][..],
        ),
        (
            "hat=red",
            &["unknown attribute `hat`", "hair, hairColor, skinColor"],
        ),
        ("hair", &["not name=class"]),
    ] {
        fails_with(
            &edge(&["generate", "--model", m, "--attr", attr, "--out", out]),
            wanted,
        );
    }
    fails_with(
        &edge(&["generate", "--model", m, "--label", "3", "--out", out]),
        &["asked for attributes", "not a label"],
    );
    let digits = model();
    fails_with(
        &edge(&[
            "generate",
            "--model",
            digits.to_str().unwrap(),
            "--attr",
            "hair=long01",
            "--out",
            out,
        ]),
        &["takes no attributes"],
    );
    assert!(!std::path::Path::new(out).exists());
}

/// The hair classes of the faces labels, sorted as the model's.
fn hair_classes() -> Vec<String> {
    (1..=26)
        .map(|i| format!("long{i:02}"))
        .chain((1..=19).map(|i| format!("short{i:02}")))
        .collect()
}

#[test]
fn the_kiosk_takes_attributes_by_http_page_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let spec = format!("png:{}", dir.path().join("frame.png").display());
    let m = faces_attr_model();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge-runtime"))
        .args(["kiosk", "--model", m.to_str().unwrap(), "--display", &spec])
        .args(["--http", &addr, "--interval", "0", "--seed", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "kiosk did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    let request = |method: &str, path: &str| {
        http(
            port,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    let frame = || -> (u64, String) {
        let (_, json) = request("GET", "/frame.json");
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        (
            json["number"].as_u64().unwrap_or(0),
            json["caption"].as_str().unwrap_or("").to_string(),
        )
    };
    let after = |n: u64| {
        eventually(&format!("frame {n}"), || frame().0 >= n);
        frame().1
    };
    // Caption: "<selected attribute> <its class shown>[ (k fixed)]  seed S".
    let first = after(1);
    assert!(
        first.starts_with("hair ") && !first.contains("fixed"),
        "{first}"
    );

    let fixed_set = || -> serde_json::Value {
        let (_, json) = request("GET", "/frame.json");
        serde_json::from_slice::<serde_json::Value>(&json).unwrap()["fixed"].clone()
    };
    assert_eq!(fixed_set(), serde_json::json!({}));

    let mut stdin = child.stdin.take().unwrap();
    let mut key = |line: &str| writeln!(stdin, "{line}").unwrap();
    key("glasses=variant02");
    let fixed = after(2);
    assert!(fixed.contains("(1 fixed)"), "{fixed}");
    // What keys fixed, the page shows: in /frame.json and as the pickers' selection.
    assert_eq!(fixed_set(), serde_json::json!({"glasses": "variant02"}));
    let (_, page) = request("GET", "/");
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("<option selected>variant02</option>"),
        "the glasses picker shows variant02"
    );
    assert_eq!(
        page.matches(" selected>").count(),
        1,
        "only glasses is fixed"
    );
    // `+` steps the hair on the same face (same seed) from the class shown to the next one.
    key("+");
    let stepped = after(3);
    let class = |caption: &str| caption.split_whitespace().nth(1).unwrap().to_string();
    let seed = |caption: &str| caption.rsplit(' ').next().unwrap().to_string();
    let hair = hair_classes();
    let at = hair.iter().position(|h| *h == class(&fixed)).unwrap();
    assert_eq!(
        class(&stepped),
        hair[(at + 1) % hair.len()],
        "{fixed} → {stepped}"
    );
    assert_eq!(seed(&stepped), seed(&fixed), "the same face");
    assert!(stepped.contains("(2 fixed)"), "{stepped}");
    key("a");
    assert!(
        after(4).starts_with("hairColor "),
        "the next attribute is chosen"
    );
    key("nonsense=1");
    // The page's pickers: POST /attributes with no pairs un-fixes everything.
    assert_eq!(request("POST", "/attributes").0, 202);
    let open = after(5);
    assert!(!open.contains("fixed"), "{open}");
    assert_eq!(
        request("POST", "/attributes?glasses=variant02&hair=long03").0,
        202
    );
    assert!(after(6).contains("(2 fixed)"));

    let (status, page) = request("GET", "/");
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page);
    for want in [
        "<select data-attr=\"glasses\"",
        "<option>variant02</option>",
        "<option value=\"\">any</option>",
    ] {
        assert!(page.contains(want), "no {want} in the page");
    }
    let (status, png) = request(
        "GET",
        "/image.png?hairColor=3eac2c&glasses=variant02&seed=4",
    );
    assert_eq!(status, 200);
    assert_eq!(
        request(
            "GET",
            "/image.png?hairColor=3eac2c&glasses=variant02&seed=4"
        )
        .1,
        png
    );
    assert_ne!(
        request(
            "GET",
            "/image.png?hairColor=afafaf&glasses=variant02&seed=4"
        )
        .1,
        png
    );
    for (path, wanted) in [
        ("/image.png?hair=curly", "no class `curly`"),
        ("/image.png?hat=red", "unknown attribute `hat`"),
        ("/image.png?label=3", "not a label"),
        ("/image.png?hair=long01&hair=long02", "given twice"),
    ] {
        let (status, body) = request("GET", path);
        assert_eq!(status, 400, "{path}");
        assert!(String::from_utf8_lossy(&body).contains(wanted), "{path}");
    }
    key("q");
    let status = child.wait().unwrap();
    assert!(status.success(), "kiosk exit {status}");
}
