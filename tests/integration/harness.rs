//! The gateway under test as a child process, its config, and a CLI runner.
//!
//! `Gateway::with(yaml).workers(2).set("max-body-bytes", 1024).start()` writes a temporary
//! config, starts `sessiongate run --config FILE`, waits (bounded) for the first
//! `sessiongate listening on http://ADDR` (or `https://ADDR`) line and exposes the address;
//! [`Gateway::listening`] finds the others (a TLS gateway's `sessiongate.http-port`). The builder owns the
//! `sessiongate:` section; the yaml passed in holds `server`, `spring` and `logging`.
//! Dropping a `Gateway` stops the process (SIGTERM, then SIGKILL) and always reaps it; when a
//! test fails, the process's stderr is printed to help find out why.

use std::fmt::Display;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::client::{Client, Response};

const BIN: &str = env!("CARGO_BIN_EXE_sessiongate");
const READY_PREFIX: &str = "sessiongate listening on ";
const MANAGEMENT_PREFIX: &str = "sessiongate management on http://";
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Exit code for a bad configuration (EX_USAGE, as in linkerd2-proxy).
pub const EX_CONFIG: i32 = 64;

/// One `spring.cloud.gateway.routes` entry.
#[derive(Clone, Debug)]
pub struct Route {
    id: String,
    uri: String,
    predicates: Vec<String>,
    filters: Vec<String>,
    order: Option<i32>,
}

impl Route {
    pub fn new(id: &str, uri: impl Into<String>) -> Route {
        Route {
            id: id.to_string(),
            uri: uri.into(),
            predicates: Vec::new(),
            filters: Vec::new(),
            order: None,
        }
    }

    pub fn predicate(mut self, p: &str) -> Route {
        self.predicates.push(p.to_string());
        self
    }

    pub fn filter(mut self, f: &str) -> Route {
        self.filters.push(f.to_string());
        self
    }

    pub fn order(mut self, order: i32) -> Route {
        self.order = Some(order);
        self
    }
}

/// `server` (127.0.0.1, port 0) and `spring.cloud.gateway.routes` as YAML.
///
/// Lists are written in block style with quoted items: a filter such as
/// `AddRequestHeader=X-A, 1` must stay one item, which YAML flow style would split.
pub fn routes_yaml(routes: &[Route]) -> String {
    let mut y = String::from(
        "server:\n  address: 127.0.0.1\n  port: 0\nspring:\n  cloud:\n    gateway:\n      routes:\n",
    );
    for r in routes {
        y.push_str(&format!("        - id: {}\n", quote(&r.id)));
        y.push_str(&format!("          uri: {}\n", quote(&r.uri)));
        if let Some(o) = r.order {
            y.push_str(&format!("          order: {o}\n"));
        }
        if !r.predicates.is_empty() {
            y.push_str("          predicates:\n");
            for p in &r.predicates {
                y.push_str(&format!("            - {}\n", quote(p)));
            }
        }
        if !r.filters.is_empty() {
            y.push_str("          filters:\n");
            for f in &r.filters {
                y.push_str(&format!("            - {}\n", quote(f)));
            }
        }
    }
    y
}

/// One route `Path=/**` to the backend.
pub fn single_route_yaml(backend: &Backend) -> String {
    routes_yaml(&[Route::new("app", backend.uri()).predicate("Path=/**")])
}

/// `management.server` on 127.0.0.1 with port 0 (the kernel picks; the gateway prints it).
pub fn management_yaml() -> String {
    "management:\n  server:\n    address: 127.0.0.1\n    port: 0\n".to_string()
}

/// A double-quoted YAML scalar.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Builder for a gateway process (cloned to start the same gateway again).
#[derive(Clone)]
pub struct GatewayBuilder {
    base: String,
    knobs: Vec<(String, String)>,
    env: Vec<(String, String)>,
}

impl GatewayBuilder {
    pub fn workers(self, n: usize) -> Self {
        self.set("workers", n)
    }

