//! A minimal, read-only D-Bus client for systemd: unit properties without spawning systemctl.
//!
//! Why: a no-op `service_state` only has to read a few unit properties, and spawning
//! `systemctl show` costs 10+ ms on a busy host, while the same reads over a socket take a fraction
//! of one. The system bus comes first: dbus-daemon answers a new connection in about 50 us, where
//! systemd's own private socket (what systemctl uses as root) sets up each connection in 2-4 ms.
//! The private socket is the fallback for hosts without a bus daemon. Read-only on purpose:
//! starting and stopping still go through systemctl, which waits for jobs and prints what
//! operators know.
//!
//! Only what those reads need is implemented: the EXTERNAL handshake, method calls whose arguments
//! are strings, and replies whose body is a variant of a basic type.

mod wire;

use std::fmt;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use wire::{Message, Reader, Writer};

pub use wire::Value;

/// systemd's own socket: a direct connection to PID 1, no bus daemon in between.
pub const PRIVATE_SOCKET: &str = "/run/systemd/private";
/// The system bus, unless `DBUS_SYSTEM_BUS_ADDRESS` names another `unix:path=`.
pub const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

const DBUS: &str = "org.freedesktop.DBus";
const DBUS_PATH: &str = "/org/freedesktop/DBus";

const SYSTEMD: &str = "org.freedesktop.systemd1";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

#[derive(Debug)]
pub enum Error {
    Io(std::io::Error),
    /// The peer refused or garbled the handshake.
    Auth(String),
    /// A reply we cannot read; the connection should not be reused.
    Protocol(String),
    /// The call reached systemd and it answered with a D-Bus error.
    Call {
        name: String,
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "systemd bus: {e}"),
            Error::Auth(e) => write!(f, "systemd bus: authentication refused: {e}"),
            Error::Protocol(e) => write!(f, "systemd bus: unreadable reply: {e}"),
            Error::Call { name, message } => write!(f, "systemd: {name}: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

#[derive(Debug)]
pub struct Bus {
    stream: UnixStream,
    /// Replies come in many small messages: one read syscall serves a batch of them.
    incoming: BufReader<UnixStream>,
    serial: u32,
    /// Calls not yet written: a batch goes out in one write, so systemd reads it in one wakeup.
    outgoing: Vec<u8>,
}

impl Bus {
    /// systemd over the system bus when there is one, else over its private socket.
    pub fn connect_systemd(timeout: Duration) -> Result<Bus, Error> {
        let system_bus = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .ok()
            .and_then(|a| {
                a.strip_prefix("unix:path=")
                    .map(|p| p.split(',').next().unwrap_or(p).to_string())
            })
            .unwrap_or_else(|| SYSTEM_BUS_SOCKET.to_string());
        Self::connect_message_bus(Path::new(&system_bus), timeout)
            .or_else(|_| Self::connect(Path::new(PRIVATE_SOCKET), timeout))
    }

    /// A direct (peer-to-peer) connection, such as systemd's private socket. Every read and write
    /// is bounded by `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Bus, Error> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let incoming = BufReader::with_capacity(64 * 1024, stream.try_clone()?);
        let mut bus = Bus {
            stream,
            incoming,
            serial: 0,
            outgoing: Vec::new(),
        };
        bus.authenticate()?;
        Ok(bus)
    }

    /// A connection through a bus daemon. Its mandatory Hello is queued, to go out with the first
    /// calls; its reply is skipped like any other message that answers nothing of ours.
    pub fn connect_message_bus(path: &Path, timeout: Duration) -> Result<Bus, Error> {
        let mut bus = Self::connect(path, timeout)?;
        bus.send(DBUS, DBUS_PATH, DBUS, "Hello", &[])?;
        Ok(bus)
    }

    /// SASL EXTERNAL: the kernel vouches for our uid (sent as hex of its decimal digits).
    ///
    /// BEGIN is pipelined with AUTH, as sd-bus's own clients do. Sent after the OK instead, it can
    /// reach systemd in the same read as the first call, and systemd (252 at least) then leaves
    /// that call in its buffer unanswered until something else wakes it.
    fn authenticate(&mut self) -> Result<(), Error> {
        let uid = std::fs::metadata("/proc/self")?.uid().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.stream
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").as_bytes())?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            return Err(Error::Auth(line));
        }
        Ok(())
    }

