//! The OpenAPI documents of the emulated release, generated from the lab's kinds and the group
//! versions the release serves: v2 (`/openapi/v2`, JSON or gnostic protobuf; the legacy
//! `/swagger.json` and `/swagger-2.0.0.pb-v1` up to 1.13) and v3 (`/openapi/v3` and
//! `/openapi/v3/<api|apis/G>/<V>`), and the server-side unknown-field check behind
//! `?fieldValidation=Strict|Warn` (KEP-2885).

mod defs;
mod proto;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde_json::{json, Map, Value};

use crate::emulation::Emulation;
use crate::store::Kind;
use defs::{def_name, definitions, kinds_of, Defs};

/// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, what client-go asks for.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The older spelling kube-openapi also serves, and the `Content-Type` it answers protobuf with
/// (Go's `mime.ParseMediaType`, which client-go runs on every response, refuses the `@`).
pub const V2_PROTOBUF_OLD: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Every group version the release serves, core first (`("", "v1")`).
fn group_versions(emu: Emulation) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("", "v1")];
    for g in emu.groups() {
        for v in emu.group_versions(g) {
            out.push((g, v));
        }
    }
    out
}

fn camel(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// `PolicyV1`, `CoreV1`, `CoordinationV1` (as in operation IDs).
fn op_prefix(group: &str, version: &str) -> String {
    let g = if group.is_empty() {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    };
    format!("{}{}", camel(g), camel(version))
}

fn query(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "type": "string", "uniqueItems": true, "description": desc})
}

/// The write options' query parameters of an operation (CreateOptions, UpdateOptions,
/// PatchOptions): `dryRun` from 1.13 (KEP-576), `fieldManager` from 1.14 (server-side apply),
/// `fieldValidation` from 1.23 (k/k#105916, KEP-2885).
fn write_params(emu: Emulation, patch: bool) -> Vec<Value> {
    let mut out = Vec::new();
    if emu.minor >= 13 {
        out.push(query(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ));
    }
    if emu.minor >= 14 {
        out.push(query(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ));
    }
    if emu.advertises_field_validation() {
        out.push(query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict"));
    }
    if patch && emu.minor >= 14 {
        out.push(json!({"name": "force", "in": "query", "type": "boolean", "uniqueItems": true, "description": "Force is going to \"force\" Apply requests."}));
    }
    out
}

fn body(schema: Value) -> Value {
    json!({"name": "body", "in": "body", "required": true, "schema": schema})
}

fn op(id: String, action: &str, gvk: &Value, params: Vec<Value>, response: Value) -> Value {
    json!({
        "description": format!("{action} the specified object"),
        "operationId": id,
        "consumes": ["*/*"],
        "produces": ["application/json", "application/yaml"],
        "parameters": params,
        "responses": {"200": {"description": "OK", "schema": response}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    })
}

/// The v2 paths of one group version: list/create and get/replace/patch/delete of each kind.
fn paths(emu: Emulation, group: &str, version: &str, out: &mut Map<String, Value>) {
    let base = if group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{group}/{version}")
    };
    let prefix = op_prefix(group, version);
    for (kind, resource, namespaced) in kinds_of(emu, group, version) {
        let k = kind.kind();
        let gvk = json!({"group": group, "version": version, "kind": k});
        let obj = json!({"$ref": format!("#/definitions/{}", def_name(group, version, k))});
        let list =
            json!({"$ref": format!("#/definitions/{}", def_name(group, version, &format!("{k}List")))});
        let (coll, ns_word) = if namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{resource}"),
                "Namespaced",
            )
        } else {
            (format!("{base}/{resource}"), "")
        };
        let path_param = |n: &str| json!({"name": n, "in": "path", "required": true, "type": "string", "uniqueItems": true, "description": format!("{n} of the {k}")});
        let mut coll_params = vec![
            json!({"name": "pretty", "in": "query", "type": "string", "uniqueItems": true, "description": "If 'true', then the output is pretty printed."}),
        ];
        if namespaced {
            coll_params.push(path_param("namespace"));
        }
        let mut item_params = coll_params.clone();
        item_params.push(path_param("name"));
        let mut create = write_params(emu, false);
        create.push(body(obj.clone()));
        let mut replace = write_params(emu, false);
        replace.push(body(obj.clone()));
        let mut patch = write_params(emu, true);
        patch.push(body(json!({"type": "object"})));
        let mut patch_op = op(
            format!("patch{prefix}{ns_word}{k}"),
            "patch",
            &gvk,
            patch,
            obj.clone(),
        );
        patch_op["consumes"] = json!([
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ]);
        out.insert(
            coll.clone(),
            json!({
                "get": op(format!("list{prefix}{ns_word}{k}"), "list", &gvk, vec![], list),
                "post": op(format!("create{prefix}{ns_word}{k}"), "post", &gvk, create, obj.clone()),
                "parameters": coll_params,
            }),
        );
        out.insert(format!("{coll}/{{name}}"), json!({
            "get": op(format!("read{prefix}{ns_word}{k}"), "get", &gvk, vec![], obj.clone()),
            "put": op(format!("replace{prefix}{ns_word}{k}"), "put", &gvk, replace, obj.clone()),
            "patch": patch_op,
            "delete": op(format!("delete{prefix}{ns_word}{k}"), "delete", &gvk, vec![], json!({"type": "object"})),
            "parameters": item_params,
        }));
    }
}

