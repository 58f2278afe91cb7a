//! The one component runner: a component linked and pre-instantiated
//! once, with the typed export indices its callers need (bindgen's
//! per-interface `GuestIndices`), then a fresh store per call, bounded by
//! the guest state's memory limit and deadline and the call's [`Budget`],
//! and a typed [`Stop`] when the call does not return.
//!
//! The deadline is enforced twice: the epoch callback interrupts the guest
//! once it passes (yielding to the async runtime every tick until then, so
//! no guest holds an async worker), and an async timer covers time spent
//! in host calls. A cancelled call stops at once and frees its store.
//!
//! In a fuel-metered engine a call first takes one of the engine's call
//! slots ([`super::engine::call_slots`]), waiting (within its deadline)
//! while all are taken, and holds it until its store is gone. Its fuel is
//! handed to the guest in slices of [`FUEL_SLICE`] units: compiled code
//! keeps its fuel count in a register and writes it back to the store only
//! at calls, returns and the end of a slice (not at epoch yields), so
//! without slices a guest looping without calls that is stopped by its
//! deadline would report only the fuel it used before the loop.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, Instance, InstancePre, Linker};
use wasmtime::{Engine, Store};

use super::guest::GuestState;
use super::stop::Stop;

/// Fuel handed to a guest at a time (see the module docs): at the end of
/// each slice the guest writes its fuel count back to its store and
/// yields to the async runtime, so [`Ended::fuel_used`] is exact to within
/// one slice whichever limit stopped the call. About 3-10 ms of guest
/// code; a scorer or embedder call uses less than one slice.
pub const FUEL_SLICE: u64 = 50_000_000;

/// What one call may spend beyond memory and time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// Fuel, in a fuel-metered engine (required there: a store starts
    /// with none).
    pub fuel: Option<u64>,
    /// The most bytes the host copies out of one result (or takes in from
    /// one import call), checked as each string and list is lifted.
    pub copy_bytes: Option<usize>,
}

/// How a call ended, and the state it ended with.
pub struct Ended<H, T> {
    /// What the call returned, or why it stopped.
    pub result: Result<T, Stop>,
    /// The guest state after the call (its host state, its memory guard).
    pub state: GuestState<H>,
    /// Fuel the call used, when it had a fuel budget.
    pub fuel_used: Option<u64>,
}

/// A component ready to run: its `InstancePre` and typed export indices
/// `I`, built once.
pub struct Runner<H: 'static, I> {
    pre: InstancePre<GuestState<H>>,
    indices: I,
    /// The engine's call slots, when it has them (fuel-metered).
    slots: Option<Arc<Semaphore>>,
}

impl<H: Send + 'static, I> Runner<H, I> {
    /// Pre-instantiates `component` with `linker` and finds its exports
    /// with `indices` (for instance `GuestIndices::new`).
    pub fn new(
        linker: &Linker<GuestState<H>>,
        component: &Component,
        indices: impl FnOnce(&InstancePre<GuestState<H>>) -> wasmtime::Result<I>,
    ) -> wasmtime::Result<Self> {
        let pre = linker.instantiate_pre(component).map_err(|e| wasmtime::format_err!("pre-instantiating: {e}"))?;
        let indices = indices(&pre)?;
        let slots = super::engine::call_slots(pre.engine());
        Ok(Self { pre, indices, slots })
    }

    /// The engine the component is compiled for.
    pub fn engine(&self) -> &Engine {
        self.pre.engine()
    }

    /// The component's export indices.
    pub fn indices(&self) -> &I {
        &self.indices
    }

    /// The pre-instantiated component, to find exports beyond `I` with
    /// (optional ones a caller probes for).
    pub fn pre(&self) -> &InstancePre<GuestState<H>> {
        &self.pre
    }

    /// Runs `f` against a fresh instance in a fresh store made of `state`,
    /// within its deadline and memory limit and `budget`, stopped at once
    /// if `cancel` is cancelled.
    pub async fn call<T>(
        &self,
        state: GuestState<H>,
        budget: Budget,
        cancel: Option<&CancellationToken>,
        f: impl AsyncFnOnce(&mut Store<GuestState<H>>, &Instance, &I) -> wasmtime::Result<T>,
    ) -> Ended<H, T> {
        let deadline = state.deadline;
        // Held until the store (and so its instance) is gone.
        let _slot = match self.slot(deadline, cancel).await {
            Ok(slot) => slot,
            Err(stop) => return Ended { result: Err(stop), state, fuel_used: None },
        };
        let mut store = store(self.engine(), state, budget);
        let ran = race(deadline, cancel, async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            f(&mut store, &instance, &self.indices).await
        })
        .await;
        let result = ended(ran, &store);
        let fuel_used = fuel_used(&store, budget);
        Ended { result, state: store.into_data(), fuel_used }
    }

    /// Instantiates the component once in a store made of `state`, to be
    /// called many times ([`Resident::call`]): for a component whose
    /// start-up is too costly to repeat per call.
    /// It holds one of the engine's call slots, when it has them, for as
    /// long as it lives.
    pub async fn resident(&self, state: GuestState<H>, budget: Budget) -> Result<Resident<H>, Stop> {
        let _slot = self.slot(state.deadline, None).await?;
        let mut store = store(self.engine(), state, budget);
        let deadline = store.data().deadline;
        let ran = race(deadline, None, self.pre.instantiate_async(&mut store)).await;
        let instance = ended(ran, &store)?;
        Ok(Resident { store, instance, _slot })
    }

    /// One of the engine's call slots, when it has them, waited for until
    /// `deadline` or `cancel`.
    async fn slot(&self, deadline: Instant, cancel: Option<&CancellationToken>) -> Result<Option<OwnedSemaphorePermit>, Stop> {
        let Some(slots) = &self.slots else { return Ok(None) };
        match race(deadline, cancel, async { Ok(slots.clone().acquire_owned().await?) }).await? {
            Ok(permit) => Ok(Some(permit)),
            Err(e) => Err(Stop::Trap { trap: None, detail: format!("{e:#}") }),
        }
    }
}

