//! The JSON error body of every Sluice HTTP endpoint:
//! `{"error": {"code": "...", "message": "...", "fields": {...}}}`.
//!
//! `code` is stable and machine-readable; `message` is for people; `fields`, present only on
//! validation errors, maps each offending field to the reason it was refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable identifier, e.g. `validation_failed`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Per-field reasons, on validation errors only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

impl ErrorBody {
    /// An error without field details.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self::with_fields(code, message, BTreeMap::new())
    }

    /// An error with per-field reasons.
    pub fn with_fields(
        code: &str,
        message: impl Into<String>,
        fields: BTreeMap<String, String>,
    ) -> Self {
        Self {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
                fields,
            },
        }
    }
}
