//! Against a real `redis-server` (started per test on a free port): round trips,
//! pipelining, scripts, AUTH, timeouts, and a server that dies and comes back.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use super::*;

#[path = "../../tests/integration/redis_server.rs"]
#[allow(dead_code)]
pub(crate) mod redis_server;
pub(crate) use redis_server::RedisServer;

/// Generous: only a guard against a hang, never what a test waits for.
const HANG_GUARD: Duration = Duration::from_secs(20);

pub(crate) fn run<F: Future<Output = ()>>(f: F) {
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(async {
            monoio::time::timeout(HANG_GUARD, f)
                .await
                .expect("the test hung");
        })
}

fn settings(server: &RedisServer, password: Option<&str>) -> Rc<Settings> {
    Rc::new(Settings {
        host: "127.0.0.1".to_string(),
        port: server.port,
        password: password.map(str::to_string),
        ..Settings::default()
    })
}

fn tls() -> Arc<rustls::ClientConfig> {
    crate::client::tls_config(None).expect("client TLS settings")
}

pub(crate) async fn connected(server: &RedisServer) -> Redis {
    let r = Redis::connect(settings(server, None), tls(), "test");
    assert!(r.wait_up(Duration::from_secs(5)).await, "not up");
    r
}

fn bytes(v: &[u8]) -> Value {
    Value::Bytes(v.to_vec())
}

#[test]
fn commands_encode_as_arrays_of_bulk_strings() {
    let mut out = Vec::new();
    Cmd::new("SET").arg("k").arg_int(-5).write_to(&mut out);
    assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n-5\r\n");
    assert_eq!(
        Script::new("return 1").sha(),
        "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
    );
    assert!(Value::Simple("OK".into()).is_ok());
    assert_eq!(bytes(b"42").as_int(), Some(42));
}

#[test]
fn set_and_get_round_trip() {
    let server = RedisServer::start();
    run(async {
        let r = connected(&server).await;
        assert!(r
            .query(Cmd::new("SET").arg("k").arg(b"v\r\n\0"))
            .await
            .unwrap()
            .is_ok());
        assert_eq!(
            r.query(Cmd::new("GET").arg("k")).await,
            Ok(bytes(b"v\r\n\0"))
        );
        assert_eq!(
            r.query(Cmd::new("GET").arg("missing")).await,
            Ok(Value::Nil)
        );
        assert_eq!(
            r.query(Cmd::new("INCRBY").arg("n").arg_int(7)).await,
            Ok(Value::Int(7))
        );
        let err = r.query(Cmd::new("INCR").arg("k")).await.unwrap_err();
        assert!(
            matches!(&err, RedisError::Server(m) if m.starts_with("ERR")),
            "{err:?}"
        );
        assert_eq!(
            server
                .cmd(&["CLIENT", "LIST"])
                .matches("name=sessiongate-test")
                .count(),
            1
        );
        r.close();
    });
}

#[test]
fn pipelines_and_concurrent_calls_get_their_own_replies_in_order() {
    let server = RedisServer::start();
    run(async {
        let r = connected(&server).await;
        let mut cmds: Vec<Cmd> = (0..100).map(|_| Cmd::new("INCR").arg("c")).collect();
        cmds[50] = Cmd::new("NOSUCHCOMMAND");
        let replies = r.pipeline(cmds).await.unwrap();
        assert_eq!(replies.len(), 100);
        assert!(matches!(&replies[50], Value::Error(_)), "{:?}", replies[50]);
        let ints: Vec<i64> = replies.iter().filter_map(Value::as_int).collect();
        assert_eq!(ints, (1..=99).collect::<Vec<_>>());
        // Calls from many tasks at once share writes; each still gets its own reply.
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let r = r.clone();
                monoio::spawn(async move {
                    let key = format!("k{i}");
                    r.query(Cmd::new("SET").arg(&key).arg_int(i)).await.unwrap();
                    r.query(Cmd::new("GET").arg(&key)).await.unwrap()
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.as_int(), Some(i as i64));
        }
        assert_eq!(r.pipeline(Vec::new()).await, Ok(Vec::new()));
    });
}

