//! An in-process OpenID provider for local development and tests.
//!
//! [`DevProvider`] runs a small OpenID Connect provider on a loopback port inside the current
//! Tokio runtime. The quickstart example starts one when no issuer is configured, and the
//! crate's integration tests drive it, including deliberately broken answers ([`Fault`]).
//!
//! It implements the authorization code flow (OpenID Connect Core 1.0, RFC 6749) with PKCE
//! (RFC 7636), the `iss` authorization response parameter (RFC 9207), discovery (OpenID
//! Connect Discovery 1.0), JWT access tokens (RFC 9068), refresh token rotation, userinfo,
//! token introspection (RFC 7662), RP-initiated logout (OpenID Connect RP-Initiated Logout
//! 1.0), pushed authorization requests (RFC 9126) and DPoP-bound tokens (RFC 9449).
//!
//! # Example
//!
//! ```no_run
//! use tower_oidc::dev::DevProvider;
//!
//! # async fn demo() -> std::io::Result<()> {
//! let provider = DevProvider::builder()
//!     .auto_login(Some("alice".to_owned()))
//!     .start()
//!     .await?;
//! let client = provider.confidential_client();
//! println!(
//!     "issuer {} client {} secret {:?}",
//!     provider.issuer(),
//!     client.id,
//!     client.secret
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # Caveats
//!
//! This is not a production identity provider: users log in by clicking a button, all state
//! is in memory and every listed user's e-mail address counts as verified.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

mod keys;
mod server;

use server::Shared;

/// Identifier of the confidential client every provider registers.
const CONFIDENTIAL_ID: &str = "dev-client";
/// Secret of the confidential client every provider registers.
const CONFIDENTIAL_SECRET: &str = "dev-secret";
/// Identifier of the public client every provider registers.
const PUBLIC_ID: &str = "dev-public";

/// A running development provider.
///
/// Dropping the handle stops the server. All methods take `&self`; the handle can be shared
/// between tasks (for instance in an `Arc`).
///
/// Every provider registers two clients: a confidential client `dev-client` with the secret
/// `dev-secret` ([`confidential_client`](Self::confidential_client)) and a public client
/// `dev-public` that must use PKCE ([`public_client`](Self::public_client)). Both accept any
/// redirect URI on a loopback host (see [`DevClient`]).
///
/// # Example
///
/// ```no_run
/// use tower_oidc::dev::{DevProvider, Fault, IdTokenFault};
///
/// # async fn demo() -> std::io::Result<()> {
/// let provider = DevProvider::start().await?;
/// println!("discovery at {}/.well-known/openid-configuration", provider.issuer());
///
/// // Log in without a form, as the first configured user.
/// provider.set_auto_login(Some("alice"));
///
/// // Make the next ID tokens fail validation.
/// provider.set_fault(Fault::IdToken(IdTokenFault::Expired));
/// provider.clear_faults();
/// # Ok(())
/// # }
/// ```
pub struct DevProvider {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for DevProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevProvider")
            .field("issuer", &self.shared.issuer)
            .field("addr", &self.addr)
            .field("clients", &self.shared.clients)
            .field("users", &self.shared.users)
            .finish_non_exhaustive()
    }
}

impl Drop for DevProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DevProvider {
    /// A builder for a provider with non-default settings.
    pub fn builder() -> DevProviderBuilder {
        DevProviderBuilder::default()
    }

    /// Starts a provider with the default settings on a free loopback port.
    ///
    /// Must be called within a Tokio runtime.
    pub async fn start() -> io::Result<DevProvider> {
        Self::builder().start().await
    }

    /// The issuer identifier, e.g. `http://127.0.0.1:41234` or
    /// `http://127.0.0.1:41234/tenant-a`, without a trailing slash (see
    /// [`DevProviderBuilder::issuer_host`] and [`DevProviderBuilder::issuer_path`]).
    ///
    /// The endpoints live below it: `{issuer}/.well-known/openid-configuration`,
    /// `{issuer}/authorize`, `{issuer}/token`, `{issuer}/userinfo`, `{issuer}/jwks`,
    /// `{issuer}/introspect`, `{issuer}/par` (pushed authorization requests, RFC 9126) and
    /// `{issuer}/end_session`.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The confidential client: id `dev-client`, secret `dev-secret` (unless replaced
    /// through [`DevProviderBuilder::client`]).
    pub fn confidential_client(&self) -> &DevClient {
        self.shared
            .client(CONFIDENTIAL_ID)
            .unwrap_or(&self.shared.clients[0])
    }

    /// The public client: id `dev-public`, no secret, PKCE required (unless replaced through
    /// [`DevProviderBuilder::client`]).
    pub fn public_client(&self) -> &DevClient {
        self.shared
            .client(PUBLIC_ID)
            .unwrap_or(&self.shared.clients[0])
    }

    /// The test users who can log in.
    pub fn users(&self) -> &[DevUser] {
        &self.shared.users
    }

