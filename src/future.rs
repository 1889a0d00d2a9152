//! The response future of [`OidcService`](crate::OidcService): the inner service's future
//! (adding `Set-Cookie` headers on the way out), an answer being computed by the layer
//! (callback), a request waiting for its credentials to be validated (bearer token seen for
//! the first time), or an answer ready at once.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Response};
use pin_project_lite::pin_project;

use crate::body::ResponseBody;
use crate::response::Answer;
use crate::session::cookie::add_set_cookie;

type BoxAnswer = Pin<Box<dyn Future<Output = Answer> + Send>>;
pub(crate) type BoxResponse<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// Response future of [`OidcService`](crate::OidcService).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner {
            #[pin]
            future: F,
            set_cookies: Vec<String>,
        },
        Auth {
            future: BoxAnswer,
        },
        Deferred {
            future: BoxResponse<B, E>,
        },
        Ready {
            answer: Option<Answer>,
        },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn inner(future: F, set_cookies: Vec<String>) -> Self {
        Self::new(Kind::Inner {
            future,
            set_cookies,
        })
    }

    pub(crate) fn auth(future: BoxAnswer) -> Self {
        Self::new(Kind::Auth { future })
    }

    pub(crate) fn deferred(future: BoxResponse<B, E>) -> Self {
        Self::new(Kind::Deferred { future })
    }

    pub(crate) fn ready(answer: Answer) -> Self {
        Self::new(Kind::Ready {
            answer: Some(answer),
        })
    }

    fn new(kind: Kind<F, B, E>) -> Self {
        Self { kind }
    }
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}

pub(crate) fn answer_into<B>(mut answer: Answer) -> Response<ResponseBody<B>> {
    // The layer's own answers: one that sets a cookie (session, login) is for this browser.
    if answer.headers().contains_key(SET_COOKIE) {
        no_store(answer.headers_mut());
    }
    answer.map(|bytes: Bytes| ResponseBody::full(bytes))
}

/// `Cache-Control: private, no-store` in place of whatever the response had, and no other
/// caching header (`Expires`, `Surrogate-Control`, `CDN-Cache-Control`: a CDN may obey
/// those over `Cache-Control`): a response carrying a session's `Set-Cookie` must never be
/// stored by a cache and replayed to someone else.
pub(crate) fn no_store(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    headers.remove(http::header::EXPIRES);
    headers.remove("surrogate-control");
    headers.remove("cdn-cache-control");
}

/// Adds the layer's `Set-Cookie` values to a response of the inner service, and with any,
/// [`no_store`].
pub(crate) fn add_session_cookies(headers: &mut HeaderMap, cookies: Vec<String>) {
    if cookies.is_empty() {
        return;
    }
    for cookie in cookies {
        add_set_cookie(headers, cookie);
    }
    no_store(headers);
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner {
                future,
                set_cookies,
            } => {
                let mut res = ready!(future.poll(cx))?;
                add_session_cookies(res.headers_mut(), std::mem::take(set_cookies));
                Poll::Ready(Ok(res.map(ResponseBody::inner)))
            }
            KindProj::Auth { future } => {
                Poll::Ready(Ok(answer_into(ready!(future.as_mut().poll(cx)))))
            }
            KindProj::Deferred { future } => future.as_mut().poll(cx),
            KindProj::Ready { answer } => match answer.take() {
                Some(answer) => Poll::Ready(Ok(answer_into(answer))),
                None => panic!("ResponseFuture polled after completion"),
            },
        }
    }
}
