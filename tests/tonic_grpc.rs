//! gRPC through tonic behind `OidcLayer`: a tonic server (`Server::builder().layer(...)`) and
//! a tonic client over a `Channel`, with bearer access tokens from the development provider.
//! An authenticated call reaches the handler with the caller's `Identity`; a missing, invalid
//! or expired token is `UNAUTHENTICATED`, a missing scope `PERMISSION_DENIED`, and a gRPC call
//! is never answered with a redirect.

mod support;

#[path = "../examples/greeter/mod.rs"]
mod greeter;

use std::net::SocketAddr;

use greeter::greeter_client::GreeterClient;
use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{HelloReply, HelloRequest};
use serde_json::{json, Value};
use support::app::dev_tokens;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use tower::ServiceExt;
use tower_oidc::dev::DevProvider;
use tower_oidc::{Config, ConfigBuilder, Identity, OidcLayer, RequireLayer, SessionKey};

/// Greets with the subject of the identity the layer put into the request.
struct GreeterService;

#[tonic::async_trait]
impl Greeter for GreeterService {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let Some(id) = request.extensions().get::<Identity>() else {
            return Err(Status::unauthenticated("the handler saw no identity"));
        };
        let subject = id.subject().to_owned();
        let name = request.into_inner().name;
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}, you are {subject}"),
        }))
    }
}

/// A development provider and a `Greeter` server behind the layer on a free loopback port.
struct Setup {
    dev: DevProvider,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts the provider (auto-login as alice) and the server; `configure` adjusts the layer's
/// configuration, `require` is stacked inside the layer when given.
async fn setup(
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    require: Option<RequireLayer>,
) -> Setup {
    let dev = DevProvider::builder()
        .auto_login(Some("alice".to_owned()))
        .start()
        .await
        .expect("dev provider");
    let client = dev.confidential_client().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let config = configure(
        Config::builder(dev.issuer(), &client.id)
            .client_secret(client.secret.clone().expect("secret"))
            .redirect_url(format!("http://{addr}/auth/callback"))
            .session_key(SessionKey::generate()),
    )
    .build()
    .expect("config");
    let oidc = OidcLayer::discover(config).await.expect("discovery");
    let incoming = TcpIncoming::from(listener);
    let service = GreeterServer::new(GreeterService);
    let server = match require {
        None => tokio::spawn(async move {
            Server::builder()
                .layer(oidc)
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
                .expect("serve");
        }),
        // The first `layer` is the outermost: OidcLayer, then RequireLayer inside it.
        Some(require) => tokio::spawn(async move {
            Server::builder()
                .layer(oidc)
                .layer(require)
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
                .expect("serve");
        }),
    };
    Setup { dev, addr, server }
}

impl Setup {
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    /// `SayHello` for `tester`, with `authorization: Bearer <token>` when a token is given.
    async fn hello(&self, token: Option<&str>) -> Result<String, Status> {
        let mut client = GreeterClient::new(self.channel().await);
        let mut request = Request::new(HelloRequest {
            name: "tester".into(),
        });
        if let Some(token) = token {
            let value = format!("Bearer {token}").parse().expect("metadata value");
            request.metadata_mut().insert("authorization", value);
        }
        client
            .say_hello(request)
            .await
            .map(|reply| reply.into_inner().message)
    }

    /// `SayHello` with `authorization: DPoP <token>` and a `dpop` proof in the metadata.
    async fn hello_dpop(&self, token: &str, proof: &str) -> Result<String, Status> {
        let mut client = GreeterClient::new(self.channel().await);
        let mut request = Request::new(HelloRequest {
            name: "tester".into(),
        });
        let value = format!("DPoP {token}").parse().expect("metadata value");
        request.metadata_mut().insert("authorization", value);
        request
            .metadata_mut()
            .insert("dpop", proof.parse().expect("metadata value"));
        client
            .say_hello(request)
            .await
            .map(|reply| reply.into_inner().message)
    }

