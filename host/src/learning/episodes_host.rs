//! The read-only `memory-mcp:memory/store` host interface, for analyzers
//! whose policy grants it, in the same shape as `tools`: an owned
//! [`EpisodesCtx`] in the store data, a borrowed [`EpisodesView`],
//! [`add_to_linker`], and the generated `Host` trait on the view.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use super::convert::{episode_to_wit, task_type_from_wit};
use crate::memory::{EpisodeStore, StoreError as MemError};
use crate::world::episode_store::{EpisodeFilter, Host, StoreError, add_to_linker as add_generated};
use crate::world::types;

/// Most episodes one `list-episodes` call returns.
pub const MAX_LIST: u32 = 1_000;

/// The owned state: the store, when reads are granted.
#[derive(Clone, Default)]
pub struct EpisodesCtx {
    store: Option<Arc<EpisodeStore>>,
}

impl EpisodesCtx {
    /// No access: every call is `denied`.
    pub fn none() -> Self {
        Self { store: None }
    }

    /// Read access to `store`: the analyzer's policy grants it.
    pub fn granted(store: Arc<EpisodeStore>) -> Self {
        Self { store: Some(store) }
    }
}

/// Borrowed access to an [`EpisodesCtx`], on which the generated `Host`
/// trait is implemented.
pub struct EpisodesView<'a> {
    /// The analyzer's episode access, borrowed from its store data.
    pub ctx: &'a mut EpisodesCtx,
}

struct HasEpisodes;

impl HasData for HasEpisodes {
    type Data<'a> = EpisodesView<'a>;
}

/// Links `memory-mcp:memory/store` into `linker`, each call served by the
/// view `get` borrows from the store data.
pub fn add_to_linker<T: Send + 'static>(linker: &mut Linker<T>, get: fn(&mut T) -> EpisodesView<'_>) -> wasmtime::Result<()> {
    add_generated::<T, HasEpisodes>(linker, get)
}

impl EpisodesView<'_> {
    fn store(&self) -> Result<Arc<EpisodeStore>, StoreError> {
        self.ctx.store.clone().ok_or_else(|| StoreError::Denied("this analyzer's policy does not grant store access".into()))
    }

    /// Ids matching `filter`, newest first, at most `cap`.
    fn matching(store: &EpisodeStore, filter: &EpisodeFilter, cap: usize) -> Result<Vec<uuid::Uuid>, StoreError> {
        let unavailable = |e: MemError| StoreError::Unavailable(e.to_string());
        let mut ids = match (&filter.domain, filter.task_type) {
            (Some(d), _) => store.ids_in_domain(d).map_err(unavailable)?,
            (None, Some(t)) => store.ids_of_type(task_type_from_wit(t)).map_err(unavailable)?,
            (None, None) => {
                let mut all = store.all_ids();
                all.sort_unstable();
                all
            }
        };
        ids.reverse();
        let want_type = filter.task_type.map(task_type_from_wit);
        let keep = store.summary_keys(&ids, |s| {
            want_type.is_none_or(|t| s.task_type == t) && (!filter.completed_only || s.outcome.is_some())
        });
        let since = filter.since_ms.unwrap_or(0);
        Ok(ids
            .into_iter()
            .zip(keep)
            .filter(|(id, k)| *k == Some(true) && id.get_timestamp().is_none_or(|t| t.to_unix().0 * 1000 >= since))
            .map(|(id, _)| id)
            .take(cap)
            .collect())
    }
}

impl Host for EpisodesView<'_> {
    async fn get_episode(&mut self, id: String) -> Result<types::Episode, StoreError> {
        let store = self.store()?;
        let uuid = uuid::Uuid::parse_str(&id).map_err(|_| StoreError::NotFound(id.clone()))?;
        match store.get_episode(uuid) {
            Ok(e) => Ok(episode_to_wit(e)),
            Err(MemError::NotFound(_)) => Err(StoreError::NotFound(id)),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }

    async fn list_episodes(&mut self, filter: EpisodeFilter) -> Result<Vec<types::Episode>, StoreError> {
        let store = self.store()?;
        let cap = filter.limit.min(MAX_LIST) as usize;
        let ids = Self::matching(&store, &filter, cap)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match store.get_episode(id) {
                Ok(e) => out.push(episode_to_wit(e)),
                Err(MemError::NotFound(_)) => {}
                Err(e) => return Err(StoreError::Unavailable(e.to_string())),
            }
        }
        Ok(out)
    }

    async fn count_episodes(&mut self, filter: EpisodeFilter) -> Result<u64, StoreError> {
        let store = self.store()?;
        Ok(Self::matching(&store, &filter, usize::MAX)?.len() as u64)
    }
}

impl types::Host for EpisodesView<'_> {}
