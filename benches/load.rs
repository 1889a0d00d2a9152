//! Loopback load test of `OidcLayer` next to the same app without it (DESIGN.md §7),
//! through real sockets, hyper and `axum::serve`.
//!
//! Setup logs in for real against the in-process dev provider (the ~2.6 KB session cookie
//! the callback sets) and gets a JWT access token from its token endpoint; see
//! `support/login.rs`. Then each variant of the hello-world app is served alone, on
//! `127.0.0.1:0`, by a current-thread Tokio runtime on a thread of its own, and driven by a
//! load generator on another current-thread runtime: [`CONNECTIONS`] keep-alive HTTP/1.1
//! connections, each writing one request and reading the whole response (by
//! `Content-Length`) before the next, no pipelining. The variants take turns for [`ROUNDS`]
//! rounds (so that whatever else the machine does weighs on all of them alike); in each,
//! [`WARM_UP`] of load is discarded, then [`MEASURE`] is counted, and the rounds are added up.
//! The CPU model and its crypto extensions are printed next to the table. When the process may use two CPUs and `taskset` exists, the server
//! thread and the load thread are pinned to different CPUs (`taskset -p` on their thread
//! ids: the crate forbids `unsafe`, so no `sched_setaffinity` call); otherwise they are not
//! pinned and the run says so.
//!
//! | variant | router | request |
//! |---|---|---|
//! | `bare` | no layer | `GET /` |
//! | `bare+cookie` | no layer | `GET /` with the session `Cookie` header |
//! | `bare+bearer` | no layer | `GET /` with the `Authorization: Bearer` header |
//! | `layer+session` | layer | `GET /` with the session cookie: 200 `hello alice` |
//! | `layer+session-nocache` | layer with `session_cache(0)` | the same: the cookie is decoded, decrypted and parsed on every request |
//! | `layer+session-redis` | layer with a `RedisRevocationStore` (a `redis-server` the bench starts on a free loopback port, holding 1 000 revocations of other sessions) | the same session cookie: its revocation is looked up in the replica's local copy, never in Redis |
//! | `layer+bearer` | layer | `GET /` with the access token: 200 `hello alice` |
//! | `layer+redirect` | layer, `require_login(true)` | navigation without cookie: 302 |
//!
//! Every response is checked against the status its variant expects; any other status, or a
//! broken connection, is counted as an error. The table gives requests per second, p50 and
//! p99 latency and two throughput ratios: against the baseline the issue asks for (`bare+cookie`
//! for the session, `bare` for the others) and against the bare app receiving the same
//! request headers. It also gives the server thread's CPU time per counted request (from
//! `/proc/self/task/<tid>/stat`, clock-tick resolution over the measured seconds; on a busy
//! machine this is steadier than throughput, which also depends on what else gets the CPU)
//! and how much of it the layer adds over the baseline, and the size of one response.
//!
//! ```sh
//! cargo bench --bench load
//! ```
//!
//! Without `--bench` (`cargo test --benches`) every phase runs for a fraction of a second.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/login.rs"]
mod login;

use login::{Login, SESSION_COOKIE};
use tower_oidc::{OidcLayer, RedisRevocationStore, Revocation, RevocationStore};

/// Concurrent keep-alive connections per variant.
const CONNECTIONS: usize = 32;
/// Rounds: each variant is measured once per round, in turn, so that a change in what else
/// the machine is doing affects every variant alike.
const ROUNDS: usize = 5;
/// Load before counting starts, in each round.
const WARM_UP: Duration = Duration::from_millis(300);
/// Counted load per variant and round.
const MEASURE: Duration = Duration::from_secs(1);
/// Smoke-run durations (`cargo test --benches`).
const SMOKE_WARM_UP: Duration = Duration::from_millis(50);
const SMOKE_MEASURE: Duration = Duration::from_millis(200);
/// Longest wait for one response before the connection counts as broken.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound on requests per connection in one variant, whatever the clock says.
const MAX_REQUESTS_PER_CONNECTION: u64 = 10_000_000;
/// Latency samples kept per connection (later ones are counted but not sampled).
const MAX_SAMPLES_PER_CONNECTION: usize = 1_000_000;
/// Largest response the client accepts (headers and body).
const MAX_RESPONSE: usize = 16 * 1024;
/// Longest time a server may take to stop after its load ends.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// One served variant.
struct Variant {
    name: &'static str,
    router: Router,
    /// Header lines (each ending in CRLF) besides `Host`.
    headers: String,
    /// Status every response must have.
    status: u16,
    /// Body of the check request, when the response is 200.
    body: &'static str,
    /// Baseline the issue asks for.
    baseline: Option<&'static str>,
    /// Bare variant receiving the same request headers.
    same_headers: Option<&'static str>,
}