    /// Sets a key under `sessiongate:` (kebab-case name, e.g. `max-body-bytes`).
    pub fn set(mut self, key: &str, value: impl Display) -> Self {
        let value = value.to_string();
        match self.knobs.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value,
            None => self.knobs.push((key.to_string(), value)),
        }
        self
    }

    /// `sessiongate.driver`: `io_uring` or `legacy`.
    pub fn driver(self, driver: &str) -> Self {
        self.set("driver", driver)
    }

    /// An environment variable for the gateway process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds a management listener on 127.0.0.1, port 0 ([`management_yaml`]), and
    /// `sessiongate.management-token` when `token` is given.
    pub fn management(mut self, token: Option<&str>) -> Self {
        if !self.base.ends_with('\n') {
            self.base.push('\n');
        }
        self.base.push_str(&management_yaml());
        match token {
            Some(t) => self.set("management-token", quote(t)),
            None => self,
        }
    }

    /// The complete configuration file this builder writes.
    pub fn yaml(&self) -> String {
        assert!(
            !self.base.lines().any(|l| l.starts_with("sessiongate:")),
            "set `sessiongate:` keys through GatewayBuilder::set, not in the yaml"
        );
        let mut y = self.base.clone();
        if !y.ends_with('\n') {
            y.push('\n');
        }
        y.push_str("sessiongate:\n");
        for (k, v) in &self.knobs {
            y.push_str(&format!("  {k}: {v}\n"));
        }
        y
    }

    /// Starts the gateway and waits until it is listening; panics with its stderr if not.
    pub fn start(self) -> Gateway {
        let config = TempConfig::new(&self.yaml());
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .arg("--config")
            .arg(&config.path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn sessiongate");
        let stderr = drain_stderr(child.stderr.take().unwrap());
        let (stdout, ready) = watch_stdout(child.stdout.take().unwrap());

        let addr = match ready.recv_timeout(START_TIMEOUT) {
            Ok(addr) => Ok(addr),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(format!("no `{READY_PREFIX}` line within {START_TIMEOUT:?}"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed: the process is exiting. Give it a moment to be reaped.
                let status = wait_child(&mut child, Duration::from_secs(2));
                Err(format!("gateway exited before listening: {status:?}"))
            }
        };
        match addr {
            Ok(addr) => Gateway {
                child,
                addr,
                stderr,
                stdout,
                exit: None,
                config,
            },
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{why}\n--- config ---\n{}\n--- stderr ---\n{}",
                    self.yaml(),
                    text(&stderr)
                );
            }
        }
    }
}

/// A running gateway process.
pub struct Gateway {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    exit: Option<ExitStatus>,
    config: TempConfig,
}

impl Gateway {
    /// A builder from YAML holding `server`, `spring` (and optionally `logging`).
    pub fn with(yaml: impl Into<String>) -> GatewayBuilder {
        GatewayBuilder {
            base: yaml.into(),
            knobs: vec![("workers".to_string(), "2".to_string())],
            env: Vec::new(),
        }
    }

