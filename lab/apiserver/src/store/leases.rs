//! Leases (coordination.k8s.io): the validation the real server applies to their spec.

use serde_json::Value;

use crate::error::ApiError;

/// ValidateLeaseSpec (kubernetes/pkg/apis/coordination/validation/validation.go): a positive
/// duration and a non-negative transition count, when given.
pub(super) fn validate_lease_spec(name: &str, lease: &Value) -> Result<(), ApiError> {
    let rules = [
        ("leaseDurationSeconds", 1, "must be greater than 0"),
        ("leaseTransitions", 0, "must be greater than or equal to 0"),
    ];
    for (field, min, msg) in rules {
        let Some(v) = lease.pointer(&format!("/spec/{field}")).filter(|v| !v.is_null()) else {
            continue;
        };
        let Some(n) = v.as_i64().filter(|n| i32::try_from(*n).is_ok()) else {
            return Err(ApiError::bad_request(format!(
                "Lease in version \"v1\" cannot be handled as a Lease: json: cannot unmarshal {v} into Go struct field LeaseSpec.spec.{field} of type int32"
            )));
        };
        if n < min {
            let mut e = ApiError::invalid(
                "Lease",
                "coordination.k8s.io",
                name,
                &format!("spec.{field}"),
                "FieldValueInvalid",
                &format!("Invalid value: {n}: {msg}"),
            );
            e.message = format!(
                "Lease.coordination.k8s.io \"{name}\" is invalid: spec.{field}: Invalid value: {n}: {msg}"
            );
            return Err(e);
        }
    }
    Ok(())
}
