//! The episode store in-process: many concurrent clients, and property
//! tests that the secondary and text indexes stay consistent with the
//! episodes through creates, updates, deletes and reopening.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use memory_mcp::memory::{
    EpisodeStore, NewEpisode, NewStep, Outcome, OutcomeType, Query, SortBy, StepResult, StepStatus, TaskContext, TaskType,
    run_query,
};
use proptest::prelude::*;
use uuid::Uuid;

fn new_episode(desc: &str, domain: &str, t: TaskType) -> NewEpisode {
    NewEpisode {
        task_description: desc.into(),
        domain: domain.into(),
        task_type: t,
        context: TaskContext::default(),
        metadata: BTreeMap::new(),
    }
}

fn new_step(n: u32, word: &str) -> NewStep {
    NewStep {
        step_number: n,
        timestamp: None,
        tool: "tool".into(),
        action: format!("do {word}"),
        parameters: Default::default(),
        result: StepResult { status: StepStatus::Success, output: None, message: None },
        latency_ms: 5,
        tokens_used: None,
    }
}

fn outcome() -> Outcome {
    Outcome {
        outcome_type: OutcomeType::Success,
        verdict: "ok".into(),
        artifacts: vec![],
        completed: vec![],
        failed: vec![],
        reason: None,
        error_details: None,
    }
}

#[test]
fn many_concurrent_clients() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EpisodeStore::open(dir.path()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..50 {
                    let id = store.create_episode(new_episode(&format!("thread{t} job{i}"), &format!("d{t}"), TaskType::Testing)).unwrap();
                    for k in 1..=3 {
                        store.add_step(id, new_step(k, "work")).unwrap();
                    }
                    store.complete_episode(id, outcome()).unwrap();
                    ids.push(id);
                }
                ids
            })
        })
        .collect();
    let all: Vec<Uuid> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(all.len(), 400);
    for id in &all {
        let ep = store.get_episode(*id).unwrap();
        assert_eq!(ep.steps.len(), 3);
        assert!(ep.header.is_complete());
    }
    assert_eq!(store.stats().completed, 400);
    for t in 0..8 {
        assert_eq!(store.ids_in_domain(&format!("d{t}")).unwrap().len(), 50);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create { domain: u8, word: u8, typ: u8 },
    Step { target: u8, word: u8 },
    Tag { target: u8, word: u8 },
    Complete { target: u8 },
    Delete { target: u8 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, 0u8..6, 0u8..6).prop_map(|(domain, word, typ)| Op::Create { domain, word, typ }),
        3 => (any::<u8>(), 0u8..6).prop_map(|(target, word)| Op::Step { target, word }),
        1 => (any::<u8>(), 0u8..6).prop_map(|(target, word)| Op::Tag { target, word }),
        1 => any::<u8>().prop_map(|target| Op::Complete { target }),
        1 => any::<u8>().prop_map(|target| Op::Delete { target }),
        1 => Just(Op::Reopen),
    ]
}

const WORDS: [&str; 6] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];

