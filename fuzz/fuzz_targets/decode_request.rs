//! TS-0009 request decoding: an HTTP request line, headers and body straight from a peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2mtrust_binding_http::{Limits, decode_request};

fuzz_target!(|data: &[u8]| {
    // Input: "<method> <uri>\n<header lines>\n\n<body>".
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let Some(first) = lines.next() else { return };
    let (method, uri) = first.split_once(' ').unwrap_or((first, "/"));
    let mut builder = http::Request::builder().method(method).uri(uri);
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            builder = builder.header(k.trim(), v.trim());
        }
    }
    let Ok(req) = builder.body(()) else { return };
    let (parts, ()) = req.into_parts();
    let _ = decode_request(&parts, body.as_bytes(), &Limits { max_body: 4096 });
});
