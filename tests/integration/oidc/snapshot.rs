//! `sessiongate.session-snapshot`: sessions written at SIGTERM and restored by the next
//! start on the same port (the provider keeps running), so a restart logs nobody out; what
//! must not come back (expired sessions, a file that does not open) does not.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::harness::quote;
use crate::oidc::browser::Browser;
use crate::oidc::provider::random_token;
use crate::oidc::stack::{session_owner, Stack, StackBuilder};

/// How long the start may take to log what it did with the snapshot.
const LOG_TIMEOUT: Duration = Duration::from_secs(10);
const MAGIC: &[u8] = b"sessiongate-snapshot 1\n";

/// The snapshot's path in the test target's temporary directory; the file and what the
/// gateway puts beside it are removed on drop.
struct SnapshotFile {
    path: PathBuf,
}

impl SnapshotFile {
    fn new() -> SnapshotFile {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "sessiongate-it-{}-{}.snapshot",
            std::process::id(),
            random_token(6)
        ));
        SnapshotFile { path }
    }

    fn beside(&self, suffix: &str) -> PathBuf {
        PathBuf::from(format!("{}{suffix}", self.path.display()))
    }

    fn read(&self) -> Vec<u8> {
        std::fs::read(&self.path)
            .unwrap_or_else(|e| panic!("no snapshot at {} after SIGTERM: {e}", self.path.display()))
    }
}

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        for suffix in ["", ".tmp", ".refused"] {
            let _ = std::fs::remove_file(self.beside(suffix));
        }
    }
}

/// `sessiongate.session-encryption-keys` holding these keys.
fn keys_yaml(keys: &[&str]) -> String {
    let quoted: Vec<String> = keys.iter().map(|k| quote(k)).collect();
    format!("[{}]", quoted.join(", "))
}

