//! The response future of [`OidcService`](crate::OidcService): the inner service's future
//! (adding `Set-Cookie` headers on the way out), an answer being computed by the layer
//! (callback), a request waiting for its credentials to be validated (bearer token seen for
//! the first time), or an answer ready at once.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::Response;
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

pub(crate) fn answer_into<B>(answer: Answer) -> Response<ResponseBody<B>> {
    answer.map(|bytes: Bytes| ResponseBody::full(bytes))
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
                for cookie in set_cookies.drain(..) {
                    add_set_cookie(res.headers_mut(), cookie);
                }
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