    /// Turns automatic login on (`Some(sub)`) or off (`None`).
    ///
    /// With automatic login, `GET /authorize` answers a valid request at once with a
    /// redirect carrying an authorization code for this user, without showing the login
    /// page. If `sub` names no configured user, authorization requests are answered with
    /// `error=server_error`.
    pub fn set_auto_login(&self, sub: Option<&str>) {
        self.shared.state().auto_login = sub.map(str::to_owned);
    }

    /// Activates a fault. It stays active until [`clear_faults`](Self::clear_faults);
    /// several faults may be active at once. Setting a fault that carries a value
    /// (such as [`Fault::TokenError`]) replaces an active fault of the same kind.
    pub fn set_fault(&self, fault: Fault) {
        let mut state = self.shared.state();
        state.faults.retain(|f| {
            std::mem::discriminant(f) != std::mem::discriminant(&fault) || {
                // Several different ID token faults may be combined.
                matches!((f, &fault), (Fault::IdToken(a), Fault::IdToken(b)) if a != b)
            }
        });
        state.faults.push(fault);
    }

    /// Deactivates every fault (and releases requests held by
    /// [`Fault::HoldIntrospection`]).
    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
        self.shared.released.notify_waiters();
    }

    /// Replaces the signing key with a new one that has a new `kid`.
    ///
    /// From then on tokens are signed with the new key and the JWKS document lists only the
    /// new key. Generating an RSA key takes a moment (this call blocks while it runs).
    pub fn rotate_keys(&self) {
        self.shared.rotate_keys();
    }

    /// Signs arbitrary `claims` with the provider's current key, header `typ` as given: to
    /// mint tokens the provider would never issue (expired, other audience, other issuer...)
    /// for negative tests of token validation.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// use tower_oidc::dev::DevProvider;
    ///
    /// let dev = DevProvider::start().await?;
    /// let expired = dev.sign_jwt("at+jwt", &serde_json::json!({
    ///     "iss": dev.issuer(), "sub": "alice", "aud": "dev-client", "exp": 1, "iat": 0,
    /// }));
    /// # Ok(()) }
    /// ```
    pub fn sign_jwt(&self, typ: &str, claims: &serde_json::Value) -> String {
        self.shared
            .sign_jwt(typ, claims)
            .unwrap_or_else(|| panic!("the development provider could not sign"))
    }

    /// Like [`sign_jwt`](Self::sign_jwt), with header members of your choice: `header` (a
    /// JSON object) is laid over `{"alg", "kid", "typ": "JWT"}`, e.g. to add `crit`.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// use tower_oidc::dev::DevProvider;
    ///
    /// let dev = DevProvider::start().await?;
    /// let critical = dev.sign_jwt_with_header(
    ///     &serde_json::json!({ "typ": "at+jwt", "crit": ["exp"] }),
    ///     &serde_json::json!({ "iss": dev.issuer(), "sub": "alice" }),
    /// );
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// If `header` is not a JSON object.
    pub fn sign_jwt_with_header(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> String {
        self.shared
            .sign_jwt_with_header(header, claims)
            .unwrap_or_else(|| panic!("the development provider could not sign"))
    }

    /// Multi-tenant mode ([`DevProviderBuilder::multi_tenant`]): the tenant of the tokens
    /// issued from now on (`tid`, and `iss` filled with it). Default
    /// `00000000-0000-4000-8000-00000000000a`.
    pub fn set_tenant(&self, tid: &str) {
        self.shared.state().tenant = tid.to_owned();
    }

    /// The issuer of tenant `tid`: the discovery template filled with it in multi-tenant
    /// mode, else [`issuer`](Self::issuer).
    pub fn tenant_issuer(&self, tid: &str) -> String {
        self.shared.issuer_of(tid)
    }

    /// Counters of requests received so far.
    pub fn stats(&self) -> DevStats {
        let s = &self.shared.stats;
        DevStats {
            token_requests: s.token.load(Ordering::Relaxed),
            jwks_requests: s.jwks.load(Ordering::Relaxed),
            userinfo_requests: s.userinfo.load(Ordering::Relaxed),
            discovery_requests: s.discovery.load(Ordering::Relaxed),
            authorization_requests: s.authorization.load(Ordering::Relaxed),
            end_session_requests: s.end_session.load(Ordering::Relaxed),
            introspection_requests: s.introspection.load(Ordering::Relaxed),
        }
    }
}

/// Settings for a [`DevProvider`]; created by [`DevProvider::builder`].
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_oidc::dev::{DevClient, DevProvider, DevSigningAlg};
///
/// # async fn demo() -> std::io::Result<()> {
/// let provider = DevProvider::builder()
///     .issuer_path("/tenant-a")
///     .signing_alg(DevSigningAlg::Es256)
///     .id_token_ttl(Duration::from_secs(60))
///     .client(DevClient::confidential("my-app", "my-secret")
///         .redirect_uri("http://127.0.0.1:3000/auth/callback"))
///     .start()
///     .await?;
/// # Ok(())
/// # }
/// ```
pub struct DevProviderBuilder {
    bind: SocketAddr,
    issuer_host: Option<String>,
    issuer_path: String,
    clients: Vec<DevClient>,
    users: Vec<DevUser>,
    auto_login: Option<String>,
    signing_alg: DevSigningAlg,
    id_token_ttl: Duration,
    access_token_ttl: Duration,
    refresh_tokens: bool,
    access_token_audience: Option<String>,
    authorization_response_iss: bool,
    opaque_access_tokens: bool,
    require_pushed_authorization_requests: bool,
    dpop_nonce: bool,
    multi_tenant: bool,
    public_origin: Option<String>,
}

