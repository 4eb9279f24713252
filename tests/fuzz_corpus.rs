//! Replays every checked-in fuzz seed through its library entry point, so `cargo test`
//! catches a regression on inputs the fuzzers once found interesting.
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        // Hidden files are libFuzzer's scratch, not seeds.
        if path
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: seed {} failed", path.display());
        n += 1;
    }
    assert!(n > 0, "no seeds in {}", dir.display());
}

#[test]
fn request_framing_corpus() {
    replay("request_framing", sessiongate::fuzzing::request_framing);
}

#[test]
fn chunked_decoding_corpus() {
    replay("chunked_decoding", sessiongate::fuzzing::chunked_decoding);
}

#[test]
fn response_head_corpus() {
    replay("response_head", sessiongate::fuzzing::response_head);
}

#[test]
fn cookie_parsing_corpus() {
    replay("cookie_parsing", sessiongate::fuzzing::cookie_parsing);
}

#[test]
fn jwt_logout_token_corpus() {
    replay("jwt_logout_token", sessiongate::fuzzing::jwt_logout_token);
}

#[test]
fn config_loading_corpus() {
    replay("config_loading", sessiongate::fuzzing::config_loading);
}

/// Every fuzz target has a corpus replayed above, and every corpus a target.
#[test]
fn every_target_is_replayed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut targets: Vec<String> = std::fs::read_dir(root.join("fuzz_targets"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            p.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    targets.sort();
    let mut corpora: Vec<String> = std::fs::read_dir(root.join("corpus"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    corpora.sort();
    assert_eq!(targets, corpora);
    assert_eq!(
        targets,
        [
            "chunked_decoding",
            "config_loading",
            "cookie_parsing",
            "jwt_logout_token",
            "request_framing",
            "response_head"
        ]
    );
}
