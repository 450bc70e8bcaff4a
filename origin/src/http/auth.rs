//! Who is calling the API, and what they may do.
//!
//! Two ways to authenticate, both with an API key/secret pair from `[auth.keys]` (the pairs
//! the edges accept):
//!
//! - `Authorization: Bearer <JWT>`: a LiveKit-layout token signed HS256 with the API secret,
//!   `iss` = the API key, a required integer `exp` (and optional `nbf`), and admin grants in
//!   `video`: `roomList`, `roomCreate`, `roomAdmin` (optionally limited to `video.room`). Any
//!   LiveKit server SDK mints these (`VideoGrants(room_create=True, room_list=True)`).
//! - `Authorization: Basic base64(api_key:api_secret)` (`curl -u key:secret`): holds every
//!   grant. Handy for scripts; send it over TLS only.
//!
//! Which grant each route needs ([`Grant`]): listing meetings and edges needs `roomList`;
//! reading one meeting (its participants, its tree) needs `roomList` or `roomAdmin` for that
//! meeting; creating and ending meetings needs `roomCreate`; minting join tokens (`/v1/tokens`,
//! `/v1/join`) needs `roomAdmin` for that meeting. A `roomAdmin` without `video.room` covers
//! every meeting.
//!
//! Join tokens (with `roomJoin`) are checked by `relay_proto::token::verify` on edges; admin
//! tokens share every check up to the grants (`relay_proto::token::verify_signed`: exactly
//! `HS256`, known `iss`, constant-time signature check, claims judged only after it, integer
//! times with `LEEWAY_S`, duplicate claims refused, at most `MAX_TOKEN_LEN` bytes), and only
//! their grants are read here. Failures reuse [`TokenError`] and its stable codes.

use aws_lc_rs::constant_time;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use relay_proto::MeetingId;
use relay_proto::token::{self, KeyStore, TokenError};

use super::{AppState, Problem};

/// A permission an admin token may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// `video.roomList`: list meetings and edges, read any meeting.
    RoomList,
    /// `video.roomCreate`: create and end meetings.
    RoomCreate,
    /// `video.roomAdmin`: mint join tokens, read the meeting (scoped by `video.room`).
    RoomAdmin,
}

impl Grant {
    fn claim(self) -> &'static str {
        match self {
            Grant::RoomList => "roomList",
            Grant::RoomCreate => "roomCreate",
            Grant::RoomAdmin => "roomAdmin",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The API key it authenticated with; tokens minted for it are signed with this key.
    pub api_key: String,
    /// `None` for Basic auth (every grant).
    grants: Option<Grants>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grants {
    list: bool,
    create: bool,
    admin: bool,
    /// `video.room`: limits `roomAdmin` to one meeting.
    room: Option<String>,
}

impl Caller {
    /// `Ok` if the caller holds `grant` (for `meeting`, when the route names one).
    pub fn require(&self, grant: Grant, meeting: Option<&MeetingId>) -> Result<(), Problem> {
        let Some(g) = &self.grants else {
            return Ok(());
        };
        let admin_here = g.admin
            && match (&g.room, meeting) {
                (None, _) => true,
                (Some(room), Some(m)) => room == m.as_str(),
                (Some(_), None) => false,
            };
        let ok = match grant {
            Grant::RoomList => g.list || (meeting.is_some() && admin_here),
            Grant::RoomCreate => g.create,
            Grant::RoomAdmin => admin_here,
        };
        if ok {
            return Ok(());
        }
        let scope = match (&g.room, grant) {
            (Some(room), Grant::RoomAdmin | Grant::RoomList) if g.admin => {
                format!(" (its roomAdmin covers meeting {room} only)")
            }
            _ => String::new(),
        };
        Err(Problem::forbidden(format!(
            "this route needs the video.{} grant{}; the token lacks it{scope}",
            grant.claim(),
            if grant == Grant::RoomList {
                " (or roomAdmin for the meeting)"
            } else {
                ""
            }
        )))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            Problem::unauthorized(
                "credentials_missing",
                "send Authorization: Bearer <admin token> or Basic <api_key:api_secret>",
            )
        })?;
        let value = value.to_str().map_err(|_| malformed("is not ASCII"))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let keys = &state.config.auth.keys;
        if scheme.eq_ignore_ascii_case("bearer") {
            Ok(verify_admin(rest, keys, super::unix_now_s())?)
        } else if scheme.eq_ignore_ascii_case("basic") {
            basic(rest, keys)
        } else {
            Err(malformed("must use the Bearer or the Basic scheme"))
        }
    }
}