impl Default for DevProviderBuilder {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer_host: None,
            issuer_path: String::new(),
            clients: Vec::new(),
            users: Vec::new(),
            auto_login: None,
            signing_alg: DevSigningAlg::Rs256,
            id_token_ttl: Duration::from_secs(5 * 60),
            access_token_ttl: Duration::from_secs(10 * 60),
            refresh_tokens: true,
            access_token_audience: None,
            authorization_response_iss: true,
            opaque_access_tokens: false,
            require_pushed_authorization_requests: false,
            dpop_nonce: false,
            multi_tenant: false,
            public_origin: None,
        }
    }
}

impl fmt::Debug for DevProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevProviderBuilder")
            .field("bind", &self.bind)
            .field("issuer_host", &self.issuer_host)
            .field("issuer_path", &self.issuer_path)
            .field("clients", &self.clients)
            .field("users", &self.users)
            .field("auto_login", &self.auto_login)
            .field("signing_alg", &self.signing_alg)
            .field("id_token_ttl", &self.id_token_ttl)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_tokens", &self.refresh_tokens)
            .field("access_token_audience", &self.access_token_audience)
            .field(
                "authorization_response_iss",
                &self.authorization_response_iss,
            )
            .field("opaque_access_tokens", &self.opaque_access_tokens)
            .field(
                "require_pushed_authorization_requests",
                &self.require_pushed_authorization_requests,
            )
            .field("dpop_nonce", &self.dpop_nonce)
            .field("multi_tenant", &self.multi_tenant)
            .field("public_origin", &self.public_origin)
            .finish()
    }
}

impl DevProviderBuilder {
    /// The address to listen on; default `127.0.0.1:0` (a free loopback port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The host name used in the issuer instead of the bound IP address, e.g. `localhost`
    /// (to put the provider on a different site than an app on `127.0.0.1`). The port is
    /// always the bound port. Default: the bound IP address, or the loopback address of the
    /// same family when bound to an unspecified address such as `0.0.0.0`.
    ///
    /// A value that is not a valid host makes [`start`](Self::start) fail with
    /// [`io::ErrorKind::InvalidInput`].
    pub fn issuer_host(mut self, host: impl Into<String>) -> Self {
        self.issuer_host = Some(host.into());
        self
    }

    /// A path below the origin for the issuer, e.g. `/tenant-a` gives the issuer
    /// `http://127.0.0.1:PORT/tenant-a`. Default: none.
    ///
    /// The path may contain ASCII letters, digits, `-`, `.`, `_`, `~` and `/`; anything else
    /// makes [`start`](Self::start) fail with [`io::ErrorKind::InvalidInput`].
    pub fn issuer_path(mut self, path: impl Into<String>) -> Self {
        self.issuer_path = path.into();
        self
    }

    /// Registers a client in addition to `dev-client` and `dev-public`. A client with the
    /// id of an already registered client replaces it.
    pub fn client(mut self, client: DevClient) -> Self {
        self.clients.push(client);
        self
    }

    /// Adds a test user. When no user is added, the provider has two: `alice` (Alice
    /// Example, `alice@example.com`) and `bob` (Bob Example, `bob@example.com`); adding users
    /// replaces these defaults. A user with the `sub` of an added user replaces it.
    pub fn user(mut self, user: DevUser) -> Self {
        self.users.push(user);
        self
    }

    /// Starts with automatic login for this user (see [`DevProvider::set_auto_login`]).
    /// Default: off.
    pub fn auto_login(mut self, sub: Option<String>) -> Self {
        self.auto_login = sub;
        self
    }

    /// The algorithm of the signing key; default [`DevSigningAlg::Rs256`].
    pub fn signing_alg(mut self, alg: DevSigningAlg) -> Self {
        self.signing_alg = alg;
        self
    }

    /// Lifetime of ID tokens; default 5 minutes.
    pub fn id_token_ttl(mut self, ttl: Duration) -> Self {
        self.id_token_ttl = ttl;
        self
    }

