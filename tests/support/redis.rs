//! A real `redis-server` for the tests of the Redis-backed stores.
//!
//! [`ensure_redis_server`] installs Debian's `redis-server` when it is missing (as root;
//! otherwise it panics with the command), the same way the browser tests install Chromium.
//! [`RedisServer::start`] runs it on a free loopback port without persistence and waits until
//! it answers `PING`; [`RedisServer::stop`] and [`RedisServer::restart`] make an outage on the
//! same port; the process is killed on drop.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

use super::apt::{tail, Prerequisite};
use super::browser::target_dir;
use super::wait;

/// The server binary of Debian's `redis-server` package.
pub(crate) const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// What installs it.
pub(crate) const INSTALL_COMMAND: &str =
    "apt-get update && apt-get install -y --no-install-recommends redis-server";
/// How long a test binary waits for another one's installation.
const INSTALL_WAIT: Duration = Duration::from_secs(10 * 60);

/// Debian's Redis server, installed when missing.
const REDIS_PACKAGE: Prerequisite = Prerequisite {
    needed_by: "the Redis tests",
    tag: "[redis]",
    packages: &["redis-server"],
    binaries: &[REDIS_SERVER],
    install_command: INSTALL_COMMAND,
    lock_name: "redis-install.lock",
    wait: INSTALL_WAIT,
};

/// Makes sure [`REDIS_SERVER`] exists, installing Debian's package when running as root.
/// Concurrent test binaries take turns through a lock file in the target directory. Panics
/// with [`INSTALL_COMMAND`] when it is missing and cannot be installed; never skips. The
/// outcome is cached for the process.
pub(crate) fn ensure_redis_server() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(message) = CHECKED.get_or_init(|| REDIS_PACKAGE.check_or_install()) {
        panic!("{message}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("find a free loopback port")
}

/// A `redis-server` on a loopback port, without persistence; killed on drop.
pub(crate) struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Installs Redis when needed, starts it on a free port and waits until it answers `PING`;
    /// tries three ports before giving up.
    pub(crate) async fn start() -> RedisServer {
        ensure_redis_server();
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = target_dir()
                .join("test-artifacts")
                .join(format!("redis-{}-{port}", std::process::id()));
            let mut server = RedisServer {
                port,
                dir,
                child: None,
            };
            match server.spawn().await {
                Ok(()) => return server,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("redis-server did not start:\n{}", failures.join("\n---\n"));
    }

    /// `redis://127.0.0.1:<port>/`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether the server answers `PING` now.
    pub(crate) async fn ping(&self) -> Result<(), String> {
        ping(self.port).await
    }

    /// Sends one inline command (words without spaces, e.g. `ZCARD key`) and returns the
    /// raw answer, e.g. `":1\r\n"`.
    pub(crate) async fn command(&self, command: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap_or_else(|err| panic!("connect to redis-server: {err}"));
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .unwrap_or_else(|err| panic!("send {command:?}: {err}"));
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("no answer to {command:?}"))
            .unwrap_or_else(|err| panic!("read the answer to {command:?}: {err}"));
        String::from_utf8_lossy(&answer[..n]).into_owned()
    }

    /// Kills the server (an outage: clients see their connections drop) and waits for it to end.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port, empty (there is no persistence), and waits
    /// until it answers `PING`.
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        if let Err(failure) = self.spawn().await {
            panic!(
                "redis-server did not restart on port {}: {failure}",
                self.port
            );
        }
    }

    async fn spawn(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|err| format!("create {}: {err}", self.dir.display()))?;
        let log = self.dir.join("redis.log");
        let port = self.port.to_string();
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--daemonize", "no", "--logfile"])
            .arg(&log)
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("spawn {REDIS_SERVER}: {err} (install: `{INSTALL_COMMAND}`)"))?;
        self.child = Some(child);
        let port = self.port;
        let ready = tokio::time::timeout(
            wait::PATIENCE,
            // The inner deadline is longer: the outer one answers, with the log.
            wait::until(
                "redis-server to answer PING",
                wait::PATIENCE * 2,
                || async { ping(port).await },
            ),
        )
        .await;
        let exited = self
            .child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten());
        match (ready, exited) {
            (Ok(()), None) => Ok(()),
            (_, exited) => {
                self.stop().await;
                Err(format!(
                    "redis-server on port {port} not ready (exit: {exited:?}); log:\n{}",
                    tail(&std::fs::read_to_string(&log).unwrap_or_default(), 3000)
                ))
            }
        }
    }
}

/// One `PING` on a fresh connection.
async fn ping(port: u16) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|err| err.to_string())?;
    stream
        .write_all(b"PING\r\n")
        .await
        .map_err(|err| err.to_string())?;
    let mut answer = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .map_err(|_| "no answer to PING".to_owned())?
        .map_err(|err| err.to_string())?;
    let answer = String::from_utf8_lossy(&answer[..n]);
    if answer.starts_with("+PONG") {
        Ok(())
    } else {
        Err(format!("PING answered {answer:?}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