#[derive(Debug, Clone, Default)]
struct Model {
    domain: String,
    typ: usize,
    words: HashSet<String>,
    tags: HashSet<String>,
    steps: u32,
    done: bool,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn indexes_stay_consistent(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = EpisodeStore::open(dir.path()).unwrap();
        let mut model: Vec<(Uuid, Model)> = Vec::new();
        for op in ops {
            match op {
                Op::Create { domain, word, typ } => {
                    let d = format!("dom{domain}");
                    let w = WORDS[word as usize];
                    let id = store.create_episode(new_episode(&format!("task about {w}"), &d, TaskType::ALL[typ as usize])).unwrap();
                    model.push((id, Model { domain: d, typ: typ as usize, words: [w.to_string()].into(), ..Default::default() }));
                }
                Op::Step { target, word } if !model.is_empty() => {
                    let i = target as usize % model.len();
                    let (id, m) = &mut model[i];
                    let w = WORDS[word as usize];
                    let r = store.add_step(*id, new_step(m.steps + 1, w));
                    if m.done { prop_assert!(r.is_err()); } else { r.unwrap(); m.steps += 1; m.words.insert(w.to_string()); }
                }
                Op::Tag { target, word } if !model.is_empty() => {
                    let i = target as usize % model.len();
                    let (id, m) = &mut model[i];
                    let w = WORDS[word as usize];
                    store.update_episode(*id, Some(vec![w.to_string()]), None).unwrap();
                    m.tags = [w.to_string()].into();
                }
                Op::Complete { target } if !model.is_empty() => {
                    let i = target as usize % model.len();
                    let (id, m) = &mut model[i];
                    let r = store.complete_episode(*id, outcome());
                    if m.done { prop_assert!(r.is_err()); } else { r.unwrap(); m.done = true; }
                }
                Op::Delete { target } if !model.is_empty() => {
                    let i = target as usize % model.len();
                    let (id, _) = model.remove(i);
                    store.delete_episode(id).unwrap();
                    prop_assert!(store.get_episode(id).is_err());
                }
                Op::Reopen => {
                    drop(store);
                    store = EpisodeStore::open(dir.path()).unwrap();
                }
                _ => {}
            }
        }
        // Secondary indexes match the model exactly.
        let mut by_domain: HashMap<String, HashSet<Uuid>> = HashMap::new();
        for (id, m) in &model {
            by_domain.entry(m.domain.clone()).or_default().insert(*id);
        }
        for d in 0..3 {
            let name = format!("dom{d}");
            let got: HashSet<Uuid> = store.ids_in_domain(&name).unwrap().into_iter().collect();
            prop_assert_eq!(got, by_domain.get(&name).cloned().unwrap_or_default());
        }
        for (t, typ) in TaskType::ALL.iter().enumerate() {
            let got: HashSet<Uuid> = store.ids_of_type(*typ).unwrap().into_iter().collect();
            let want: HashSet<Uuid> = model.iter().filter(|(_, m)| m.typ == t).map(|(id, _)| *id).collect();
            prop_assert_eq!(got, want);
        }
        // Every word finds exactly the live episodes that contain it.
        for w in WORDS {
            let q = Query { text: w.into(), domain: None, task_type: None, limit: 1000, sort: SortBy::Relevance };
            let got: HashSet<Uuid> = run_query(&store, &q).unwrap().0.into_iter().map(|h| h.episode_id).collect();
            let want: HashSet<Uuid> = model.iter().filter(|(_, m)| m.words.contains(w) || m.tags.contains(w)).map(|(id, _)| *id).collect();
            prop_assert_eq!(got, want, "word {}", w);
        }
        for (id, m) in &model {
            let ep = store.get_episode(*id).unwrap();
            prop_assert_eq!(ep.steps.len() as u32, m.steps);
            prop_assert_eq!(ep.header.is_complete(), m.done);
        }
        prop_assert_eq!(store.stats().episodes as usize, model.len());
    }
}