/// What one variant measured in one round.
struct Slice {
    requests: u64,
    errors: u64,
    /// Latencies in nanoseconds.
    samples: Vec<u32>,
    /// Clock ticks of the server thread while counting, when they could be read.
    ticks: Option<u64>,
    response_bytes: usize,
}

/// What one variant measured, over every round.
struct Outcome {
    name: &'static str,
    requests: u64,
    errors: u64,
    rps: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time of the server thread per counted request, when it could be read.
    server_cpu: Option<Duration>,
    /// Size of the checked response (head and body).
    response_bytes: usize,
}

/// Counters of one connection.
#[derive(Default)]
struct ConnStats {
    requests: u64,
    errors: u64,
    samples: Vec<u32>,
}

/// A server command: serve `router` on a fresh loopback port until `stop`.
struct Serve {
    router: Router,
    ready: std::sync::mpsc::Sender<SocketAddr>,
    stop: tokio::sync::oneshot::Receiver<()>,
}

/// CPUs this process may run on, from `/proc/self/status` (`Cpus_allowed_list`).
fn allowed_cpus() -> Vec<usize> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Vec::new();
    };
    let Some(list) = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
    else {
        return Vec::new();
    };
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.parse::<usize>(), hi.parse::<usize>()) {
            cpus.extend((lo..=hi).take(1024));
        }
    }
    cpus
}

/// The calling thread's id, from `/proc/thread-self`.
fn thread_id() -> Option<String> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str().map(str::to_owned)
}

/// User plus system CPU time of thread `tid` of this process, in clock ticks.
fn thread_cpu_ticks(tid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses): state is field 3, utime 14,
    // stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`); 100 when it cannot be asked.
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse().ok())
        .filter(|hz| *hz > 0)
        .unwrap_or(100)
}

/// Pins the calling thread to `cpu` with `taskset -p` on its thread id.
fn pin_current_thread(cpu: usize) -> Result<(), String> {
    let tid = thread_id().ok_or("no thread id")?;
    let status = Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string(), &tid])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset -p -c {cpu} {tid}: {status}"))
    }
}

/// The server thread: one variant at a time, as commands arrive.
fn server_thread(
    cpu: Option<usize>,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<Serve>,
    pinned: std::sync::mpsc::Sender<(Option<String>, Result<(), String>)>,
) {
    let pin = cpu.map_or(Err("not pinned".into()), pin_current_thread);
    let _ = pinned.send((thread_id(), pin));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("server runtime");
    rt.block_on(async move {
        while let Some(Serve {
            router,
            ready,
            stop,
        }) = commands.recv().await
        {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a loopback port");
            let _ = ready.send(listener.local_addr().expect("local address"));
            let served = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stop.await;
            });
            // Bounded: the load lasts WARM_UP + MEASURE; the rest is shutdown slack.
            let limit = WARM_UP + MEASURE + REQUEST_TIMEOUT + SHUTDOWN_TIMEOUT;
            match tokio::time::timeout(limit, served).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("server error: {e}"),
                Err(_) => eprintln!("server did not stop within {limit:?}"),
            }
        }
    });
}

/// Position just past the header block of `buf`, if complete.
fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Status code and `Content-Length` of a header block.
fn parse_head(head: &[u8]) -> Option<(u16, usize)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())?;
    Some((status, length))
}

/// Writes `request` and reads one whole response into `buf`; its status and body range.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut [u8; MAX_RESPONSE],
) -> std::io::Result<(u16, std::ops::Range<usize>)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    stream.write_all(request).await?;
    let mut filled = 0;
    // Each read adds at least one byte, so MAX_RESPONSE reads always suffice.
    for _ in 0..MAX_RESPONSE {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(bad("connection closed mid-response"));
        }
        filled += n;
        let Some(end) = header_end(&buf[..filled]) else {
            if filled == MAX_RESPONSE {
                return Err(bad("response headers too large"));
            }
            continue;
        };
        let (status, length) = parse_head(&buf[..end]).ok_or_else(|| bad("bad response head"))?;
        if end + length > MAX_RESPONSE {
            return Err(bad("response too large"));
        }
        if filled >= end + length {
            if filled > end + length {
                return Err(bad("bytes after the response (nothing was pipelined)"));
            }
            return Ok((status, end..end + length));
        }
    }
    Err(bad("response never completed"))
}

