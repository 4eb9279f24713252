//! The restart snapshot (`sessiongate.session-snapshot`): the memory store's sessions
//! written to one file at shutdown and read back at the next start, so a restart logs
//! nobody out.
//!
//! Layout: the line [`MAGIC`], then one blob sealed with the configured keyring
//! ([`super::seal`], the magic line as `aad`) of JSON
//! `{"written_unix_ms": .., "sessions": [{"meta": .., "tokens": ..}, ..]}`. The whole body is
//! sealed, not only the tokens: a subject list is personal data too, and one seal is one
//! authenticity check for the whole file (a truncated file does not open).
//!
//! Pure apart from [`write_file`] / [`read_file`] / [`move_aside`]: encoding, decoding and
//! the start's decision which session goes to which worker take bytes and `now`.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::record::{Meta, Tokens};
use super::seal::{Keyring, OpenError};
use super::SessionId;

/// The first line of a snapshot file: what it is and the format's version.
pub const MAGIC: &[u8] = b"sessiongate-snapshot 1\n";

/// One session as the snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub meta: Meta,
    pub tokens: Tokens,
}

impl Record {
    /// The worker the session lived on (the id's first byte); `None` if the id is not one.
    pub fn owner(&self) -> Option<u8> {
        SessionId::parse(self.tokens.id.as_bytes()).map(|id| id.owner())
    }
}

/// The file's sealed content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub written_unix_ms: u64,
    pub sessions: Vec<Record>,
}

/// Why a snapshot file was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a session snapshot (it does not start with `sessiongate-snapshot 1`)")]
    Magic,
    #[error("{0}")]
    Open(#[from] OpenError),
    /// No detail from the JSON parser: its message could quote a token.
    #[error("the opened snapshot does not hold a list of sessions")]
    Contents,
}

/// How long sessions live (`cg.sessionTimeoutSec`, `sessiongate.session-max-lifetime-sec`),
/// judged on the wall clock, where a snapshot's times are.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    pub idle_ms: u64,
    pub max_ms: Option<u64>,
}

impl Lifetime {
    /// The session has not reached its idle or absolute deadline at `unix_ms` (the same
    /// rule as the table's: idle deadline or absolute one, whichever is first).
    pub fn live_at(&self, meta: &Meta, unix_ms: u64) -> bool {
        let idle = meta.last_access_unix_ms.saturating_add(self.idle_ms);
        let deadline = match self.max_ms {
            Some(max) => idle.min(meta.created_unix_ms.saturating_add(max)),
            None => idle,
        };
        unix_ms < deadline
    }
}

/// The file's bytes for `snapshot`.
pub fn encode(snapshot: &Snapshot, keys: &Keyring) -> Vec<u8> {
    let plain = serde_json::to_vec(snapshot).expect("a snapshot serialises");
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&keys.seal(&plain, MAGIC));
    out
}

/// The snapshot in a file's bytes, if they are one this keyring opens.
pub fn decode(bytes: &[u8], keys: &Keyring) -> Result<Snapshot, SnapshotError> {
    let sealed = bytes.strip_prefix(MAGIC).ok_or(SnapshotError::Magic)?;
    let plain = keys.open(sealed, MAGIC)?;
    serde_json::from_slice(&plain).map_err(|_| SnapshotError::Contents)
}

/// What a start does with a snapshot's sessions.
#[derive(Debug, Default)]
pub struct Distribution {
    /// Index: worker id; each worker's sessions, oldest first.
    pub per_worker: Vec<Vec<Record>>,
    /// Past their idle or absolute deadline now.
    pub expired: usize,
    /// Held by a worker this start does not have (fewer `sessiongate.workers`).
    pub orphaned: usize,
    /// Beyond `cg.maxSessions` (lowered since): the least recently used are left out.
    pub over_limit: usize,
    /// An id that is not a session id (never written by a gateway).
    pub invalid: usize,
}

