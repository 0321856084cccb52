//! Per-phase timings of a restore, printed with `PGBOX_TRACE=1` (see
//! `Printer::trace`): each phase says when it started, counted from the start of
//! the restore, and how long it took, so phases that overlap show as overlapping.
//! This is how the restore's fixed cost over a bare pg_restore is measured
//! (`scripts/bench.sh`).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

use crate::printer::Printer;

static T0: OnceLock<Instant> = OnceLock::new();

/// The restore starts now (the first call wins).
pub fn start() {
    T0.get_or_init(Instant::now);
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Await `f`, then trace `what`: its start and its duration.
pub async fn time<T>(p: &Printer, what: &str, f: impl Future<Output = T>) -> T {
    let t0 = *T0.get_or_init(Instant::now);
    let began = Instant::now();
    let at = began.duration_since(t0).as_secs_f64() * 1000.0;
    let out = f.await;
    p.trace(format!(
        "restore {what:<28} at {at:>7.0} ms  took {:>7.0} ms",
        ms_since(began)
    ));
    out
}
