//! A tonic gRPC server behind `OidcLayer`: calls carry `authorization: Bearer <access token>`
//! metadata, and the handler reads the caller's `Identity` from the request extensions.
//!
//! ```text
//! cargo run --example tonic_greeter
//! ```
//!
//! The example starts the `Greeter` server on a free loopback port, then acts as its own client:
//! it obtains an access token, calls `SayHello` once with the token (and prints the greeting)
//! and once without (and prints the `Unauthenticated` status), then stops the server and exits.
//!
//! Without `OIDC_ISSUER` it starts the embedded development provider, with automatic login as
//! `alice`, and gets the token through an authorization code flow done by hand (what a browser
//! and an app would do together). With a real provider it uses the `client_credentials` grant:
//!
//! | variable             | meaning                                                              |
//! |----------------------|----------------------------------------------------------------------|
//! | `OIDC_ISSUER`        | issuer URL (discovery at `<issuer>/.well-known/openid-configuration`) |
//! | `OIDC_CLIENT_ID`     | client id (required with `OIDC_ISSUER`)                              |
//! | `OIDC_CLIENT_SECRET` | client secret (required with `OIDC_ISSUER`: `client_credentials` needs it) |
//! | `OIDC_API_AUDIENCE`  | audience the access tokens must carry; also sent in the token request as `audience` and, when it is an absolute URI, as `resource` (RFC 8707). Default: the client id |
//! | `OIDC_SCOPES`        | scopes asked for in the token request; default none               |
//!
//! The layer needs a redirect URL even for a server that only takes bearer tokens; it is
//! `http://127.0.0.1:<port>/auth/callback` here and is never used.
//!
//! `require_login(true)` makes the layer itself answer a call without credentials with gRPC
//! status 16 (`UNAUTHENTICATED`), so the handler only runs for authenticated callers. The
//! generated code for `greeter.proto` is committed under `examples/greeter/` (no `protoc`, no
//! build script).

mod greeter;

use std::error::Error;
use std::net::SocketAddr;

use greeter::greeter_client::GreeterClient;
use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{HelloReply, HelloRequest};
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};
use tower_oidc::dev::DevProvider;
use tower_oidc::{Config, Identity, OidcLayer, SessionKey};
use tracing_subscriber::EnvFilter;

/// The service: greets the caller by the name in the request and the subject of the token.
struct GreeterService;

#[tonic::async_trait]
impl Greeter for GreeterService {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        // tonic keeps the HTTP request's extensions, so the layer's `Identity` is here.
        let subject = request
            .extensions()
            .get::<Identity>()
            .map(|id| id.subject().to_owned())
            .ok_or_else(|| Status::unauthenticated("no identity"))?;
        let name = request.into_inner().name;
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}, you are {subject}"),
        }))
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Where the client gets its access token from.
enum TokenSource {
    /// The development provider: authorization code flow by hand, with auto-login.
    Dev(DevProvider),
    /// A real provider: `client_credentials` grant.
    ClientCredentials {
        issuer: String,
        client_id: String,
        client_secret: String,
        audience: Option<String>,
        scopes: Option<String>,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();

    let audience = var("OIDC_API_AUDIENCE");
    let (issuer, client_id, client_secret, source) = match var("OIDC_ISSUER") {
        Some(issuer) => {
            let client_id =
                var("OIDC_CLIENT_ID").ok_or("OIDC_CLIENT_ID is required with OIDC_ISSUER")?;
            let client_secret = var("OIDC_CLIENT_SECRET")
                .ok_or("OIDC_CLIENT_SECRET is required with OIDC_ISSUER (client_credentials)")?;
            let source = TokenSource::ClientCredentials {
                issuer: issuer.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                audience: audience.clone(),
                scopes: var("OIDC_SCOPES"),
            };
            (issuer, client_id, client_secret, source)
        }
        None => {
            let mut dev = DevProvider::builder().auto_login(Some("alice".to_owned()));
            if let Some(audience) = &audience {
                dev = dev.access_token_audience(audience.clone());
            }
            let dev = dev.start().await?;
            println!("development provider at {}", dev.issuer());
            let client = dev.confidential_client().clone();
            let secret = client.secret.ok_or("the development client has a secret")?;
            (
                dev.issuer().to_owned(),
                client.id,
                secret,
                TokenSource::Dev(dev),
            )
        }
    };

    // The server: bind first, so the redirect URL can name the port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut config = Config::builder(issuer, client_id)
        .client_secret(client_secret)
        .redirect_url(format!("http://{addr}/auth/callback"))
        .session_key(SessionKey::generate())
        .require_login(true);
    if let Some(audience) = &audience {
        config = config.api_audience(audience.clone());
    }
    let oidc = OidcLayer::discover(config.build()?).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .layer(oidc)
            .add_service(GreeterServer::new(GreeterService))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );
    println!("gRPC server on http://{addr}");

