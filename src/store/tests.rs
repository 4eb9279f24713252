//! The store's scripts against a real `redis-server`: what is decided once is decided once,
//! and what leaves the process is sealed.

use std::rc::Rc;

use ring::rand::SystemRandom;

use super::*;
use crate::redis::tests::{connected, run, RedisServer};
use crate::session::seal::Keyring;

const IDLE_MS: u64 = 60_000;
/// Unix ms the tests' worker clock started at.
const START: u64 = 1_800_000_000_000;

fn keys() -> Rc<Keyring> {
    Rc::new(Keyring::new(&[[9; 32]]).unwrap())
}

async fn store(server: &RedisServer) -> SharedSessions {
    let expiry = Expiry {
        idle_ms: IDLE_MS,
        max_ms: 0,
    };
    SharedSessions::new(connected(server).await, keys(), "t", expiry, 30_000)
}

/// A session created `at` ms after the epoch, with tokens.
fn session(sub: &str, at: u64) -> Session {
    let id = SessionId::generate(0, &SystemRandom::new()).unwrap();
    let mut s = Session::new(id, sub.into(), Some(format!("sid-{sub}").into()), at);
    s.access_token = format!("access-token-of-{sub}").into();
    s.refresh_token = format!("refresh-token-of-{sub}").into();
    s.id_token = format!("id-token-of-{sub}").into();
    s
}

fn epoch() -> Epoch {
    Epoch::new(0, START)
}

async fn create(st: &SharedSessions, s: &Session, max: u64, per_user: u64) -> Created {
    st.create(s, epoch(), max, per_user, 0).await.unwrap()
}

#[test]
fn a_session_round_trips_sealed_and_ends_once() {
    let server = RedisServer::start();
    run(async {
        let st = store(&server).await;
        let s = session("alice", 1_000);
        assert!(
            matches!(create(&st, &s, 0, 0).await, Created::Stored { superseded } if superseded.is_empty())
        );
        let loaded = st.load(s.id(), epoch()).await.unwrap().unwrap();
        assert_eq!(&*loaded.session.access_token, "access-token-of-alice");
        assert_eq!(loaded.session.created_ms(), 1_000);
        assert_eq!(loaded.session.sid(), Some("sid-alice"));
        // Nothing in Redis names the cookie or holds a token in clear.
        let dump = server.cmd(&["KEYS", "*"])
            + &server.cmd(&["HGETALL", &st.session_key(&SharedSessions::hash_of(s.id()))]);
        for secret in [
            s.id().encode().as_str(),
            "access-token-of-alice",
            "refresh-token-of-alice",
            "id-token-of-alice",
        ] {
            assert!(!dump.contains(secret), "{secret} is readable in Redis");
        }
        let hash = SharedSessions::hash_of(s.id());
        let first = st.end(&hash, EndReason::User, epoch()).await.unwrap();
        assert_eq!(
            first.map(|s| s.id_token.to_string()).as_deref(),
            Some("id-token-of-alice")
        );
        assert!(
            st.end(&hash, EndReason::User, epoch())
                .await
                .unwrap()
                .is_none(),
            "ended twice"
        );
        assert!(st.load(s.id(), epoch()).await.unwrap().is_none());
        // The end is on the stream every instance follows.
        let (_, ended) = read_ends(&connected(&server).await, &st.ends_key(), "0-0", 10)
            .await
            .unwrap();
        assert_eq!(ended, vec![hash]);
    });
}

#[test]
fn a_record_moved_to_another_session_does_not_open() {
    let server = RedisServer::start();
    run(async {
        let st = store(&server).await;
        let (a, b) = (session("alice", 0), session("mallory", 0));
        create(&st, &a, 0, 0).await;
        create(&st, &b, 0, 0).await;
        let (ka, kb) = (
            st.session_key(&SharedSessions::hash_of(a.id())),
            st.session_key(&SharedSessions::hash_of(b.id())),
        );
        // Whoever can write to Redis copies alice's sealed tokens into mallory's record.
        let sealed = st
            .redis
            .query(Cmd::new("HGET").arg(&ka).arg("t"))
            .await
            .unwrap();
        st.redis
            .query(
                Cmd::new("HSET")
                    .arg(&kb)
                    .arg("t")
                    .arg(sealed.as_bytes().unwrap()),
            )
            .await
            .unwrap();
        assert!(
            st.load(b.id(), epoch()).await.unwrap().is_none(),
            "a moved record opened"
        );
        assert!(st.load(a.id(), epoch()).await.unwrap().is_some());
    });
}

