//! The one epoch ticker: a thread that advances the epoch of every live
//! engine each [`EPOCH_TICK`], so deadlines
//! fire and guests yield to the async runtime. Engines register when they
//! are built and are forgotten once dropped.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use wasmtime::{Engine, EngineWeak};

/// How often the epoch advances; the granularity of deadlines and of
/// cooperative yields back to the async runtime.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The engines the ticker drives.
static ENGINES: Mutex<Vec<EngineWeak>> = Mutex::new(Vec::new());
/// Whether the ticker thread started.
static STARTED: OnceLock<bool> = OnceLock::new();

/// Has the ticker advance `engine`'s epoch, starting the ticker thread
/// the first time.
pub(super) fn register(engine: &Engine) {
    crate::sync::lock(&ENGINES).push(engine.weak());
    STARTED.get_or_init(start);
}

fn start() -> bool {
    let spawned = std::thread::Builder::new().name("epoch-ticker".into()).spawn(|| {
        loop {
            std::thread::sleep(EPOCH_TICK);
            crate::sync::lock(&ENGINES).retain(|weak| match weak.upgrade() {
                Some(engine) => {
                    engine.increment_epoch();
                    true
                }
                None => false,
            });
        }
    });
    match spawned {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "could not start the epoch ticker; deadlines rely on the async timer alone");
            false
        }
    }
}
