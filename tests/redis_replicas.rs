//! Several app replicas sharing state through a real `redis-server` (installed by the test
//! support when missing), in one test process behind one dev provider (and `oidc-provider`
//! where its own refresh-token rotation adds value): every replica has the same session key
//! and its own [`RedisRevocationStore`] on the same Redis, with, as each test sets up, the
//! refresh coordinator and the server-side session store made from it.
//!
//! Propagation is awaited by polling with a deadline (1 s where the contract says so), never by
//! a fixed sleep; token expiry and session lifetimes pass by the layer's clock
//! ([`TestClock`]), frozen unless a test moves it.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use support::app::{new_session_cookie, start_app, Browser, TestApp};
use support::clock::TestClock;
use support::redis::RedisServer;
use support::wait;
use tower_oidc::dev::DevProvider;
use tower_oidc::{ConfigError, RedisRevocationStore, RevocationStore, SessionKey};

/// How fast a revocation must reach another replica.
const PROPAGATION: Duration = Duration::from_secs(1);

struct Fleet {
    dev: DevProvider,
    replicas: Vec<(TestApp, Arc<RedisRevocationStore>)>,
}

/// How a fleet differs from the default one (revocations shared, nothing else).
#[derive(Default)]
struct Setup {
    /// The layer's clock, shared by every replica (default: the system clock).
    clock: Option<TestClock>,
    /// Refreshes coordinated through Redis.
    coordinated: bool,
    /// The provider's access-token lifetime, with refresh tokens (rotated on each use) asked
    /// for (default: the provider's).
    access_ttl: Option<Duration>,
    /// Server-side sessions in Redis.
    server_side: bool,
}

/// A short access-token lifetime, due for refresh after 2 s of the layer's clock.
const SHORT: Duration = Duration::from_secs(4);

impl Fleet {
    /// `count` replicas of the dev provider's confidential client with one session key, each
    /// with its own store on `redis`.
    async fn start(redis: &RedisServer, count: usize) -> Fleet {
        Self::start_with(redis, count, Setup::default()).await
    }

    /// [`Fleet::start`] as `setup` says.
    async fn start_with(redis: &RedisServer, count: usize, setup: Setup) -> Fleet {
        let mut provider = DevProvider::builder();
        if let Some(ttl) = setup.access_ttl {
            provider = provider
                .access_token_ttl(ttl)
                .id_token_ttl(Duration::from_secs(3600))
                .refresh_tokens(true);
        }
        let dev = provider.start().await.expect("dev provider");
        dev.set_auto_login(Some("alice"));
        let client = dev.confidential_client().clone();
        let secret = client.secret.clone().expect("secret");
        let key = SessionKey::generate();
        let mut replicas = Vec::new();
        for _ in 0..count {
            let store = Arc::new(
                RedisRevocationStore::builder(redis.url())
                    .max_reconnect_delay(Duration::from_millis(200))
                    .timeout(Duration::from_secs(1))
                    .connect()
                    .await
                    .expect("connect to Redis"),
            );
            let (secret, key, shared) = (secret.clone(), key.clone(), Arc::clone(&store));
            let app = start_app(dev.issuer(), &client.id, |mut b| {
                if let Some(clock) = &setup.clock {
                    b = b.clock(clock.closure());
                }
                if setup.coordinated {
                    b = b.refresh_coordinator(shared.refresh_coordinator());
                }
                if setup.server_side {
                    b = b.session_store(shared.session_store());
                }
                if setup.access_ttl.is_some() {
                    b = b.scopes(["openid", "profile", "email", "offline_access"]);
                }
                b.client_secret(secret)
                    .session_key(key)
                    .revocation_store(shared)
            })
            .await
            .expect("replica");
            replicas.push((app, store));
        }
        Fleet { dev, replicas }
    }

    fn app(&self, index: usize) -> &TestApp {
        &self.replicas[index].0
    }

    fn store(&self, index: usize) -> &RedisRevocationStore {
        &self.replicas[index].1
    }

    /// Logs in through replica `index`; the session cookie(s) as a `Cookie` header, and the
    /// provider's `sid`.
    async fn log_in(&self, index: usize) -> (String, String) {
        let app = self.app(index);
        let browser = Browser::new();
        let landing = browser.follow(&app.url("/me")).await;
        assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
        let sid = landing.json()["sid"]
            .as_str()
            .expect("sid claim")
            .to_owned();
        let cookie = browser.session_cookie(app);
        (cookie, sid)
    }