impl Distribution {
    pub fn restored(&self) -> usize {
        self.per_worker.iter().map(Vec::len).sum()
    }
}

/// Gives each of `workers` the live sessions it owned, within `max_sessions`.
pub fn distribute(
    snapshot: Snapshot,
    workers: usize,
    lifetime: Lifetime,
    max_sessions: u64,
    now_unix_ms: u64,
) -> Distribution {
    let mut d = Distribution {
        per_worker: (0..workers).map(|_| Vec::new()).collect(),
        ..Distribution::default()
    };
    let mut live: Vec<(usize, Record)> = Vec::with_capacity(snapshot.sessions.len());
    for r in snapshot.sessions {
        match r.owner().map(usize::from) {
            None => d.invalid += 1,
            Some(_) if !lifetime.live_at(&r.meta, now_unix_ms) => d.expired += 1,
            Some(w) if w >= workers => d.orphaned += 1,
            Some(w) => live.push((w, r)),
        }
    }
    let max = usize::try_from(max_sessions).unwrap_or(usize::MAX);
    if live.len() > max {
        live.sort_by_key(|(_, r)| std::cmp::Reverse(r.meta.last_access_unix_ms));
        d.over_limit = live.len() - max;
        live.truncate(max);
    }
    // Oldest first: the per-user registry keeps each user's sessions in creation order.
    live.sort_by_key(|(_, r)| r.meta.created_unix_ms);
    for (w, r) in live {
        d.per_worker[w].push(r);
    }
    d
}

/// `path` with `suffix` appended to its file name (`PATH.tmp`, `PATH.refused`).
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `bytes` to `path` so that a crash at any point leaves either the old file or the
/// new one: `PATH.tmp` (mode 0600: it holds sealed credentials), fsync, rename over
/// `path`, fsync the directory (so the rename itself survives a power loss).
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = beside(path, ".tmp");
    // A stale temporary file of an earlier crash may carry other permissions; start anew.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// The file's bytes; `None` when there is no file.