/// The v2 (Swagger 2.0) document: every served group version in one.
pub fn v2(emu: Emulation, git_version: &str) -> Value {
    let mut p = Map::new();
    for (g, v) in group_versions(emu) {
        paths(emu, g, v, &mut p);
    }
    let defs: Map<String, Value> = definitions(emu).into_iter().collect();
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": git_version},
        "paths": p,
        "definitions": defs,
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication", "type": "apiKey", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    })
}

/// The v2 document as gnostic protobuf.
pub fn v2_protobuf(emu: Emulation, git_version: &str) -> Vec<u8> {
    proto::encode(&v2(emu, git_version))
}

/// Which encoding of the v2 document an `Accept` header asks for: `Some(true)` protobuf,
/// `Some(false)` JSON, `None` neither (406), as kube-openapi's handler negotiates.
pub fn v2_wants_protobuf(accept: Option<&str>) -> Option<bool> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(false);
    };
    for part in accept.split(',') {
        let mime = part.split(';').next().unwrap_or_default().trim();
        match mime {
            V2_PROTOBUF | V2_PROTOBUF_OLD => return Some(true),
            "application/json" | "application/*" | "*/*" => return Some(false),
            _ => {}
        }
    }
    None
}

/// The definitions a schema reaches (transitively), starting from `roots`.
fn closure(defs: &Defs, roots: Vec<String>) -> BTreeSet<String> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                    out.push(r.trim_start_matches("#/definitions/").to_string());
                }
                o.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo = roots;
    while let Some(n) = todo.pop() {
        if let Some(s) = defs.get(&n) {
            if seen.insert(n) {
                refs(s, &mut todo);
            }
        }
    }
    seen
}

/// A v2 schema as v3 has it: `#/components/schemas/` references, and a reference beside a
/// description wrapped in `allOf` (as kube-openapi renders v3).
fn to_v3_schema(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, x) in o {
                out.insert(k.clone(), to_v3_schema(x));
            }
            if let Some(Value::String(r)) = out.get("$ref").cloned() {
                let r = r.replace("#/definitions/", "#/components/schemas/");
                if out.len() > 1 {
                    out.remove("$ref");
                    out.insert("allOf".into(), json!([{"$ref": r}]));
                } else {
                    out.insert("$ref".into(), json!(r));
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(to_v3_schema).collect()),
        other => other.clone(),
    }
}