    /// A real access token from the provider's token endpoint.
    async fn access_token(&self) -> String {
        dev_tokens(&self.dev, self.dev.confidential_client(), "openid profile").await
            ["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// Valid access-token claims for alice, to be altered and signed by the provider.
    fn claims(&self) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs();
        let client_id = &self.dev.confidential_client().id;
        json!({
            "iss": self.dev.issuer(),
            "sub": "alice",
            "aud": client_id,
            "client_id": client_id,
            "scope": "openid profile",
            "iat": now,
            "exp": now + 300,
        })
    }
}

#[track_caller]
fn assert_status(result: Result<String, Status>, code: Code, what: &str) -> Status {
    match result {
        Ok(message) => panic!("{what}: answered {message:?}, expected {code:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            status
        }
    }
}

#[tokio::test]
async fn authenticated_call_reaches_the_handler_with_the_identity() {
    let s = setup(|b| b, None).await;
    let token = s.access_token().await;
    assert_eq!(
        s.hello(Some(&token)).await.expect("greeting"),
        "Hello tester, you are alice"
    );
    // Also when the layer requires login for everything.
    let s = setup(|b| b.require_login(true), None).await;
    let token = s.access_token().await;
    assert_eq!(
        s.hello(Some(&token)).await.expect("greeting"),
        "Hello tester, you are alice"
    );
}

#[tokio::test]
async fn call_without_a_token_is_unauthenticated() {
    // Login optional: the request reaches the handler without an identity.
    let s = setup(|b| b, None).await;
    let status = assert_status(s.hello(None).await, Code::Unauthenticated, "no token");
    assert_eq!(status.message(), "the handler saw no identity");
    // Login required: the layer answers with gRPC status 16 itself.
    let s = setup(|b| b.require_login(true), None).await;
    let status = assert_status(s.hello(None).await, Code::Unauthenticated, "no token");
    assert_eq!(status.message(), "login required");
}

#[tokio::test]
async fn invalid_tokens_are_unauthenticated() {
    for require_login in [false, true] {
        let s = setup(|b| b.require_login(require_login), None).await;
        let token = s.access_token().await;
        let (signed, signature) = token.rsplit_once('.').expect("a JWT");
        let first = if signature.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{signed}.{first}{}", &signature[1..]);
        let mut claims = s.claims();
        let now = claims["iat"].as_u64().expect("iat");
        claims["iat"] = json!(now - 7200);
        claims["exp"] = json!(now - 3600);
        let expired = s.dev.sign_jwt("at+jwt", &claims);
        let mut claims = s.claims();
        claims["iss"] = json!("https://someone-else.example");
        let foreign = s.dev.sign_jwt("at+jwt", &claims);
        for (what, token) in [
            ("tampered signature", tampered.as_str()),
            ("expired", expired.as_str()),
            ("other issuer", foreign.as_str()),
            ("not a JWT", "not-a-token"),
        ] {
            let status = assert_status(s.hello(Some(token)).await, Code::Unauthenticated, what);
            assert_eq!(
                status.message(),
                "the credentials are invalid or expired",
                "{what}"
            );
        }
        // The untouched token still works.
        assert_eq!(
            s.hello(Some(&token)).await.expect("greeting"),
            "Hello tester, you are alice"
        );
    }
}

#[tokio::test]
async fn missing_scope_is_permission_denied() {
    let s = setup(|b| b, Some(RequireLayer::scopes(["greet"]))).await;
    let token = s.access_token().await;
    let status = assert_status(
        s.hello(Some(&token)).await,
        Code::PermissionDenied,
        "token without scope greet",
    );
    assert_eq!(status.message(), "insufficient scope");
    let mut claims = s.claims();
    claims["scope"] = json!("greet");
    let greet = s.dev.sign_jwt("at+jwt", &claims);
    assert_eq!(
        s.hello(Some(&greet)).await.expect("greeting"),
        "Hello tester, you are alice"
    );
    // No token at all: not logged in, rather than not allowed.
    assert_status(s.hello(None).await, Code::Unauthenticated, "no token");
}

/// At the HTTP level: a gRPC call without credentials gets HTTP 200 with `grpc-status: 16`,
/// never a redirect, even with a browser's `Accept` header and login required for the whole
/// layer. The same request without the gRPC content type is redirected, so the check bites.
#[tokio::test]
async fn grpc_call_is_never_redirected() {
    let s = setup(|b| b.require_login(true), None).await;
    let channel = s.channel().await;
    let raw = |content_type: &'static str| {
        http::Request::post(format!("http://{}/greeter.Greeter/SayHello", s.addr))
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::ACCEPT, "text/html,application/xhtml+xml")
            .header("sec-fetch-mode", "navigate")
            .header("te", "trailers")
            // An empty `HelloRequest` as one uncompressed gRPC message.
            .body(tonic::body::Body::new(http_body_util::Full::new(
                bytes::Bytes::from_static(&[0, 0, 0, 0, 0]),
            )))
            .expect("request")
    };
    for content_type in ["application/grpc", "application/grpc+proto"] {
        let res = channel
            .clone()
            .oneshot(raw(content_type))
            .await
            .expect("response");
        assert_eq!(res.status(), http::StatusCode::OK, "{content_type}");
        assert!(res.headers().get(http::header::LOCATION).is_none());
        assert_eq!(res.headers()["grpc-status"], "16", "{content_type}");
        assert!(res.headers()[http::header::CONTENT_TYPE]
            .to_str()
            .expect("content type")
            .starts_with("application/grpc"));
    }
    let res = channel
        .clone()
        .oneshot(raw("text/plain"))
        .await
        .expect("response");
    assert_eq!(res.status(), http::StatusCode::FOUND);
    assert!(res.headers().get("grpc-status").is_none());
}

