//! Compressed bodies, gzip or deflate, both ways: tritonclient's `request_compression_algorithm`
//! compresses a request and its `response_compression_algorithm` asks for a compressed answer, as
//! Triton accepts them.
//!
//! The tower-http codec layers cost every request that passes through them about 10% of the
//! server's HTTP throughput (wrk, one-row V2 JSON infer), though almost no client compresses. So
//! the routes exist twice, plain and inside the codec layers, and [`ContentCoding`] sends each
//! request to one of them by its headers, before any routing.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use serde_json::json;
use tower::Service;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::decompression::RequestDecompressionLayer;

/// Smaller answers go out as they are even to a client that accepts gzip, as `requests` and
/// browsers always say they do: setting up a deflate stream costs more than a small answer saves.
const MIN_COMPRESSED_RESPONSE_BYTES: u16 = 1024;

/// The content codings a request body may have, as the decompression layer decodes them.
const CONTENT_ENCODINGS: [&str; 3] = ["gzip", "deflate", "identity"];

/// The HTTP service: the routes, reached plainly or through the codec layers.
#[derive(Clone)]
pub struct ContentCoding {
    plain: Router,
    coded: Router,
    refused: Router,
}

impl ContentCoding {
    pub fn new(routes: Router) -> ContentCoding {
        let coded = routes
            .clone()
            .layer(RequestDecompressionLayer::new())
            .layer(CompressionLayer::new().compress_when(
                DefaultPredicate::new().and(SizeAbove::new(MIN_COMPRESSED_RESPONSE_BYTES)),
            ));
        ContentCoding {
            plain: routes,
            coded,
            refused: Router::new().fallback(unsupported_encoding),
        }
    }
}

impl Service<Request> for ContentCoding {
    type Response = Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Routers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let headers = request.headers();
        let router = if unsupported(headers).is_some() {
            &mut self.refused
        } else if compressed(headers) || accepts_compressed(headers) {
            &mut self.coded
        } else {
            &mut self.plain
        };
        router.call(request)
    }
}

/// The request's content codings, identity left out.
fn content_encodings(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("(not text)").split(','))
        .map(str::trim)
        .filter(|encoding| !encoding.eq_ignore_ascii_case("identity"))
}

/// The first content coding of the body that this server cannot decode.
fn unsupported(headers: &HeaderMap) -> Option<&str> {
    content_encodings(headers).find(|encoding| {
        !CONTENT_ENCODINGS
            .iter()
            .any(|known| encoding.eq_ignore_ascii_case(known))
    })
}

fn compressed(headers: &HeaderMap) -> bool {
    content_encodings(headers).next().is_some()
}

fn accepts_compressed(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|text| {
            let text = text.to_ascii_lowercase();
            text.contains("gzip") || text.contains("deflate")
        })
}

/// The protocol's JSON error naming the coding, where the decompression layer alone would
/// answer an empty 415.
async fn unsupported_encoding(headers: HeaderMap) -> Response {
    let encoding = unsupported(&headers).unwrap_or("(unknown)");
    let message = format!(
        "unsupported Content-Encoding '{encoding}': this server decodes {}",
        CONTENT_ENCODINGS.join(", ")
    );
    (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), value.parse().unwrap());
        }
        map
    }

    #[test]
    fn headers_pick_the_path() {
        let plain = headers(&[(header::CONTENT_ENCODING, "identity")]);
        assert!(!compressed(&plain) && unsupported(&plain).is_none());
        let gzip = headers(&[(header::CONTENT_ENCODING, "GZIP")]);
        assert!(compressed(&gzip) && unsupported(&gzip).is_none());
        let brotli = headers(&[(header::CONTENT_ENCODING, "gzip, br")]);
        assert_eq!(unsupported(&brotli), Some("br"));
        assert!(accepts_compressed(&headers(&[(
            header::ACCEPT_ENCODING,
            "br;q=1.0, Deflate;q=0.5"
        )])));
        assert!(!accepts_compressed(&headers(&[(
            header::ACCEPT_ENCODING,
            "identity"
        )])));
    }
}
