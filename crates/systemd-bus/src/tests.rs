#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::os::unix::net::UnixListener;
use std::thread;

/// A method call as a byte-exact example: header, fields in 8-byte-aligned structs, body.
#[test]
fn method_call_layout() {
    let mut body = Writer::default();
    body.string("kubelet.service");
    let body = body.finish();
    let msg = wire::method_call(7, "d", "/p", "i", "M", "s", &body);
    assert_eq!(&msg[..4], b"l\x01\x00\x01");
    assert_eq!(
        u32::from_le_bytes(msg[4..8].try_into().unwrap()),
        body.len() as u32
    );
    assert_eq!(u32::from_le_bytes(msg[8..12].try_into().unwrap()), 7);
    let fields_len = u32::from_le_bytes(msg[12..16].try_into().unwrap()) as usize;
    // path: code, sig "o", len 2, "/p\0" = 1+3+4+3 = 11, padded to 16; interface and member 13
    // each, padded to 16; destination "d" 13, padded to 16; signature field 1+3+1+2 = 7.
    assert_eq!(fields_len, 16 + 16 + 16 + 16 + 7);
    let body_at = (16 + fields_len).div_ceil(8) * 8;
    assert_eq!(&msg[body_at..], &body[..]);
    assert_eq!(&body[..4], &15u32.to_le_bytes());
    assert_eq!(&body[4..], b"kubelet.service\0");
}

/// Encodes a reply as a peer would, in either byte order.
fn reply(kind: u8, reply_serial: u32, big: bool, error: Option<&str>, sig: &str, body: &[u8]) -> Vec<u8> {
    let u32b = |n: u32| if big { n.to_be_bytes() } else { n.to_le_bytes() };
    let mut fields = Vec::new();
    let pad = |v: &mut Vec<u8>, a: usize, base: usize| {
        while !(base + v.len()).is_multiple_of(a) {
            v.push(0)
        }
    };
    // REPLY_SERIAL (5, u)
    fields.extend_from_slice(&[5, 1, b'u', 0]);
    fields.extend_from_slice(&u32b(reply_serial));
    if let Some(name) = error {
        pad(&mut fields, 8, 16);
        fields.extend_from_slice(&[4, 1, b's', 0]);
        fields.extend_from_slice(&u32b(name.len() as u32));
        fields.extend_from_slice(name.as_bytes());
        fields.push(0);
    }
    if !sig.is_empty() {
        pad(&mut fields, 8, 16);
        fields.extend_from_slice(&[8, 1, b'g', 0, sig.len() as u8]);
        fields.extend_from_slice(sig.as_bytes());
        fields.push(0);
    }
    let mut msg = vec![if big { b'B' } else { b'l' }, kind, 0, 1];
    msg.extend_from_slice(&u32b(body.len() as u32));
    msg.extend_from_slice(&u32b(1000 + reply_serial));
    msg.extend_from_slice(&u32b(fields.len() as u32));
    msg.extend_from_slice(&fields);
    while msg.len() % 8 != 0 {
        msg.push(0);
    }
    msg.extend_from_slice(body);
    msg
}

fn string_body(big: bool, s: &str) -> Vec<u8> {
    let mut b = if big {
        (s.len() as u32).to_be_bytes().to_vec()
    } else {
        (s.len() as u32).to_le_bytes().to_vec()
    };
    b.extend_from_slice(s.as_bytes());
    b.push(0);
    b
}

/// A peer on a Unix socket: checks the handshake, then answers each call with the next canned reply.
fn serve(
    replies: Vec<Box<dyn Fn(u32) -> Vec<u8> + Send>>,
) -> (tempfile_dir::Dir, thread::JoinHandle<Vec<String>>) {
    let dir = tempfile_dir::Dir::new();
    let path = dir.path().join("bus");
    let listener = UnixListener::bind(&path).unwrap();
    let handle = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut hello = [0u8; 1];
        s.read_exact(&mut hello).unwrap();
        assert_eq!(hello[0], 0);
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            s.read_exact(&mut hello).unwrap();
            line.push(hello[0]);
        }
        let line = String::from_utf8(line).unwrap();
        assert!(line.starts_with("AUTH EXTERNAL "), "{line}");
        let mut begin = [0u8; 7];
        s.read_exact(&mut begin).unwrap();
        assert_eq!(&begin, b"BEGIN\r\n");
        s.write_all(b"OK 0123456789abcdef0123456789abcdef\r\n").unwrap();
        let mut signatures = Vec::new();
        for r in replies {
            let call = wire::read_message(&mut s).unwrap();
            assert_eq!(call.kind, wire::METHOD_CALL);
            signatures.push(call.signature.clone());
            // read_message keeps no serial of its own; the client numbers its calls 1, 2, ...
            let serial = signatures.len() as u32;
            s.write_all(&r(serial)).unwrap();
        }
        signatures
    });
    (dir, handle)
}

