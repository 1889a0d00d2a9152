//! Installing a missing Debian package for the tests that need it (Chromium, Redis): as root,
//! with `apt-get`, one test binary at a time through a lock file in the target directory;
//! otherwise a loud failure naming the command. Never a silent skip.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::browser::target_dir;

/// A prerequisite that comes from Debian packages.
pub(crate) struct Prerequisite {
    /// Who needs it, for messages: "the Redis tests".
    pub(crate) needed_by: &'static str,
    /// Prefix of progress lines: "[redis]".
    pub(crate) tag: &'static str,
    /// The packages to install.
    pub(crate) packages: &'static [&'static str],
    /// Files whose presence means the packages are installed.
    pub(crate) binaries: &'static [&'static str],
    /// The command the messages name.
    pub(crate) install_command: &'static str,
    /// Name of the lock file in the target directory.
    pub(crate) lock_name: &'static str,
    /// How long to wait for another test binary's installation.
    pub(crate) wait: Duration,
}

impl Prerequisite {
    /// Whether every binary is there.
    pub(crate) fn installed(&self) -> bool {
        self.binaries.iter().all(|b| Path::new(b).is_file())
    }

    /// Makes sure the binaries exist, installing the packages when running as root.
    pub(crate) fn check_or_install(&self) -> Result<(), String> {
        if self.installed() {
            return Ok(());
        }
        let command = self.install_command;
        if effective_uid() != Some(0) {
            return Err(format!(
                "{} need Debian's {} ({}), which are missing, and only root can install them \
                 here; run as root: `{command}`",
                self.needed_by,
                self.packages.join(" and "),
                self.binaries.join(", "),
            ));
        }
        let dir = target_dir();
        std::fs::create_dir_all(&dir).map_err(|err| format!("create {}: {err}", dir.display()))?;
        let lock = dir.join(self.lock_name);
        let deadline = Instant::now() + self.wait;
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
                    let outcome = if self.installed() {
                        Ok(())
                    } else {
                        self.install()
                    };
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
                            "{} removing the stale install lock {} of process {}",
                            self.tag,
                            lock.display(),
                            holder.trim()
                        );
                        let _ = std::fs::remove_file(&lock);
                        continue;
                    }
                    if Instant::now() > deadline {
                        return Err(format!(
                            "waited {} s for another test binary to install {} (lock {} held \
                             by process {}); install it yourself: `{command}`",
                            self.wait.as_secs(),
                            self.packages.join(" and "),
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

    fn install(&self) -> Result<(), String> {
        let started = Instant::now();
        let command = self.install_command;
        eprintln!(
            "{} {} missing; running `{command}`",
            self.tag,
            self.packages.join(" and ")
        );
        let run = |args: &[&str]| -> Result<(), String> {
            let output = std::process::Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .output()
                .map_err(|err| {
                    format!("could not run `apt-get` ({err}); install with `{command}`")
                })?;
            if output.status.success() {
                return Ok(());
            }
            Err(format!(
                "`apt-get {}` failed ({}); {} need `{command}` to succeed (a Debian package \
                 mirror must be reachable).\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                output.status,
                self.needed_by,
                tail(&String::from_utf8_lossy(&output.stdout), 3000),
                tail(&String::from_utf8_lossy(&output.stderr), 3000),
            ))
        };
        run(&["update"])?;
        let mut install = vec![
            "install",
            "-y",
            "--no-install-recommends",
            // Wait for a dpkg lock held by someone else instead of failing at once.
            "-o",
            "DPkg::Lock::Timeout=600",
        ];
        install.extend_from_slice(self.packages);
        run(&install)?;
        if !self.installed() {
            return Err(format!(
                "`{command}` succeeded but {} is still missing",
                self.binaries.join(" or ")
            ));
        }
        eprintln!(
            "{} installed {} in {:.1} s",
            self.tag,
            self.packages.join(" and "),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The last `max` bytes of `text` (at a character boundary).
pub(crate) fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
