//! Input echoed in messages, bounded: a value a caller sent is shown quoted and escaped (so a control
//! character cannot forge a line of a log) and cut after [`ECHO_LIMIT`] characters with its full size,
//! so a 50 MB argument never becomes a 50 MB result line.

use serde_json::Value;

/// How many characters of an echoed value a message shows.
pub const ECHO_LIMIT: usize = 200;

/// The most a result's `msg` (or a warning) may hold; longer ones are cut, saying so.
pub const MESSAGE_LIMIT: usize = 16 * 1024;

/// `value` quoted and escaped as Rust's `{:?}` does, cut after [`ECHO_LIMIT`] characters:
/// `"abc…" (52428800 bytes)`.
pub fn shown(value: &str) -> String {
    let head: String = value.chars().take(ECHO_LIMIT).collect();
    let quoted = format!("{head:?}");
    let escaped_len = quoted.chars().count();
    if head.len() == value.len() && escaped_len <= ECHO_LIMIT + 2 {
        return quoted;
    }
    // Without the closing quote, at most ECHO_LIMIT characters after the opening one.
    let kept: String = quoted
        .chars()
        .take((ECHO_LIMIT + 1).min(escaped_len - 1))
        .collect();
    format!("{kept}…\" ({} bytes)", value.len())
}

/// A name (a parameter key) for a message, between backticks: escaped, and cut like [`shown`]:
/// `` `colour` ``, `` `kkk…` (5000 bytes) ``.
pub fn shown_name(name: &str) -> String {
    let escaped: String = name
        .chars()
        .take(ECHO_LIMIT)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().nth(ECHO_LIMIT).is_none() && escaped.chars().count() <= ECHO_LIMIT {
        return format!("`{escaped}`");
    }
    let kept: String = escaped.chars().take(ECHO_LIMIT).collect();
    format!("`{kept}…` ({} bytes)", name.len())
}

/// Any JSON value for a message: a string as [`shown`], anything else as compact JSON, cut the same way.
pub fn shown_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("string {}", shown(s)),
        other => {
            let text = other.to_string();
            if text.chars().count() <= ECHO_LIMIT {
                text
            } else {
                let kept: String = text.chars().take(ECHO_LIMIT).collect();
                format!("{kept}… ({} bytes)", text.len())
            }
        }
    }
}

/// Cuts every `"..."` or `` `...` `` segment of a message longer than [`ECHO_LIMIT`] characters: for
/// messages made by code that echoes values without [`shown`] (serde's own, for instance).
pub fn elide_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len().min(4 * MESSAGE_LIMIT));
    let mut chars = msg.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c != '"' && c != '`' {
            out.push(c);
            continue;
        }
        // Find the closing quote (a `"` may be escaped with a backslash; a backtick cannot).
        let mut end = msg.len();
        let mut escaped = false;
        for (i, d) in chars.by_ref() {
            if c == '"' && escaped {
                escaped = false;
            } else if c == '"' && d == '\\' {
                escaped = true;
            } else if d == c {
                end = i;
                break;
            }
        }
        let inner = &msg[start + c.len_utf8()..end];
        let closed = end < msg.len();
        out.push(c);
        if inner.chars().nth(ECHO_LIMIT).is_some() {
            out.extend(inner.chars().take(ECHO_LIMIT));
            out.push('…');
            out.push(c);
            out.push_str(&format!(" ({} bytes)", inner.len()));
        } else {
            out.push_str(inner);
            if closed {
                out.push(c);
            }
        }
    }
    out
}

/// A message cut to [`MESSAGE_LIMIT`] bytes (on a character boundary), saying how long it was.
pub fn bounded(msg: String) -> String {
    if msg.len() <= MESSAGE_LIMIT {
        return msg;
    }
    let mut end = MESSAGE_LIMIT - 64;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (message cut: {} bytes in all)", &msg[..end], msg.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole() {
        assert_eq!(shown("v1.9.2"), "\"v1.9.2\"");
        assert_eq!(shown("a\nb\0"), "\"a\\nb\\0\"");
        assert_eq!(shown_name("colour"), "`colour`");
    }

    #[test]
    fn long_values_are_cut_with_their_size() {
        let big = "x".repeat(50 * 1024 * 1024);
        let s = shown(&big);
        assert!(s.len() < ECHO_LIMIT + 40, "{}", s.len());
        assert!(s.ends_with("…\" (52428800 bytes)"), "{s}");
        // Escapes count against the limit too.
        let nuls = "\0".repeat(1000);
        assert!(shown(&nuls).chars().count() < ECHO_LIMIT + 40);
        let key = shown_name(&"k".repeat(5000));
        assert!(key.ends_with("…` (5000 bytes)"), "{key}");
        let v = shown_value(&serde_json::json!({"a": "b".repeat(10_000)}));
        assert!(v.len() < ECHO_LIMIT + 40, "{v}");
    }

    #[test]
    fn quoted_segments_of_any_message_are_cut() {
        let msg = format!(
            "invalid type: string \"{}\", expected u32; unknown field `{}`",
            "y".repeat(100_000),
            "z".repeat(300)
        );
        let cut = elide_quoted(&msg);
        assert!(cut.len() < 600, "{}", cut.len());
        assert!(cut.contains("(100000 bytes)"), "{cut}");
        assert!(cut.contains("(300 bytes)"), "{cut}");
        assert!(cut.ends_with(" bytes)"), "{cut}");
        assert!(cut.contains(", expected u32"), "{cut}");
        // Short ones, escapes and a lone quote are left as they are.
        for text in ["got \"a\\\"b\" here", "`x` and `y`", "don't \" stop"] {
            assert_eq!(elide_quoted(text), text);
        }
    }

    #[test]
    fn messages_are_bounded() {
        let long = "é".repeat(MESSAGE_LIMIT);
        let cut = bounded(long);
        assert!(cut.len() <= MESSAGE_LIMIT, "{}", cut.len());
        assert!(cut.contains("message cut"));
        assert_eq!(bounded("short".into()), "short");
    }
}