#[test]
fn limits_count_the_cluster() {
    let server = RedisServer::start();
    run(async {
        let st = store(&server).await;
        let (one, two, three) = (session("u1", 0), session("u2", 0), session("u3", 0));
        assert!(matches!(
            create(&st, &one, 2, 0).await,
            Created::Stored { .. }
        ));
        assert!(matches!(
            create(&st, &two, 2, 0).await,
            Created::Stored { .. }
        ));
        assert!(matches!(create(&st, &three, 2, 0).await, Created::Full));
        assert_eq!(
            server.cmd(&["ZCARD", "{t}:expiry"]),
            ":2\r\n",
            "sessions in the cluster"
        );
        // Per user: the oldest beyond the cap is named for ending.
        let (old, newer, newest) = (session("bob", 10), session("bob", 20), session("bob", 30));
        create(&st, &old, 0, 2).await;
        create(&st, &newer, 0, 2).await;
        match create(&st, &newest, 0, 2).await {
            Created::Stored { superseded } => {
                assert_eq!(superseded, vec![SharedSessions::hash_of(old.id())])
            }
            Created::Full | Created::Buried => panic!("no cluster limit or logout was set"),
        }
    });
}

#[test]
fn expiry_is_claimed_once_and_only_when_due_after_the_last_use_anywhere() {
    let server = RedisServer::start();
    run(async {
        let (a, b) = (store(&server).await, store(&server).await);
        let s = session("alice", 0);
        create(&a, &s, 0, 0).await;
        let hash = SharedSessions::hash_of(s.id());
        // Another instance wrote a later use: not due at the first deadline.
        assert_eq!(
            b.touch(&[(hash.clone(), START + 30_000)]).await.unwrap(),
            vec![true]
        );
        assert!(a
            .claim_expired(START + IDLE_MS + 1, 10, epoch())
            .await
            .unwrap()
            .is_empty());
        // Due now; two instances sweep, one gets it.
        let due = START + 30_000 + IDLE_MS + 1;
        let first = a.claim_expired(due, 10, epoch()).await.unwrap();
        let second = b.claim_expired(due, 10, epoch()).await.unwrap();
        assert_eq!(
            first.len() + second.len(),
            1,
            "claimed {} times",
            first.len() + second.len()
        );
        // A use written back for a session that is gone says so.
        assert_eq!(b.touch(&[(hash, due)]).await.unwrap(), vec![false]);
    });
}

#[test]
fn logins_logout_tokens_and_rounds_are_taken_once() {
    let server = RedisServer::start();
    run(async {
        let (a, b) = (store(&server).await, store(&server).await);
        let login = br#"{"nonce":"n","verifier":"v","return_to":"/","redirect_uri":"http://x/cb","created_ms":1,"browser":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"client":"127.0.0.1"}"#;
        a.put_pending("state-1", login, 60_000).await.unwrap();
        assert!(!server.cmd(&["KEYS", "*"]).is_empty());
        assert!(
            !server.cmd(&["GET", "{t}:l:state-1"]).contains("verifier"),
            "a pending login is readable"
        );
        assert_eq!(
            b.take_pending("state-1")
                .await
                .unwrap()
                .map(|p| p.verifier)
                .as_deref(),
            Some("v")
        );
        assert!(
            a.take_pending("state-1").await.unwrap().is_none(),
            "a login taken twice"
        );
        assert!(a.admit_jti("jti-1", 60_000).await.unwrap());
        assert!(
            !b.admit_jti("jti-1", 60_000).await.unwrap(),
            "a logout token admitted twice"
        );
        let s = session("alice", 0);
        // Two instances whose timers fire at different points of the same round: one sends.
        assert!(a.claim_round(s.id(), "f", 60_000, START).await.unwrap());
        assert!(!b
            .claim_round(s.id(), "f", 60_000, START + 59_999)
            .await
            .unwrap());
        assert!(b
            .claim_round(s.id(), "f", 60_000, START + 60_000)
            .await
            .unwrap());
    });
}