/// One instance kept between calls ([`Runner::resident`]). Each call gets
/// its own deadline and fuel; a caller drops it after any failure, so the
/// next call starts clean.
pub struct Resident<H: 'static> {
    store: Store<GuestState<H>>,
    instance: Instance,
    /// The engine call slot it holds (see [`Runner::resident`]).
    _slot: Option<OwnedSemaphorePermit>,
}

impl<H: Send + 'static> Resident<H> {
    /// Runs `f` against the instance until `deadline`, with `budget`.
    pub async fn call<T>(
        &mut self,
        deadline: Instant,
        budget: Budget,
        f: impl AsyncFnOnce(&mut Store<GuestState<H>>, &Instance) -> wasmtime::Result<T>,
    ) -> Result<T, Stop> {
        self.store.data_mut().deadline = deadline;
        set_budget(&mut self.store, budget);
        let ran = race(deadline, None, f(&mut self.store, &self.instance)).await;
        ended(ran, &self.store)
    }

    /// The instance's guest state.
    pub fn state(&self) -> &GuestState<H> {
        self.store.data()
    }

    /// Fuel the last call used of `budget` (the one it was given).
    pub fn fuel_used(&self, budget: Budget) -> Option<u64> {
        fuel_used(&self.store, budget)
    }
}

/// A store for one call: `state`'s memory limit and deadline, and
/// `budget`.
pub fn store<H: Send + 'static>(engine: &Engine, state: GuestState<H>, budget: Budget) -> Store<GuestState<H>> {
    let mut store = Store::new(engine, state);
    store.limiter(|d| &mut d.guard);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        if Instant::now() >= ctx.data().deadline {
            Err(wasmtime::Trap::Interrupt.into())
        } else {
            Ok(wasmtime::UpdateDeadline::Yield(1))
        }
    });
    if budget.fuel.is_some() {
        // Fails only in an engine without fuel, where there is none to slice.
        let _ = store.fuel_async_yield_interval(Some(FUEL_SLICE));
    }
    set_budget(&mut store, budget);
    store
}

fn set_budget<H>(store: &mut Store<GuestState<H>>, budget: Budget) {
    if let Some(fuel) = budget.fuel {
        // Fails only in an engine without fuel, where there is none to set.
        let _ = store.set_fuel(fuel);
    }
    if let Some(bytes) = budget.copy_bytes {
        store.set_hostcall_fuel(bytes);
    }
}

fn fuel_used<H>(store: &Store<GuestState<H>>, budget: Budget) -> Option<u64> {
    budget.fuel.map(|fuel| fuel.saturating_sub(store.get_fuel().unwrap_or(0)))
}

/// Runs `run` until `deadline` or `cancel`: `Err` if either came first.
pub async fn race<T>(
    deadline: Instant,
    cancel: Option<&CancellationToken>,
    run: impl Future<Output = wasmtime::Result<T>>,
) -> Result<wasmtime::Result<T>, Stop> {
    let run = tokio::time::timeout_at(deadline.into(), run);
    let ran = match cancel {
        Some(cancel) => tokio::select! {
            ran = run => ran,
            () = cancel.cancelled() => return Err(Stop::Cancelled),
        },
        None => run.await,
    };
    ran.map_err(|_elapsed| Stop::Deadline)
}

/// What a raced call came to, its errors classified against the state of
/// `store`.
pub fn ended<H, T>(ran: Result<wasmtime::Result<T>, Stop>, store: &Store<GuestState<H>>) -> Result<T, Stop> {
    match ran {
        Err(stop) => Err(stop),
        Ok(Err(e)) => Err(Stop::of(&e, store.data())),
        Ok(Ok(t)) => Ok(t),
    }
}
