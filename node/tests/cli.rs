//! The offline CLI, driven as a user would: the real binary on a temp data dir.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_archive-node"));
    c.env_remove("ARCHIVE_NODE_DATA_DIR").env("RUST_LOG", "error");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn keygen() -> (String, String) {
    let out = ok(&["keygen"]);
    let mut lines = out.lines();
    let secret = lines.next().unwrap().strip_prefix("secret: ").unwrap().to_string();
    let public = lines.next().unwrap().strip_prefix("public: ").unwrap().to_string();
    assert_eq!(secret.len(), 64);
    assert!(public.starts_with("0x") && public.len() == 68);
    (secret, public)
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Writes `n` messages a day apart starting at `t0`, signed by `author`.
fn write_messages(path: &Path, author: &str, t0: u64, n: u64) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({"topic": "general", "timestamp": t0 + i * 86_400, "payload": b64(format!("message {i}").as_bytes()), "author_key": author})
                .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

struct Env {
    dir: tempfile::TempDir,
    community: String,
    author: String,
}

impl Env {
    fn new() -> Self {
        Env { dir: tempfile::tempdir().unwrap(), community: keygen().1, author: keygen().0 }
    }
    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
    fn import(&self, file: &str) -> String {
        ok(&["store", "import", "--data-dir", &self.p("data"), "--community", &self.community, &self.p(file)])
    }
    fn build(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let data = self.p("data");
        let out = self.p("out");
        let mut args = vec!["archive", "build", "--data-dir", &data];
        args.extend(["--community", &self.community, "--out", &out]);
        args.extend(extra);
        ok(&args).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

#[test]
fn import_counts_duplicates_and_rejects_with_line_numbers() {
    let env = Env::new();
    write_messages(&env.dir.path().join("m.jsonl"), &env.author, 1_700_000_000, 5);
    assert_eq!(env.import("m.jsonl").trim(), "imported 5, duplicates 0, rejected 0");
    assert_eq!(env.import("m.jsonl").trim(), "imported 0, duplicates 5, rejected 0");

    // A pre-signed line with a hash that does not match, a line with no key, and garbage.
    let bad = [
        serde_json::json!({"topic": "general", "timestamp": 1, "payload": b64(b"x"), "sig": b64(&[0u8; 65]), "hash": b64(&[0u8; 32])}).to_string(),
        serde_json::json!({"topic": "general", "timestamp": 1, "payload": b64(b"x")}).to_string(),
        "{not json".to_string(),
    ];
    std::fs::write(env.dir.path().join("bad.jsonl"), bad.join("\n")).unwrap();
    let out = run(&[
        "store",
        "import",
        "--data-dir",
        &env.p("data"),
        "--community",
        &env.community,
        &env.p("bad.jsonl"),
    ]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "imported 0, duplicates 0, rejected 3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1: rejected: hash does not match"), "{err}");
    assert!(err.contains("line 2: rejected"), "{err}");
    assert!(err.contains("line 3: rejected: invalid JSON"), "{err}");
}

#[test]
fn build_writes_archives_and_index_then_nothing_new() {
    let env = Env::new();
    let t0 = 1_700_000_000;
    write_messages(&env.dir.path().join("m.jsonl"), &env.author, t0, 10);
    env.import("m.jsonl");
    let to = (t0 + 14 * 86_400).to_string();
    let lines = env.build(&["--to", &to]);
    // 10 daily messages over two 7-day windows: 7 + 3.
    let archives: Vec<_> = lines.iter().filter(|l| l.get("id").is_some()).collect();
    assert_eq!(archives.iter().map(|a| a["messages"].as_u64().unwrap()).collect::<Vec<_>>(), vec![7, 3]);
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["archives"], 2);
    for a in &archives {
        let file = env.dir.path().join("out").join(format!("{}.bin", a["id"].as_str().unwrap()));
        assert_eq!(std::fs::metadata(&file).unwrap().len(), a["bytes"].as_u64().unwrap());
        let inspected: serde_json::Value =
            serde_json::from_str(&ok(&["archive", "inspect", &file.display().to_string()])).unwrap();
        assert_eq!(inspected["type"], "archive");
        assert_eq!(inspected["messages"].as_array().unwrap().len() as u64, a["messages"].as_u64().unwrap());
    }
    let index: serde_json::Value =
        serde_json::from_str(&ok(&["archive", "inspect", &env.p("out/index.bin")])).unwrap();
    let mut ids: Vec<_> = index["archives"].as_array().unwrap().iter().map(|e| e["id"].clone()).collect();
    let mut built: Vec<_> = archives.iter().map(|a| a["id"].clone()).collect();
    ids.sort_by_key(|v| v.to_string());
    built.sort_by_key(|v| v.to_string());
    assert_eq!(ids, built);

    // Again, with no new messages: nothing is created.
    let later = (t0 + 30 * 86_400).to_string();
    let again = env.build(&["--to", &later]);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["summary"]["archives"], 0);
    assert_eq!(std::fs::read_dir(env.dir.path().join("out")).unwrap().count(), 3);
}

#[test]
fn sealed_archives_open_only_with_the_key() {
    let env = Env::new();
    write_messages(&env.dir.path().join("m.jsonl"), &env.author, 1_700_000_000, 3);
    env.import("m.jsonl");
    let key = "11".repeat(32);
    let lines = env.build(&["--to", "1800000000", "--key", &key]);
    let id = lines[0]["id"].as_str().unwrap().to_string();
    let file = env.p(&format!("out/{id}.bin"));

    let opened = ok(&["archive", "inspect", &file, "--key", &key]);
    assert!(opened.contains("\"type\":\"archive\""));
    let index = ok(&["archive", "inspect", &env.p("out/index.bin"), "--key", &key]);
    assert!(index.contains(&id));

    for args in
        [vec!["archive", "inspect", &file], vec!["archive", "inspect", &file, "--key", &"22".repeat(32)]]
    {
        let out = run(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("wrong key"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn errors_are_one_line_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d").display().to_string();
    let out = run(&["archive", "inspect", "/definitely/not/here"]);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1);

    let (_, c) = keygen();
    let out = run(&[
        "archive",
        "build",
        "--data-dir",
        &data,
        "--community",
        &c,
        "--partition",
        "0",
        "--out",
        &data,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--partition"));

    // A data dir held by another process (e.g. a running daemon) is refused clearly.
    std::fs::create_dir_all(&data).unwrap();
    let _held = archive_node::db::Db::open(&dir.path().join("d").join("db")).unwrap();
    let f = dir.path().join("m.jsonl");
    std::fs::write(&f, "").unwrap();
    let out = run(&["store", "import", "--data-dir", &data, "--community", &c, &f.display().to_string()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another process"), "{err}");
}