    /// Lifetime of access tokens; default 10 minutes.
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = ttl;
        self
    }

    /// Whether refresh tokens are issued (to requests whose scope contains
    /// `offline_access`); default `true`.
    pub fn refresh_tokens(mut self, enabled: bool) -> Self {
        self.refresh_tokens = enabled;
        self
    }

    /// An audience added to the `aud` claim of access tokens, next to the client id
    /// (for APIs that check the audience of bearer tokens). Default: none.
    pub fn access_token_audience(mut self, audience: impl Into<String>) -> Self {
        self.access_token_audience = Some(audience.into());
        self
    }

    /// Whether authorization responses carry `iss` (RFC 9207) and discovery advertises
    /// `authorization_response_iss_parameter_supported`; default `true`. `false` plays a
    /// provider without RFC 9207 (as Microsoft Entra ID and Google are at the time of
    /// writing): responses carry only `code` (or `error`) and `state`.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::dev::DevProvider;
    ///
    /// # async fn demo() -> std::io::Result<()> {
    /// let like_entra = DevProvider::builder()
    ///     .authorization_response_iss(false)
    ///     .start()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn authorization_response_iss(mut self, enabled: bool) -> Self {
        self.authorization_response_iss = enabled;
        self
    }

    /// Issue opaque access tokens (random strings, to be checked at the introspection
    /// endpoint `{issuer}/introspect`) instead of JWTs. Default `false`.
    pub fn opaque_access_tokens(mut self, opaque: bool) -> Self {
        self.opaque_access_tokens = opaque;
        self
    }

    /// Whether authorization requests must be pushed first (RFC 9126): discovery then says
    /// `require_pushed_authorization_requests`, and `{issuer}/authorize` refuses requests
    /// without a `request_uri` from `{issuer}/par`. Default `false` (the PAR endpoint is
    /// always there, and always advertised).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::dev::DevProvider;
    ///
    /// # async fn demo() -> std::io::Result<()> {
    /// let strict = DevProvider::builder()
    ///     .require_pushed_authorization_requests(true)
    ///     .start()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn require_pushed_authorization_requests(mut self, required: bool) -> Self {
        self.require_pushed_authorization_requests = required;
        self
    }

    /// Whether DPoP proofs (RFC 9449) at the token and userinfo endpoints must carry the
    /// provider's nonce; default `false`. A proof without it is answered with
    /// `use_dpop_nonce` and a `DPoP-Nonce` header (`400` at the token endpoint, `401` at
    /// userinfo), as providers that demand nonces do.
    ///
    /// Whatever this setting, a token request with a valid `DPoP` proof gets DPoP-bound
    /// tokens: `token_type: DPoP`, the access token's `cnf.jkt` (also in introspection), and
    /// a refresh token usable only with a proof by the same key. Proofs are checked (type,
    /// algorithm, signature, `htm`, `htu`, `iat`, `ath` at userinfo) but not remembered.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::dev::DevProvider;
    ///
    /// # async fn demo() -> std::io::Result<()> {
    /// let demanding = DevProvider::builder().dpop_nonce(true).start().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn dpop_nonce(mut self, required: bool) -> Self {
        self.dpop_nonce = required;
        self
    }

    /// The origin the issuer (and so every endpoint) is published under instead of
    /// `http://{host}:{port}`, for a provider behind a TLS-terminating proxy, e.g.
    /// `https://localhost:8443` (the server itself still speaks plain HTTP on its bound
    /// address). An origin that is not an http(s) URL without path makes
    /// [`start`](Self::start) fail with [`io::ErrorKind::InvalidInput`].
    pub fn public_origin(mut self, origin: impl Into<String>) -> Self {
        self.public_origin = Some(origin.into());
        self
    }

    /// Plays a multi-tenant provider, as Microsoft Entra ID's `common` and `organizations`
    /// endpoints: discovery's `issuer` is a template with `{tenantid}` in place of the last
    /// segment of the [`issuer_path`](Self::issuer_path) (required), and every token carries
    /// the current tenant in `tid` and the template filled with it in `iss` (see
    /// [`DevProvider::set_tenant`]). Default `false`.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::dev::DevProvider;
    ///
    /// # async fn demo() -> std::io::Result<()> {
    /// let like_entra = DevProvider::builder()
    ///     .issuer_path("/common")
    ///     .multi_tenant(true)
    ///     .start()
    ///     .await?;
    /// // Discovery at http://127.0.0.1:PORT/common says `"issuer": "http://127.0.0.1:PORT/{tenantid}"`.
    /// like_entra.set_tenant("4c1f5e0a-0000-4000-8000-000000000001");
    /// assert!(like_entra.tenant_issuer("x").ends_with("/x"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn multi_tenant(mut self, enabled: bool) -> Self {
        self.multi_tenant = enabled;
        self
    }

    /// Generates the signing key, binds the listener and starts serving on the current
    /// Tokio runtime.
    ///
    /// Fails if the address cannot be bound or the issuer path is invalid.
    pub async fn start(self) -> io::Result<DevProvider> {
        let prefix = normalize_path(&self.issuer_path)?;
        if self.multi_tenant && prefix.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a multi-tenant provider needs an issuer path (its last segment is the tenant's)",
            ));
        }

        let mut clients = vec![
            DevClient::confidential(CONFIDENTIAL_ID, CONFIDENTIAL_SECRET),
            DevClient::public(PUBLIC_ID),
        ];
        for client in self.clients {
            match clients.iter_mut().find(|c| c.id == client.id) {
                Some(existing) => *existing = client,
                None => clients.push(client),
            }
        }
        let mut users: Vec<DevUser> = Vec::new();
        let configured = if self.users.is_empty() {
            vec![
                DevUser::new("alice", "Alice Example", "alice@example.com"),
                DevUser::new("bob", "Bob Example", "bob@example.com"),
            ]
        } else {
            self.users
        };
        for user in configured {
            match users.iter_mut().find(|u| u.sub == user.sub) {
                Some(existing) => *existing = user,
                None => users.push(user),
            }
        }

        let alg = self.signing_alg;
        let rng = ring::rand::SystemRandom::new();
        let key = tokio::task::spawn_blocking(move || keys::SigningKey::generate(alg, &rng))
            .await
            .map_err(io::Error::other)??;

        let listener = tokio::net::TcpListener::bind(self.bind).await?;
        let addr = listener.local_addr()?;
        let host = match (&self.issuer_host, addr) {
            (Some(host), _) => host.clone(),
            (None, SocketAddr::V4(a)) if a.ip().is_unspecified() => "127.0.0.1".to_owned(),
            (None, SocketAddr::V4(a)) => a.ip().to_string(),
            (None, SocketAddr::V6(a)) if a.ip().is_unspecified() => "[::1]".to_owned(),
            (None, SocketAddr::V6(a)) => format!("[{}]", a.ip()),
        };
        if let Some(origin) = &self.public_origin {
            let valid = url::Url::parse(origin).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.path() == "/"
                    && url.query().is_none()
                    && !origin.ends_with('/')
            });
            if !valid {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "public origin is not an http(s) origin such as https://localhost:8443",
                ));
            }
        }
        let issuer = format!("http://{host}:{}{prefix}", addr.port());
        let valid_host = url::Url::parse(&issuer).is_ok_and(|url| {
            url.host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(&host))
                && url.port_or_known_default() == Some(addr.port())
                && url.path()
                    == if prefix.is_empty() {
                        "/"
                    } else {
                        prefix.as_str()
                    }
        });
        if !valid_host {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "issuer host is not a valid host name or address",
            ));
        }

        let issuer = match &self.public_origin {
            Some(origin) => format!("{origin}{prefix}"),
            None => issuer,
        };
        let tenant_template = self.multi_tenant.then(|| {
            let parent = issuer.rsplit_once('/').map_or("", |(p, _)| p);
            format!("{parent}/{{tenantid}}")
        });
        let shared = Arc::new(Shared::new(server::Settings {
            issuer,
            prefix,
            clients,
            users,
            alg,
            id_token_ttl: self.id_token_ttl,
            access_token_ttl: self.access_token_ttl,
            refresh_tokens: self.refresh_tokens,
            access_token_audience: self.access_token_audience,
            opaque_access_tokens: self.opaque_access_tokens,
            auto_login: self.auto_login,
            authorization_response_iss: self.authorization_response_iss,
            require_par: self.require_pushed_authorization_requests,
            dpop_nonce: self.dpop_nonce,
            tenant_template,
            key,
        }));
        let router = server::router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "development provider stopped");
            }
        });
        tracing::debug!(issuer = %shared.issuer, "development provider started");
        Ok(DevProvider { shared, addr, task })
    }
}

