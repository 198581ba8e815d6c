//! JSON bodies for the answers actix-http gives on its own to requests it cannot parse.
//!
//! actix-http answers a malformed request (400), a head over its 128 KiB buffer (431), a head
//! that did not arrive in time (408) and a few internal failures (500) before any handler runs,
//! always with `content-length: 0` and no `content-type`. Every answer Sluice's own handlers
//! give carries a JSON body, and JSON never holds a raw CR LF, so a response head of status
//! 400 or more whose first header is `content-length: 0` can only be one of those. [`rewrite`]
//! replaces it with the same status and headers plus the documented error body.

use sluice_proto::error::ErrorBody;

/// How actix-http's body-less answers continue after their status line.
const EMPTY_BODY: &[u8] = b"\r\ncontent-length: 0\r\n";

/// Returns `buf` with the body-less error answer in it given a JSON body, if it holds one.
pub fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    let mut from = 0;
    while let Some(at) = find(&buf[from..], EMPTY_BODY) {
        let mark = from + at;
        if let Some(answer) = rewrite_at(buf, mark) {
            return Some(answer);
        }
        from = mark + 1;
    }
    None
}

/// Rewrites the response whose status line ends at `mark`, if it is a body-less error.
fn rewrite_at(buf: &[u8], mark: usize) -> Option<Vec<u8>> {
    let line_start = rfind(&buf[..mark], b"HTTP/1.")?;
    let status_line = &buf[line_start..mark];
    if status_line.contains(&b'\n') || status_line.len() < 12 {
        return None;
    }
    let status: u16 = std::str::from_utf8(&status_line[9..12])
        .ok()?
        .parse()
        .ok()?;
    if status < 400 {
        return None;
    }
    // The head ends at the first empty line after the status line.
    let headers_start = mark + EMPTY_BODY.len();
    let head_end = if buf[headers_start..].starts_with(b"\r\n") {
        headers_start
    } else {
        headers_start + find(&buf[headers_start..], b"\r\n\r\n")? + 2
    };
    let other_headers = &buf[headers_start..head_end];
    if other_headers
        .split(|&b| b == b'\n')
        .any(|line| line.to_ascii_lowercase().starts_with(b"content-type:"))
    {
        return None;
    }
    let body = error_body(status);
    let mut out = Vec::with_capacity(buf.len() + body.len() + 64);
    out.extend_from_slice(&buf[..mark]);
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(other_headers);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out.extend_from_slice(&buf[head_end + 2..]);
    Some(out)
}

/// The documented error body for an answer actix-http gave on its own.
pub fn error_body(status: u16) -> String {
    let (code, message) = match status {
        400 => (
            "malformed_request",
            "the request is not valid HTTP/1.1: check the request line (no raw spaces in the \
             path), the URI (at most 65534 bytes), the header syntax and Content-Length",
        ),
        408 => ("request_timeout", "the request head did not arrive in time"),
        431 => (
            "request_head_too_large",
            "the request line and headers together are larger than 128 KiB",
        ),
        500..=599 => ("internal_error", "the server could not handle the request"),
        _ => ("malformed_request", "the request could not be handled"),
    };
    serde_json::to_string(&ErrorBody::new(code, message)).unwrap_or_default()
}

// Every answer passes through `rewrite`: memchr's vectorised search, not a byte-by-byte one.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIX_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: Mon, 23 Nov 2026 18:49:18 GMT\r\n\r\n";

    fn split(answer: &[u8]) -> (String, serde_json::Value) {
        let text = String::from_utf8(answer.to_vec()).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        (
            head.to_owned(),
            serde_json::from_str(body).expect("a JSON body"),
        )
    }

    #[test]
    fn a_bare_400_gets_the_json_body_and_a_matching_length() {
        let answer = rewrite(ACTIX_400).expect("rewritten");
        let (head, body) = split(&answer);
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains("connection: close"));
        assert!(head.contains("date: Mon"));
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.parse().ok())
            .expect("content-length");
        assert_eq!(length, answer.len() - head.len() - 4);
        assert_eq!(body["error"]["code"], "malformed_request");
    }

    #[test]
    fn a_431_after_a_pipelined_json_answer_is_rewritten_and_the_first_kept() {
        let first = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}";
        let second = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        let answer = rewrite(&[&first[..], &second[..]].concat()).expect("rewritten");
        assert!(answer.starts_with(first));
        let (_, body) = split(&answer[first.len()..]);
        assert_eq!(body["error"]["code"], "request_head_too_large");
    }

    #[test]
    fn answers_with_bodies_or_success_statuses_are_left_alone() {
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ncontent-type: application/json\r\n\r\n";
        assert!(rewrite(ours).is_none());
        assert!(rewrite(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").is_none());
        assert!(rewrite(b"").is_none());
    }

    #[test]
    fn every_status_actix_answers_alone_has_a_code() {
        for (status, code) in [
            (400, "malformed_request"),
            (408, "request_timeout"),
            (431, "request_head_too_large"),
            (500, "internal_error"),
        ] {
            let body: serde_json::Value = serde_json::from_str(&error_body(status)).expect("JSON");
            assert_eq!(body["error"]["code"], code, "status {status}");
        }
    }
}
