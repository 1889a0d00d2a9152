//! The post-login hook: [`Login`], what the app's hook sees and may change, and
//! [`LoginRejected`], how it refuses.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};
use serde_json::{Map, Value};

/// A successful login (or, when asked for, a refresh) as the post-login hook sees it
/// ([`ConfigBuilder::on_login`](crate::ConfigBuilder::on_login)): the provider's subject,
/// issuer and claims, the extra fields of the provider's callback, and the app's own data for
/// the session, which the hook may set.
///
/// # Example
///
/// ```
/// use tower_oidc::{Config, Login, LoginRejected};
///
/// async fn provision(mut login: Login) -> Result<Login, LoginRejected> {
///     // e.g. look the user up by (issuer, subject), create the row on first login
///     let user_id = format!("u-{}", login.subject());
///     login.set_app_subject(user_id);
///     login.set_app_claim("plan", "pro".into());
///     Ok(login)
/// }
///
/// let builder = Config::builder("https://id.example.com", "my-client").on_login(provision);
/// ```
#[derive(Debug, Clone)]
pub struct Login {
    subject: String,
    issuer: String,
    claims: Map<String, Value>,
    callback_params: Vec<(String, String)>,
    refresh: bool,
    app: AppData,
}

/// The app's data of a session: its own subject and claims.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AppData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sub: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub(crate) claims: Map<String, Value>,
}

impl AppData {
    /// The encoding kept in the session (empty when there is nothing).
    pub(crate) fn encode(&self) -> Vec<u8> {
        if self.sub.is_none() && self.claims.is_empty() {
            return Vec::new();
        }
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads [`AppData::encode`]; empty or unreadable bytes are no data.
    pub(crate) fn decode(bytes: &[u8]) -> Self {
        if bytes.is_empty() {
            return Self::default();
        }
        serde_json::from_slice(bytes).unwrap_or_else(|_| {
            tracing::error!("stored app claims are not readable");
            Self::default()
        })
    }
}

impl Login {
    pub(crate) fn new(
        claims: Map<String, Value>,
        issuer: String,
        callback_params: Vec<(String, String)>,
        refresh: bool,
        app: AppData,
    ) -> Self {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Self {
            subject,
            issuer,
            claims,
            callback_params,
            refresh,
            app,
        }
    }

    pub(crate) fn into_app(self) -> AppData {
        self.app
    }