fn normalize_path(path: &str) -> io::Result<String> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let with_slash = if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    };
    let valid = with_slash
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
        && !with_slash.contains("//")
        && with_slash
            .split('/')
            .all(|segment| segment != "." && segment != "..");
    if valid {
        Ok(with_slash)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "issuer path may contain only ASCII letters, digits, '-', '.', '_', '~' and '/'",
        ))
    }
}

/// A client registered at the development provider.
///
/// An empty `redirect_uris` list accepts any `http` or `https` redirect URI whose host is a
/// loopback address (`127.0.0.0/8`, `::1` or `localhost`), on any port and path; likewise an
/// empty `post_logout_redirect_uris` list for logout. This is a convenience for development;
/// listed URIs are compared as exact strings.
///
/// # Example
///
/// ```
/// use tower_oidc::dev::DevClient;
///
/// let client = DevClient::public("spa")
///     .redirect_uri("http://localhost:5173/callback")
///     .post_logout_redirect_uri("http://localhost:5173/");
/// assert!(client.secret.is_none());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DevClient {
    /// The `client_id`.
    pub id: String,
    /// The client secret; `None` makes a public client, which must use PKCE.
    pub secret: Option<String>,
    /// Registered redirect URIs; empty accepts any loopback URI.
    pub redirect_uris: Vec<String>,
    /// Registered post-logout redirect URIs; empty accepts any loopback URI.
    pub post_logout_redirect_uris: Vec<String>,
}

impl DevClient {
    /// A confidential client authenticating with `secret`, accepting loopback redirect URIs.
    pub fn confidential(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: Some(secret.into()),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
        }
    }

    /// A public client (no secret, PKCE required), accepting loopback redirect URIs.
    pub fn public(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: None,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
        }
    }

    /// Adds a registered redirect URI.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// Adds a registered post-logout redirect URI.
    pub fn post_logout_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.post_logout_redirect_uris.push(uri.into());
        self
    }
}

