//! Reading an HTTP answer with a byte cap (feature `proxy`): the validating
//! proxy reads every upstream answer through [`read_response`], and so does
//! `tryon parity` every answer of the proxy it runs its steps through, so
//! that both stop at the same bound ([`MAX_PROXY_BODY`](crate::limits::MAX_PROXY_BODY))
//! the same way.

use bytes::Bytes;

/// Reads the body of `response`, at most `limit` bytes: a declared or
/// actual length over it is refused without reading on.
///
/// # Errors
/// `more than LIMIT bytes`, or the answer broke off (the URL left out).
pub async fn read_response(mut response: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("more than {limit} bytes"));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("it broke off: {}", e.without_url()))?
    {
        if buf.len() + chunk.len() > limit {
            return Err(format!("more than {limit} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}