    /// A signed back-channel logout token for the provider session `sid`.
    fn logout_token(&self, sid: &str) -> String {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("time")
            .as_secs();
        let claims = serde_json::json!({
            "iss": self.dev.issuer(),
            "aud": self.dev.confidential_client().id,
            "iat": now,
            "exp": now + 120,
            "jti": format!("jti-{sid}"),
            "sid": sid,
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        self.dev.sign_jwt("logout+jwt", &claims)
    }

    /// Delivers `token` to replica `index`'s back-channel logout endpoint.
    async fn backchannel(&self, index: usize, token: &str) -> StatusCode {
        reqwest::Client::new()
            .post(self.app(index).url("/auth/backchannel-logout"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("logout_token={token}"))
            .send()
            .await
            .expect("back-channel request")
            .status()
    }

    /// The status of `GET /whoami` on replica `index` with `cookie` (as a fetch).
    async fn whoami(&self, index: usize, cookie: &str) -> StatusCode {
        self.app(index)
            .api_get_with_cookie("/whoami", cookie)
            .await
            .status()
    }

    /// Waits (at most [`PROPAGATION`]) until replica `index` refuses `cookie`.
    async fn refused_within_a_second(&self, index: usize, cookie: &str, what: &str) {
        let started = Instant::now();
        wait::until(what, PROPAGATION, || async {
            match self.whoami(index, cookie).await {
                StatusCode::UNAUTHORIZED => Ok(()),
                other => Err(other),
            }
        })
        .await;
        eprintln!("{what}: refused after {:?}", started.elapsed());
    }

    /// `GET /token` on replica `index` with `cookie` (as a fetch): the status, the access
    /// token the app was given, and the session cookie the answer sets (after a refresh).
    async fn token(&self, index: usize, cookie: &str) -> (StatusCode, String, Option<String>) {
        let res = self.app(index).api_get_with_cookie("/token", cookie).await;
        let status = res.status();
        let set = new_session_cookie(&res);
        (status, res.text().await.expect("body"), set)
    }

    /// `count` concurrent `GET /token` with `cookie`, spread over the replicas in turn; each
    /// must be 200 and set a new session cookie (a refresh). The one access token they all got,
    /// and the new cookie.
    async fn refresh_together(&self, count: usize, cookie: &str) -> (String, String) {
        let replicas = self.replicas.len();
        let answers =
            futures_util::future::join_all((0..count).map(|i| self.token(i % replicas, cookie)))
                .await;
        let mut tokens = std::collections::BTreeSet::new();
        let mut cookie = None;
        for (i, (status, token, set)) in answers.into_iter().enumerate() {
            assert_eq!(status, StatusCode::OK, "request {i}: {token}");
            assert!(set.is_some(), "request {i} got the refreshed session");
            tokens.insert(token);
            cookie = set;
        }
        assert_eq!(
            tokens.len(),
            1,
            "every request got the same new access token"
        );
        let token = tokens.into_iter().next().unwrap_or_default();
        (token, cookie.unwrap_or_default())
    }

    fn token_requests(&self) -> u64 {
        self.dev.stats().token_requests
    }

    /// Waits until every replica's store is (`true`) or is not (`false`) connected.
    async fn all_connected(&self, connected: bool) {
        wait::until(
            &format!("every store connected: {connected}"),
            wait::PATIENCE,
            || async {
                let states: Vec<bool> = (0..self.replicas.len())
                    .map(|i| self.store(i).is_connected())
                    .collect();
                if states.iter().all(|state| *state == connected) {
                    Ok(())
                } else {
                    Err(states)
                }
            },
        )
        .await;
    }
}

#[tokio::test]
async fn support_redis_server_starts_stops_and_restarts_on_the_same_port() {
    let mut server = RedisServer::start().await;
    server.ping().await.expect("ready after start");
    let url = server.url();
    server.stop().await;
    assert!(server.ping().await.is_err(), "stopped");
    server.restart().await;
    server.ping().await.expect("ready after restart");
    assert_eq!(server.url(), url, "same port");
}

#[tokio::test]
async fn backchannel_logout_on_one_replica_is_refused_on_the_other_within_a_second() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(&redis, 2).await;
    let (cookie, sid) = fleet.log_in(0).await;
    let (other_cookie, _) = fleet.log_in(0).await;
    assert_eq!(fleet.whoami(1, &cookie).await, StatusCode::OK, "shared key");

    let token = fleet.logout_token(&sid);
    assert_eq!(fleet.backchannel(0, &token).await, StatusCode::OK);
    assert_eq!(fleet.whoami(0, &cookie).await, StatusCode::UNAUTHORIZED);
    fleet
        .refused_within_a_second(1, &cookie, "the back-channel logout on replica B")
        .await;
    assert_eq!(
        fleet.whoami(1, &other_cookie).await,
        StatusCode::OK,
        "another session of the same user stays"
    );
    // The token's `jti` travelled with it: a replay to the other replica is refused.
    assert_eq!(
        fleet.backchannel(1, &token).await,
        StatusCode::BAD_REQUEST,
        "replayed to replica B"
    );
    // A replica that starts later reads the revocation from Redis.
    let late = RedisRevocationStore::connect(&redis.url())
        .await
        .expect("connect");
    assert!(late.is_revoked(fleet.dev.issuer(), Some(&sid), "alice", 0, 1));
    assert!(!late.is_revoked(fleet.dev.issuer(), Some("another-sid"), "alice", 0, 1));
}

#[tokio::test]
async fn local_logout_on_one_replica_refuses_the_copied_cookie_on_the_others() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(&redis, 3).await;
    let browser = Browser::new();
    let landing = browser.follow(&fleet.app(0).url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    let copy = browser.session_cookie(fleet.app(0));
    for replica in 1..3 {
        assert_eq!(fleet.whoami(replica, &copy).await, StatusCode::OK);
    }

    let logout = browser.get(&fleet.app(0).url("/auth/logout")).await;
    assert_eq!(logout.status(), StatusCode::FOUND);
    assert_eq!(fleet.whoami(0, &copy).await, StatusCode::UNAUTHORIZED);
    for replica in 1..3 {
        fleet
            .refused_within_a_second(replica, &copy, "the local logout on another replica")
            .await;
    }
    // A new login is a new session, on every replica.
    let (again, _) = fleet.log_in(1).await;
    assert_eq!(fleet.whoami(2, &again).await, StatusCode::OK);
}

#[tokio::test]
async fn redis_outage_keeps_sessions_and_known_revocations_and_recovers() {
    let mut redis = RedisServer::start().await;
    let fleet = Fleet::start(&redis, 2).await;
    let (revoked, revoked_sid) = fleet.log_in(0).await;
    let (live, _) = fleet.log_in(1).await;
    let (revoked_in_outage, outage_sid) = fleet.log_in(1).await;
    let (revoked_after, after_sid) = fleet.log_in(0).await;
    assert_eq!(
        fleet
            .backchannel(0, &fleet.logout_token(&revoked_sid))
            .await,
        StatusCode::OK
    );
    fleet
        .refused_within_a_second(1, &revoked, "a revocation before the outage")
        .await;

    redis.stop().await;
    fleet.all_connected(false).await;
    for replica in 0..2 {
        assert_eq!(
            fleet.whoami(replica, &live).await,
            StatusCode::OK,
            "a live session during the outage, replica {replica}"
        );
        assert_eq!(
            fleet.whoami(replica, &revoked).await,
            StatusCode::UNAUTHORIZED,
            "a known revocation during the outage, replica {replica}"
        );
    }
    // A revocation during the outage applies on its own replica at once.
    assert_eq!(
        fleet.backchannel(1, &fleet.logout_token(&outage_sid)).await,
        StatusCode::OK
    );
    assert_eq!(
        fleet.whoami(1, &revoked_in_outage).await,
        StatusCode::UNAUTHORIZED
    );

    // Redis is back, empty (no persistence).
    redis.restart().await;
    fleet.all_connected(true).await;
    // What replica B revoked during the outage was written when it reconnected.
    fleet
        .refused_within_a_second(0, &revoked_in_outage, "a revocation made during the outage")
        .await;
    // A new revocation propagates again.
    assert_eq!(
        fleet.backchannel(1, &fleet.logout_token(&after_sid)).await,
        StatusCode::OK
    );
    fleet
        .refused_within_a_second(0, &revoked_after, "a revocation after the outage")
        .await;
    for replica in 0..2 {
        assert_eq!(
            fleet.whoami(replica, &revoked).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(fleet.whoami(replica, &live).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn unreachable_redis_or_a_bad_url_fails_at_startup() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    redis.stop().await;
    let started = Instant::now();
    let err = RedisRevocationStore::builder(url)
        .timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, ConfigError::Backend { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the timeout"
    );
    assert!(err.to_string().contains("Redis"), "{err}");

    let err = RedisRevocationStore::connect("http://127.0.0.1/")
        .await
        .expect_err("not a Redis URL");
    assert!(matches!(err, ConfigError::InvalidUrl { .. }), "{err:?}");
    let err = RedisRevocationStore::builder("redis://127.0.0.1/")
        .timeout(Duration::ZERO)
        .connect()
        .await
        .expect_err("zero timeout");
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                field: "timeout",
                ..
            }
        ),
        "{err:?}"
    );
}

/// The number of `PUBLISH` calls Redis served since its statistics were last reset.
async fn publishes(redis: &RedisServer) -> u64 {
    let stats = redis.command("INFO commandstats").await;
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_publish:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().expect("a count"))
}

#[tokio::test]
async fn replayed_logouts_of_an_old_cookie_write_nothing_and_real_logouts_still_propagate() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(&redis, 2).await;
    let (old, _) = fleet.log_in(0).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let logout = |cookie: String| {
        let client = no_redirects.clone();
        let url = fleet.app(0).url("/auth/logout");
        async move {
            client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("logout")
                .status()
        }
    };
    assert_eq!(logout(old.clone()).await, StatusCode::FOUND);
    fleet
        .refused_within_a_second(1, &old, "the first logout of the old cookie")
        .await;