    fn read_line(&mut self) -> Result<String, Error> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() > 512 {
                return Err(Error::Auth("overlong handshake line".into()));
            }
            self.incoming.read_exact(&mut byte)?;
            line.push(byte[0]);
        }
        Ok(String::from_utf8_lossy(&line).trim_end().to_string())
    }

    /// Properties of several units in one round trip: every `Get` is written at once, then the
    /// replies are collected. systemd loads a unit on demand when its object path is used, as
    /// `LoadUnit` would (a unit that does not exist reads as `LoadState` "not-found"), so no
    /// separate load call is needed. The outer error is the connection's; the inner ones are
    /// systemd's answers to single reads (e.g. a property of an interface the unit lacks).
    pub fn unit_properties(
        &mut self,
        units: &[&str],
        properties: &[(&str, &str)],
    ) -> Result<Vec<Vec<Result<Value, Error>>>, Error> {
        let mut serials = Vec::new();
        for unit in units {
            let path = unit_path(unit);
            for (interface, name) in properties {
                serials.push(self.send(SYSTEMD, &path, PROPERTIES, "Get", &[interface, name])?);
            }
        }
        self.flush()?;
        let mut out = Vec::new();
        let mut replies = serials.into_iter();
        for _ in units {
            let mut values = Vec::new();
            for _ in properties {
                let reply = match replies.next() {
                    Some(serial) => self.reply(serial)?,
                    None => return Err(Error::Protocol("missing reply".into())),
                };
                values.push(reply.and_then(|m| variant(&m)));
            }
            out.push(values);
        }
        Ok(out)
    }

    fn send(
        &mut self,
        destination: &str,
        path: &str,
        interface: &str,
        member: &str,
        args: &[&str],
    ) -> Result<u32, Error> {
        self.serial = self.serial.wrapping_add(1).max(1);
        let mut body = Writer::default();
        for a in args {
            body.string(a);
        }
        let signature = "s".repeat(args.len());
        let bytes = wire::method_call(
            self.serial,
            destination,
            path,
            interface,
            member,
            &signature,
            &body.finish(),
        );
        self.outgoing.extend_from_slice(&bytes);
        Ok(self.serial)
    }

    fn flush(&mut self) -> Result<(), Error> {
        let result = self.stream.write_all(&self.outgoing);
        self.outgoing.clear();
        Ok(result?)
    }

    /// The reply to call `serial`: the outer error is the connection's, the inner one systemd's.
    fn reply(&mut self, serial: u32) -> Result<Result<Message, Error>, Error> {
        loop {
            let reply = wire::read_message(&mut self.incoming)?;
            if reply.reply_serial != Some(serial) {
                continue;
            }
            return match reply.kind {
                wire::METHOD_RETURN => Ok(Ok(reply)),
                wire::ERROR => {
                    let message = if reply.signature.starts_with('s') {
                        reply
                            .body_reader()
                            .and_then(|mut r| r.value_of("s"))
                            .map(|v| v.to_string())
                            .unwrap_or_default()
                    } else {
                        String::new()
                    };
                    Ok(Err(Error::Call {
                        name: reply.error_name.unwrap_or_default(),
                        message,
                    }))
                }
                other => Err(Error::Protocol(format!("reply of message type {other}"))),
            };
        }
    }
}

fn variant(reply: &Message) -> Result<Value, Error> {
    if reply.signature != "v" {
        return Err(Error::Protocol(format!(
            "expected a variant, got signature {:?}",
            reply.signature
        )));
    }
    reply
        .body_reader()
        .and_then(|mut r| r.variant())
        .map_err(Error::Protocol)
}

/// systemd's object path of a unit: every byte but `[A-Za-z0-9]` escaped as `_xx`.
pub fn unit_path(unit: &str) -> String {
    let mut path = String::from("/org/freedesktop/systemd1/unit/");
    if unit.is_empty() {
        path.push('_');
    }
    for b in unit.bytes() {
        if b.is_ascii_alphanumeric() {
            path.push(b as char);
        } else {
            path.push_str(&format!("_{b:02x}"));
        }
    }
    path
}

/// Convenience for the `Reader` of a reply's body.
impl Message {
    fn body_reader(&self) -> Result<Reader<'_>, String> {
        Ok(Reader::new(&self.body, self.big_endian))
    }
}

#[cfg(test)]
mod tests;