#[test]
fn a_script_unknown_to_the_server_is_sent_whole_once() {
    let server = RedisServer::start();
    run(async {
        let r = connected(&server).await;
        let script = Script::new("return {KEYS[1], ARGV[1]}");
        r.query(Cmd::new("SCRIPT").arg("FLUSH")).await.unwrap();
        let want = Value::Array(vec![bytes(b"key"), bytes(b"arg")]);
        assert_eq!(
            r.script(&script, &[b"key"], &[b"arg"]).await,
            Ok(want.clone())
        );
        let exists = r
            .query(Cmd::new("SCRIPT").arg("EXISTS").arg(script.sha()))
            .await;
        assert_eq!(exists, Ok(Value::Array(vec![Value::Int(1)])));
        assert_eq!(r.script(&script, &[b"key"], &[b"arg"]).await, Ok(want));
    });
}

#[test]
fn auth_with_the_right_password_and_not_with_a_wrong_one() {
    let server = RedisServer::start_with_password("s3cret");
    run(async {
        let good = Redis::connect(settings(&server, Some("s3cret")), tls(), "good");
        assert!(good.wait_up(Duration::from_secs(5)).await);
        assert_eq!(
            good.query(Cmd::new("PING")).await,
            Ok(Value::Simple("PONG".into()))
        );
        let bad = Redis::connect(settings(&server, Some("wrong")), tls(), "bad");
        assert!(!bad.wait_up(Duration::from_millis(500)).await);
        assert!(!bad.is_up());
        assert_eq!(
            bad.query(Cmd::new("PING")).await,
            Err(RedisError::Unavailable)
        );
        bad.close();
    });
}

#[test]
fn a_slow_reply_times_out_and_the_connection_is_opened_anew() {
    let server = RedisServer::start();
    run(async {
        let r = connected(&server).await;
        let blocking = Cmd::new("BLPOP").arg("empty").arg_int(5);
        let t = r.query_within(blocking, Duration::from_millis(100)).await;
        assert_eq!(t, Err(RedisError::Timeout));
        assert!(r.wait_up(Duration::from_secs(5)).await);
        assert_eq!(r.query(Cmd::new("ECHO").arg("x")).await, Ok(bytes(b"x")));
    });
}

#[test]
fn a_dead_server_fails_calls_fast_and_a_restarted_one_is_used_again() {
    let mut server = RedisServer::start();
    run(async {
        let r = connected(&server).await;
        let waiting = {
            let r = r.clone();
            monoio::spawn(async move {
                let cmd = Cmd::new("BLPOP").arg("empty").arg_int(10);
                r.query_within(cmd, Duration::from_secs(15)).await
            })
        };
        monoio::time::sleep(Duration::from_millis(100)).await;
        server.kill();
        assert_eq!(waiting.await, Err(RedisError::Disconnected));
        assert!(!r.is_up());
        assert_eq!(
            r.query(Cmd::new("PING")).await,
            Err(RedisError::Unavailable)
        );
        server.restart();
        assert!(r.wait_up(Duration::from_secs(10)).await);
        assert!(r
            .query(Cmd::new("SET").arg("k").arg("v"))
            .await
            .unwrap()
            .is_ok());
        r.close();
        monoio::time::sleep(Duration::from_millis(10)).await;
        assert!(!r.is_up());
        assert_eq!(
            r.query(Cmd::new("PING")).await,
            Err(RedisError::Unavailable)
        );
    });
}

#[test]
fn tls_to_a_server_with_a_private_ca() {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let server = RedisServer::start_tls(&ca.pem(), &leaf.pem(), &key.serialize_pem());
    let trusted = crate::client::tls_config(Some(&[ca.der().clone()])).unwrap();
    run(async {
        let s = Rc::new(Settings {
            host: "localhost".to_string(),
            port: server.tls_port.unwrap(),
            tls: true,
            ..Settings::default()
        });
        let r = Redis::connect(s.clone(), trusted, "tls");
        assert!(r.wait_up(Duration::from_secs(5)).await, "not up over TLS");
        assert!(r
            .query(Cmd::new("SET").arg("k").arg("v"))
            .await
            .unwrap()
            .is_ok());
        assert_eq!(r.query(Cmd::new("GET").arg("k")).await, Ok(bytes(b"v")));
        // The system roots alone do not know the private CA.
        let untrusted = Redis::connect(s, tls(), "untrusted");
        assert!(!untrusted.wait_up(Duration::from_millis(500)).await);
    });
}