/// One keep-alive connection, requests back to back until `end`.
async fn connection(
    addr: SocketAddr,
    request: Arc<[u8]>,
    status: u16,
    count_from: Instant,
    end: Instant,
) -> ConnStats {
    let mut stats = ConnStats::default();
    let mut stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(_) => {
            stats.errors += 1;
            return stats;
        }
    };
    let _ = stream.set_nodelay(true);
    let mut buf = Box::new([0u8; MAX_RESPONSE]);
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let start = Instant::now();
        if start >= end {
            break;
        }
        let answer =
            tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut stream, &request, &mut buf))
                .await
                .map_err(|_| ());
        let took = start.elapsed();
        let counted = start >= count_from;
        match answer {
            Ok(Ok((got, _))) => {
                if counted {
                    stats.requests += 1;
                    if got != status {
                        stats.errors += 1;
                    }
                    if stats.samples.len() < MAX_SAMPLES_PER_CONNECTION {
                        stats
                            .samples
                            .push(u32::try_from(took.as_nanos()).unwrap_or(u32::MAX));
                    }
                }
            }
            _ => {
                stats.errors += 1;
                break;
            }
        }
    }
    stats
}

/// The request bytes of `variant` for a server at `addr`.
fn request_bytes(variant: &Variant, addr: SocketAddr) -> Arc<[u8]> {
    format!("GET / HTTP/1.1\r\nhost: {addr}\r\n{}\r\n", variant.headers)
        .into_bytes()
        .into()
}

/// Serves `variant`, checks one response, loads it; the outcome.
async fn run(
    variant: &Variant,
    server: &tokio::sync::mpsc::UnboundedSender<Serve>,
    warm_up: Duration,
    measure: Duration,
    server_tid: Option<&str>,
) -> Slice {
    let (ready, addr) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    server
        .send(Serve {
            router: variant.router.clone(),
            ready,
            stop: stopped,
        })
        .unwrap_or_else(|_| panic!("the server thread is gone"));
    let addr = addr
        .recv_timeout(Duration::from_secs(10))
        .expect("the server starts");
    let request = request_bytes(variant, addr);

    // Check the answer once.
    let mut probe = TcpStream::connect(addr).await.expect("connect");
    let mut buf = Box::new([0u8; MAX_RESPONSE]);
    let (status, body) =
        tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut probe, &request, &mut buf))
            .await
            .expect("the check request is answered in time")
            .expect("the check request is answered");
    assert_eq!(status, variant.status, "{}: status", variant.name);
    if status == 200 {
        assert_eq!(
            &buf[body.clone()],
            variant.body.as_bytes(),
            "{}: body",
            variant.name
        );
    }
    drop(probe);
    let response_bytes = body.end;

    let begin = Instant::now();
    let count_from = begin + warm_up;
    let end = count_from + measure;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            tokio::spawn(connection(
                addr,
                request.clone(),
                variant.status,
                count_from,
                end,
            ))
        })
        .collect();
    let ticks_at_start = {
        let tid = server_tid.map(str::to_owned);
        tokio::spawn(async move {
            tokio::time::sleep_until(count_from.into()).await;
            tid.as_deref().and_then(thread_cpu_ticks)
        })
    };
    let mut requests = 0;
    let mut errors = 0;
    let mut samples = Vec::new();
    for task in tasks {
        let stats = task.await.expect("connection task");
        requests += stats.requests;
        errors += stats.errors;
        samples.extend_from_slice(&stats.samples);
    }
    let ticks_at_end = server_tid.and_then(thread_cpu_ticks);
    let _ = stop.send(());
    let ticks = match (ticks_at_start.await.ok().flatten(), ticks_at_end) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Slice {
        requests,
        errors,
        samples,
        ticks,
        response_bytes,
    }
}

/// The rounds of one variant, added up.
fn outcome(name: &'static str, slices: Vec<Slice>, measure: Duration, hz: u64) -> Outcome {
    let requests: u64 = slices.iter().map(|s| s.requests).sum();
    let errors = slices.iter().map(|s| s.errors).sum();
    let ticks: Option<u64> = slices.iter().map(|s| s.ticks).sum();
    let counted = measure.as_secs_f64() * slices.len() as f64;
    let response_bytes = slices.first().map_or(0, |s| s.response_bytes);
    let mut samples: Vec<u32> = slices.into_iter().flat_map(|s| s.samples).collect();
    samples.sort_unstable();
    let pct = |p: usize| {
        samples
            .get(samples.len() * p / 100)
            .map_or(Duration::ZERO, |ns| Duration::from_nanos(u64::from(*ns)))
    };
    Outcome {
        name,
        requests,
        errors,
        rps: requests as f64 / counted,
        p50: pct(50),
        p99: pct(99),
        server_cpu: ticks
            .filter(|_| requests > 0)
            .map(|t| Duration::from_secs_f64(t as f64 / hz as f64 / requests as f64)),
        response_bytes,
    }
}

