//! API errors rendered as real `Status` bodies.

use serde_json::{json, Value};

/// An API error: becomes a `Status` object with the HTTP code.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `reason` (NotFound, Conflict, ...).
    pub reason: &'static str,
    /// Human message.
    pub message: String,
    /// `details`.
    pub details: Option<Value>,
    /// `Retry-After` header and `details.retryAfterSeconds`.
    pub retry_after: Option<u32>,
}

/// What a resource is called in error messages: `pods`, `poddisruptionbudgets.policy`.
pub fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

fn details(name: &str, group: &str, kind: &str) -> Value {
    let mut d = json!({"name": name, "kind": kind});
    if !group.is_empty() {
        if let Some(o) = d.as_object_mut() {
            o.insert("group".into(), json!(group));
        }
    }
    d
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// An error about one object, whose `details` name it.
    fn about(
        code: u16,
        reason: &'static str,
        message: String,
        resource: &str,
        group: &str,
        name: &str,
    ) -> ApiError {
        ApiError::new(code, reason, message).with_details(details(name, group, resource))
    }

    /// This error with `details` set.
    fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// 404 `pods "x" not found`.
    pub fn not_found(resource: &str, group: &str, name: &str) -> ApiError {
        ApiError::about(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(resource, group)),
            resource,
            group,
            name,
        )
    }

    /// 404 for a path that serves nothing.
    pub fn path_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 409 on a stale resourceVersion.
    pub fn conflict(resource: &str, group: &str, name: &str) -> ApiError {
        ApiError::about(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(resource, group)
            ),
            resource,
            group,
            name,
        )
    }

    /// 409 on create of an existing object.
    pub fn already_exists(resource: &str, group: &str, name: &str) -> ApiError {
        ApiError::about(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(resource, group)),
            resource,
            group,
            name,
        )
    }

    /// 422 with one field cause.
    pub fn invalid(
        kind: &str,
        group: &str,
        name: &str,
        field: &str,
        cause_reason: &str,
        msg: &str,
    ) -> ApiError {
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {field}: {msg}"),
        );
        let mut d = details(name, group, kind);
        if let Some(o) = d.as_object_mut() {
            o.insert(
                "causes".into(),
                json!([{"reason": cause_reason, "message": msg, "field": field}]),
            );
        }
        e.details = Some(d);
        e
    }

    /// 400.
    pub fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", msg)
    }

    /// 401.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 405.
    pub fn method_not_allowed(msg: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", msg)
    }

    /// 406.
    pub fn not_acceptable(msg: impl Into<String>) -> ApiError {
        ApiError::new(406, "NotAcceptable", msg)
    }

    /// 415.
    pub fn unsupported_media_type(ct: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json; got {ct:?}"),
        )
    }

    /// 429.
    pub fn too_many_requests(msg: impl Into<String>, retry_after: Option<u32>) -> ApiError {
        let mut e = ApiError::new(429, "TooManyRequests", msg);
        e.retry_after = retry_after;
        if let Some(s) = retry_after {
            e.details = Some(json!({"retryAfterSeconds": s}));
        }
        e
    }

    /// 500.
    pub fn internal(msg: impl Into<String>) -> ApiError {
        let m = msg.into();
        let mut e = ApiError::new(500, "InternalError", format!("Internal error occurred: {m}"));
        e.details = Some(json!({"causes": [{"message": m}]}));
        e
    }

    /// 503.
    pub fn unavailable(msg: impl Into<String>) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", msg)
    }

    /// Any code from fault injection.
    pub fn injected(code: u16, msg: Option<String>, retry_after: Option<u32>) -> ApiError {
        let (reason, default) = match code {
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            ),
            500 => (
                "InternalError",
                "an error on the server (\"injected fault\") has prevented the request from succeeding",
            ),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted",
            ),
            409 => (
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
            ),
            _ => ("InternalError", "injected fault"),
        };
        let mut e = ApiError::new(code, reason, msg.unwrap_or_else(|| default.to_string()));
        e.retry_after = retry_after;
        if let Some(s) = retry_after {
            e.details = Some(json!({"retryAfterSeconds": s}));
        }
        e
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let (Some(o), Some(d)) = (v.as_object_mut(), &self.details) {
            o.insert("details".into(), d.clone());
        }
        v
    }
}