    // The same (already ended) cookie, 3000 times, 32 at a time.
    assert!(redis.command("CONFIG RESETSTAT").await.starts_with("+OK"));
    for _ in 0..(3000 / 32) {
        let round: Vec<_> = (0..32).map(|_| logout(old.clone())).collect();
        for status in futures_util::future::join_all(round).await {
            assert_eq!(status, StatusCode::FOUND);
        }
    }
    assert_eq!(
        publishes(&redis).await,
        0,
        "an ended session's cookie writes nothing to Redis"
    );

    // A real logout on replica A still reaches replica B at once.
    let (fresh, _) = fleet.log_in(0).await;
    assert_eq!(fleet.whoami(1, &fresh).await, StatusCode::OK);
    assert_eq!(logout(fresh.clone()).await, StatusCode::FOUND);
    fleet
        .refused_within_a_second(1, &fresh, "a real logout after the flood")
        .await;
    assert_eq!(publishes(&redis).await, 1, "one write for one real logout");
}

#[tokio::test]
async fn a_late_replica_with_a_small_capacity_reads_every_kind_and_the_newest() {
    let redis = RedisServer::start().await;
    let writer = RedisRevocationStore::connect(&redis.url())
        .await
        .expect("connect");
    let iss = "https://id.example.com";
    let far = 4_000_000_000;
    for (n, sid) in ["s1", "s2", "s3"].iter().enumerate() {
        let revocation = tower_oidc::Revocation {
            issuer: iss.into(),
            sid: Some((*sid).into()),
            sub: None,
            at: far,
        };
        writer.revoke(revocation, far + n as u64);
    }
    writer.revoke_session(iss, "session-1", far + 10);
    wait::until("four entries in Redis", wait::PATIENCE, || async {
        match redis.command("ZCARD tower-oidc:revocations").await.as_str() {
            ":4\r\n" => Ok(()),
            other => Err(other.to_owned()),
        }
    })
    .await;
    let late = RedisRevocationStore::builder(redis.url())
        .capacity(2)
        .connect()
        .await
        .expect("connect");
    assert!(late.is_session_revoked(iss, "session-1", 1), "another kind");
    assert!(
        late.is_revoked(iss, Some("s3"), "alice", 0, 1),
        "the newest"
    );
    assert!(late.is_revoked(iss, Some("s2"), "alice", 0, 1));
}

