//! The response future of [`OidcService`](crate::OidcService): the inner service's future
//! (adding `Set-Cookie` headers on the way out), an answer being computed by the layer
//! (callback), or an answer ready at once.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::Response;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;
use crate::response::Page;
use crate::session::cookie::add_set_cookie;

type BoxPage = Pin<Box<dyn Future<Output = Page> + Send>>;

pin_project! {
    /// Response future of [`OidcService`](crate::OidcService).
    #[project = Proj]
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F>,
        _body: std::marker::PhantomData<fn() -> B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner {
            #[pin]
            future: F,
            set_cookies: Vec<String>,
        },
        Auth {
            future: BoxPage,
        },
        Ready {
            page: Option<Page>,
        },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn inner(future: F, set_cookies: Vec<String>) -> Self {
        Self::new(Kind::Inner {
            future,
            set_cookies,
        })
    }

    pub(crate) fn auth(future: BoxPage) -> Self {
        Self::new(Kind::Auth { future })
    }

    pub(crate) fn ready(page: Page) -> Self {
        Self::new(Kind::Ready { page: Some(page) })
    }

    fn new(kind: Kind<F>) -> Self {
        Self {
            kind,
            _body: std::marker::PhantomData,
        }
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}

fn page_into<B>(page: Page) -> Response<ResponseBody<B>> {
    page.map(|bytes: Bytes| ResponseBody::full(bytes))
}

impl<F, B, E> Future for ResponseFuture<F, B>
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
                Poll::Ready(Ok(page_into(ready!(future.as_mut().poll(cx)))))
            }
            KindProj::Ready { page } => match page.take() {
                Some(page) => Poll::Ready(Ok(page_into(page))),
                None => panic!("ResponseFuture polled after completion"),
            },
        }
    }
}