fn variants(login: &Login, with_redis: &OidcLayer) -> Vec<Variant> {
    let bare = login::app();
    let layered = login::app().layer(login.layer.clone());
    let guarded = login::app().layer(login.guarded.clone());
    let uncached = login::app().layer(login.uncached.clone());
    let redis = login::app().layer(with_redis.clone());
    let cookie = format!("cookie: {SESSION_COOKIE}={}\r\n", login.sealed);
    let bearer = format!("authorization: Bearer {}\r\n", login.access_token);
    let v = |name, router: &Router, headers: &str, status, body, baseline, same_headers| Variant {
        name,
        router: router.clone(),
        headers: headers.to_owned(),
        status,
        body,
        baseline,
        same_headers,
    };
    vec![
        v("bare", &bare, "", 200, "hello stranger", None, None),
        v(
            "bare+cookie",
            &bare,
            &cookie,
            200,
            "hello stranger",
            Some("bare"),
            None,
        ),
        v(
            "bare+bearer",
            &bare,
            &bearer,
            200,
            "hello stranger",
            Some("bare"),
            None,
        ),
        v(
            "layer+session",
            &layered,
            &cookie,
            200,
            "hello alice",
            Some("bare+cookie"),
            Some("bare+cookie"),
        ),
        v(
            "layer+session-nocache",
            &uncached,
            &cookie,
            200,
            "hello alice",
            Some("bare+cookie"),
            Some("bare+cookie"),
        ),
        v(
            "layer+session-redis",
            &redis,
            &cookie,
            200,
            "hello alice",
            Some("layer+session"),
            Some("bare+cookie"),
        ),
        v(
            "layer+bearer",
            &layered,
            &bearer,
            200,
            "hello alice",
            Some("bare"),
            Some("bare+bearer"),
        ),
        v(
            "layer+redirect",
            &guarded,
            "accept: text/html\r\n",
            302,
            "",
            Some("bare"),
            Some("bare"),
        ),
    ]
}

fn table(variants: &[Variant], outcomes: &[Outcome]) -> String {
    let rps = |name: Option<&str>| {
        name.and_then(|n| outcomes.iter().find(|o| o.name == n))
            .map(|o| o.rps)
    };
    let ratio = |mine: f64, base: Option<f64>| match base {
        Some(base) if base > 0.0 => format!("{:.3}×", mine / base),
        _ => "–".to_owned(),
    };
    let cpu = |name: Option<&str>| {
        name.and_then(|n| outcomes.iter().find(|o| o.name == n))
            .and_then(|o| o.server_cpu)
    };
    let us = |d: Option<Duration>| {
        d.map_or("–".to_owned(), |d| {
            format!("{:.1}", d.as_secs_f64() * 1e6)
        })
    };
    let mut out = String::from(
        "| variant | req/s | p50 µs | p99 µs | baseline | ratio | vs bare, same headers | server CPU µs/req | added vs baseline µs | response bytes | requests | errors |\n\
         |---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (v, o) in variants.iter().zip(outcomes) {
        out.push_str(&format!(
            "| `{}` | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            o.name,
            o.rps,
            o.p50.as_secs_f64() * 1e6,
            o.p99.as_secs_f64() * 1e6,
            v.baseline.map_or("–".to_owned(), |b| format!("`{b}`")),
            ratio(o.rps, rps(v.baseline)),
            ratio(o.rps, rps(v.same_headers)),
            us(o.server_cpu),
            match (o.server_cpu, cpu(v.baseline)) {
                (Some(mine), Some(base)) =>
                    format!("{:+.1}", (mine.as_secs_f64() - base.as_secs_f64()) * 1e6),
                _ => "–".to_owned(),
            },
            o.response_bytes,
            o.requests,
            o.errors,
        ));
    }
    out
}

/// A `redis-server` on a free loopback port, without persistence, stopped when dropped.
struct RedisServer {
    child: std::process::Child,
    port: u16,
}

impl RedisServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "redis-server could not start ({e}): `cargo test` installs it, or \
                     `apt-get update && apt-get install -y redis-server`"
                )
            });
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The login's layer, with its revocations in Redis: 1 000 revocations of other sessions of
/// the same provider, so that a session's check is a real lookup in the local copy.
async fn redis_layer(login: &Login, url: &str) -> OidcLayer {
    let store = RedisRevocationStore::connect(url)
        .await
        .expect("connect to redis-server");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    for i in 0..1000 {
        store.revoke(
            Revocation {
                issuer: login.settings.issuer.clone(),
                sid: Some(format!("other-session-{i}")),
                sub: None,
                at: now,
            },
            now + 3600,
        );
    }
    let config = login
        .settings
        .builder()
        .revocation_store(store)
        .build()
        .expect("config");
    OidcLayer::discover(config).await.expect("discovery")
}

