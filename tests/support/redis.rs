//! A real `redis-server` for the tests of the Redis-backed stores.
//!
//! [`ensure_redis_server`] installs Debian's `redis-server` when it is missing (as root;
//! otherwise it panics with the command), the same way the browser tests install Chromium.
//! [`RedisServer::start`] runs it on a free loopback port without persistence and waits until
//! it answers `PING`; [`RedisServer::stop`] and [`RedisServer::restart`] make an outage on the
//! same port; the process is killed on drop.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

use super::browser::target_dir;
use super::wait;

/// The server binary of Debian's `redis-server` package.
pub(crate) const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// What installs it.
pub(crate) const INSTALL_COMMAND: &str =
    "apt-get update && apt-get install -y --no-install-recommends redis-server";
/// How long a test binary waits for another one's installation.
const INSTALL_WAIT: Duration = Duration::from_secs(10 * 60);

/// Makes sure [`REDIS_SERVER`] exists, installing Debian's package when running as root.
/// Concurrent test binaries take turns through a lock file in the target directory. Panics
/// with [`INSTALL_COMMAND`] when it is missing and cannot be installed; never skips. The
/// outcome is cached for the process.
pub(crate) fn ensure_redis_server() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(message) = CHECKED.get_or_init(check_or_install) {
        panic!("{message}");
    }
}

fn installed() -> bool {
    Path::new(REDIS_SERVER).is_file()
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn check_or_install() -> Result<(), String> {
    if installed() {
        return Ok(());
    }
    if effective_uid() != Some(0) {
        return Err(format!(
            "the Redis tests need Debian's redis-server ({REDIS_SERVER}), which is missing, and \
             only root can install it here; run as root: `{INSTALL_COMMAND}`"
        ));
    }
    let dir = target_dir();
    std::fs::create_dir_all(&dir).map_err(|err| format!("create {}: {err}", dir.display()))?;
    let lock = dir.join("redis-install.lock");
    let deadline = Instant::now() + INSTALL_WAIT;
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(mut file) => {
                let _ = write!(file, "{}", std::process::id());
                drop(file);
                // Another binary may have finished while this one waited.
                let outcome = if installed() { Ok(()) } else { install() };
                let _ = std::fs::remove_file(&lock);
                return outcome;
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&lock).unwrap_or_default();
                let holder_alive = holder
                    .trim()
                    .parse::<u32>()
                    .map(|pid| Path::new(&format!("/proc/{pid}")).exists())
                    // Written right after creation: an empty file is a fresh lock.
                    .unwrap_or(true);
                if !holder_alive {
                    eprintln!(
                        "[redis] removing the stale install lock {} of process {}",
                        lock.display(),
                        holder.trim()
                    );
                    let _ = std::fs::remove_file(&lock);
                    continue;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "waited {} s for another test binary to install redis-server (lock {} \
                         held by process {}); install it yourself: `{INSTALL_COMMAND}`",
                        INSTALL_WAIT.as_secs(),
                        lock.display(),
                        holder.trim()
                    ));
                }
                // Another process's progress is not observable otherwise: poll the lock.
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(err) => return Err(format!("create the lock file {}: {err}", lock.display())),
        }
    }
}

fn install() -> Result<(), String> {
    let started = Instant::now();
    eprintln!("[redis] redis-server is missing; running `{INSTALL_COMMAND}`");
    let run = |args: &[&str]| -> Result<(), String> {
        let output = std::process::Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|err| {
                format!("could not run `apt-get` ({err}); install Redis with `{INSTALL_COMMAND}`")
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "`apt-get {}` failed ({}); the Redis tests need `{INSTALL_COMMAND}` to succeed (a \
             Debian package mirror must be reachable).\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            output.status,
            tail(&String::from_utf8_lossy(&output.stdout), 3000),
            tail(&String::from_utf8_lossy(&output.stderr), 3000),
        ))
    };
    run(&["update"])?;
    run(&[
        "install",
        "-y",
        "--no-install-recommends",
        // Wait for a dpkg lock held by someone else instead of failing at once.
        "-o",
        "DPkg::Lock::Timeout=600",
        "redis-server",
    ])?;
    if !installed() {
        return Err(format!(
            "`{INSTALL_COMMAND}` succeeded but {REDIS_SERVER} is still missing"
        ));
    }
    eprintln!(
        "[redis] installed redis-server in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
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