#[tokio::test]
async fn dpop_bound_token_in_metadata_reaches_the_handler_and_a_replay_does_not() {
    let s = setup(|b| b, None).await;
    let key = support::dpop::TestDpopKey::new();
    let mut claims = s.claims();
    claims["cnf"] = json!({ "jkt": key.thumbprint() });
    let token = s.dev.sign_jwt("at+jwt", &claims);
    // gRPC is an HTTP POST to the method's path.
    let url = format!("http://{}/greeter.Greeter/SayHello", s.addr);
    let proof = key.proof("POST", &url, &token);
    let message = s.hello_dpop(&token, &proof).await.expect("call accepted");
    assert_eq!(message, "Hello tester, you are alice");
    let status = assert_status(
        s.hello_dpop(&token, &proof).await,
        Code::Unauthenticated,
        "replayed proof",
    );
    assert!(status.metadata().get("www-authenticate").is_some_and(|v| v
        .to_str()
        .is_ok_and(|v| v.starts_with("DPoP error=\"invalid_dpop_proof\""))));
    let other = support::dpop::TestDpopKey::new();
    assert_status(
        s.hello_dpop(&token, &other.proof("POST", &url, &token))
            .await,
        Code::Unauthenticated,
        "proof by another key",
    );
    assert_status(
        s.hello(Some(&token)).await,
        Code::Unauthenticated,
        "bound token sent as Bearer",
    );
}

/// Roles and groups for gRPC: a token without the role is `PERMISSION_DENIED` (status 7), a
/// token with it passes, and no token is still `UNAUTHENTICATED`.
#[tokio::test]
async fn missing_role_or_group_is_permission_denied() {
    for (require, claim) in [
        (RequireLayer::any_role(["greeter"]), "roles"),
        (RequireLayer::all_roles(["greeter"]), "roles"),
        (RequireLayer::group("greeters"), "groups"),
    ] {
        let s = setup(|b| b, Some(require)).await;
        let token = s.access_token().await;
        let status = assert_status(
            s.hello(Some(&token)).await,
            Code::PermissionDenied,
            "token without the role",
        );
        assert_eq!(status.message(), "insufficient scope");
        let mut claims = s.claims();
        claims[claim] = json!(["greeter", "greeters"]);
        let allowed = s.dev.sign_jwt("at+jwt", &claims);
        assert_eq!(
            s.hello(Some(&allowed)).await.expect("greeting"),
            "Hello tester, you are alice"
        );
        assert_status(s.hello(None).await, Code::Unauthenticated, "no token");
    }
}
