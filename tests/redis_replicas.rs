//! Several app replicas sharing revocations through a real `redis-server` (installed by the
//! test support when missing), behind one dev provider.

mod support;

use support::redis::RedisServer;

#[tokio::test]
async fn redis_server_starts_stops_and_restarts_on_the_same_port() {
    let mut server = RedisServer::start().await;
    server.ping().await.expect("ready after start");
    let url = server.url();
    server.stop().await;
    assert!(server.ping().await.is_err(), "stopped");
    server.restart().await;
    server.ping().await.expect("ready after restart");
    assert_eq!(server.url(), url, "same port");
}