/// A stack that snapshots its sessions to `file`, sealed with `key`.
fn snapshotting(file: &SnapshotFile, key: &str) -> StackBuilder {
    Stack::builder()
        .set("session-snapshot", quote(&file.path.display().to_string()))
        .set("session-encryption-keys", keys_yaml(&[key]))
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The access token a probe with this session carries to the backend.
fn bearer_of(s: &Stack, session: &str, probe: &str) -> String {
    let r = s.with_session(session, probe);
    assert_eq!(r.status, 200, "{probe}: {} {}", r.status, r.text());
    s.bearer_at_backend(probe)
}

/// Waits for the start's line about the snapshot and returns it.
fn log_line(s: &Stack, needle: &str) -> String {
    s.gateway
        .wait_for_log_line(LOG_TIMEOUT, |l| l.contains(needle))
        .unwrap_or_else(|| panic!("no log line with {needle:?}:\n{}", s.gateway.stderr()))
}

/// Starts the stack, logs alice in and stops the gateway: answers the stack and alice's
/// cookie, with the snapshot written.
fn stopped_with_session(b: StackBuilder, file: &SnapshotFile) -> (Stack, String) {
    let mut s = b.start();
    let (_, login) = s.login("alice");
    s.stop_gateway();
    assert!(file.path.exists(), "no snapshot after SIGTERM");
    (s, login.session)
}

/// The cookie leads to a login again and the backend never sees the probe.
fn assert_refused(s: &Stack, session: &str, context: &str) {
    let probe = format!("/app/refused/{}", random_token(6));
    let r = s.with_session(session, &probe);
    s.assert_login_redirect(&r, context);
    assert!(s.backend_requests_to(&probe).is_empty(), "{context}");
}

/// Users logged in on both workers stay logged in over a restart: the same cookie reaches
/// the backend with the same access token. The file holds no token and no cookie value in
/// plain text, is readable by the gateway's user only, and is gone once restored; a logout
/// afterwards works as for any session.
#[test]
fn sessions_survive_a_restart() {
    let file = SnapshotFile::new();
    let mut s = snapshotting(&file, &random_token(32)).start();
    // Logins land on either worker; a few give both workers sessions (bounded).
    let mut users: Vec<(String, String, String)> = Vec::new();
    for i in 0..12 {
        let user = format!("user{i}");
        let (_, login) = s.login(&user);
        let access = bearer_of(&s, &login.session, &format!("/app/{user}/before"));
        users.push((user, login.session, access));
        let owners: std::collections::HashSet<u8> =
            users.iter().map(|(_, c, _)| session_owner(c)).collect();
        if users.len() >= 2 && owners.len() == 2 {
            break;
        }
    }
    let owners: std::collections::HashSet<u8> =
        users.iter().map(|(_, c, _)| session_owner(c)).collect();
    assert_eq!(owners.len(), 2, "12 logins all landed on one worker");

    s.stop_gateway();
    let bytes = file.read();
    assert!(
        bytes.starts_with(MAGIC),
        "{:?}",
        &bytes[..bytes.len().min(40)]
    );
    let mode = std::fs::metadata(&file.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the snapshot must be private");
    for (user, cookie, access) in &users {
        assert!(
            !contains(&bytes, cookie),
            "{user}'s SESSION cookie in the file"
        );
        assert!(
            !contains(&bytes, access),
            "{user}'s access token in the file"
        );
        for refresh in s.provider.refresh_tokens_of(user) {
            assert!(
                !contains(&bytes, &refresh),
                "{user}'s refresh token in the file"
            );
        }
    }

    s.restart_gateway();
    let line = log_line(&s, "sessions restored from the snapshot");
    assert!(
        line.contains(&format!("{} sessions restored", users.len())),
        "{line}"
    );
    assert!(!file.path.exists(), "a restored snapshot must not stay");
    for (user, cookie, access) in &users {
        let after = bearer_of(&s, cookie, &format!("/app/{user}/after"));
        assert_eq!(
            &after, access,
            "{user}: another access token after the restart"
        );
    }

    // A logout of a restored session: the cookie is dead afterwards.
    let (user, cookie, _) = &users[0];
    let mut b = Browser::new();
    b.set_cookie(&s.url("/"), "SESSION", cookie);
    let r = b.post_form(&s.url("/logout"), &[]);
    assert_eq!(r.status, 302, "POST /logout: {} {}", r.status, r.text());
    let end = s.url("/logout").join(r.header("location").unwrap());
    let hint = end
        .param("id_token_hint")
        .unwrap_or_else(|| panic!("no id_token_hint in {end}: the ID token was not restored"));
    assert!(!contains(&bytes, &hint), "{user}'s ID token in the file");
    assert_refused(&s, cookie, "a restored session after its logout");
    let (_, other, _) = &users[1];
    s.assert_session_works(other, "another restored session after a logout");
}

/// A session whose idle timeout passed while the gateway was down is not restored.
#[test]
fn a_session_that_expired_while_stopped_is_not_restored() {
    let file = SnapshotFile::new();
    let b = snapshotting(&file, &random_token(32)).cg("sessionTimeoutSec", 2);
    let (mut s, session) = stopped_with_session(b, &file);
    // Waits out the session's idle timeout (2 s) while nothing runs.
    std::thread::sleep(Duration::from_millis(2500));
    s.restart_gateway();
    let line = log_line(&s, "sessions restored from the snapshot");
    assert!(line.contains("0 sessions restored"), "{line}");
    assert_refused(&s, &session, "a session that expired while stopped");
}

/// A file that does not authenticate (one byte changed) is refused with one ERROR line
/// naming it and why, moved aside to `PATH.refused`; the gateway runs without sessions.
#[test]
fn a_corrupt_snapshot_is_refused_and_moved_aside() {
    let file = SnapshotFile::new();
    let (mut s, session) = stopped_with_session(snapshotting(&file, &random_token(32)), &file);
    let mut bytes = file.read();
    let mid = MAGIC.len() + (bytes.len() - MAGIC.len()) / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&file.path, &bytes).unwrap();

    s.restart_gateway();
    let line = log_line(&s, "session snapshot");
    assert_refusal(&line, &file, "does not authenticate");
    assert_refused(&s, &session, "after a corrupt snapshot");
    assert_eq!(std::fs::read(file.beside(".refused")).unwrap(), bytes);
    assert!(!file.path.exists());
}

/// A file sealed with a key the gateway is not (or no longer) configured with is refused
/// the same way, and names the setting.
#[test]
fn a_snapshot_sealed_with_another_key_is_refused() {
    let file = SnapshotFile::new();
    let (mut s, session) = stopped_with_session(snapshotting(&file, &random_token(32)), &file);
    let other = keys_yaml(&[&random_token(32)]);
    s.restart_gateway_with(|b| b.set("session-encryption-keys", &other));
    let line = log_line(&s, "session snapshot");
    assert_refusal(&line, &file, "sessiongate.session-encryption-keys");
    assert_refused(&s, &session, "after a foreign snapshot");
    assert!(file.beside(".refused").exists());
    assert!(!file.path.exists());
}

fn assert_refusal(line: &str, file: &SnapshotFile, why: &str) {
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains(&file.path.display().to_string()),
        "the refusal must name the file: {line}"
    );
    assert!(line.contains("refused") && line.contains(why), "{line}");
}