impl fmt::Debug for DevClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevClient")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("redirect_uris", &self.redirect_uris)
            .field("post_logout_redirect_uris", &self.post_logout_redirect_uris)
            .finish()
    }
}

/// A test user of the development provider.
///
/// Its claims are `sub`, `name` (scope `profile`), `email` and `email_verified: true`
/// (scope `email`).
///
/// # Example
///
/// ```
/// use tower_oidc::dev::DevUser;
///
/// let carol = DevUser::new("carol", "Carol Example", "carol@example.com");
/// assert_eq!(carol.sub, "carol");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevUser {
    /// Subject identifier (`sub`).
    pub sub: String,
    /// Display name (`name`).
    pub name: String,
    /// E-mail address (`email`), reported as verified.
    pub email: String,
    /// More claims (`roles`, `groups`, anything else), put into the user's ID tokens, userinfo
    /// answers and JWT access tokens whatever the scope. Registered token claims (`iss`,
    /// `sub`, `aud`, `exp`, `iat`, `nbf`, `nonce`, ...) are never overridden.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl DevUser {
    /// A user with these claims.
    pub fn new(sub: impl Into<String>, name: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            sub: sub.into(),
            name: name.into(),
            email: email.into(),
            claims: serde_json::Map::new(),
        }
    }

    /// Adds a custom claim (see [`DevUser::claims`]).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::dev::DevUser;
    ///
    /// let dana = DevUser::new("dana", "Dana Example", "dana@example.com")
    ///     .claim("roles", serde_json::json!(["admin"]))
    ///     .claim("groups", serde_json::json!(["ops"]));
    /// assert_eq!(dana.claims["roles"], serde_json::json!(["admin"]));
    /// ```
    pub fn claim(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }
}

/// Claims a [`DevUser`]'s custom claims never replace.
pub(crate) const REGISTERED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "nonce",
    "azp",
    "auth_time",
    "at_hash",
    "c_hash",
    "sid",
    "client_id",
    "scope",
    "typ",
    "events",
];

/// Algorithm of the provider's signing key.
///
/// # Example
///
/// ```
/// use tower_oidc::dev::DevSigningAlg;
///
/// assert_eq!(DevSigningAlg::Es256.name(), "ES256");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DevSigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key.
    Rs256,
    /// ECDSA with P-256 and SHA-256.
    Es256,
}

impl DevSigningAlg {
    /// The JWS `alg` name: `RS256` or `ES256`.
    pub fn name(self) -> &'static str {
        match self {
            DevSigningAlg::Rs256 => "RS256",
            DevSigningAlg::Es256 => "ES256",
        }
    }
}

