//! SigV4: parsing a request's signature (header or query form) and verifying it.
#![no_main]
use berth_api::sigv4::{parse, security_token, RequestParts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Fields split on NUL: method, path, query, then header name/value pairs; the body
    // is what follows a field that starts with 0xff.
    let (head, body) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(head);
    let mut fields = text.split('\0');
    let method = fields.next().unwrap_or("POST").to_string();
    let path = fields.next().unwrap_or("/").to_string();
    let query = fields.next().unwrap_or("").to_string();
    let rest: Vec<&str> = fields.collect();
    let headers = rest
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv.get(1).unwrap_or(&"").to_string()))
        .collect();
    let parts = RequestParts {
        method: &method,
        path: &path,
        query: &query,
        headers,
        body,
    };
    let _ = security_token(&parts);
    if let Ok(signature) = parse(&parts) {
        let _ = signature.verify(
            &parts,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            1_700_000_000,
        );
    }
});