/// The search index rebuilt in the background: the store serves at once,
/// coverage is reported while it builds, and writes made meanwhile
/// (creates, steps, completions, updates, deletes) are neither lost nor
/// doubled nor undone by the rebuild.
#[test]
fn background_rebuild_serves_meanwhile_and_keeps_concurrent_writes() {
    use memory_mcp::memory::StoreOptions;
    let dir = tempfile::tempdir().unwrap();
    let n = 30_000;
    let mut ids = Vec::new();
    {
        let store = EpisodeStore::open_with(dir.path(), StoreOptions { sync_on_complete: false }).unwrap();
        for i in 0..n {
            let id = store.create_episode(new_episode(&format!("seeded job{} alpha", i % 7), "dom", TaskType::Testing)).unwrap();
            store.add_step(id, new_step(1, "bravo")).unwrap();
            if i % 2 == 0 {
                store.complete_episode(id, outcome()).unwrap();
            }
            ids.push(id);
        }
    }
    let store = EpisodeStore::open_background(dir.path(), StoreOptions { sync_on_complete: false }).unwrap();
    let first = store.index_coverage();
    // The oldest episodes are indexed last: write to them meanwhile.
    let (deleted, updated, stepped) = (ids[0], ids[2], ids[1]);
    store.delete_episode(deleted).unwrap();
    store.update_episode(updated, Some(vec!["charlie".into()]), None).unwrap();
    store.add_step(stepped, new_step(2, "delta")).unwrap();
    store.complete_episode(stepped, outcome()).unwrap();
    let fresh = store.create_episode(new_episode("fresh echo", "dom", TaskType::Testing)).unwrap();
    store.wait_indexed();
    let done = store.index_coverage();
    eprintln!("coverage at open: {first:?}; after: {done:?}");
    // `total` counts the snapshot the rebuild took, which may be before or
    // after the delete and the create above (the thread races them).
    assert_eq!(done.state, "ready");
    assert_eq!(done.indexed, done.total);
    assert!((n as u64 - 1..=n as u64 + 1).contains(&done.total), "{done:?}");
    let words = |w: &str| -> Vec<Uuid> {
        let q = Query { text: w.into(), domain: None, task_type: None, limit: 100_000, sort: SortBy::Relevance };
        run_query(&store, &q).unwrap().0.into_iter().map(|h| h.episode_id).collect()
    };
    assert_eq!(words("alpha").len(), n - 1);
    assert!(!words("alpha").contains(&deleted));
    assert_eq!(words("charlie"), vec![updated]);
    assert_eq!(words("delta"), vec![stepped]);
    assert_eq!(words("echo"), vec![fresh]);
    let q = Query { text: "bravo".into(), domain: None, task_type: None, limit: 100_000, sort: SortBy::Relevance };
    assert_eq!(run_query(&store, &q).unwrap().1, n - 1);
    // A word of the stepped episode's one step scores as in a store indexed
    // from scratch (a doubled document would have twice the frequency).
    let reopened_score = {
        let q = Query { text: "delta".into(), domain: None, task_type: None, limit: 1, sort: SortBy::Relevance };
        run_query(&store, &q).unwrap().0[0].score
    };
    let stats = store.stats();
    assert_eq!(stats.episodes as usize, n); // one deleted, one created
    assert_eq!(stats.completed as usize, n / 2); // one deleted, one completed
    drop(store);
    let store = EpisodeStore::open(dir.path()).unwrap();
    let q = Query { text: "delta".into(), domain: None, task_type: None, limit: 1, sort: SortBy::Relevance };
    assert!((run_query(&store, &q).unwrap().0[0].score - reopened_score).abs() < 1e-4);
    let ep = store.get_episode(stepped).unwrap();
    assert_eq!((ep.header.step_count, ep.header.is_complete()), (2, true));
    assert_eq!(store.index_coverage().state, "ready");
}

/// A step appended to an in-progress episode whose count is no longer
/// cached (after a reopen) is numbered from the stored steps.
#[test]
fn step_count_survives_reopen_without_header_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = EpisodeStore::open(dir.path()).unwrap();
        let id = store.create_episode(new_episode("counting", "d", TaskType::Testing)).unwrap();
        for n in 1..=3 {
            store.add_step(id, new_step(n, "x")).unwrap();
        }
        id
    };
    let store = EpisodeStore::open(dir.path()).unwrap();
    assert_eq!(store.get_header(id).unwrap().step_count, 3);
    assert!(store.add_step(id, new_step(3, "x")).is_err());
    assert_eq!(store.add_step(id, new_step(4, "x")).unwrap(), 4);
    let done = store.complete_episode(id, outcome()).unwrap();
    assert_eq!(done.step_count, 4);
    assert_eq!(store.delete_episode(id).unwrap(), 4);
    assert!(store.get_episode(id).is_err());
}
