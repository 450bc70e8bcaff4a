//! Errors as RFC 9457 problem details (`application/problem+json`):
//!
//! ```json
//! { "type": "urn:arbor:problem:meeting_ended", "title": "Meeting ended", "status": 409,
//!   "detail": "meeting standup-42 ended at 1767225600000 (unix ms); create it again to reuse the name",
//!   "code": "meeting_ended" }
//! ```
//!
//! `type` is a URN built from `code`, the stable machine-readable name clients match on;
//! `title` is fixed per code, `detail` says what exactly went wrong with this request.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use relay_proto::token::TokenError;
use serde::Serialize;

use crate::store::StoreError;

/// The `Content-Type` of every error.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The prefix of every problem `type`.
pub const TYPE_PREFIX: &str = "urn:arbor:problem:";

/// The code of a problem answer, kept in the response's extensions for the metrics layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub &'static str);

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    /// Stable machine-readable code (`meeting_not_found`, `token_expired`, …).
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Sent as `Retry-After` (503s).
    pub retry_after_s: Option<u32>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            retry_after_s: None,
        }
    }

    /// 400: the request cannot be parsed (bad JSON, bad query string, bad path).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Malformed request",
            detail,
        )
    }

    /// 422: well-formed, but a field's value is not acceptable.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "Invalid field",
            detail,
        )
    }

    /// 401 with a code of its own.
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            code,
            "Authentication failed",
            detail,
        )
    }

    /// 403: authenticated, but without the grant the route needs.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "grant_missing",
            "Missing grant",
            detail,
        )
    }

    /// 404 for a meeting.
    pub fn meeting_not_found(meeting: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "meeting_not_found",
            "Meeting not found",
            format!("there is no meeting {meeting}; create it with POST /v1/meetings"),
        )
    }

    /// 409 for a meeting that has ended.
    pub fn meeting_ended(meeting: &str, ended_at_ms: i64) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "meeting_ended",
            "Meeting ended",
            format!(
                "meeting {meeting} ended at {ended_at_ms} (unix ms); create it again to reuse \
                 the name"
            ),
        )
    }

    /// 503 with a `Retry-After`.
    pub fn unavailable(code: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            retry_after_s: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, title, detail)
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = Body {
            kind: format!("{TYPE_PREFIX}{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
        };
        let json = serde_json::to_vec(&body).expect("a problem always serializes");
        let mut response = (self.status, json).into_response();
        response.extensions_mut().insert(Code(self.code));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(s) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="arbor", Basic realm="arbor""#),
            );
        }
        response
    }
}

impl From<TokenError> for Problem {
    fn from(e: TokenError) -> Self {
        Problem::unauthorized(e.code(), e.message())
    }
}

impl From<StoreError> for Problem {
    /// The database's message goes to the log, not to the client.
    fn from(e: StoreError) -> Self {
        tracing::error!("store: {e}");
        Problem::unavailable(
            "store_unavailable",
            "Store unavailable",
            "the origin cannot reach its database; retry shortly",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_rfc_9457() {
        let response = Problem::meeting_ended("standup", 42).into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["type"], "urn:arbor:problem:meeting_ended");
        assert_eq!(json["title"], "Meeting ended");
        assert_eq!(json["status"], 409);
        assert_eq!(json["code"], "meeting_ended");
        assert!(json["detail"].as_str().unwrap().contains("standup"));
    }

    #[test]
    fn unauthorized_asks_for_credentials_and_unavailable_for_patience() {
        let r = Problem::unauthorized("credentials_missing", "x").into_response();
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        let r = Problem::unavailable("x", "X", "y").into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