    /// A builder with one route `Path=/**` to `backend`.
    pub fn to(backend: &Backend) -> GatewayBuilder {
        Gateway::with(single_route_yaml(backend))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A new raw client connection.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// `GET path` on a fresh connection.
    pub fn get(&self, path: &str) -> Response {
        self.client().get(path)
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        text(&self.stderr)
    }

    /// Lines the process wrote to stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The address of the `sessiongate listening on SCHEME://ADDR` line (`http`, `https`),
    /// waiting briefly for it: the ready lines are printed together, but read one by one.
    pub fn listening(&self, scheme: &str) -> Option<SocketAddr> {
        let prefix = format!("{READY_PREFIX}{scheme}://");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let found = self.stdout_lines().iter().find_map(|l| {
                l.trim()
                    .strip_prefix(&prefix)
                    .and_then(|a| a.trim_end_matches('/').parse().ok())
            });
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The address of the `sessiongate management on http://ADDR` line, which follows the
    /// listening line(s); waits (bounded) for it and panics with stdout if it never comes.
    pub fn management_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines = self.stdout_lines();
            let found = lines.iter().find_map(|l| {
                l.trim()
                    .strip_prefix(MANAGEMENT_PREFIX)
                    .and_then(|a| a.trim_end_matches('/').parse().ok())
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "no `{MANAGEMENT_PREFIX}` line on stdout: {lines:?}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// `METHOD target` at the management listener on a new connection, with
    /// `Authorization: Bearer TOKEN` when a token is given.
    pub fn admin(&self, method: &str, target: &str, token: Option<&str>) -> Response {
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        Client::connect(self.management_addr()).request(
            format!(
                "{method} {target} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
                self.management_addr()
            )
            .as_bytes(),
        )
    }

    /// The configuration file's current content (the process re-reads it on SIGHUP).
    pub fn config_yaml(&self) -> String {
        std::fs::read_to_string(&self.config.path).expect("read the gateway's config")
    }

    /// Replaces the configuration file (written aside, then renamed over it, so a reload
    /// never reads half a file). The process notices only on SIGHUP.
    pub fn rewrite_config(&self, yaml: &str) {
        let path = &self.config.path;
        let tmp = path.with_extension("yml.new");
        std::fs::write(&tmp, yaml).expect("write the new config");
        std::fs::rename(&tmp, path).expect("rename the new config into place");
    }

    /// Waits (bounded) until a stderr line satisfies `pred`; returns it.
    pub fn wait_for_log_line(
        &self,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let all = strip_ansi(&self.stderr());
            if let Some(line) = all.lines().find(|l| pred(l)) {
                return Some(line.to_string());
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, sig: i32) {
        send_signal(self.pid(), sig);
    }

    /// Waits up to `within` for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = wait_child(&mut self.child, within);
        }
        self.exit
    }

    /// Peak resident set size of the process so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.exit.is_none() {
            send_signal(self.pid(), libc::SIGTERM);
            if wait_child(&mut self.child, Duration::from_millis(500)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if thread::panicking() {
            let err = self.stderr();
            let tail = &err[err.len().saturating_sub(16 * 1024)..];
            eprintln!("--- gateway {} stderr (tail) ---\n{tail}", self.addr);
        }
    }
}

/// A config file in the test target's temporary directory, removed on drop.
pub struct TempConfig {
    pub path: PathBuf,
}

impl TempConfig {
    pub fn new(yaml: &str) -> TempConfig {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sessiongate-it-{}-{n}.yml", std::process::id()));
        std::fs::write(&path, yaml).expect("write temp config");
        TempConfig { path }
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Output of a short-lived CLI invocation.
#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `sessiongate ARGS` to completion (killed after 10 s).
pub fn sessiongate(args: &[&str]) -> CliOutput {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sessiongate");
    let out = read_all(child.stdout.take().unwrap());
    let err = read_all(child.stderr.take().unwrap());
    let status = wait_child(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    assert!(
        status.is_some(),
        "`sessiongate {}` did not finish within 10 s; stderr:\n{stderr}",
        args.join(" ")
    );
    CliOutput {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    }
}

/// Runs `sessiongate check --config FILE` on this YAML.
pub fn check(yaml: &str) -> CliOutput {
    let config = TempConfig::new(yaml);
    sessiongate(&["check", "--config", config.path.to_str().unwrap()])
}

/// Runs `sessiongate run --config FILE` on a YAML that is expected to be refused.
pub fn run_expecting_exit(yaml: &str) -> CliOutput {
    let config = TempConfig::new(yaml);
    sessiongate(&["run", "--config", config.path.to_str().unwrap()])
}

/// Polls until a connection attempt to `addr` is refused several times in a row.
pub fn wait_until_refused(addr: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut refused_in_a_row = 0;
    while Instant::now() < deadline {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused_in_a_row += 1;
                if refused_in_a_row >= 5 {
                    return true;
                }
                continue;
            }
            _ => refused_in_a_row = 0,
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A loopback address nothing listens on (bound, then released).
pub fn closed_port_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[allow(unsafe_code)]
fn send_signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is our own
    // child, which is not reaped while its `Child` handle lives, so the pid cannot be reused.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn wait_child(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn drain_stderr(mut err: ChildStderr) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = buf.clone();
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = err.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

/// Collects stdout lines; sends the first listening address through the channel.
fn watch_stdout(out: ChildStdout) -> (Arc<Mutex<Vec<String>>>, mpsc::Receiver<SocketAddr>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.trim().strip_prefix(READY_PREFIX) {
                let rest = rest.split_once("://").map_or(rest, |(_, a)| a);
                let addr = rest.trim_end_matches('/').parse::<SocketAddr>();
                if let (Some(t), Ok(addr)) = (tx.as_ref(), addr) {
                    let _ = t.send(addr);
                    tx = None;
                }
            }
            sink.lock().unwrap().push(line);
        }
    });
    (lines, rx)
}

fn read_all<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

/// Removes ANSI escape sequences (colored log output).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn proc_status_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
