//! The generic verbs: create (POST), update (PUT), patch (PATCH), delete (DELETE), with the
//! server-owned metadata, the status subresource split, and the per-kind checks.

use serde_json::{json, Value};

use super::leases::validate_lease_spec;
use super::object::{meta, meta_str, set_path};
use super::{Deleted, Kind, Preconditions, Store};
use crate::cluster::KubeletMode;
use crate::error::ApiError;
use crate::patch::{self, PatchKind};

impl Store {
    fn check_namespace(&self, kind: Kind, ns: &str) -> Result<(), ApiError> {
        if kind.namespaced() && self.get(Kind::Namespace, "", ns).is_none() {
            return Err(ApiError::not_found("namespaces", "", ns));
        }
        Ok(())
    }

    /// POST: creates an object.
    pub fn create(&mut self, kind: Kind, ns: &str, mut body: Value) -> Result<Value, ApiError> {
        self.check_namespace(kind, ns)?;
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let mut name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            if let Some(g) = body.pointer("/metadata/generateName").and_then(Value::as_str) {
                name = format!("{g}{}", self.rng.suffix(5));
            }
        }
        if name.is_empty() {
            return Err(ApiError::invalid(
                kind.kind(),
                kind.group(),
                "",
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            ));
        }
        if !valid_name(&name) {
            return Err(ApiError::invalid(kind.kind(), kind.group(), &name, "metadata.name", "FieldValueInvalid",
                &format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")));
        }
        let body_ns = body
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.namespaced() && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if self.get(kind, ns, &name).is_some() {
            return Err(ApiError::already_exists(kind.resource(), kind.group(), &name));
        }
        if kind == Kind::Lease {
            validate_lease_spec(&name, &body)?;
        }
        let labels = body.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
        let fresh = self.new_meta(if kind.namespaced() { ns } else { "" }, &name, labels);
        if let Some(o) = body.as_object_mut() {
            o.remove("kind");
            o.remove("apiVersion");
            let m = o.entry("metadata").or_insert(json!({}));
            if let (Some(m), Some(f)) = (m.as_object_mut(), fresh.as_object()) {
                m.remove("resourceVersion");
                for (k, v) in f {
                    m.insert(k.clone(), v.clone());
                }
                m.insert("generation".into(), json!(1));
            }
        }
        match kind {
            Kind::Pod => {
                let node = body
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .map(String::from);
                let node = node.or_else(|| self.pick_node(""));
                if let Some(n) = &node {
                    set_path(&mut body, &["spec", "nodeName"], json!(n));
                }
                self.set_pod_pending(&mut body, node.is_some());
                Ok(self.launch_pod(body, false))
            }
            Kind::Node => {
                let stored = self.commit(Kind::Node, body);
                self.register_node(&stored, KubeletMode::External, self.nodes_rt.len());
                self.after_node_write(&name);
                self.reconcile_daemonsets_on(&name);
                Ok(stored)
            }
            Kind::Namespace => {
                set_path(&mut body, &["status"], json!({"phase": "Active"}));
                set_path(&mut body, &["spec"], json!({"finalizers": ["kubernetes"]}));
                Ok(self.commit(kind, body))
            }
            Kind::ReplicaSet => {
                let stored = self.commit(kind, body);
                self.reconcile_rs(ns, &name, "");
                Ok(stored)
            }
            _ => Ok(self.commit(kind, body)),
        }
    }

    /// PUT (main resource or `status` subresource).
    pub fn update(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        body: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let old = self.get_or_404(kind, ns, name)?.clone();
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let body_name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = body.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
            if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(kind.resource(), kind.group(), name));
            }
        }
        self.write_back(kind, ns, name, old, body, status_only)
    }

    /// PATCH (main resource or `status` subresource).
    pub fn patch(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        pk: PatchKind,
        patch_body: &Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let old = self.get_or_404(kind, ns, name)?.clone();
        if pk != PatchKind::Json && !patch_body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        if let Some(rv) = patch_body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            if rv != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(kind.resource(), kind.group(), name));
            }
        }
        let mut new = old.clone();
        patch::apply(pk, &mut new, patch_body).map_err(|e| {
            ApiError::invalid(kind.kind(), kind.group(), name, "patch", "FieldValueInvalid", &e)
        })?;
        self.write_back(kind, ns, name, old, new, status_only)
    }

    fn write_back(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        old: Value,
        mut new: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        if let Some(o) = new.as_object_mut() {
            o.remove("kind");
            o.remove("apiVersion");
        }
        if status_only {
            let mut merged = old.clone();
            set_path(
                &mut merged,
                &["status"],
                new.get("status").cloned().unwrap_or(json!({})),
            );
            new = merged;
        } else if matches!(
            kind,
            Kind::Node
                | Kind::Pod
                | Kind::DaemonSet
                | Kind::ReplicaSet
                | Kind::Deployment
                | Kind::Pdb
                | Kind::Namespace
        ) {
            // The main resource ignores status changes.
            match old.get("status") {
                Some(s) => set_path(&mut new, &["status"], s.clone()),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        // Server-owned metadata.
        let spec_changed = old.get("spec") != new.get("spec");
        if let (Some(nm), Some(om)) = (new.get_mut("metadata").and_then(Value::as_object_mut), meta(&old)) {
            for k in [
                "uid",
                "creationTimestamp",
                "namespace",
                "name",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "ownerReferences",
            ] {
                if let Some(v) = om.get(k) {
                    if k != "ownerReferences" || !nm.contains_key(k) {
                        nm.insert(k.to_string(), v.clone());
                    }
                } else if k != "ownerReferences" {
                    nm.remove(k);
                }
            }
            let gen = om.get("generation").and_then(Value::as_i64).unwrap_or(1);
            nm.insert(
                "generation".into(),
                json!(if spec_changed { gen + 1 } else { gen }),
            );
        } else {
            return Err(ApiError::bad_request("metadata is required"));
        }
        if kind == Kind::ConfigMap {
            if let Some(data) = new.get("data").and_then(Value::as_object) {
                if let Some((k, _)) = data.iter().find(|(_, v)| !v.is_string()) {
                    return Err(ApiError::bad_request(format!(
                        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal non-string into Go struct field ConfigMap.data of type string (key {k:?})"
                    )));
                }
            }
        }
        if kind == Kind::Lease {
            validate_lease_spec(name, &new)?;
        }
        if kind == Kind::Node {
            if let Some(u) = new.pointer("/spec/unschedulable") {
                if !u.is_boolean() {
                    return Err(ApiError::bad_request("json: cannot unmarshal into Go struct field NodeSpec.spec.unschedulable of type bool"));
                }
            }
        }
        if kind == Kind::Pod && old.pointer("/spec/nodeName") != new.pointer("/spec/nodeName") && !status_only
        {
            return Err(ApiError::invalid("Pod", "", name, "spec", "FieldValueForbidden",
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations)"));
        }
        if new == old {
            return Ok(old);
        }
        let stored = self.commit(kind, new);
        match kind {
            Kind::Node => {
                if status_only {
                    let _ = self.heartbeat(name, KubeletMode::External);
                }
                self.after_node_write(name);
            }
            Kind::ReplicaSet => self.reconcile_rs(ns, name, ""),
            _ => {}
        }
        Ok(stored)
    }

    /// DELETE (immediate for all but pods), if the preconditions hold.
    pub fn delete(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        grace: Option<i64>,
        pre: &Preconditions,
    ) -> Result<Deleted, ApiError> {
        let obj = self.get_or_404(kind, ns, name)?.clone();
        let failed = |what: &str, want: &str, have: &str| {
            let mut e = ApiError::conflict(kind.resource(), kind.group(), name);
            e.message = format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}",
                crate::error::qualified(kind.resource(), kind.group()));
            e
        };
        if let Some(uid) = &pre.uid {
            if uid != meta_str(&obj, "uid") {
                return Err(failed("UID", uid, meta_str(&obj, "uid")));
            }
        }
        // Older servers dropped the unknown field and deleted unconditionally.
        let rv_checked = self.emu.honours_delete_precondition_rv();
        if let Some(rv) = pre.resource_version.as_ref().filter(|_| rv_checked) {
            if rv != meta_str(&obj, "resourceVersion") {
                return Err(failed("ResourceVersion", rv, meta_str(&obj, "resourceVersion")));
            }
        }
        if kind == Kind::Pod {
            return self.delete_pod(ns, name, grace, "delete");
        }
        let key = (ns.to_string(), name.to_string());
        let old = self.remove(kind, &key).unwrap_or(obj);
        if kind == Kind::Node {
            self.nodes_rt.remove(name);
            for k in self.pods_on(name) {
                if let Some(p) = self.remove(Kind::Pod, &k) {
                    self.replace_owned(&p);
                }
            }
        }
        Ok(Deleted::Gone(old))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}
