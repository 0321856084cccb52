//! Cancellation: Ctrl-C and SIGTERM, and the guards that undo temporary things.
//!
//! `main` races the command against [`cancelled`]. When a signal wins, the command's
//! future is dropped, and every [`Guard`] it held is dropped with it: a guard owns one
//! temporary thing (a `.partial` file, a scratch database, a folder inside the
//! container, a process still running there) and undoes it on every exit path unless
//! the operation disarmed it on success. Synchronous undo (removing a file) runs in
//! `Drop`; asynchronous undo (an exec in the container) is queued, and `main` awaits
//! the queue with [`drain`] before the runtime shuts down. A second signal during that
//! drain leaves at once; what was not undone then is found and removed by the next run
//! (each domain names such leftovers in one line).
//!
//! Blocking work (hashing, fsync, tar) must run in `spawn_blocking` so the race in
//! `main` sees a signal at once.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

type Undo = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The signal that cancelled the run (0 = none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// How many signals arrived (the first cancels, the second cuts the drain short).
static FIRED: OnceLock<watch::Sender<u32>> = OnceLock::new();
static PENDING: Mutex<Vec<(String, Undo)>> = Mutex::new(Vec::new());

fn sender() -> &'static watch::Sender<u32> {
    FIRED.get_or_init(|| watch::channel(0).0)
}

/// Listen for SIGINT and SIGTERM (inside the runtime). The first one cancels the run.
pub fn install() {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, num) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
    ] {
        let Ok(mut s) = signal(kind) else { continue };
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                let _ = SIGNAL.compare_exchange(0, num, Ordering::SeqCst, Ordering::SeqCst);
                sender().send_modify(|n| *n += 1);
            }
        });
    }
}

/// True once a signal arrived.
pub fn is_cancelled() -> bool {
    *sender().borrow() > 0
}

/// Resolves when a signal arrives.
pub async fn cancelled() {
    let mut rx = sender().subscribe();
    let _ = rx.wait_for(|n| *n > 0).await;
}

/// The exit code for the signal that cancelled the run: 128 + its number, as shells
/// report it (130 for SIGINT, 143 for SIGTERM).
pub fn exit_code() -> u8 {
    match SIGNAL.load(Ordering::SeqCst) {
        libc::SIGTERM => 128 + libc::SIGTERM as u8,
        _ => 128 + libc::SIGINT as u8,
    }
}

/// The name of the signal that cancelled the run (`SIGINT` unless it was SIGTERM).
pub fn signal_name() -> &'static str {
    match SIGNAL.load(Ordering::SeqCst) {
        libc::SIGTERM => "SIGTERM",
        _ => "SIGINT",
    }
}

enum Action {
    Sync(Box<dyn FnOnce() + Send + 'static>),
    Async(Undo),
}

/// Owns one temporary thing and undoes it when dropped, unless disarmed.
#[must_use = "a guard undoes its thing when dropped; keep it until the operation succeeded"]
pub struct Guard {
    what: String,
    action: Option<Action>,
}

impl Guard {
    /// Removes `path` (a file, or a folder with its contents) unless disarmed.
    pub fn path(path: PathBuf) -> Guard {
        let what = format!("`{}`", path.display());
        Guard::sync(what, move || {
            if path.is_dir() {
                let _ = std::fs::remove_dir_all(&path);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        })
    }

    /// Runs `undo` on drop unless disarmed.
    pub fn sync(what: impl Into<String>, undo: impl FnOnce() + Send + 'static) -> Guard {
        Guard {
            what: what.into(),
            action: Some(Action::Sync(Box::new(undo))),
        }
    }

    /// Runs `undo` unless disarmed: awaited by [`Guard::undo`], or queued on drop for
    /// [`drain`] (an interrupted or failed operation).
    pub fn future(
        what: impl Into<String>,
        undo: impl Future<Output = ()> + Send + 'static,
    ) -> Guard {
        Guard {
            what: what.into(),
            action: Some(Action::Async(Box::pin(undo))),
        }
    }

    /// The thing now belongs to the user: nothing is undone.
    pub fn disarm(mut self) {
        self.action = None;
    }

    /// Undo now and wait for it (the failure path of an operation still running).
    pub async fn undo(mut self) {
        match self.action.take() {
            Some(Action::Sync(f)) => f(),
            Some(Action::Async(f)) => f.await,
            None => {}
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        match self.action.take() {
            Some(Action::Sync(f)) => f(),
            Some(Action::Async(f)) => {
                if let Ok(mut q) = PENDING.lock() {
                    q.push((std::mem::take(&mut self.what), f));
                }
            }
            None => {}
        }
    }
}

/// Await the undo of every guard dropped without being disarmed, at most `limit` in
/// all; a second signal stops waiting. Returns what was left undone.
pub async fn drain(limit: Duration) -> Vec<String> {
    let queued: Vec<(String, Undo)> = match PENDING.lock() {
        Ok(mut q) => q.drain(..).collect(),
        Err(_) => return Vec::new(),
    };
    if queued.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = queued.iter().map(|(w, _)| w.clone()).collect();
    let mut done = 0usize;
    let all = async {
        for (_, f) in queued {
            f.await;
            done += 1;
        }
    };
    // A second signal (SIGINT or SIGTERM; the first already fired) leaves at once.
    let second = async {
        let mut rx = sender().subscribe();
        let _ = rx.wait_for(|n| *n > 1).await;
    };
    tokio::select! {
        _ = all => {}
        _ = tokio::time::sleep(limit) => {}
        _ = second => {}
    }
    names.into_iter().skip(done).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_path_guard_removes_the_file_and_a_disarmed_one_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.partial");
        let b = dir.path().join("b");
        std::fs::write(&a, b"x").unwrap();
        std::fs::write(&b, b"x").unwrap();
        drop(Guard::path(a.clone()));
        Guard::path(b.clone()).disarm();
        assert!(!a.exists());
        assert!(b.exists());
    }

    #[tokio::test]
    async fn a_dropped_async_guard_is_run_by_drain() {
        let hit = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let h = hit.clone();
        drop(Guard::future("scratch", async move {
            h.store(true, Ordering::SeqCst);
        }));
        assert!(!hit.load(Ordering::SeqCst));
        let left = drain(Duration::from_secs(5)).await;
        assert!(left.is_empty());
        assert!(hit.load(Ordering::SeqCst));
    }
}
