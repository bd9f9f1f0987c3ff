//! Keeps HTTP/1.1 keep-alive safe when an answer leaves the request body unread.
//!
//! A server that refuses a request before reading its body (a 401, 403, 413 or 415) cannot
//! reuse the connection: hyper closes it after the answer. A client that pooled the connection
//! may already be sending its next request on it and sees "connection closed without response".
//! Saying `Connection: close` in the refusal tells the client not to reuse the connection, so
//! its next request opens a fresh one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

/// Adds `Connection: close` to the answer of an HTTP/1 request whose body the inner service did
/// not read to its end, whichever layer or handler answered without reading it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CloseUnreadRequestsLayer;

impl<S> Layer<S> for CloseUnreadRequestsLayer {
    type Service = CloseUnreadRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CloseUnreadRequests { inner }
    }
}

/// The service of [`CloseUnreadRequestsLayer`].
#[derive(Debug, Clone)]
pub(super) struct CloseUnreadRequests<S> {
    inner: S,
}

impl<S> Service<Request> for CloseUnreadRequests<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let http1 = matches!(request.version(), Version::HTTP_10 | Version::HTTP_11);
        if !http1 || http_body::Body::is_end_stream(request.body()) {
            return Answer {
                inner: self.inner.call(request),
                finished: None,
            };
        }
        let finished = Arc::new(AtomicBool::new(false));
        let request = request.map(|inner| {
            Body::new(Watched {
                inner,
                finished: finished.clone(),
            })
        });
        Answer {
            inner: self.inner.call(request),
            finished: Some(finished),
        }
    }
}

pin_project! {
    /// The answer of [`CloseUnreadRequests`]: the inner answer, marked when the body was left.
    pub(super) struct Answer<F> {
        #[pin]
        inner: F,
        finished: Option<Arc<AtomicBool>>,
    }
}

impl<F, E> Future for Answer<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(finished) = this.finished
            && !finished.load(Ordering::Acquire)
        {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
}

pin_project! {
    /// A request body that records when it has been read to its end.
    struct Watched {
        #[pin]
        inner: Body,
        finished: Arc<AtomicBool>,
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => http_body::Body::is_end_stream(&*this.inner),
            _ => false,
        };
        if ended {
            this.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route(
                "/read",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .route("/refuse", post(|| async { "refused" }))
            .layer(CloseUnreadRequestsLayer)
    }

    async fn connection_header(path: &str, body: &'static str) -> Option<HeaderValue> {
        let request = Request::post(path).body(Body::from(body)).unwrap();
        let response = app().oneshot(request).await.unwrap();
        response.headers().get(header::CONNECTION).cloned()
    }

    #[tokio::test]
    async fn an_unread_body_closes_the_connection() {
        assert_eq!(
            connection_header("/refuse", "payload").await.unwrap(),
            "close"
        );
    }

    #[tokio::test]
    async fn a_read_body_keeps_the_connection() {
        assert_eq!(connection_header("/read", "payload").await, None);
    }

    #[tokio::test]
    async fn an_empty_body_keeps_the_connection() {
        assert_eq!(connection_header("/refuse", "").await, None);
    }
}