#[test]
fn a_refresh_is_single_flight_and_its_tokens_reach_every_instance() {
    let server = RedisServer::start();
    run(async {
        let (a, b) = (store(&server).await, store(&server).await);
        let mut s = session("alice", 0);
        create(&a, &s, 0, 0).await;
        let lock = a.lock_refresh(s.id()).await.unwrap().expect("first lock");
        assert!(
            b.lock_refresh(s.id()).await.unwrap().is_none(),
            "two refreshes at once"
        );
        s.access_token = "rotated-access".into();
        let (key, sealed) = a.seal_tokens(&s, epoch());
        assert_eq!(a.save_tokens(&key, &sealed).await.unwrap(), Some(1));
        a.unlock_refresh(s.id(), &lock).await;
        let seen = b.load(s.id(), epoch()).await.unwrap().unwrap();
        assert_eq!(
            (&*seen.session.access_token, seen.version),
            ("rotated-access", 1)
        );
        assert!(
            b.lock_refresh(s.id()).await.unwrap().is_some(),
            "the lock was not released"
        );
    });
}

#[test]
fn a_provider_logout_buries_older_logins_at_every_instance() {
    let server = RedisServer::start();
    run(async {
        let (a, b) = (store(&server).await, store(&server).await);
        a.bury(Some("sid-1"), "x", 1_000, 60_000).await.unwrap();
        // An older logout arriving late does not lower the mark.
        a.bury(Some("sid-1"), "x", 900, 60_000).await.unwrap();
        assert!(b.buried(Some("sid-1"), "alice", 1_000).await.unwrap());
        assert!(b.buried(Some("sid-1"), "alice", 950).await.unwrap());
        assert!(!b.buried(Some("sid-1"), "alice", 1_001).await.unwrap());
        assert!(!b.buried(Some("sid-2"), "alice", 1).await.unwrap());
        b.bury(None, "bob", 500, 60_000).await.unwrap();
        assert!(a.buried(None, "bob", 499).await.unwrap());
        // A sid named like a user buries no login of that user.
        assert!(!a.buried(None, "sid-1", 1).await.unwrap());
    });
}

#[test]
fn a_login_older_than_a_remembered_logout_is_not_stored() {
    let server = RedisServer::start();
    run(async {
        let st = store(&server).await;
        let s = session("alice", 0);
        // The provider logged the sid out at Unix second 1000; the ID token is from 999.
        st.bury(Some("sid-alice"), "alice", 1_000, 60_000)
            .await
            .unwrap();
        assert!(matches!(
            st.create(&s, epoch(), 0, 0, 999).await.unwrap(),
            Created::Buried
        ));
        assert!(st.load(s.id(), epoch()).await.unwrap().is_none());
        assert!(matches!(
            st.create(&s, epoch(), 0, 0, 1_001).await.unwrap(),
            Created::Stored { .. }
        ));
    });
}

#[test]
fn the_per_user_cap_skips_gone_sessions_and_never_names_the_new_one() {
    let server = RedisServer::start();
    run(async {
        let st = store(&server).await;
        let gone = session("bob", 10);
        create(&st, &gone, 0, 1).await;
        // Its key expired by TTL: no sweep saw it, it must not count against the cap.
        server.cmd(&["DEL", &st.session_key(&SharedSessions::hash_of(gone.id()))]);
        // A new session whose creation time (another instance's clock) is the oldest.
        let new = session("bob", 1);
        match create(&st, &new, 0, 1).await {
            Created::Stored { superseded } => assert!(superseded.is_empty(), "{superseded:?}"),
            _ => panic!("not stored"),
        }
        assert_eq!(
            st.hashes_of(None, Some("bob")).await.unwrap(),
            vec![SharedSessions::hash_of(new.id())]
        );
    });
}

#[test]
fn a_hash_and_its_digest_convert_both_ways() {
    let s = session("alice", 0);
    let hash = SharedSessions::hash_of(s.id());
    assert_eq!(hash.len(), 64);
    assert_eq!(
        SharedSessions::digest_of_hash(&hash),
        Some(SharedSessions::digest_of(s.id()))
    );
    assert_eq!(SharedSessions::digest_of_hash("zz"), None);
    assert_eq!(SharedSessions::digest_of_hash(&"g".repeat(64)), None);
}