mod tempfile_dir {
    use std::path::{Path, PathBuf};
    pub struct Dir(PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!(
                "systemd-bus-test-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn properties_in_both_byte_orders_skipping_signals() {
    let (dir, peer) = serve(vec![
        Box::new(|serial| {
            // A signal first (no reply serial of ours), then variant "s" "active", big-endian.
            let mut out = reply(4, 0, false, None, "", &[]);
            let mut body = vec![1, b's', 0, 0];
            body.extend(string_body(true, "active"));
            out.extend(reply(2, serial, true, None, "v", &body));
            out
        }),
        Box::new(|serial| reply(2, serial, false, None, "v", &[1, b'b', 0, 0, 1, 0, 0, 0])),
        Box::new(|serial| {
            reply(
                3,
                serial,
                false,
                Some("org.freedesktop.DBus.Error.UnknownInterface"),
                "s",
                &string_body(false, "Unknown interface org.freedesktop.systemd1.Service."),
            )
        }),
    ]);
    let mut bus = Bus::connect(&dir.path().join("bus"), Duration::from_secs(5)).unwrap();
    let unit = "org.freedesktop.systemd1.Unit";
    let mut got = bus
        .unit_properties(
            &["kubelet.service"],
            &[
                (unit, "ActiveState"),
                (unit, "NeedDaemonReload"),
                ("org.freedesktop.systemd1.Service", "NRestarts"),
            ],
        )
        .unwrap()
        .remove(0)
        .into_iter();
    assert_eq!(got.next().unwrap().unwrap(), Value::Str("active".into()));
    assert_eq!(got.next().unwrap().unwrap(), Value::Bool(true));
    match got.next().unwrap() {
        Err(Error::Call { name, message }) => {
            assert_eq!(name, "org.freedesktop.DBus.Error.UnknownInterface");
            assert!(message.starts_with("Unknown interface"), "{message}");
        }
        other => panic!("expected a call error, got {other:?}"),
    }
    assert_eq!(peer.join().unwrap(), ["ss", "ss", "ss"]);
}

#[test]
fn a_refused_handshake_and_a_truncated_reply_are_errors() {
    let dir = tempfile_dir::Dir::new();
    let path = dir.path().join("bus");
    let listener = UnixListener::bind(&path).unwrap();
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).unwrap();
        s.write_all(b"REJECTED EXTERNAL\r\n").unwrap();
    });
    match Bus::connect(&path, Duration::from_secs(5)) {
        Err(Error::Auth(line)) => assert_eq!(line, "REJECTED EXTERNAL"),
        other => panic!("expected an auth error, got {other:?}"),
    }
    peer.join().unwrap();

    let mut short = &reply(2, 1, false, None, "v", &[1, b's', 0, 0, 9, 0, 0, 0, b'a'])[..];
    let msg = wire::read_message(&mut short).unwrap();
    let err = Reader::new(&msg.body, false).variant().unwrap_err();
    assert!(err.contains("truncated"), "{err}");
    let mut cut = &reply(2, 1, false, None, "v", &[1, b'b', 0, 0, 1, 0, 0, 0])[..20];
    assert!(wire::read_message(&mut cut).is_err());
}

#[test]
fn unit_paths_escape_like_systemd() {
    assert_eq!(
        unit_path("kubelet.service"),
        "/org/freedesktop/systemd1/unit/kubelet_2eservice"
    );
    assert_eq!(
        unit_path("getty@tty1.service"),
        "/org/freedesktop/systemd1/unit/getty_40tty1_2eservice"
    );
    assert_eq!(unit_path("a-b_c"), "/org/freedesktop/systemd1/unit/a_2db_5fc");
    assert_eq!(unit_path(""), "/org/freedesktop/systemd1/unit/_");
}

#[test]
fn unit_properties_pipelines_and_keeps_per_property_errors() {
    let (dir, peer) = serve(vec![
        Box::new(|serial| {
            let mut body = vec![1, b's', 0, 0];
            body.extend(string_body(false, "inactive"));
            reply(2, serial, false, None, "v", &body)
        }),
        Box::new(|serial| {
            reply(
                3,
                serial,
                false,
                Some("org.freedesktop.DBus.Error.UnknownProperty"),
                "s",
                &string_body(false, "Unknown property"),
            )
        }),
    ]);
    let mut bus = Bus::connect(&dir.path().join("bus"), Duration::from_secs(5)).unwrap();
    let got = bus
        .unit_properties(
            &["docker.service"],
            &[("org.freedesktop.systemd1.Unit", "ActiveState"), ("x", "Nope")],
        )
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0][0].as_ref().unwrap(), &Value::Str("inactive".into()));
    assert!(matches!(&got[0][1], Err(Error::Call { name, .. }) if name.ends_with("UnknownProperty")));
    assert_eq!(peer.join().unwrap(), ["ss", "ss"]);
}

#[test]
fn through_a_bus_daemon_hello_goes_first() {
    let (dir, peer) = serve(vec![
        Box::new(|serial| {
            // Hello's reply, then the NameAcquired signal a daemon sends next.
            let mut out = reply(2, serial, false, None, "s", &string_body(false, ":1.42"));
            out.extend(reply(4, 0, false, None, "s", &string_body(false, ":1.42")));
            out
        }),
        Box::new(|serial| {
            let mut body = vec![1, b's', 0, 0];
            body.extend(string_body(false, "active"));
            reply(2, serial, false, None, "v", &body)
        }),
    ]);
    let mut bus = Bus::connect_message_bus(&dir.path().join("bus"), Duration::from_secs(5)).unwrap();
    let got = bus
        .unit_properties(
            &["ssh.service"],
            &[("org.freedesktop.systemd1.Unit", "ActiveState")],
        )
        .unwrap();
    assert_eq!(got[0][0].as_ref().unwrap(), &Value::Str("active".into()));
    // Hello has no arguments; then Get (ss).
    assert_eq!(peer.join().unwrap(), ["", "ss"]);
}