    let token = match &source {
        TokenSource::Dev(dev) => dev_access_token(dev).await?,
        TokenSource::ClientCredentials {
            issuer,
            client_id,
            client_secret,
            audience,
            scopes,
        } => {
            client_credentials_token(
                issuer,
                client_id,
                client_secret,
                audience.as_deref(),
                scopes.as_deref(),
            )
            .await?
        }
    };

    let demo = call_twice(addr, &token).await;
    let _ = stop.send(());
    server.await??;
    demo
}

/// Calls `SayHello` with the token, then without it.
async fn call_twice(addr: SocketAddr, token: &str) -> Result<(), Box<dyn Error>> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = GreeterClient::new(channel);

    let mut request = Request::new(HelloRequest {
        name: "tonic".into(),
    });
    let bearer: MetadataValue<_> = format!("Bearer {token}").parse()?;
    request.metadata_mut().insert("authorization", bearer);
    let reply = client.say_hello(request).await?;
    println!("with a token:    {}", reply.into_inner().message);

    let request = Request::new(HelloRequest {
        name: "stranger".into(),
    });
    match client.say_hello(request).await {
        Ok(reply) => Err(format!(
            "the call without a token was answered: {}",
            reply.into_inner().message
        )
        .into()),
        Err(status) => {
            println!(
                "without a token: {:?} ({})",
                status.code(),
                status.message()
            );
            Ok(())
        }
    }
}

/// An access token from the development provider's token endpoint: the authorization code
/// flow with PKCE, done by hand (automatic login answers `/authorize` with the code at once).
async fn dev_access_token(dev: &DevProvider) -> Result<String, Box<dyn Error>> {
    use base64::Engine;

    let client = dev.confidential_client();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // Any loopback redirect URI is accepted by the development provider; nothing listens here.
    let redirect_uri = "http://127.0.0.1:9/callback";
    let mut verifier = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut verifier)
        .map_err(|_| "no randomness")?;
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(verifier);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let mut authorize = url::Url::parse(&format!("{}/authorize", dev.issuer()))?;
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid profile")
        .append_pair("state", "tonic-example")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let res = http.get(authorize).send().await?;
    let location = res
        .headers()
        .get(reqwest::header::LOCATION)
        .ok_or("the provider did not redirect back")?
        .to_str()?;
    let code = url::Url::parse(location)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or("no code in the redirect")?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", &verifier),
    ];
    token_request(
        &http,
        &format!("{}/token", dev.issuer()),
        &client.id,
        client.secret.as_deref().unwrap_or_default(),
        &form,
    )
    .await
}

/// An access token for the client itself (`client_credentials` grant, RFC 6749 §4.4).
async fn client_credentials_token(
    issuer: &str,
    client_id: &str,
    client_secret: &str,
    audience: Option<&str>,
    scopes: Option<&str>,
) -> Result<String, Box<dyn Error>> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let metadata = http
        .get(&discovery)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let metadata: serde_json::Value = serde_json::from_slice(&metadata)?;
    let token_endpoint = metadata["token_endpoint"]
        .as_str()
        .ok_or("the provider has no token_endpoint")?;
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scopes) = scopes {
        form.push(("scope", scopes));
    }
    if let Some(audience) = audience {
        // Providers differ in how a client names the API it wants a token for: `audience`
        // (e.g. Auth0), or an RFC 8707 resource indicator, which must be an absolute URI.
        form.push(("audience", audience));
        if url::Url::parse(audience).is_ok() {
            form.push(("resource", audience));
        }
    }
    token_request(&http, token_endpoint, client_id, client_secret, &form).await
}

/// POSTs a token request (`client_secret_basic`) and returns the `access_token`.
async fn token_request(
    http: &reqwest::Client,
    endpoint: &str,
    client_id: &str,
    client_secret: &str,
    form: &[(&str, &str)],
) -> Result<String, Box<dyn Error>> {
    // RFC 6749 §2.3.1: id and secret are form-encoded before they go into Basic.
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let res = http
        .post(endpoint)
        .basic_auth(encode(client_id), Some(encode(client_secret)))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await?;
    let status = res.status();
    let json: serde_json::Value = serde_json::from_slice(&res.bytes().await?)?;
    if !status.is_success() {
        return Err(format!(
            "token request refused ({status}): {} {}",
            json["error"].as_str().unwrap_or("?"),
            json["error_description"].as_str().unwrap_or("")
        )
        .into());
    }
    json["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "the token response has no access_token".into())
}
