//! The smallest HTTP/1.x server side the metrics endpoint needs: a bounded parser of a
//! request's head (request line and headers) and the response bytes. Pure.
//!
//! Only `GET /metrics` (a query string is ignored) is served; every response closes the
//! connection. The head may be at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] header
//! lines (else 431); a request with a body is refused (413); another method is 405, another
//! path 404, anything that is not HTTP/1.0 or HTTP/1.1 400.

/// The most bytes a request's head may take, its final empty line included.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header lines a request may have.
pub const MAX_HEADERS: usize = 64;

/// What a request's head asks for, once it is complete (or cannot be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET /metrics`.
    Metrics,
    /// An error response: its status, and a one-line reason for the body.
    Refuse(Status, String),
}

/// The status codes this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    HeadersTooLarge,
    ServiceUnavailable,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::PayloadTooLarge => 413,
            Status::HeadersTooLarge => 431,
            Status::ServiceUnavailable => 503,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::PayloadTooLarge => "Payload Too Large",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
        }
    }
}

/// Looks at what a client sent so far: `None` while its head is incomplete (and may
/// still fit), else what to answer.
pub fn parse(buf: &[u8]) -> Option<Request> {
    let Some(end) = head_end(buf) else {
        if buf.len() >= MAX_HEAD {
            return Some(refuse(
                Status::HeadersTooLarge,
                format!("the request head exceeds {MAX_HEAD} bytes"),
            ));
        }
        // A request line that cannot be HTTP is refused before the head is complete.
        if let Some(first) = buf.split(|&b| b == b'\n').next() {
            if first.iter().any(|&b| b == 0 || (b >= 0x80)) {
                return Some(refuse(Status::BadRequest, "not an HTTP request".into()));
            }
        }
        return None;
    };
    if end > MAX_HEAD {
        return Some(refuse(
            Status::HeadersTooLarge,
            format!("the request head exceeds {MAX_HEAD} bytes"),
        ));
    }
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Some(refuse(
            Status::BadRequest,
            "the request head is not text".into(),
        ));
    };
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Some(refuse(Status::BadRequest, "malformed request line".into()));
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Some(refuse(
            Status::BadRequest,
            "only HTTP/1.0 and HTTP/1.1 are spoken".into(),
        ));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Some(refuse(Status::BadRequest, "malformed method".into()));
    }
    let mut headers = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        headers += 1;
        if headers > MAX_HEADERS {
            return Some(refuse(
                Status::HeadersTooLarge,
                format!("more than {MAX_HEADERS} header lines"),
            ));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Some(refuse(
                Status::BadRequest,
                "a header line without a colon".into(),
            ));
        };
        if name.is_empty()
            || name.contains([' ', '\t'])
            || line.bytes().any(|b| b < 0x20 && b != b'\t')
        {
            return Some(refuse(Status::BadRequest, "malformed header line".into()));
        }
        let value = value.trim();
        let has_body = (name.eq_ignore_ascii_case("content-length") && value != "0")
            || name.eq_ignore_ascii_case("transfer-encoding");
        if has_body {
            return Some(refuse(
                Status::PayloadTooLarge,
                "this endpoint takes no request body".into(),
            ));
        }
    }
    if method != "GET" {
        return Some(refuse(
            Status::MethodNotAllowed,
            format!("{method} is not served; only GET /metrics"),
        ));
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Some(refuse(Status::NotFound, "only /metrics is served".into()));
    }
    Some(Request::Metrics)
}

fn refuse(status: Status, why: String) -> Request {
    Request::Refuse(status, why)
}

/// Where the head ends (after its empty line: `\r\n\r\n`, or `\n\n` from a lenient
/// client), if it does.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A complete response that closes the connection.
pub fn response(status: Status, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        status.code(),
        status.reason(),
        body.len(),
        if status == Status::MethodNotAllowed {
            "Allow: GET\r\n"
        } else {
            ""
        },
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(buf: &[u8]) -> Option<u16> {
        parse(buf).map(|r| match r {
            Request::Metrics => 200,
            Request::Refuse(s, _) => s.code(),
        })
    }

    #[test]
    fn get_metrics_is_served() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Request::Metrics)
        );
        assert_eq!(
            parse(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some(Request::Metrics)
        );
        assert_eq!(parse(b"GET /metrics HTTP/1.1\n\n"), Some(Request::Metrics));
        assert_eq!(
            status(b"GET /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Some(200)
        );
    }

    #[test]
    fn an_incomplete_head_waits() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn other_paths_methods_and_garbage_are_refused() {
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), Some(404));
        assert_eq!(status(b"GET /metricsx HTTP/1.1\r\n\r\n"), Some(404));
        assert_eq!(status(b"POST /metrics HTTP/1.1\r\n\r\n"), Some(405));
        assert_eq!(status(b"DELETE /metrics HTTP/1.1\r\n\r\n"), Some(405));
        assert_eq!(status(b"hello\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET /metrics SPDY/3\r\n\r\n"), Some(400));
        assert_eq!(status(b"get /metrics HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(
            status(b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"\x16\x03\x01\x02\x00\x01"),
            Some(400),
            "a TLS hello"
        );
        assert_eq!(status(b"GET\x00 / HTTP/1.1"), Some(400));
    }

    #[test]
    fn oversized_heads_and_bodies_are_refused() {
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(status(&big), Some(431));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        let req = format!("GET /metrics HTTP/1.1\r\n{many}\r\n");
        assert_eq!(status(req.as_bytes()), Some(431));
        assert_eq!(
            status(b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"),
            Some(413)
        );
        assert_eq!(
            status(b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(413)
        );
    }

    #[test]
    fn responses_close_and_say_their_length() {
        let r = String::from_utf8(response(Status::Ok, "text/plain", b"abc")).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Length: 3\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\nabc"));
        let r = String::from_utf8(response(Status::MethodNotAllowed, "text/plain", b"")).unwrap();
        assert!(r.contains("Allow: GET\r\n"), "{r}");
    }
}