/// A deliberate misbehaviour of the provider, for testing relying parties.
///
/// Activate with [`DevProvider::set_fault`]; it lasts until [`DevProvider::clear_faults`].
///
/// # Example
///
/// ```no_run
/// use tower_oidc::dev::{DevProvider, Fault};
///
/// # async fn demo() -> std::io::Result<()> {
/// let provider = DevProvider::start().await?;
/// provider.set_fault(Fault::Down);
/// provider.set_fault(Fault::TokenError("invalid_grant".to_owned()));
/// // Every endpoint now answers 503; once `Down` is cleared, the token endpoint still
/// // refuses every request until `clear_faults`.
/// provider.clear_faults();
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Every endpoint answers `503 Service Unavailable`.
    Down,
    /// Every endpoint waits this long before answering.
    Delay(Duration),
    /// ID tokens issued by the token endpoint are broken this way.
    IdToken(IdTokenFault),
    /// The userinfo endpoint returns a `sub` different from the token's subject.
    UserinfoSubMismatch,
    /// Offline access the Google way: discovery's `scopes_supported` lacks `offline_access`,
    /// authorization requests asking for it are answered `invalid_scope`, and refresh tokens
    /// are issued to authorization requests with `access_type=offline` instead.
    OfflineAccessByParameter,
    /// The userinfo endpoint answers every request with this status (and an
    /// `invalid_token` challenge), as Microsoft Graph's answers `401` to an access token
    /// minted for another API (an invalid code answers `500`).
    UserinfoStatus(u16),
    /// The userinfo endpoint answers with a signed JWT (`application/jwt`, with `iss` and
    /// `aud`) instead of JSON (OpenID Connect Core §5.3.2).
    SignedUserinfo,
    /// Like [`Fault::SignedUserinfo`], but the signature is broken.
    SignedUserinfoBadSignature,
    /// Like [`Fault::SignedUserinfo`], with these claims set over the signed ones (another
    /// `iss` or `aud`, say).
    SignedUserinfoClaims(serde_json::Value),
    /// The token endpoint answers `400` with `{"error": <code>}`.
    TokenError(String),
    /// The authorization endpoint redirects back with `error=<code>` (plus `state` and
    /// `iss`) to every request with a valid client and redirect URI.
    AuthorizeError(String),
    /// Token responses carry this `token_type` instead of `Bearer`.
    TokenType(String),
    /// Token responses carry no `id_token`.
    MissingIdToken,
    /// The `iss` parameter of authorization responses names a different issuer.
    WrongAuthorizationIss,
    /// The token endpoint answers every request with this status, `Content-Type` and body
    /// (after counting it): a `429`, a proxy's HTML error page, a `200` that is not JSON...
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// use tower_oidc::dev::{DevProvider, Fault};
    ///
    /// let dev = DevProvider::start().await?;
    /// dev.set_fault(Fault::TokenAnswer {
    ///     status: 502,
    ///     content_type: "text/html".into(),
    ///     body: "<html><h1>Bad Gateway</h1></html>".into(),
    /// });
    /// # Ok(()) }
    /// ```
    TokenAnswer {
        /// The HTTP status code (an invalid code answers `500`).
        status: u16,
        /// The `Content-Type` header.
        content_type: String,
        /// The body.
        body: String,
    },
    /// The userinfo endpoint answers every request with this status, `Content-Type` and body
    /// (after counting it), like [`Fault::TokenAnswer`] for the token endpoint: a `429`, a
    /// proxy's HTML page with `200`...
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// use tower_oidc::dev::{DevProvider, Fault};
    ///
    /// let dev = DevProvider::start().await?;
    /// dev.set_fault(Fault::UserinfoAnswer {
    ///     status: 429,
    ///     content_type: "application/json".into(),
    ///     body: "{}".into(),
    /// });
    /// # Ok(()) }
    /// ```
    UserinfoAnswer {
        /// The HTTP status code (an invalid code answers `500`).
        status: u16,
        /// The `Content-Type` header.
        content_type: String,
        /// The body.
        body: String,
    },
    /// The JWKS endpoint answers `503 Service Unavailable` while every other endpoint works.
    JwksDown,
    /// The provider turns hostile, as in a mix-up attack (RFC 9700 §4.4.1): its
    /// authorization endpoint answers every request with a redirect to another provider's
    /// `authorization_endpoint`, carrying over `response_type`, `response_mode`, `scope`,
    /// `state`, `nonce`, `code_challenge` and `code_challenge_method`, but with this
    /// `client_id` and `redirect_uri` (the relying party's client at the other provider and
    /// the redirect URI registered there). The other provider then authenticates the user
    /// and sends its code to the relying party, for a login that went to this provider.
    ///
    /// ```no_run
    /// use tower_oidc::dev::{DevProvider, Fault};
    ///
    /// # async fn demo() -> std::io::Result<()> {
    /// let honest = DevProvider::start().await?;
    /// let hostile = DevProvider::builder().issuer_path("/hostile").start().await?;
    /// hostile.set_fault(Fault::MixUpRelay {
    ///     authorization_endpoint: format!("{}/authorize", honest.issuer()),
    ///     client_id: honest.confidential_client().id.clone(),
    ///     redirect_uri: "http://127.0.0.1:3000/auth/callback/honest".to_owned(),
    /// });
    /// # Ok(())
    /// # }
    /// ```
    MixUpRelay {
        /// The other (honest) provider's authorization endpoint.
        authorization_endpoint: String,
        /// The relying party's client id at the other provider.
        client_id: String,
        /// The relying party's redirect URI registered at the other provider.
        redirect_uri: String,
    },
    /// Successful authorization responses carry these extra fields, as Apple posts the
    /// user's name as `user` (a JSON text) with `form_post` on the first login.
    ///
    /// ```no_run
    /// use tower_oidc::dev::{DevProvider, Fault};
    ///
    /// # async fn demo() -> std::io::Result<()> {
    /// let like_apple = DevProvider::start().await?;
    /// like_apple.set_fault(Fault::AuthorizationResponseParams(vec![(
    ///     "user".to_owned(),
    ///     r#"{"name":{"firstName":"Alice","lastName":"Example"}}"#.to_owned(),
    /// )]));
    /// # Ok(())
    /// # }
    /// ```
    AuthorizationResponseParams(Vec<(String, String)>),
    /// The introspection endpoint holds every request back (after counting it) until the
    /// fault is cleared with [`DevProvider::clear_faults`]: calls stay in flight for as long
    /// as a test needs, without timing guesses.
    HoldIntrospection,
    /// The discovery document's member named by the first string is set to the second (e.g.
    /// `token_endpoint` to a plain-http URL on another host).
    DiscoveryField(String, String),
    /// The discovery document carries 2 MiB of padding.
    OversizedDiscovery,
    /// The pushed authorization request endpoint (`{issuer}/par`) refuses every request
    /// with `400` and this OAuth error code (e.g. `invalid_request`, or
    /// `temporarily_unavailable`).
    ParError(String),
    /// The discovery document lacks the member of this name, e.g. `end_session_endpoint`
    /// (as AWS Cognito's and some Auth0 tenants' do).
    DiscoveryWithout(String),
    /// JWT access tokens carry these claims (a JSON object laid over the usual ones; a `null`
    /// member removes the usual one), as providers put roles there: Keycloak's `realm_access` and `resource_access` (with
    /// `aud: "account"`, `typ: "Bearer"`), Cognito's `cognito:groups`.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// use tower_oidc::dev::{DevProvider, Fault};
    ///
    /// let like_keycloak = DevProvider::start().await?;
    /// like_keycloak.set_fault(Fault::AccessTokenClaims(serde_json::json!({
    ///     "aud": "account",
    ///     "typ": "Bearer",
    ///     "realm_access": { "roles": ["admin"] },
    /// })));
    /// # Ok(()) }
    /// ```
    AccessTokenClaims(serde_json::Value),
    /// The JWKS document carries 2 MiB of padding.
    OversizedJwks,
    /// JWT access tokens name a signing key (`kid`) that the JWKS does not list, as the
    /// access tokens of Okta's org authorization server: only introspection can vouch for
    /// them.
    UnpublishedAccessTokenKey,
    /// The introspection endpoint refuses every client but the one with this id (`401
    /// invalid_client`), as Zitadel lets only API applications introspect.
    IntrospectionOnlyFor(String),
    /// Active introspection answers carry these members (a JSON object laid over the usual
    /// ones; a `null` member removes the usual one), as other providers shape them: no
    /// `aud`, another `client_id`, Keycloak's `typ: Refresh`, `token_type: refresh_token`...
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// use tower_oidc::dev::{DevProvider, Fault};
    ///
    /// let dev = DevProvider::builder().opaque_access_tokens(true).start().await?;
    /// dev.set_fault(Fault::IntrospectionClaims(serde_json::json!({
    ///     "aud": null,
    ///     "client_id": "another-client",
    /// })));
    /// # Ok(()) }
    /// ```
    IntrospectionClaims(serde_json::Value),
    /// The introspection endpoint answers every request with this status, `Content-Type`
    /// and body (after counting it), like [`Fault::TokenAnswer`] for the token endpoint.
    IntrospectionAnswer {
        /// The HTTP status code (an invalid code answers `500`).
        status: u16,
        /// The `Content-Type` header.
        content_type: String,
        /// The body.
        body: String,
    },
}