pub fn read_file(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Renames `path` to `PATH<suffix>` (replacing an older one); answers the new path.
pub fn move_aside(path: &Path, suffix: &str) -> std::io::Result<PathBuf> {
    let to = beside(path, suffix);
    std::fs::rename(path, &to)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::seal::KEY_LEN;

    fn ring(keys: &[u8]) -> Keyring {
        let keys: Vec<[u8; KEY_LEN]> = keys.iter().map(|&b| [b; KEY_LEN]).collect();
        Keyring::new(&keys).unwrap()
    }

    fn record(owner: u8, created: u64, last: u64) -> Record {
        let rng = ring::rand::SystemRandom::new();
        let id = SessionId::generate(owner, &rng).unwrap();
        Record {
            meta: Meta {
                subject: format!("user-{created}"),
                sid: Some("sid-1".into()),
                created_unix_ms: created,
                last_access_unix_ms: last,
                banner_accepted: false,
            },
            tokens: Tokens {
                id: id.encode().as_str().to_string(),
                access_token: "access-token-secret".into(),
                access_expires_unix_ms: last + 60_000,
                refresh_token: "refresh-token-secret".into(),
                refresh_expires_unix_ms: u64::MAX,
                id_token: "id-token-secret".into(),
            },
        }
    }

    fn snapshot(sessions: Vec<Record>) -> Snapshot {
        Snapshot {
            written_unix_ms: 1_000_000,
            sessions,
        }
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn round_trip_without_plain_tokens() {
        let k = ring(&[1]);
        let s = snapshot(vec![record(0, 10, 20), record(1, 30, 40)]);
        let bytes = encode(&s, &k);
        assert!(bytes.starts_with(MAGIC));
        for secret in [
            "access-token-secret",
            "refresh-token-secret",
            "id-token-secret",
            s.sessions[0].tokens.id.as_str(),
            "user-10",
        ] {
            assert!(!contains(&bytes, secret.as_bytes()), "{secret} in the file");
        }
        assert_eq!(decode(&bytes, &k).unwrap(), s);
        // A rotated keyring (new key first) still opens it.
        assert_eq!(decode(&bytes, &ring(&[2, 1])).unwrap(), s);
    }

    #[test]
    fn wrong_magic_tampered_truncated_or_foreign_are_refused() {
        let k = ring(&[1]);
        let bytes = encode(&snapshot(vec![record(0, 10, 20)]), &k);
        let mut other_magic = bytes.clone();
        other_magic[MAGIC.len() - 2] = b'2';
        assert_eq!(decode(&other_magic, &k), Err(SnapshotError::Magic));
        assert_eq!(decode(b"{}", &k), Err(SnapshotError::Magic));
        let mut tampered = bytes.clone();
        let mid = MAGIC.len() + (bytes.len() - MAGIC.len()) / 2;
        tampered[mid] ^= 1;
        assert_eq!(
            decode(&tampered, &k),
            Err(SnapshotError::Open(OpenError::Forged))
        );
        assert_eq!(
            decode(&bytes[..bytes.len() - 5], &k),
            Err(SnapshotError::Open(OpenError::Forged))
        );
        assert_eq!(
            decode(&bytes[..MAGIC.len() + 3], &k),
            Err(SnapshotError::Open(OpenError::Format))
        );
        assert_eq!(
            decode(&bytes, &ring(&[9])),
            Err(SnapshotError::Open(OpenError::UnknownKey))
        );
        // Sealed right but not a snapshot inside.
        let mut odd = MAGIC.to_vec();
        odd.extend_from_slice(&k.seal(b"[1,2]", MAGIC));
        assert_eq!(decode(&odd, &k), Err(SnapshotError::Contents));
    }

    #[test]
    fn distribution_drops_expired_orphaned_and_over_limit() {
        let life = Lifetime {
            idle_ms: 1_000,
            max_ms: Some(10_000),
        };
        let s = snapshot(vec![
            record(1, 5_000, 9_500), // live, worker 1
            record(0, 4_000, 9_200), // live, worker 0
            record(0, 8_000, 8_000), // idle past its deadline at 10_000
            record(0, 0, 9_900),     // past the absolute lifetime
            record(2, 9_000, 9_900), // worker 2 is gone
            record(1, 9_500, 9_950), // live, worker 1
        ]);
        let mut bad = record(0, 9_000, 9_900);
        bad.tokens.id = "not-an-id".into();
        let mut s = s;
        s.sessions.push(bad);
        let d = distribute(s.clone(), 2, life, 100, 10_000);
        assert_eq!(
            (d.expired, d.orphaned, d.invalid, d.over_limit),
            (2, 1, 1, 0)
        );
        assert_eq!(d.restored(), 3);
        assert_eq!(d.per_worker[0].len(), 1);
        let created: Vec<u64> = d.per_worker[1]
            .iter()
            .map(|r| r.meta.created_unix_ms)
            .collect();
        assert_eq!(created, [5_000, 9_500], "oldest first");
        // maxSessions lowered to 2: the least recently used live session stays out.
        let d = distribute(s, 2, life, 2, 10_000);
        assert_eq!((d.over_limit, d.restored()), (1, 2));
        assert!(d.per_worker[0].is_empty());
    }

    #[test]
    fn written_atomically_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("unit-tmp")
            .join(format!("snapshot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sessions.snapshot");
        write_file(&path, b"one").unwrap();
        write_file(&path, b"two").unwrap();
        assert_eq!(read_file(&path).unwrap().as_deref(), Some(&b"two"[..]));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!beside(&path, ".tmp").exists());
        let aside = move_aside(&path, ".refused").unwrap();
        assert!(aside.ends_with("sessions.snapshot.refused"));
        assert_eq!(read_file(&path).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