/// A v2 operation as v3 has it: parameters with `schema`, the body as `requestBody`.
fn to_v3_operation(op: &Value) -> Value {
    let mut out = op.clone();
    let Some(o) = out.as_object_mut() else { return out };
    let mut params = Vec::new();
    let mut request = None;
    for p in op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if p.get("in").and_then(Value::as_str) == Some("body") {
            request = p.get("schema").map(to_v3_schema);
            continue;
        }
        let mut q = p.clone();
        if let Some(m) = q.as_object_mut() {
            let ty = m.remove("type").unwrap_or(json!("string"));
            m.remove("uniqueItems");
            m.insert("schema".into(), json!({"type": ty, "uniqueItems": true}));
        }
        params.push(q);
    }
    o.insert("parameters".into(), Value::Array(params));
    o.remove("consumes");
    o.remove("produces");
    if let Some(s) = request {
        o.insert(
            "requestBody".into(),
            json!({"content": {"*/*": {"schema": s}}, "required": true}),
        );
    }
    if let Some(s) = op.pointer("/responses/200/schema") {
        o.insert(
            "responses".into(),
            json!({"200": {"description": "OK", "content": {
                "application/json": {"schema": to_v3_schema(s)},
                "application/yaml": {"schema": to_v3_schema(s)},
            }}}),
        );
    }
    out
}

/// The v3 document of one group version (`api/v1`, `apis/policy/v1`); `None` when the release
/// does not serve it.
pub fn v3_group_version(emu: Emulation, path: &str, git_version: &str) -> Option<Value> {
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", "v1"] => ("", "v1"),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let (group, version) = group_versions(emu)
        .into_iter()
        .find(|(g, v)| *g == group && *v == version)?;
    let mut v2_paths = Map::new();
    paths(emu, group, version, &mut v2_paths);
    let mut v3_paths = Map::new();
    for (k, item) in v2_paths {
        let mut out = Map::new();
        if let Some(o) = item.as_object() {
            for (verb, x) in o {
                if verb == "parameters" {
                    let params = to_v3_operation(&json!({"parameters": x}));
                    out.insert(verb.clone(), params["parameters"].clone());
                } else {
                    out.insert(verb.clone(), to_v3_operation(x));
                }
            }
        }
        v3_paths.insert(k, Value::Object(out));
    }
    let defs = definitions(emu);
    let mut roots = Vec::new();
    for (kind, _, _) in kinds_of(emu, group, version) {
        roots.push(def_name(group, version, kind.kind()));
        roots.push(def_name(group, version, &format!("{}List", kind.kind())));
    }
    if group == "policy" {
        roots.push(def_name(group, version, "Eviction"));
    }
    let mut schemas: Map<String, Value> = closure(&defs, roots)
        .into_iter()
        .filter_map(|n| defs.get(&n).map(|s| (n, to_v3_schema(s))))
        .collect();
    // v3 gives IntOrString and Quantity no `type` (kube-openapi's OpenAPIV3OneOfTypes), which is
    // how `kubectl explain` names them `<IntOrString>`, `<Quantity>`.
    for (name, one_of) in [
        (
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            json!([{"type": "integer"}, {"type": "string"}]),
        ),
        (
            "io.k8s.apimachinery.pkg.api.resource.Quantity",
            json!([{"type": "string"}, {"type": "number"}]),
        ),
    ] {
        if let Some(o) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            o.remove("type");
            o.insert("oneOf".into(), one_of);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": git_version},
        "paths": v3_paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        },
    }))
}

/// FNV-1a (64 bits) of a document, as the `?hash=` of its v3 URL (the real server uses SHA-512;
/// clients treat the value as opaque).
pub fn hash(doc: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in doc.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: each served group version and the URL of its document.
pub fn v3_index(emu: Emulation, git_version: &str) -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions(emu) {
        let key = if g.is_empty() {
            "api/v1".to_string()
        } else {
            format!("apis/{g}/{v}")
        };
        if let Some(doc) = v3_group_version(emu, &key, git_version) {
            let url = format!("/openapi/v3/{key}?hash={}", hash(&doc));
            paths.insert(key, json!({"serverRelativeURL": url}));
        }
    }
    json!({"paths": paths})
}

