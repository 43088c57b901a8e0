//! The v2 document as protobuf: the `openapi.v2.Document` message of gnostic
//! (github.com/google/gnostic, openapiv2/OpenAPIv2.proto), which is what client-go's
//! `OpenAPISchema()` asks for (`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`)
//! and the only encoding it can parse. Only the fields the lab's documents use are encoded.

use serde_json::Value;

/// A protobuf message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.varint(u64::from(field << 3 | 2));
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn str_of(&mut self, field: u32, v: &Value, key: &str) {
        if let Some(s) = v.get(key).and_then(Value::as_str) {
            self.string(field, s);
        }
    }

    fn boolean(&mut self, field: u32, b: bool) {
        if b {
            self.varint(u64::from(field << 3));
            self.varint(1);
        }
    }

    fn msg(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }
}

/// `NamedAny` entries for the `x-` keys of an object (`Any.yaml`: JSON is valid YAML).
fn vendor_extensions(m: &mut Msg, field: u32, v: &Value) {
    let Some(o) = v.as_object() else { return };
    for (k, val) in o.iter().filter(|(k, _)| k.starts_with("x-")) {
        let mut any = Msg::default();
        any.string(2, &val.to_string());
        let mut named = Msg::default();
        named.string(1, k);
        named.msg(2, any);
        m.msg(field, named);
    }
}

/// `Schema`.
fn schema(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.str_of(1, v, "$ref");
    m.str_of(2, v, "format");
    m.str_of(4, v, "description");
    if let Some(req) = v.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            m.string(19, r);
        }
    }
    if let Some(ap) = v.get("additionalProperties") {
        let mut item = Msg::default();
        match ap {
            Value::Bool(b) => item.boolean(2, *b),
            other => item.msg(1, schema(other)),
        }
        m.msg(21, item);
    }
    if let Some(t) = v.get("type").and_then(Value::as_str) {
        let mut ty = Msg::default();
        ty.string(1, t);
        m.msg(22, ty);
    }
    if let Some(items) = v.get("items") {
        let mut it = Msg::default();
        it.msg(1, schema(items));
        m.msg(23, it);
    }
    if let Some(props) = v.get("properties").and_then(Value::as_object) {
        let mut ps = Msg::default();
        for (k, s) in props {
            ps.msg(1, named(k, schema(s)));
        }
        m.msg(25, ps);
    }
    vendor_extensions(&mut m, 31, v);
    m
}

fn named(name: &str, value: Msg) -> Msg {
    let mut n = Msg::default();
    n.string(1, name);
    n.msg(2, value);
    n
}

/// `ParametersItem` -> `Parameter` -> body or non-body (query/path) parameter.
fn parameter(v: &Value) -> Msg {
    let mut param = Msg::default();
    let location = v.get("in").and_then(Value::as_str).unwrap_or_default();
    let required = v.get("required").and_then(Value::as_bool).unwrap_or(false);
    if location == "body" {
        let mut b = Msg::default();
        b.str_of(1, v, "description");
        b.str_of(2, v, "name");
        b.string(3, location);
        b.boolean(4, required);
        if let Some(s) = v.get("schema") {
            b.msg(5, schema(s));
        }
        param.msg(1, b);
    } else {
        // QueryParameterSubSchema (3) and PathParameterSubSchema (4) of NonBodyParameter.
        let mut sub = Msg::default();
        sub.boolean(1, required);
        sub.string(2, location);
        sub.str_of(3, v, "description");
        sub.str_of(4, v, "name");
        let (oneof, type_field) = if location == "path" { (4, 5) } else { (3, 6) };
        sub.str_of(type_field, v, "type");
        let mut non_body = Msg::default();
        non_body.msg(oneof, sub);
        param.msg(2, non_body);
    }
    let mut item = Msg::default();
    item.msg(1, param);
    item
}

/// `Operation`.
fn operation(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.str_of(3, v, "description");
    m.str_of(5, v, "operationId");
    for (field, key) in [(6, "produces"), (7, "consumes")] {
        for s in v.get(key).and_then(Value::as_array).into_iter().flatten() {
            m.string(field, s.as_str().unwrap_or_default());
        }
    }
    for p in v
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.msg(8, parameter(p));
    }
    if let Some(rs) = v.get("responses").and_then(Value::as_object) {
        let mut responses = Msg::default();
        for (code, r) in rs {
            let mut resp = Msg::default();
            resp.str_of(1, r, "description");
            if let Some(s) = r.get("schema") {
                let mut item = Msg::default();
                item.msg(1, schema(s));
                resp.msg(2, item);
            }
            let mut value = Msg::default();
            value.msg(1, resp);
            responses.msg(1, named(code, value));
        }
        m.msg(9, responses);
    }
    vendor_extensions(&mut m, 13, v);
    m
}

/// `PathItem`.
fn path_item(v: &Value) -> Msg {
    let mut m = Msg::default();
    for (field, verb) in [(2, "get"), (3, "put"), (4, "post"), (5, "delete"), (8, "patch")] {
        if let Some(op) = v.get(verb) {
            m.msg(field, operation(op));
        }
    }
    for p in v
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.msg(9, parameter(p));
    }
    m
}

/// Encodes a v2 (Swagger 2.0) JSON document as an `openapi.v2.Document`.
pub(crate) fn encode(doc: &Value) -> Vec<u8> {
    let mut m = Msg::default();
    m.str_of(1, doc, "swagger");
    if let Some(info) = doc.get("info") {
        let mut i = Msg::default();
        i.str_of(1, info, "title");
        i.str_of(2, info, "version");
        m.msg(2, i);
    }
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        let mut ps = Msg::default();
        for (k, item) in paths {
            ps.msg(2, named(k, path_item(item)));
        }
        m.msg(8, ps);
    }
    if let Some(defs) = doc.get("definitions").and_then(Value::as_object) {
        let mut ds = Msg::default();
        for (k, s) in defs {
            ds.msg(1, named(k, schema(s)));
        }
        m.msg(9, ds);
    }
    m.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn varints_and_strings() {
        let mut m = Msg::default();
        m.varint(300);
        assert_eq!(m.0, vec![0xac, 0x02]);
        let doc = encode(&json!({"swagger": "2.0"}));
        assert_eq!(doc, b"\x0a\x032.0".to_vec());
    }
}