fn malformed(why: &str) -> Problem {
    Problem::unauthorized(
        "credentials_malformed",
        format!("the Authorization header {why}"),
    )
}

/// `Basic base64(key:secret)`, compared in constant time.
fn basic(b64: &str, keys: &impl KeyStore) -> Result<Caller, Problem> {
    let decoded = STANDARD
        .decode(b64.trim())
        .map_err(|_| malformed("has Basic credentials that are not base64"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| malformed("has Basic credentials that are not UTF-8"))?;
    let (key, secret) = text
        .split_once(':')
        .ok_or_else(|| malformed("has Basic credentials without ':' (use api_key:api_secret)"))?;
    let expected = keys.secret(key).ok_or_else(|| {
        Problem::unauthorized(
            "api_key_unknown",
            format!("the API key {:?} is unknown here", echo(key)),
        )
    })?;
    constant_time::verify_slices_are_equal(expected, secret.as_bytes()).map_err(|_| {
        Problem::unauthorized(
            "api_secret_invalid",
            "the API secret does not match the API key",
        )
    })?;
    Ok(Caller {
        api_key: key.to_owned(),
        grants: None,
    })
}

/// Checks an admin token (see the module doc) at `now_s` and returns its caller.
pub fn verify_admin(token: &str, keys: &impl KeyStore, now_s: u64) -> Result<Caller, TokenError> {
    let t = token::verify_signed(token, keys, now_s)?;
    let v = t.video;
    Ok(Caller {
        api_key: t.api_key,
        grants: Some(Grants {
            list: v.room_list == Some(true),
            create: v.room_create == Some(true),
            admin: v.room_admin == Some(true),
            room: v.room,
        }),
    })
}

/// A client-supplied string, cut short for an error message.
fn echo(s: &str) -> String {
    const MAX_ECHO_CHARS: usize = 64;
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use aws_lc_rs::hmac;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use relay_proto::token::{Claims as JoinClaims, LEEWAY_S, MAX_TOKEN_LEN};

    use super::*;

    const KEY: &str = "APIadmin";
    const SECRET: &str = "0123456789abcdef0123456789abcdef-admin";
    const NOW: u64 = 1_800_000_000;

    fn keys() -> BTreeMap<String, String> {
        BTreeMap::from([(KEY.to_owned(), SECRET.to_owned())])
    }

    fn sign(header: &str, payload: &str, secret: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            input.as_bytes(),
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    fn admin(video: &str, exp: &str) -> String {
        sign(
            HS256,
            &format!(r#"{{"iss":"{KEY}","sub":"ops","exp":{exp},"video":{video}}}"#),
            SECRET,
        )
    }

    fn code(token: &str) -> &'static str {
        verify_admin(token, &keys(), NOW).unwrap_err().code()
    }

    #[test]
    fn grants_are_read() {
        let t = admin(
            r#"{"roomList":true,"roomCreate":true}"#,
            &(NOW + 60).to_string(),
        );
        let c = verify_admin(&t, &keys(), NOW).unwrap();
        assert_eq!(c.api_key, KEY);
        let m = MeetingId::new("m").unwrap();
        assert!(c.require(Grant::RoomList, None).is_ok());
        assert!(c.require(Grant::RoomCreate, None).is_ok());
        let e = c.require(Grant::RoomAdmin, Some(&m)).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN);
        assert!(e.detail.contains("video.roomAdmin"), "{}", e.detail);
    }

    #[test]
    fn room_admin_is_scoped_by_room() {
        let t = admin(r#"{"roomAdmin":true,"room":"a"}"#, &(NOW + 60).to_string());
        let c = verify_admin(&t, &keys(), NOW).unwrap();
        let (a, b) = (MeetingId::new("a").unwrap(), MeetingId::new("b").unwrap());
        assert!(c.require(Grant::RoomAdmin, Some(&a)).is_ok());
        assert!(
            c.require(Grant::RoomList, Some(&a)).is_ok(),
            "reads its meeting"
        );
        let e = c.require(Grant::RoomAdmin, Some(&b)).unwrap_err();
        assert!(e.detail.contains("covers meeting a only"), "{}", e.detail);
        assert!(c.require(Grant::RoomList, None).is_err(), "no listing");
        assert!(c.require(Grant::RoomCreate, None).is_err());
        // Without a room, roomAdmin covers every meeting.
        let t = admin(r#"{"roomAdmin":true}"#, &(NOW + 60).to_string());
        let c = verify_admin(&t, &keys(), NOW).unwrap();
        assert!(c.require(Grant::RoomAdmin, Some(&b)).is_ok());
    }

    #[test]
    fn join_tokens_carry_no_admin_grant() {
        let join = JoinClaims::join(&MeetingId::new("m").unwrap(), "alice", NOW + 60);
        let t = token::mint(&join, KEY, SECRET.as_bytes());
        let c = verify_admin(&t, &keys(), NOW).unwrap();
        for g in [Grant::RoomList, Grant::RoomCreate, Grant::RoomAdmin] {
            assert!(c.require(g, Some(&MeetingId::new("m").unwrap())).is_err());
        }
    }

    #[test]
    fn refusals_have_the_edge_codes() {
        let video = r#"{"roomList":true}"#;
        assert_eq!(code(""), "token_missing");
        assert_eq!(code("a.b"), "token_malformed");
        assert_eq!(code(&"a".repeat(MAX_TOKEN_LEN + 1)), "token_malformed");
        let payload = format!(r#"{{"iss":"{KEY}","exp":{}}}"#, NOW + 60);
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"typ":"JWT"}"#,
        ] {
            assert_eq!(
                code(&sign(header, &payload, SECRET)),
                "token_alg_not_allowed"
            );
        }
        let crit = r#"{"alg":"HS256","crit":["b64"]}"#;
        assert_eq!(code(&sign(crit, &payload, SECRET)), "token_alg_not_allowed");
        let stranger = sign(HS256, r#"{"iss":"who","exp":1}"#, SECRET);
        assert_eq!(code(&stranger), "token_unknown_key");
        assert_eq!(
            code(&sign(HS256, &payload, "another-secret-another-secret-xx")),
            "token_invalid_signature"
        );
        assert_eq!(
            code(&admin(video, &(NOW - LEEWAY_S - 1).to_string())),
            "token_expired"
        );
        assert_eq!(code(&admin(video, "\"never\"")), "token_malformed_claim");
        let no_exp = sign(HS256, &format!(r#"{{"iss":"{KEY}"}}"#), SECRET);
        assert_eq!(code(&no_exp), "token_malformed_claim");
        let dup = sign(
            HS256,
            &format!(r#"{{"iss":"{KEY}","exp":{0},"exp":{0}}}"#, NOW + 60),
            SECRET,
        );
        assert_eq!(code(&dup), "token_malformed_claim");
        let early = sign(
            HS256,
            &format!(
                r#"{{"iss":"{KEY}","exp":{},"nbf":{}}}"#,
                NOW + 600,
                NOW + LEEWAY_S + 1
            ),
            SECRET,
        );
        assert_eq!(code(&early), "token_not_yet_valid");
        // Within the leeway is fine.
        assert!(verify_admin(&admin(video, &(NOW - LEEWAY_S).to_string()), &keys(), NOW).is_ok());
    }

    #[test]
    fn basic_credentials() {
        let ok = STANDARD.encode(format!("{KEY}:{SECRET}"));
        let c = basic(&ok, &keys()).unwrap();
        assert!(c.require(Grant::RoomCreate, None).is_ok());
        let wrong = STANDARD.encode(format!("{KEY}:nope"));
        assert_eq!(
            basic(&wrong, &keys()).unwrap_err().code,
            "api_secret_invalid"
        );
        let unknown = STANDARD.encode("who:x");
        assert_eq!(
            basic(&unknown, &keys()).unwrap_err().code,
            "api_key_unknown"
        );
        assert_eq!(
            basic("!!!", &keys()).unwrap_err().code,
            "credentials_malformed"
        );
        let no_colon = STANDARD.encode("justakey");
        assert_eq!(
            basic(&no_colon, &keys()).unwrap_err().code,
            "credentials_malformed"
        );
    }
}