/// The unknown fields of a request body for `kind` in `group/version`, as the strict decoder
/// names them (`spec.maxUnavailabel`, `spec.containers[0].imagePullPolcy`). Keys starting with
/// `$` (strategic-merge-patch directives) are not fields.
pub fn unknown_fields(emu: Emulation, kind: Kind, group: &str, version: &str, body: &Value) -> Vec<String> {
    let defs = cached_definitions(emu);
    let mut out = Vec::new();
    let root = json!({"$ref": format!("#/definitions/{}", def_name(group, version, kind.kind()))});
    walk(&defs, &root, body, "", &mut out);
    out
}

/// The definitions of a release, built once per minor (every write of 1.25+ checks its body).
fn cached_definitions(emu: Emulation) -> Arc<Defs> {
    static CACHE: OnceLock<Mutex<HashMap<u32, Arc<Defs>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    cache
        .entry(emu.minor)
        .or_insert_with(|| Arc::new(definitions(emu)))
        .clone()
}

fn walk(defs: &Defs, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        if let Some(s) = defs.get(r.trim_start_matches("#/definitions/")) {
            walk(defs, s, value, path, out);
        }
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (schema.get("type").and_then(Value::as_str), value) {
        (Some("object"), Value::Object(o)) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in o.iter().filter(|(k, _)| !k.starts_with('$')) {
                    match props.get(k) {
                        Some(s) => walk(defs, s, v, &join(k), out),
                        None => out.push(join(k)),
                    }
                }
            } else if let Some(values) = schema.get("additionalProperties") {
                for (k, v) in o {
                    walk(defs, values, v, &join(k), out);
                }
            }
        }
        (Some("array"), Value::Array(a)) => {
            if let Some(items) = schema.get("items") {
                for (i, v) in a.iter().enumerate() {
                    walk(defs, items, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn release(minor: u32) -> Emulation {
        Emulation { minor, patch: 0 }
    }

    fn gvks(defs: &Map<String, Value>) -> BTreeSet<String> {
        defs.values()
            .filter_map(|d| d.get("x-kubernetes-group-version-kind"))
            .flat_map(|g| g.as_array().cloned().unwrap_or_default())
            .map(|g| {
                format!(
                    "{}/{}/{}",
                    g["group"].as_str().unwrap(),
                    g["version"].as_str().unwrap(),
                    g["kind"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// The kinds of the v2 document are the served group versions' kinds, per release.
    #[test]
    fn v2_kinds_follow_the_served_group_versions() {
        for minor in 9..=35 {
            let emu = release(minor);
            let doc = v2(emu, &emu.git_version());
            let defs = doc["definitions"].as_object().unwrap();
            let kinds = gvks(defs);
            for (g, v) in group_versions(emu) {
                for (kind, _, _) in kinds_of(emu, g, v) {
                    assert!(
                        kinds.contains(&format!("{g}/{v}/{}", kind.kind())),
                        "1.{minor}: {g}/{v} {}",
                        kind.kind()
                    );
                }
            }
            // Nothing of a group version the release does not serve (Evictions aside).
            for gv in &kinds {
                let mut parts = gv.split('/');
                let (g, v, k) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                if k == "Eviction" {
                    continue;
                }
                assert!(group_versions(emu).contains(&(g, v)), "1.{minor} defines {gv}");
            }
            assert_eq!(
                kinds.contains("policy/v1/PodDisruptionBudget"),
                minor >= 21,
                "1.{minor}"
            );
            assert_eq!(
                kinds.contains("policy/v1beta1/PodDisruptionBudget"),
                minor <= 24,
                "1.{minor}"
            );
            assert_eq!(
                kinds.contains("extensions/v1beta1/DaemonSet"),
                minor <= 15,
                "1.{minor}"
            );
            assert_eq!(
                kinds.contains("coordination.k8s.io/v1/Lease"),
                minor >= 14,
                "1.{minor}"
            );
            assert!(defs.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
            // Every reference resolves.
            let text = doc.to_string();
            for r in text.split("\"#/definitions/").skip(1) {
                let name = r.split('"').next().unwrap();
                assert!(defs.contains_key(name), "1.{minor}: dangling {name}");
            }
            // fieldValidation on PATCH from 1.23 (k/k#105916).
            let patch = doc
                .pointer("/paths/~1api~1v1~1namespaces~1{namespace}~1pods~1{name}/patch/parameters")
                .unwrap();
            let has = patch
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation");
            assert_eq!(has, minor >= 23, "1.{minor}");
        }
    }

    /// v3: an index of the served group versions, each with its own document.
    #[test]
    fn v3_documents_per_release() {
        let emu = release(30);
        let index = v3_index(emu, "v1.30.0");
        let keys: Vec<&String> = index["paths"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "api/v1",
                "apis/apps/v1",
                "apis/coordination.k8s.io/v1",
                "apis/policy/v1"
            ]
        );
        let url = index
            .pointer("/paths/apis~1policy~1v1/serverRelativeURL")
            .unwrap()
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/policy/v1?hash="), "{url}");
        let doc = v3_group_version(emu, "apis/policy/v1", "v1.30.0").unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("io.k8s.api.policy.v1.PodDisruptionBudgetSpec"));
        assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(
            !schemas.contains_key("io.k8s.api.core.v1.PodSpec"),
            "only what policy/v1 uses"
        );
        assert!(!doc.to_string().contains("#/definitions/"));
        let patch = doc
            .pointer("/paths/~1apis~1policy~1v1~1namespaces~1{namespace}~1poddisruptionbudgets~1{name}/patch")
            .unwrap();
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "policy", "version": "v1", "kind": "PodDisruptionBudget"})
        );
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        assert!(v3_group_version(emu, "apis/policy/v1beta1", "v1.30.0").is_none());
        assert!(v3_group_version(emu, "apis/extensions/v1beta1", "v1.30.0").is_none());
        let old = release(15);
        let keys: Vec<String> = v3_index(old, "v1.15.0")["paths"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert!(
            keys.contains(&"apis/extensions/v1beta1".to_string())
                && keys.contains(&"apis/policy/v1beta1".to_string())
        );
    }

    #[test]
    fn unknown_fields_are_named_as_the_strict_decoder_does() {
        let emu = release(30);
        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "labels": {"a": "b"}},
            "spec": {"maxUnavailabel": 1, "minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}});
        assert_eq!(
            unknown_fields(emu, Kind::Pdb, "policy", "v1", &pdb),
            vec!["spec.maxUnavailabel"]
        );
        let pod = json!({"metadata": {"name": "p", "nmae": "x"}, "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolcy": "x"}],
            "$setElementOrder/containers": [{"name": "c"}]}});
        assert_eq!(
            unknown_fields(emu, Kind::Pod, "", "v1", &pod),
            vec!["metadata.nmae", "spec.containers[0].imagePullPolcy"]
        );
        // unhealthyPodEvictionPolicy exists from 1.26 (KEP-3017).
        let p = json!({"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}});
        assert!(unknown_fields(emu, Kind::Pdb, "policy", "v1", &p).is_empty());
        assert_eq!(
            unknown_fields(release(25), Kind::Pdb, "policy", "v1", &p),
            vec!["spec.unhealthyPodEvictionPolicy"]
        );
    }

    #[test]
    fn v2_negotiation() {
        assert_eq!(v2_wants_protobuf(Some(V2_PROTOBUF)), Some(true));
        assert_eq!(v2_wants_protobuf(Some("application/json")), Some(false));
        assert_eq!(v2_wants_protobuf(None), Some(false));
        assert_eq!(v2_wants_protobuf(Some("application/xml")), None);
        let pb = v2_protobuf(release(30), "v1.30.0");
        assert!(pb.len() > 1000 && pb.starts_with(b"\x0a\x032.0"));
    }
}