    /// The provider's subject (`sub`); with several providers, the user is
    /// `(issuer(), subject())`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The provider's issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The validated claims (ID token, merged with userinfo's when fetched) that the session
    /// keeps (see [`ConfigBuilder::keep_claims`](crate::ConfigBuilder::keep_claims)).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// A field of the provider's authorization response that the layer itself does not use,
    /// such as Apple's `user` (a JSON text with the user's name, posted with `form_post` on
    /// the first login only). Not signed: treat it as the user's own input. `None` on a
    /// refresh.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Login, LoginRejected};
    ///
    /// async fn apple_name(mut login: Login) -> Result<Login, LoginRejected> {
    ///     if let Some(user) = login.callback_param("user") {
    ///         let user: serde_json::Value = serde_json::from_str(user).unwrap_or_default();
    ///         if let Some(first) = user["name"]["firstName"].as_str() {
    ///             login.set_app_claim("first_name", first.into());
    ///         }
    ///     }
    ///     Ok(login)
    /// }
    /// ```
    pub fn callback_param(&self, name: &str) -> Option<&str> {
        self.callback_params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is a refresh of an existing session rather than a login (see
    /// [`ConfigBuilder::on_login_at_refresh`](crate::ConfigBuilder::on_login_at_refresh)).
    pub fn is_refresh(&self) -> bool {
        self.refresh
    }

    /// The app's own subject for this user, when set (kept across refreshes).
    pub fn app_subject(&self) -> Option<&str> {
        self.app.sub.as_deref()
    }

    /// Sets the app's own subject (e.g. its user id), read by handlers with
    /// [`Identity::app_subject`](crate::Identity::app_subject).
    pub fn set_app_subject(&mut self, subject: impl Into<String>) {
        self.app.sub = Some(subject.into());
    }

    /// The app's claims of this session (kept across refreshes).
    pub fn app_claims(&self) -> &Map<String, Value> {
        &self.app.claims
    }

    /// Sets an app claim, read by handlers with
    /// [`Identity::app_claims`](crate::Identity::app_claims). They travel in the session
    /// cookie: keep them small.
    pub fn set_app_claim(&mut self, name: impl Into<String>, value: Value) {
        self.app.claims.insert(name.into(), value);
    }

    /// Removes an app claim.
    pub fn remove_app_claim(&mut self, name: &str) -> Option<Value> {
        self.app.claims.remove(name)
    }
}

/// How a post-login hook refuses a login: with a page of the app's choosing
/// ([`LoginRejected::page`]), or with an error (any `std::error::Error` converts with `?`),
/// which is logged and answered with a generic `500` page without details.
///
/// # Example
///
/// ```
/// use tower_oidc::{Login, LoginRejected};
///
/// async fn only_staff(login: Login) -> Result<Login, LoginRejected> {
///     if login.claims().get("email_verified") != Some(&serde_json::Value::Bool(true)) {
///         let page = http::Response::builder()
///             .status(403)
///             .header("content-type", "text/html; charset=utf-8")
///             .body("<h1>Please verify your e-mail address first</h1>")?;
///         return Err(LoginRejected::page(page));
///     }
///     Ok(login)
/// }
/// ```
pub struct LoginRejected {
    why: Why,
}

enum Why {
    Page(Box<http::Response<Bytes>>),
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl LoginRejected {
    /// Refuses with this answer (status, headers and body as given; the layer adds only
    /// `Cache-Control: no-store` and the removal of the login's cookie). No session is
    /// created.
    pub fn page(answer: http::Response<impl Into<Bytes>>) -> Self {
        Self {
            why: Why::Page(Box::new(answer.map(Into::into))),
        }
    }

    /// Refuses because something failed (a database down...): logged as an error, answered
    /// with a generic `500` page. At a refresh (see
    /// [`on_login_at_refresh`](crate::ConfigBuilder::on_login_at_refresh)) it ends the
    /// session, like a refusal.
    pub fn failed(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            why: Why::Failed(error.into()),
        }
    }

    /// The app's page, or the error.
    pub(crate) fn into_parts(
        self,
    ) -> Result<http::Response<Bytes>, Box<dyn std::error::Error + Send + Sync>> {
        match self.why {
            Why::Page(page) => Ok(*page),
            Why::Failed(err) => Err(err),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for LoginRejected {
    fn from(error: E) -> Self {
        Self::failed(error)
    }
}

impl fmt::Debug for LoginRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.why {
            Why::Page(page) => f
                .debug_tuple("LoginRejected::Page")
                .field(&page.status())
                .finish(),
            Why::Failed(err) => f.debug_tuple("LoginRejected::Failed").field(err).finish(),
        }
    }
}

type HookFn = dyn Fn(Login) -> BoxFuture<'static, Result<Login, LoginRejected>> + Send + Sync;

/// The app's hook and when it runs.
#[derive(Clone)]
pub(crate) struct LoginHook {
    run: Arc<HookFn>,
    pub(crate) at_refresh: bool,
}

impl fmt::Debug for LoginHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginHook")
            .field("at_refresh", &self.at_refresh)
            .finish_non_exhaustive()
    }
}

impl LoginHook {
    pub(crate) fn new<F, Fut>(hook: F) -> Self
    where
        F: Fn(Login) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Login, LoginRejected>> + Send + 'static,
    {
        Self {
            run: Arc::new(move |login| hook(login).boxed()),
            at_refresh: false,
        }
    }

    /// Runs the hook; a panic in it is a failure like an error, never a dropped connection.
    pub(crate) async fn run(&self, login: Login) -> Result<Login, LoginRejected> {
        match AssertUnwindSafe((self.run)(login)).catch_unwind().await {
            Ok(result) => result,
            Err(_) => Err(LoginRejected::failed("the post-login hook panicked")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_data_round_trips_and_is_empty_when_unset() {
        assert!(AppData::default().encode().is_empty());
        assert_eq!(AppData::decode(b""), AppData::default());
        let mut claims = Map::new();
        claims.insert("plan".into(), "pro".into());
        let data = AppData {
            sub: Some("u-1".into()),
            claims,
        };
        assert_eq!(AppData::decode(&data.encode()), data);
        assert_eq!(AppData::decode(b"not json"), AppData::default());
    }

    #[tokio::test]
    async fn a_panicking_hook_is_a_failure() {
        let hook = LoginHook::new(|_login: Login| async move {
            if true {
                panic!("boom");
            }
            Err(LoginRejected::failed("unreachable"))
        });
        let login = Login::new(
            Map::new(),
            "https://id".into(),
            Vec::new(),
            false,
            AppData::default(),
        );
        let err = hook.run(login).await.expect_err("refused");
        assert!(err.into_parts().is_err());
    }
}
