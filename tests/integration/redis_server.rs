//! A real `redis-server` for tests: started on a free (or given) port of 127.0.0.1 with no
//! persistence, in its own directory under the build directory, killed on drop. `cmd`
//! talks RESP over a plain std socket, for setting up and checking state beside the code
//! under test. Also used by the unit tests of `sessiongate::redis`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::BorrowedFrame;

const BINARY: &str = "redis-server";

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    /// `--requirepass`, used by `cmd` too.
    password: Option<String>,
    /// A TLS listener beside the plain one (`start_tls`).
    pub tls_port: Option<u16>,
}

impl RedisServer {
    /// On a free port.
    pub fn start() -> RedisServer {
        RedisServer::start_on(free_port())
    }

    pub fn start_on(port: u16) -> RedisServer {
        RedisServer::launch(port, None)
    }

    /// On a free port, requiring `password` (the `default` user's).
    pub fn start_with_password(password: &str) -> RedisServer {
        RedisServer::launch(free_port(), Some(password.to_string()))
    }

    /// On a free port, plus a TLS listener on `tls_port` with this certificate (PEM chain,
    /// key and the CA that issued it); `cmd` still uses the plain port.
    pub fn start_tls(ca: &str, cert: &str, key: &str) -> RedisServer {
        let mut server = RedisServer::launch(free_port(), None);
        for (name, pem) in [("ca.crt", ca), ("redis.crt", cert), ("redis.key", key)] {
            std::fs::write(server.dir.join(name), pem).expect("write a TLS file");
        }
        server.tls_port = Some(free_port());
        server.restart();
        server
    }

    fn launch(port: u16, password: Option<String>) -> RedisServer {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        // Under the build directory, not /tmp: `cargo clean` removes it, nothing piles up.
        let base = option_env!("CARGO_TARGET_TMPDIR").map_or_else(
            || {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("target")
                    .join("unit-tmp")
            },
            PathBuf::from,
        );
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = base.join(format!("redis-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the redis-server directory");
        let mut server = RedisServer {
            port,
            child: None,
            dir,
            password,
            tls_port: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(BINARY);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        if let Some(tls) = self.tls_port {
            cmd.args(["--tls-port", &tls.to_string(), "--tls-auth-clients", "no"])
                .args([
                    "--tls-cert-file",
                    "redis.crt",
                    "--tls-key-file",
                    "redis.key",
                ])
                .args(["--tls-ca-cert-file", "ca.crt"]);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start {BINARY} ({e}): install it (Debian: apt-get install redis-server)")
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.try_cmd(&["PING"]).is_some_and(|r| r == "+PONG\r\n") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{BINARY} on port {} did not answer within 10 s", self.port);
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGKILL: no goodbye to connected clients, as when a server dies.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server (if running) and starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// One command; the reply as the raw RESP text (`+OK\r\n`, `$1\r\nv\r\n`).
    pub fn cmd(&self, args: &[&str]) -> String {
        self.try_cmd(args)
            .unwrap_or_else(|| panic!("redis-server on port {} did not answer {args:?}", self.port))
    }

    fn try_cmd(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(self.addr()).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut replies = 1;
        if let Some(p) = &self.password {
            s.write_all(&encode(&["AUTH", p])).ok()?;
            replies += 1;
        }
        s.write_all(&encode(args)).ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut at = 0;
        loop {
            // The codec says where each reply ends; the last one is the answer.
            while let Ok(Some((_, n))) = decode(&buf[at..]) {
                replies -= 1;
                if replies == 0 {
                    return Some(String::from_utf8_lossy(&buf[at..at + n]).into_owned());
                }
                at += n;
            }
            let n = s.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that was free a moment ago (bound and released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("its address").port()
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let parts: Vec<BorrowedFrame> = args
        .iter()
        .map(|a| BorrowedFrame::BulkString(a.as_bytes()))
        .collect();
    let frame = BorrowedFrame::Array(&parts);
    let mut out = vec![0; frame.encode_len(false)];
    let n = encode_borrowed(&mut out, &frame, false).expect("sized by encode_len");
    out.truncate(n);
    out
}
