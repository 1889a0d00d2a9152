//! Bearer tokens shaped as mainstream providers issue them, reproduced by the dev provider:
//! extra issuers (Entra v1 `sts.windows.net/{tenantid}/`, custom domains), Cognito's
//! `client_id` in place of `aud`, an allow-list of clients (`azp`/`client_id`), introspection
//! with credentials of its own (Zitadel) and as the fallback for JWTs whose key is not
//! published (Okta's org authorization server). Every acceptance has its refusals next to it.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::app::{dev_tokens, start_app, TestApp};
use tower_oidc::dev::{DevClient, DevProvider, Fault};
use tower_oidc::ConfigBuilder;

const TENANT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const FOREIGN: &str = "ffffffff-0000-4000-8000-000000000009";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn dev(builder: tower_oidc::dev::DevProviderBuilder) -> DevProvider {
    let dev = builder.start().await.expect("dev provider");
    dev.set_auto_login(Some("alice"));
    dev
}

async fn app(dev: &DevProvider, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> TestApp {
    let client = dev.confidential_client().clone();
    let secret = client.secret.clone().expect("secret");
    start_app(dev.issuer(), &client.id, |b| {
        configure(b.client_secret(secret))
    })
    .await
    .expect("app")
}

async fn status(app: &TestApp, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(app.url("/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
}

async fn access_token(dev: &DevProvider) -> String {
    let tokens = dev_tokens(dev, dev.confidential_client(), "openid profile").await;
    tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {tokens}"))
        .to_owned()
}

/// Claims of a valid access token of the dev provider's confidential client, changed by
/// `with` (a `null` member removes the claim).
fn claims(dev: &DevProvider, with: Value) -> Value {
    let mut claims = json!({
        "iss": dev.issuer(), "sub": "alice", "aud": dev.confidential_client().id,
        "client_id": dev.confidential_client().id, "scope": "openid",
        "exp": now() + 300, "iat": now(),
    });
    for (name, value) in with.as_object().expect("an object") {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

#[tokio::test]
async fn cognito_access_tokens_without_aud_need_client_id_as_audience() {
    let dev = dev(DevProvider::builder()).await;
    // Cognito: no `aud`, `client_id` names the app client, groups in `cognito:groups`.
    dev.set_fault(Fault::AccessTokenClaims(json!({
        "aud": null, "token_use": "access", "cognito:groups": ["admin"],
    })));
    let token = access_token(&dev).await;
    let strict = app(&dev, |b| b).await;
    assert_eq!(status(&strict, &token).await, StatusCode::UNAUTHORIZED);
    let cognito = app(&dev, |b| b.client_id_as_audience(true)).await;
    assert_eq!(status(&cognito, &token).await, StatusCode::OK);
    // ... only when the `client_id` is one of the API audiences.
    let other = dev.sign_jwt(
        "JWT",
        &claims(
            &dev,
            json!({"aud": null, "client_id": "another-app-client", "token_use": "access"}),
        ),
    );
    assert_eq!(status(&cognito, &other).await, StatusCode::UNAUTHORIZED);
    // ... and never for a token without either.
    let neither = dev.sign_jwt(
        "at+jwt",
        &claims(&dev, json!({"aud": null, "client_id": null})),
    );
    assert_eq!(status(&cognito, &neither).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn extra_bearer_issuers_for_custom_domains() {
    let dev = dev(DevProvider::builder()).await;
    let custom = "http://localhost:9/custom-domain";
    let token = dev.sign_jwt("at+jwt", &claims(&dev, json!({"iss": custom})));
    let plain = app(&dev, |b| b).await;
    assert_eq!(status(&plain, &token).await, StatusCode::UNAUTHORIZED);
    let with_domain = app(&dev, |b| b.bearer_issuer(custom)).await;
    assert_eq!(status(&with_domain, &token).await, StatusCode::OK);
    let elsewhere = dev.sign_jwt(
        "at+jwt",
        &claims(&dev, json!({"iss": "http://localhost:9/other"})),
    );
    assert_eq!(
        status(&with_domain, &elsewhere).await,
        StatusCode::UNAUTHORIZED
    );
}

/// Entra v1 access tokens (`iss: https://sts.windows.net/{tid}/`) from a multi-tenant app:
/// the extra issuer's template follows the tenant rules too.
#[tokio::test]
async fn entra_v1_issuers_follow_the_tenant_rules() {
    let dev = dev(DevProvider::builder()
        .issuer_path("/common")
        .multi_tenant(true)
        .authorization_response_iss(false))
    .await;
    let v1 = |tid: &str| format!("http://localhost:9/sts/{tid}/");
    let app = app(&dev, |b| {
        b.tenants([TENANT])
            .bearer_issuer("http://localhost:9/sts/{tenantid}/")
    })
    .await;
    let token = |iss: String, tid: &str| {
        dev.sign_jwt(
            "JWT",
            &claims(
                &dev,
                json!({"iss": iss, "tid": tid, "appid": dev.confidential_client().id}),
            ),
        )
    };
    assert_eq!(
        status(&app, &token(v1(TENANT), TENANT)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app, &token(dev.tenant_issuer(TENANT), TENANT)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app, &token(v1(FOREIGN), FOREIGN)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&app, &token(v1(TENANT), FOREIGN)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn allowed_clients_decide_by_azp_and_client_id() {
    let dev = dev(DevProvider::builder()).await;
    let ours = dev.confidential_client().id.clone();
    // Keycloak-shaped: `aud: account`, the client in `azp`.
    let app = app(&dev, |b| {
        b.api_audience("account")
            .allowed_client(&ours)
            .allowed_client("mobile")
    })
    .await;
    let token = |with: Value| dev.sign_jwt("JWT", &claims(&dev, with));
    let keycloak =
        |azp: &str| json!({"aud": "account", "typ": "Bearer", "azp": azp, "client_id": null});
    assert_eq!(status(&app, &token(keycloak(&ours))).await, StatusCode::OK);
    assert_eq!(
        status(&app, &token(keycloak("mobile"))).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app, &token(keycloak("another-client"))).await,
        StatusCode::UNAUTHORIZED
    );
    // A token naming no client at all, and one whose claims disagree.
    assert_eq!(
        status(
            &app,
            &token(json!({"aud": "account", "typ": "Bearer", "client_id": null}))
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(
            &app,
            &token(json!({"aud": "account", "azp": ours, "client_id": "another-client"}))
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // Okta's `cid` counts too.
    assert_eq!(
        status(
            &app,
            &token(json!({"aud": "account", "client_id": null, "cid": "another-client"}))
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // Without the allow-list the audience alone decides.
    let open = self::app(&dev, |b| b.api_audience("account")).await;
    assert_eq!(
        status(&open, &token(keycloak("another-client"))).await,
        StatusCode::OK
    );
}

/// Zitadel: only an API application may introspect, not the web client.
#[tokio::test]
async fn introspection_with_credentials_of_its_own() {
    let dev = dev(DevProvider::builder()
        .opaque_access_tokens(true)
        .client(DevClient::confidential("api-introspector", "api-secret")))
    .await;
    dev.set_fault(Fault::IntrospectionOnlyFor("api-introspector".into()));
    let token = access_token(&dev).await;
    let web_client = app(&dev, |b| b).await;
    assert_eq!(
        status(&web_client, &token).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let api = app(&dev, |b| {
        b.introspection_client("api-introspector", "api-secret")
    })
    .await;
    assert_eq!(status(&api, &token).await, StatusCode::OK);
    assert_eq!(
        status(&api, "not-a-token-it-knows").await,
        StatusCode::UNAUTHORIZED
    );
    let wrong = app(&dev, |b| {
        b.introspection_client("api-introspector", "wrong")
    })
    .await;
    assert_eq!(
        status(&wrong, "another-opaque-token").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// Okta's org authorization server: its JWT access tokens name a key it does not publish.
#[tokio::test]
async fn jwts_with_unpublished_keys_through_introspection_when_asked() {
    let dev = dev(DevProvider::builder()).await;
    dev.set_fault(Fault::UnpublishedAccessTokenKey);
    let token = access_token(&dev).await;
    let strict = app(&dev, |b| b).await;
    assert_eq!(status(&strict, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(dev.stats().introspection_requests, 0);

    let okta = app(&dev, |b| b.introspect_unverifiable_jwts(true)).await;
    assert_eq!(status(&okta, &token).await, StatusCode::OK);
    assert_eq!(dev.stats().introspection_requests, 1);
    // A JWT naming an unknown key that the provider never issued: inactive.
    let forged = dev.sign_jwt_with_header(
        &json!({"typ": "at+jwt", "kid": "org-authorization-server"}),
        &claims(&dev, json!({})),
    );
    assert_eq!(status(&okta, &forged).await, StatusCode::UNAUTHORIZED);
    // A published key with a bad signature is refused without asking.
    let before = dev.stats().introspection_requests;
    let mut broken = dev.sign_jwt("at+jwt", &claims(&dev, json!({})));
    broken.truncate(broken.len() - 4);
    broken.push_str("AAAA");
    assert_eq!(status(&okta, &broken).await, StatusCode::UNAUTHORIZED);
    assert_eq!(dev.stats().introspection_requests, before);
}
