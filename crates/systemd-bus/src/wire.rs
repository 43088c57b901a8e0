//! The D-Bus wire format, as far as the reads of this crate need it: little-endian messages out,
//! either endianness in, alignment counted from the start of the header (or of the body, which
//! always starts on an 8-byte boundary).

use std::fmt;
use std::io::Read;

pub const METHOD_CALL: u8 = 1;
pub const METHOD_RETURN: u8 = 2;
pub const ERROR: u8 = 3;

const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SIGNATURE: u8 = 8;

/// The specification's limit on a whole message.
const MAX_MESSAGE: usize = 128 << 20;

/// A property value of a basic type; containers are reported by signature only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Strings, object paths and signatures.
    Str(String),
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    /// A type this crate does not decode, by its signature.
    Other(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{}", if *b { "yes" } else { "no" }),
            Value::Unsigned(n) => write!(f, "{n}"),
            Value::Signed(n) => write!(f, "{n}"),
            Value::Other(sig) => write!(f, "<{sig}>"),
        }
    }
}

#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    fn byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    fn u32(&mut self, n: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    /// `s` and `o`: length, bytes, NUL.
    pub fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// `g`: one-byte length, bytes, NUL.
    fn signature(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn field(&mut self, code: u8, signature: &str, value: &str) {
        self.pad(8);
        self.byte(code);
        self.signature(signature);
        if signature == "g" {
            self.signature(value);
        } else {
            self.string(value);
        }
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// A complete METHOD_CALL message.
pub fn method_call(
    serial: u32,
    destination: &str,
    path: &str,
    interface: &str,
    member: &str,
    signature: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut w = Writer::default();
    w.byte(b'l');
    w.byte(METHOD_CALL);
    w.byte(0);
    w.byte(1);
    w.u32(body.len() as u32);
    w.u32(serial);
    let length_at = w.buf.len();
    w.u32(0);
    w.pad(8);
    let fields_start = w.buf.len();
    w.field(FIELD_PATH, "o", path);
    w.field(FIELD_INTERFACE, "s", interface);
    w.field(FIELD_MEMBER, "s", member);
    w.field(FIELD_DESTINATION, "s", destination);
    if !signature.is_empty() {
        w.field(FIELD_SIGNATURE, "g", signature);
    }
    let fields_len = (w.buf.len() - fields_start) as u32;
    w.buf[length_at..length_at + 4].copy_from_slice(&fields_len.to_le_bytes());
    w.pad(8);
    w.buf.extend_from_slice(body);
    w.buf
}

/// A received message: the header fields we use and the raw body.
#[derive(Debug)]
pub struct Message {
    pub kind: u8,
    pub big_endian: bool,
    pub reply_serial: Option<u32>,
    pub error_name: Option<String>,
    pub signature: String,
    pub body: Vec<u8>,
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

pub fn read_message(stream: &mut impl Read) -> std::io::Result<Message> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut fixed = [0u8; 16];
    stream.read_exact(&mut fixed)?;
    let big_endian = match fixed[0] {
        b'l' => false,
        b'B' => true,
        other => return Err(invalid(format!("bad endianness byte {other:#04x}"))),
    };
    let word = |at: usize| {
        let b = [fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]];
        (if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }) as usize
    };
    let (body_len, fields_len) = (word(4), word(12));
    let header_len = align8(16 + fields_len);
    if header_len + body_len > MAX_MESSAGE {
        return Err(invalid(format!("message of {} bytes", header_len + body_len)));
    }
    let mut header = vec![0u8; header_len];
    header[..16].copy_from_slice(&fixed);
    stream.read_exact(&mut header[16..])?;
    let mut body = vec![0u8; body_len];
    stream.read_exact(&mut body)?;

    let mut message = Message {
        kind: fixed[1],
        big_endian,
        reply_serial: None,
        error_name: None,
        signature: String::new(),
        body,
    };
    let mut r = Reader::new(&header[..16 + fields_len], big_endian);
    r.pos = 16;
    while r.pos < r.buf.len() {
        r.align(8).map_err(invalid)?;
        let code = r.byte().map_err(invalid)?;
        let sig = r.signature().map_err(invalid)?;
        let value = r.value_of(&sig).map_err(invalid)?;
        match (code, value) {
            (FIELD_REPLY_SERIAL, Value::Unsigned(n)) => message.reply_serial = u32::try_from(n).ok(),
            (FIELD_ERROR_NAME, Value::Str(s)) => message.error_name = Some(s),
            (FIELD_SIGNATURE, Value::Str(s)) => message.signature = s,
            (_, Value::Other(sig)) => return Err(invalid(format!("header field {code} of type {sig}"))),
            _ => {}
        }
    }
    Ok(message)
}

/// Reads values from a message part; alignment is relative to the start of `buf`.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], big_endian: bool) -> Self {
        Reader {
            buf,
            pos: 0,
            big_endian,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        match end {
            Some(end) => {
                let bytes = &self.buf[self.pos..end];
                self.pos = end;
                Ok(bytes)
            }
            None => Err(format!("truncated at byte {} (wanted {n} more)", self.pos)),
        }
    }

    fn align(&mut self, align: usize) -> Result<(), String> {
        let pad = (align - self.pos % align) % align;
        self.take(pad).map(|_| ())
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], String> {
        self.align(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        if self.big_endian {
            out.reverse();
        }
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.fixed::<4>().map(u32::from_le_bytes)
    }

    fn text(&mut self, len: usize) -> Result<String, String> {
        let bytes = self.take(len)?;
        if self.byte()? != 0 {
            return Err("string without its NUL".into());
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }

    fn signature(&mut self) -> Result<String, String> {
        let len = self.byte()? as usize;
        self.text(len)
    }

    /// A value of basic type `sig`.
    pub fn value_of(&mut self, sig: &str) -> Result<Value, String> {
        Ok(match sig {
            "s" | "o" => {
                let len = self.u32()? as usize;
                Value::Str(self.text(len)?)
            }
            "g" => Value::Str(self.signature()?),
            "b" => Value::Bool(self.u32()? != 0),
            "y" => Value::Unsigned(self.byte()?.into()),
            "q" => Value::Unsigned(self.fixed::<2>().map(u16::from_le_bytes)?.into()),
            "u" => Value::Unsigned(self.u32()?.into()),
            "t" => Value::Unsigned(self.fixed::<8>().map(u64::from_le_bytes)?),
            "n" => Value::Signed(self.fixed::<2>().map(i16::from_le_bytes)?.into()),
            "i" => Value::Signed(self.fixed::<4>().map(i32::from_le_bytes)?.into()),
            "x" => Value::Signed(self.fixed::<8>().map(i64::from_le_bytes)?),
            other => Value::Other(other.to_string()),
        })
    }

    /// A variant: its signature, then its value.
    pub fn variant(&mut self) -> Result<Value, String> {
        let sig = self.signature()?;
        self.value_of(&sig)
    }
}
