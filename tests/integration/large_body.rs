//! Bodies are streamed, never buffered whole: large transfers leave the gateway's peak
//! resident memory (VmHWM) far below the body size.

use std::io::Write;
use std::thread;

use crate::backend::{pattern, Backend, Reply};
use crate::client::HOST;
use crate::harness::Gateway;

const RSS_LIMIT_KIB: u64 = 64 * 1024;

fn counting_backend() -> Backend {
    Backend::counting(|r| Reply::ok().body(format!("{}", r.body_len)))
}

fn assert_small_rss(gw: &Gateway, what: &str) {
    let peak = gw.peak_rss_kib();
    eprintln!("{what}: gateway peak RSS {peak} KiB");
    assert!(
        peak < RSS_LIMIT_KIB,
        "{what}: gateway peak RSS {peak} KiB, limit {RSS_LIMIT_KIB} KiB"
    );
}

#[test]
fn one_gib_upload_with_content_length() {
    const LEN: u64 = 1 << 30;
    let backend = counting_backend();
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    let mut writer = c.writer();
    let t = thread::spawn(move || {
        let block = pattern(256 * 1024);
        writer
            .write_all(
                format!("PUT /blob HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {LEN}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
        let mut left = LEN;
        while left > 0 {
            let n = (block.len() as u64).min(left) as usize;
            writer.write_all(&block[..n]).expect("upload");
            left -= n as u64;
        }
    });
    let r = c.read_response();
    t.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), LEN.to_string());
    let req = backend.single_request();
    assert_eq!(req.body_len, LEN);
    assert_small_rss(&gw, "1 GiB Content-Length upload");
}

#[test]
fn chunked_upload_64_mib() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 1024;
    let backend = counting_backend();
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    let mut writer = c.writer();
    let t = thread::spawn(move || {
        writer
            .write_all(
                format!("POST /c HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
        let mut framed = format!("{CHUNK:x}\r\n").into_bytes();
        framed.extend_from_slice(&pattern(CHUNK));
        framed.extend_from_slice(b"\r\n");
        for _ in 0..CHUNKS {
            writer.write_all(&framed).expect("upload");
        }
        writer.write_all(b"0\r\n\r\n").unwrap();
    });
    let r = c.read_response();
    t.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), (CHUNK * CHUNKS).to_string());
    let req = backend.single_request();
    assert!(req.chunked);
    assert_eq!(req.body_len, (CHUNK * CHUNKS) as u64);
    assert_small_rss(&gw, "64 MiB chunked upload");
}

#[test]
fn download_256_mib() {
    const LEN: u64 = 256 << 20;
    let backend = Backend::replying(|_| Reply::status(200).generated(LEN));
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    c.send(format!("GET /big HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes());
    let r = c.read_response_counting();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_len, LEN);
    assert_small_rss(&gw, "256 MiB download");
}
