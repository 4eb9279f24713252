//! Reading a Redis server's whole content as raw bytes, for checks of what the shared
//! session store writes there (no plaintext token, no cookie value). Speaks RESP over a
//! plain std socket with a reply parser of its own: values are binary (sealed tokens,
//! `DUMP` payloads), which a text view would mangle.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One RESP2 reply.
#[derive(Debug)]
pub enum Reply {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// Every byte string inside, depth first.
    fn bytes(&self, out: &mut Vec<Vec<u8>>) {
        match self {
            Reply::Simple(b) | Reply::Error(b) | Reply::Bulk(Some(b)) => out.push(b.clone()),
            Reply::Int(i) => out.push(i.to_string().into_bytes()),
            Reply::Array(Some(items)) => items.iter().for_each(|r| r.bytes(out)),
            Reply::Bulk(None) | Reply::Array(None) => {}
        }
    }

    fn text(&self) -> String {
        match self {
            Reply::Simple(b) | Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("expected a string reply, got {other:?}"),
        }
    }
}

/// A connection to a Redis server for raw commands.
pub struct RawRedis {
    reader: BufReader<TcpStream>,
}

impl RawRedis {
    pub fn connect(addr: SocketAddr) -> RawRedis {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to redis at {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        RawRedis {
            reader: BufReader::new(s),
        }
    }

    /// One command, its reply.
    pub fn cmd(&mut self, args: &[&[u8]]) -> Reply {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        self.reader
            .get_mut()
            .write_all(&req)
            .expect("write to redis");
        self.read_reply()
    }

    fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .expect("read from redis");
        assert!(line.ends_with(b"\r\n"), "truncated RESP line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    fn read_reply(&mut self) -> Reply {
        let line = self.line();
        let (kind, rest) = line.split_first().expect("empty RESP line");
        let num = || -> i64 {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad RESP length {rest:?}"))
        };
        match kind {
            b'+' => Reply::Simple(rest.to_vec()),
            b'-' => Reply::Error(rest.to_vec()),
            b':' => Reply::Int(num()),
            b'$' if num() < 0 => Reply::Bulk(None),
            b'$' => {
                let mut buf = vec![0; num() as usize + 2];
                self.reader
                    .read_exact(&mut buf)
                    .expect("read a bulk string");
                buf.truncate(buf.len() - 2);
                Reply::Bulk(Some(buf))
            }
            b'*' if num() < 0 => Reply::Array(None),
            b'*' => Reply::Array(Some((0..num()).map(|_| self.read_reply()).collect())),
            other => panic!("unknown RESP type {:?}", *other as char),
        }
    }
}

/// One key with its type and everything it holds, as raw bytes.
#[derive(Debug)]
pub struct KeyDump {
    pub key: String,
    pub kind: String,
    /// The value read by type (GET, HGETALL, XRANGE, ...) and the key's `DUMP` payload.
    pub parts: Vec<Vec<u8>>,
}

/// `KEYS *`, and per key its `TYPE`, the value read by type (`GET`, `HGETALL`, `XRANGE`,
/// `SMEMBERS`, `ZRANGE .. WITHSCORES`, `LRANGE`) and its `DUMP` (which may compress long
/// strings, hence the reads by type too).
pub fn keys_dump(addr: SocketAddr) -> Vec<KeyDump> {
    let mut r = RawRedis::connect(addr);
    let Reply::Array(Some(keys)) = r.cmd(&[b"KEYS", b"*"]) else {
        panic!("KEYS * did not answer an array");
    };
    let mut out = Vec::new();
    for key in keys {
        let name = key.text();
        let k = name.as_bytes();
        let kind = r.cmd(&[b"TYPE", k]).text();
        let read: Vec<&[u8]> = match kind.as_str() {
            "string" => vec![b"GET", k],
            "hash" => vec![b"HGETALL", k],
            "stream" => vec![b"XRANGE", k, b"-", b"+"],
            "set" => vec![b"SMEMBERS", k],
            "zset" => vec![b"ZRANGE", k, b"0", b"-1", b"WITHSCORES"],
            "list" => vec![b"LRANGE", k, b"0", b"-1"],
            // Expired or deleted between KEYS and TYPE.
            "none" => continue,
            other => panic!("key {name:?} of an unexpected type {other}"),
        };
        let mut parts = Vec::new();
        r.cmd(&read).bytes(&mut parts);
        r.cmd(&[b"DUMP", k]).bytes(&mut parts);
        out.push(KeyDump {
            key: name,
            kind,
            parts,
        });
    }
    out
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
