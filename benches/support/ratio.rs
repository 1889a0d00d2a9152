//! Reads the medians that criterion wrote for `benches/session.rs` and prints them side by
//! side: each layer benchmark against its baseline, as added nanoseconds per request and as a
//! throughput ratio (baseline time ÷ layer time).

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every benchmark of `session.rs`, as `group/function`.
pub(crate) const BENCHES: &[&str] = &[
    "bare/no_cookie",
    "bare/same_cookie",
    "bare/noop_layer_same_cookie",
    "layer/session_2k",
    "layer/anonymous_public",
    "layer/login_redirect",
    "layer/tampered_cookie",
];

/// `(layer benchmark, its baseline)`: the baseline receives the same request bytes.
const COMPARISONS: &[(&str, &str)] = &[
    ("layer/session_2k", "bare/same_cookie"),
    ("layer/session_2k", "bare/noop_layer_same_cookie"),
    ("bare/noop_layer_same_cookie", "bare/same_cookie"),
    ("layer/tampered_cookie", "bare/same_cookie"),
    ("layer/anonymous_public", "bare/no_cookie"),
    ("layer/login_redirect", "bare/no_cookie"),
    ("bare/same_cookie", "bare/no_cookie"),
];

/// Server CPU per request of a hello-world axum handler behind hyper, from DESIGN.md §7;
/// used only for the extrapolated column.
const SERVER_HELLO_WORLD_NS: f64 = 7300.0;

/// Budget of DESIGN.md §7 for the 2 KB cookie session: added CPU per request.
const SESSION_BUDGET_NS: f64 = 1500.0;

/// A median and its confidence interval, in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Median {
    point: f64,
    lower: f64,
    upper: f64,
}

/// Whether this run measures and saves results: `cargo bench` passes `--bench`; `cargo
/// test` does not, and `--list`, `--test` and `--profile-time` save nothing.
pub(crate) fn measured() -> bool {
    let args: Vec<String> = env::args().collect();
    args.iter().any(|a| a == "--bench")
        && !args
            .iter()
            .any(|a| a == "--list" || a == "--test" || a == "--profile-time")
}

/// Where criterion keeps its results: the same search order criterion itself uses.
pub(crate) fn criterion_dir() -> PathBuf {
    if let Some(home) = env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    if let Some(target) = cargo_target_dir() {
        return target.join("criterion");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/criterion")
}

fn cargo_target_dir() -> Option<PathBuf> {
    let cargo = env::var_os("CARGO")?;
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    meta["target_directory"].as_str().map(PathBuf::from)
}

fn read_median(dir: &Path, bench: &str) -> Option<Median> {
    let path = dir.join(bench).join("new/estimates.json");
    let text = std::fs::read(path).ok()?;
    let est: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let median = &est["median"];
    Some(Median {
        point: median["point_estimate"].as_f64()?,
        lower: median["confidence_interval"]["lower_bound"].as_f64()?,
        upper: median["confidence_interval"]["upper_bound"].as_f64()?,
    })
}

/// The table, from the results under `dir`; benchmarks without results show as `-`.
pub(crate) fn report(dir: &Path) -> String {
    let medians: Vec<(&str, Option<Median>)> =
        BENCHES.iter().map(|b| (*b, read_median(dir, b))).collect();
    let find = |name: &str| {
        medians
            .iter()
            .find(|(b, _)| *b == name)
            .and_then(|(_, m)| *m)
    };
    let mut out = String::new();
    let _ = writeln!(out, "criterion medians under {}", dir.display());
    let _ = writeln!(
        out,
        "{:<24} {:>10} {:>23}",
        "benchmark", "median ns", "95% CI of median (ns)"
    );
    for (bench, m) in &medians {
        match m {
            Some(m) => {
                let ci = format!("[{:.0}, {:.0}]", m.lower, m.upper);
                let _ = writeln!(out, "{bench:<24} {:>10.1} {ci:>23}", m.point);
            }
            None => {
                let _ = writeln!(out, "{bench:<24} {:>10} {:>23}", "-", "-");
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<24} {:<18} {:>10} {:>12} {:>14}",
        "layer", "baseline", "added ns", "throughput", "server est."
    );
    for (layer, base) in COMPARISONS {
        let (Some(l), Some(b)) = (find(layer), find(base)) else {
            let _ = writeln!(out, "{layer:<24} {base:<18} {:>10}", "-");
            continue;
        };
        let added = l.point - b.point;
        let ratio = b.point / l.point;
        let server = SERVER_HELLO_WORLD_NS / (SERVER_HELLO_WORLD_NS + added.max(0.0));
        let _ = writeln!(
            out,
            "{layer:<24} {base:<18} {added:>10.1} {:>11.3}x {:>13.3}x",
            ratio, server
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "throughput = baseline median / layer median, both in-process (no hyper, no socket)."
    );
    let _ = writeln!(
        out,
        "server est. = {SERVER_HELLO_WORLD_NS:.0} / ({SERVER_HELLO_WORLD_NS:.0} + added): an \
         extrapolation to a served hello-world request (DESIGN.md §7), not a measurement."
    );
    if let (Some(l), Some(b)) = (find("layer/session_2k"), find("bare/same_cookie")) {
        let added = l.point - b.point;
        let verdict = if added <= SESSION_BUDGET_NS {
            "within"
        } else {
            "OVER"
        };
        let _ = writeln!(
            out,
            "session_2k adds {added:.0} ns per request: {verdict} the {SESSION_BUDGET_NS:.0} ns \
             budget of DESIGN.md §7."
        );
    }
    out
}