/// The keys of Redis that match `pattern`, from the raw answer to `KEYS`.
async fn keys(redis: &RedisServer, pattern: &str) -> Vec<String> {
    redis
        .command(&format!("KEYS {pattern}"))
        .await
        .split("\r\n")
        .filter(|line| line.starts_with("tower-oidc:"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn fifty_requests_over_three_replicas_with_an_expired_token_make_one_refresh() {
    let redis = RedisServer::start().await;
    let clock = TestClock::frozen();
    let fleet = Fleet::start_with(
        &redis,
        3,
        Setup {
            clock: Some(clock.clone()),
            coordinated: true,
            access_ttl: Some(SHORT),
            server_side: false,
        },
    )
    .await;
    let (mut cookie, _) = fleet.log_in(0).await;
    let (status, mut before, _) = fleet.token(1, &cookie).await;
    assert_eq!(status, StatusCode::OK);
    let mut calls = fleet.token_requests();
    // Twice: the refresh token the first refresh rotated in refreshes the next time too.
    for round in 1..=2 {
        clock.advance(Duration::from_secs(3));
        let (token, next) = fleet.refresh_together(50, &cookie).await;
        assert_eq!(
            fleet.token_requests(),
            calls + 1,
            "round {round}: one token-endpoint call for the fleet"
        );
        assert_ne!(token, before, "round {round}: a new access token");
        for replica in 0..3 {
            assert_eq!(
                fleet.whoami(replica, &next).await,
                StatusCode::OK,
                "round {round}: the refreshed session on replica {replica}"
            );
        }
        // What the others were handed is sealed in Redis, never in clear; the lock is gone.
        let done = keys(&redis, "tower-oidc:refresh:*:done").await;
        assert_eq!(done.len(), round, "{done:?}");
        for key in &done {
            let value = redis.command(&format!("GET {key}")).await;
            assert!(value.len() > 100, "a sealed session: {value}");
            assert!(
                !value.contains(&token) && !value.contains("alice"),
                "{value}"
            );
        }
        assert!(keys(&redis, "tower-oidc:refresh:*:lock").await.is_empty());
        (calls, before, cookie) = (fleet.token_requests(), token, next);
    }
}

#[tokio::test]
async fn without_redis_refresh_is_single_flight_per_replica_and_coordinated_again_after() {
    let mut redis = RedisServer::start().await;
    let clock = TestClock::frozen();
    let fleet = Fleet::start_with(
        &redis,
        2,
        Setup {
            clock: Some(clock.clone()),
            coordinated: true,
            access_ttl: Some(SHORT),
            server_side: false,
        },
    )
    .await;
    let (first, first_sid) = fleet.log_in(0).await;
    let (second, _) = fleet.log_in(1).await;
    let (revoked, revoked_sid) = fleet.log_in(0).await;
    assert_eq!(
        fleet
            .backchannel(0, &fleet.logout_token(&revoked_sid))
            .await,
        StatusCode::OK
    );
    fleet
        .refused_within_a_second(1, &revoked, "a revocation before the outage")
        .await;

    redis.stop().await;
    fleet.all_connected(false).await;
    clock.advance(Duration::from_secs(3));
    // Each session on its own replica: one refresh per session, every request served.
    let calls = fleet.token_requests();
    let mut refreshed = Vec::new();
    for (replica, cookie) in [(0, &first), (1, &second)] {
        let answers =
            futures_util::future::join_all((0..20).map(|_| fleet.token(replica, cookie))).await;
        let mut next = None;
        for (status, body, set) in answers {
            assert_eq!(status, StatusCode::OK, "replica {replica}: {body}");
            assert!(set.is_some(), "replica {replica}: refreshed");
            next = set;
        }
        refreshed.push(next.unwrap_or_default());
    }
    assert_eq!(
        fleet.token_requests(),
        calls + 2,
        "one refresh per session, each single flight on its replica"
    );
    for replica in 0..2 {
        assert_eq!(
            fleet.whoami(replica, &revoked).await,
            StatusCode::UNAUTHORIZED,
            "a known revocation during the outage, replica {replica}"
        );
    }

    redis.restart().await;
    fleet.all_connected(true).await;
    // Coordinated again: the next refresh of the first session, over both replicas, is one
    // call.
    clock.advance(Duration::from_secs(3));
    let calls = fleet.token_requests();
    let (_, again) = fleet.refresh_together(20, &refreshed[0]).await;
    assert_eq!(
        fleet.token_requests(),
        calls + 1,
        "one call for the fleet again"
    );
    // And revocations propagate again.
    assert_eq!(
        fleet.backchannel(1, &fleet.logout_token(&first_sid)).await,
        StatusCode::OK
    );
    fleet
        .refused_within_a_second(0, &again, "a revocation after the outage")
        .await;
}

/// `GET /auth/logout` on replica `index` with `cookie`, without following the redirect.
async fn logout_on(fleet: &Fleet, index: usize, cookie: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(fleet.app(index).url("/auth/logout"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("logout")
}

#[tokio::test]
async fn server_side_sessions_travel_in_a_small_cookie_across_replicas_and_end_everywhere() {
    let redis = RedisServer::start().await;
    let clock = TestClock::frozen();
    let fleet = Fleet::start_with(
        &redis,
        3,
        Setup {
            clock: Some(clock.clone()),
            coordinated: true,
            access_ttl: Some(SHORT),
            server_side: true,
        },
    )
    .await;
    let (cookie, _) = fleet.log_in(0).await;
    assert!(cookie.len() < 200, "{} bytes: {cookie}", cookie.len());
    let (status, token, _) = fleet.token(2, &cookie).await;
    assert_eq!(status, StatusCode::OK, "another replica: {token}");
    let me = fleet.app(1).api_get_with_cookie("/me", &cookie).await;
    assert_eq!(me.status(), StatusCode::OK);
    let claims: serde_json::Value =
        serde_json::from_str(&me.text().await.expect("body")).expect("claims");
    assert_eq!(claims["sub"], "alice", "the same identity: {claims}");
    // The session is in Redis, sealed.
    let stored = keys(&redis, "tower-oidc:session:*").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let value = redis.command(&format!("GET {}", stored[0])).await;
    assert!(
        !value.contains(&token) && !value.contains("alice"),
        "{value}"
    );

    // A refresh updates the stored session: the very same cookie, on another replica, gets
    // the new access token without another refresh.
    clock.advance(Duration::from_secs(3));
    let calls = fleet.token_requests();
    let (status, refreshed, _) = fleet.token(1, &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(refreshed, token);
    assert_eq!(fleet.token_requests(), calls + 1);
    let (status, seen, _) = fleet.token(2, &cookie).await;
    assert_eq!((status, seen), (StatusCode::OK, refreshed));
    assert_eq!(fleet.token_requests(), calls + 1, "no second refresh");

    // Logout on one replica ends the session on every replica at once.
    let copy = cookie.clone();
    let res = logout_on(&fleet, 1, &cookie).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(support::app::clears_session(&res));
    for replica in 0..3 {
        assert_eq!(
            fleet.whoami(replica, &copy).await,
            StatusCode::UNAUTHORIZED,
            "replica {replica}, no propagation delay"
        );
    }
    assert!(keys(&redis, "tower-oidc:session:*").await.is_empty());

    // Expiry is the session's own, by the layer's clock, whatever Redis still holds.
    let (cookie, _) = fleet.log_in(2).await;
    assert_eq!(fleet.whoami(0, &cookie).await, StatusCode::OK);
    clock.advance(Duration::from_secs(8 * 3600 + 1));
    for replica in 0..3 {
        assert_eq!(
            fleet.whoami(replica, &cookie).await,
            StatusCode::UNAUTHORIZED,
            "expired, replica {replica}"
        );
    }
}

#[tokio::test]
async fn server_side_sessions_answer_503_with_retry_after_while_redis_is_down() {
    let mut redis = RedisServer::start().await;
    let fleet = Fleet::start_with(
        &redis,
        2,
        Setup {
            server_side: true,
            ..Setup::default()
        },
    )
    .await;
    let (cookie, _) = fleet.log_in(0).await;
    assert_eq!(fleet.whoami(1, &cookie).await, StatusCode::OK);

    redis.stop().await;
    for replica in 0..2 {
        let res = fleet
            .app(replica)
            .api_get_with_cookie("/whoami", &cookie)
            .await;
        assert_eq!(
            res.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "replica {replica}"
        );
        assert_eq!(res.headers()["retry-after"], "1");
        assert!(!support::app::clears_session(&res), "never a silent logout");
        // A navigation too: no redirect to a login.
        let res = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(fleet.app(replica).url("/me"))
            .header("cookie", &cookie)
            .header("accept", "text/html")
            .header("sec-fetch-mode", "navigate")
            .send()
            .await
            .expect("navigation");
        assert_eq!(
            res.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "replica {replica}"
        );
        let res = logout_on(&fleet, replica, &cookie).await;
        assert_eq!(
            res.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "logout waits for Redis"
        );
        assert!(!support::app::clears_session(&res));
    }
    // Requests without a session are not concerned.
    let res = fleet.app(0).api_get_with_cookie("/", "").await;
    assert_eq!(res.status(), StatusCode::OK);
    // A login cannot keep its session: 503 at the callback, to be tried again.
    let landing = Browser::new().follow(&fleet.app(1).url("/me")).await;
    assert_eq!(
        landing.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        landing.body
    );
    assert_eq!(landing.headers["retry-after"], "1");
    assert!(
        landing.url.path().ends_with("/auth/callback"),
        "{}",
        landing.url
    );

    // Back (empty: this Redis keeps nothing on disk): that session is gone, a login works.
    redis.restart().await;
    wait::until("Redis serves sessions again", wait::PATIENCE, || async {
        match fleet.whoami(0, &cookie).await {
            StatusCode::UNAUTHORIZED => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let (again, _) = fleet.log_in(1).await;
    assert_eq!(fleet.whoami(0, &again).await, StatusCode::OK);
}

#[tokio::test]
async fn server_side_session_cookies_and_stored_sessions_are_sealed_and_bound_to_their_id() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start_with(
        &redis,
        2,
        Setup {
            server_side: true,
            ..Setup::default()
        },
    )
    .await;
    let (first, _) = fleet.log_in(0).await;
    let first_key = keys(&redis, "tower-oidc:session:*").await;
    let (second, _) = fleet.log_in(0).await;
    let second_key: Vec<String> = keys(&redis, "tower-oidc:session:*")
        .await
        .into_iter()
        .filter(|key| !first_key.contains(key))
        .collect();
    assert_eq!((first_key.len(), second_key.len()), (1, 1));

    // A tampered id cookie opens nothing.
    let (name, value) = first.split_once('=').expect("a cookie");
    let mut bytes = value.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{name}={}", String::from_utf8(bytes).expect("ascii"));
    assert_eq!(fleet.whoami(1, &tampered).await, StatusCode::UNAUTHORIZED);

    // A stored session moved under another session's key does not open there.
    let answer = redis.command(&format!("GET {}", first_key[0])).await;
    let stored = answer.lines().nth(1).expect("a value");
    assert!(redis
        .command(&format!("SET {} {stored}", second_key[0]))
        .await
        .starts_with("+OK"));
    assert_eq!(fleet.whoami(1, &second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(fleet.whoami(1, &first).await, StatusCode::OK);
}

/// The real thing: `oidc-provider` rotates refresh tokens and revokes the whole grant when a
/// rotated-out one comes back, so two refreshes of one session would log its user out.
#[tokio::test]
async fn oidc_provider_with_rotation_sees_one_refresh_per_session_from_three_replicas() {
    use support::app::{bind_loopback, start_app_on};
    use support::oidc_provider::{login_alice, ClientConfig, NodeProvider, ProviderOptions};

    const CLIENT: (&str, &str) = ("rp-fleet", "rp-fleet-secret");
    const ACCESS_TTL: Duration = Duration::from_secs(600);
    let redis = RedisServer::start().await;
    let mut listeners = Vec::new();
    let mut client = ClientConfig::confidential(CLIENT.0, CLIENT.1);
    for _ in 0..3 {
        let listener = bind_loopback().await;
        let addr = listener.local_addr().expect("address");
        client = client.redirect_uri(&format!("http://{addr}/auth/callback"));
        listeners.push(listener);
    }
    let provider = NodeProvider::start(
        ProviderOptions::new()
            .access_token_ttl(ACCESS_TTL.as_secs())
            .rotate_refresh_tokens(true)
            .client(client),
    )
    .await;
    let clock = TestClock::frozen();
    let key = SessionKey::generate();
    let mut apps = Vec::new();
    for listener in listeners {
        let store = RedisRevocationStore::connect(&redis.url())
            .await
            .expect("connect to Redis");
        let (key, clock) = (key.clone(), clock.clone());
        let app = start_app_on(listener, provider.issuer(), CLIENT.0, |b| {
            b.client_secret(CLIENT.1)
                .scopes(["openid", "profile", "email", "offline_access"])
                .refresh_margin(Duration::ZERO)
                .clock(clock.closure())
                .session_key(key)
                .refresh_coordinator(store.refresh_coordinator())
                .revocation_store(store)
        })
        .await
        .unwrap_or_else(|e| panic!("replica starts: {e}"));
        apps.push(app);
    }
    let browser = Browser::new();
    login_alice(
        &browser.client,
        &provider,
        &apps[0].url("/auth/login?return_to=/me"),
    )
    .await;
    let mut cookie = browser.session_cookie(&apps[0]);
    let mut before = String::new();
    for round in 1..=2 {
        clock.advance(ACCESS_TTL + Duration::from_secs(1));
        let answers = futures_util::future::join_all((0..30).map(|i| {
            let app = &apps[i % 3];
            let cookie = cookie.clone();
            async move {
                let res = app.api_get_with_cookie("/token", &cookie).await;
                let status = res.status();
                let set = new_session_cookie(&res);
                (status, res.text().await.expect("body"), set)
            }
        }))
        .await;
        let mut tokens = std::collections::BTreeSet::new();
        for (i, (status, token, set)) in answers.into_iter().enumerate() {
            assert_eq!(
                status,
                StatusCode::OK,
                "round {round}, request {i}: {token}\n{}",
                provider.logs()
            );
            tokens.insert(token);
            if let Some(set) = set {
                cookie = set;
            }
        }
        assert_eq!(tokens.len(), 1, "round {round}: one refresh: {tokens:?}");
        let token = tokens.into_iter().next().unwrap_or_default();
        assert_ne!(token, before, "round {round}: a new access token");
        before = token;
    }
}

#[tokio::test]
async fn a_refresh_refused_on_one_replica_is_not_tried_again_by_the_others() {
    let redis = RedisServer::start().await;
    let clock = TestClock::frozen();
    let fleet = Fleet::start_with(
        &redis,
        3,
        Setup {
            clock: Some(clock.clone()),
            coordinated: true,
            access_ttl: Some(SHORT),
            server_side: false,
        },
    )
    .await;
    let (cookie, _) = fleet.log_in(0).await;
    fleet
        .dev
        .set_fault(tower_oidc::dev::Fault::TokenError("invalid_grant".into()));
    clock.advance(Duration::from_secs(3));
    let calls = fleet.token_requests();
    let answers =
        futures_util::future::join_all((0..30).map(|i| fleet.token(i % 3, &cookie))).await;
    for (i, (status, body, _)) in answers.into_iter().enumerate() {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "request {i}: {body}");
    }
    assert_eq!(
        fleet.token_requests(),
        calls + 1,
        "the refusal was shared, not asked for again"
    );
}

/// Log lines written while a test runs (for the "one warning per outage" rule).
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn count(&self, needle: &str) -> usize {
        let logs = self.0.lock().map(|l| l.clone()).unwrap_or_default();
        String::from_utf8_lossy(&logs).matches(needle).count()
    }
}

/// The test's runtime has one thread (`#[tokio::test]`), so every task of the replica logs
/// to this test's subscriber.
#[tokio::test]
async fn a_redis_outage_is_one_warning_not_one_per_refresh() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut redis = RedisServer::start().await;
    let clock = TestClock::frozen();
    let fleet = Fleet::start_with(
        &redis,
        1,
        Setup {
            clock: Some(clock.clone()),
            coordinated: true,
            access_ttl: Some(SHORT),
            server_side: false,
        },
    )
    .await;
    let mut cookies = Vec::new();
    for _ in 0..5 {
        cookies.push(fleet.log_in(0).await.0);
    }
    redis.stop().await;
    fleet.all_connected(false).await;
    clock.advance(Duration::from_secs(3));
    let calls = fleet.token_requests();
    for cookie in &cookies {
        let (status, body, set) = fleet.token(0, cookie).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(set.is_some(), "refreshed on this replica alone");
    }
    assert_eq!(fleet.token_requests(), calls + 5);
    assert_eq!(
        logs.count("refresh coordination"),
        1,
        "one warning for the outage: {}",
        String::from_utf8_lossy(&logs.0.lock().map(|l| l.clone()).unwrap_or_default())
    );
}

#[tokio::test]
async fn a_refused_refresh_deletes_the_server_side_session() {
    let redis = RedisServer::start().await;
    let clock = TestClock::frozen();
    let fleet = Fleet::start_with(
        &redis,
        2,
        Setup {
            clock: Some(clock.clone()),
            coordinated: true,
            access_ttl: Some(SHORT),
            server_side: true,
        },
    )
    .await;
    let (cookie, _) = fleet.log_in(0).await;
    assert_eq!(keys(&redis, "tower-oidc:session:*").await.len(), 1);
    fleet
        .dev
        .set_fault(tower_oidc::dev::Fault::TokenError("invalid_grant".into()));
    clock.advance(Duration::from_secs(3));
    let res = fleet.app(1).api_get_with_cookie("/whoami", &cookie).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(support::app::clears_session(&res));
    assert!(keys(&redis, "tower-oidc:session:*").await.is_empty());
    assert_eq!(fleet.whoami(0, &cookie).await, StatusCode::UNAUTHORIZED);
}

/// The coordinator's contract against Redis itself: one leader per key, the others wait and
/// get its result or refusal; a wait is bounded; a lease that is not the lock's releases
/// nothing; Redis gone: each replica on its own.
#[tokio::test]
async fn redis_refresh_coordinator_leads_once_shares_the_outcome_and_bounds_the_wait() {
    use tower_oidc::{RefreshCoordinator, RefreshOutcome, RefreshTurn};

    let mut redis = RedisServer::start().await;
    let store = |ttl: Duration| {
        let url = redis.url();
        async move {
            RedisRevocationStore::builder(url)
                .timeout(Duration::from_secs(1))
                .connect()
                .await
                .expect("connect")
                .refresh_coordinator()
                .lock_ttl(ttl)
        }
    };
    let (a, b) = (
        store(Duration::from_secs(30)).await,
        store(Duration::from_millis(200)).await,
    );
    let keep = Duration::from_secs(30);

    let RefreshTurn::Lead(lease) = a.begin("k1").await else {
        panic!("the first replica leads");
    };
    // Another replica waits, bounded by its lock lifetime, while the lock is held.
    assert_eq!(b.begin("k1").await, RefreshTurn::Busy);
    // A lease that is not the lock's releases nothing.
    b.finish("k1", "not-the-lease", RefreshOutcome::Failed, keep)
        .await;
    assert_eq!(b.begin("k1").await, RefreshTurn::Busy);
    // The leader's result reaches the others (and a later one) as it was given.
    a.finish(
        "k1",
        &lease,
        RefreshOutcome::Refreshed("sealed-value"),
        keep,
    )
    .await;
    assert_eq!(
        b.begin("k1").await,
        RefreshTurn::Done("sealed-value".into())
    );
    assert_eq!(
        a.begin("k1").await,
        RefreshTurn::Done("sealed-value".into())
    );

    // A refusal is shared; a passing failure is not, and the next replica leads.
    let RefreshTurn::Lead(lease) = a.begin("k2").await else {
        panic!("leads k2");
    };
    a.finish("k2", &lease, RefreshOutcome::Refused, keep).await;
    assert_eq!(b.begin("k2").await, RefreshTurn::Refused);
    let RefreshTurn::Lead(lease) = a.begin("k3").await else {
        panic!("leads k3");
    };
    a.finish("k3", &lease, RefreshOutcome::Failed, keep).await;
    assert!(matches!(b.begin("k3").await, RefreshTurn::Lead(_)));

    // Redis gone: every replica refreshes on its own.
    redis.stop().await;
    assert_eq!(a.begin("k4").await, RefreshTurn::Unavailable);
    assert_eq!(b.begin("k4").await, RefreshTurn::Unavailable);
}