/// How [`Fault::IdToken`] breaks ID tokens.
///
/// Several ID token faults can be active at once; each is applied to every ID token the
/// token endpoint issues (after a code exchange or a refresh).
///
/// # Example
///
/// ```no_run
/// use tower_oidc::dev::{DevProvider, Fault, IdTokenFault};
///
/// # async fn demo() -> std::io::Result<()> {
/// let provider = DevProvider::start().await?;
/// provider.set_fault(Fault::IdToken(IdTokenFault::WrongNonce));
/// provider.set_fault(Fault::IdToken(IdTokenFault::Expired));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdTokenFault {
    /// The signature does not verify (bits flipped).
    BadSignature,
    /// `iss` names a different issuer.
    WrongIssuer,
    /// `sub` names another user (`mallory`).
    OtherSubject,
    /// `aud` names a different client.
    WrongAudience,
    /// `exp` lies ten minutes in the past.
    Expired,
    /// `iat` lies one hour in the future.
    IssuedInFuture,
    /// `nonce` differs from the authorization request's (and is present even when the
    /// request had none).
    WrongNonce,
    /// Unsigned: header `alg: none` and an empty signature.
    AlgNone,
    /// Signed with the current key but the header names a `kid` missing from the JWKS.
    UnknownKid,
    /// `at_hash` does not match the access token.
    WrongAtHash,
    /// Multi-tenant mode ([`DevProviderBuilder::multi_tenant`]): `iss` names another tenant
    /// than the token's `tid`.
    OtherTenantIssuer,
    /// Header `alg: HS256`, MACed with the PEM text of the provider's public key
    /// (the algorithm confusion attack).
    HmacWithPublicKey,
    /// `aud` lists the client and another audience, and `azp` is missing.
    MultipleAudiencesWithoutAzp,
    /// `aud` lists the client and `https://untrusted.example.test` (with `azp` the client):
    /// an audience a relying party trusts only when told to.
    UntrustedAudience,
    /// The header lists a critical extension (`crit`, RFC 7515 §4.1.11) that no relying
    /// party understands; the token is otherwise valid.
    CriticalHeader,
}

/// Request counters of a [`DevProvider`], from [`DevProvider::stats`].
///
/// # Example
///
/// ```no_run
/// use tower_oidc::dev::DevProvider;
///
/// # async fn demo() -> std::io::Result<()> {
/// let provider = DevProvider::start().await?;
/// // ... let the relying party log in twice ...
/// let stats = provider.stats();
/// assert!(stats.jwks_requests <= 1, "the JWKS should be cached");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DevStats {
    /// Requests to the token endpoint.
    pub token_requests: u64,
    /// Requests to the JWKS endpoint.
    pub jwks_requests: u64,
    /// Requests to the userinfo endpoint.
    pub userinfo_requests: u64,
    /// Requests for the discovery document.
    pub discovery_requests: u64,
    /// Requests to the authorization endpoint (not counting the login form's submissions).
    pub authorization_requests: u64,
    /// Requests to the end-session (logout) endpoint.
    pub end_session_requests: u64,
    /// Requests to the introspection endpoint.
    pub introspection_requests: u64,
}