/// The CPU's model name and the instruction-set extensions the crypto depends on, from
/// `/proc/cpuinfo`.
fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let model = field("model name").unwrap_or_else(|| "unknown".into());
    let flags = field("flags").unwrap_or_default();
    let has: Vec<&str> = [
        "aes",
        "vaes",
        "pclmulqdq",
        "vpclmulqdq",
        "avx2",
        "avx512f",
        "sha_ni",
    ]
    .into_iter()
    .filter(|f| flags.split(' ').any(|x| x == *f))
    .collect();
    format!(
        "{model} ({} logical CPUs; {})",
        num_cpus(&info),
        has.join(", ")
    )
}

fn num_cpus(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
}

fn main() {
    let measured = login::measured();
    let (warm_up, measure) = if measured {
        (WARM_UP, MEASURE)
    } else {
        (SMOKE_WARM_UP, SMOKE_MEASURE)
    };

    let setup = login::setup_runtime();
    let login = setup.block_on(login::log_in());
    let redis_server = RedisServer::start();
    let with_redis = setup.block_on(redis_layer(&login, &redis_server.url()));
    // The layers keep the provider's keys; nothing reaches the provider while measuring (the
    // runtime stays, idle, for the Redis store's connection).
    let variants = variants(&login, &with_redis);

    let cpus = allowed_cpus();
    let have_taskset = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let (server_cpu, client_cpu) = match (cpus.as_slice(), have_taskset) {
        ([client, server, ..], true) => (Some(*server), Some(*client)),
        _ => (None, None),
    };

    let (commands, received) = tokio::sync::mpsc::unbounded_channel();
    let (pinned_tx, pinned_rx) = std::sync::mpsc::channel();
    let server = std::thread::Builder::new()
        .name("load-server".into())
        .spawn(move || server_thread(server_cpu, received, pinned_tx))
        .expect("server thread");
    let (server_tid, server_pin) = pinned_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| (None, Err("no answer".into())));
    let hz = clock_ticks_per_second();
    let client_pin = client_cpu.map_or(Err("not pinned".into()), pin_current_thread);
    let placement = match (&server_pin, &client_pin) {
        (Ok(()), Ok(())) => format!(
            "server thread pinned to CPU {}, load generator to CPU {}",
            server_cpu.unwrap_or_default(),
            client_cpu.unwrap_or_default()
        ),
        _ => format!(
            "NOT pinned (allowed CPUs {cpus:?}, taskset {}; server: {server_pin:?}, client: \
             {client_pin:?})",
            if have_taskset { "present" } else { "missing" }
        ),
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("load runtime");
    let began = Instant::now();
    let rounds = if measured { ROUNDS } else { 1 };
    let mut slices: Vec<Vec<Slice>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (v, slices) in variants.iter().zip(&mut slices) {
            let slice = rt.block_on(run(v, &commands, warm_up, measure, server_tid.as_deref()));
            eprintln!(
                "round {}/{rounds} {:<15} {:>9.0} req/s  errors {}",
                round + 1,
                v.name,
                slice.requests as f64 / measure.as_secs_f64(),
                slice.errors
            );
            slices.push(slice);
        }
    }
    let outcomes: Vec<Outcome> = variants
        .iter()
        .zip(slices)
        .map(|(v, slices)| outcome(v.name, slices, measure, hz))
        .collect();
    drop(commands);
    let _ = server.join();

    println!();
    println!("CPU: {}", cpu_model());
    println!(
        "Loopback load: {CONNECTIONS} keep-alive HTTP/1.1 connections per variant; {rounds} \
         rounds, each variant in turn, {warm_up:?} warm-up + {measure:?} measured each; \
         {placement}; {:.1} s in all.",
        began.elapsed().as_secs_f64()
    );
    println!(
        "Session Cookie header {} bytes (sealed value {}), Authorization header {} bytes.",
        format!("{SESSION_COOKIE}=").len() + login.sealed.len(),
        login.sealed.len(),
        "Bearer ".len() + login.access_token.len(),
    );
    println!();
    print!("{}", table(&variants, &outcomes));
    let failed: u64 = outcomes.iter().map(|o| o.errors).sum();
    assert_eq!(
        failed, 0,
        "some requests failed or answered the wrong status"
    );
}
