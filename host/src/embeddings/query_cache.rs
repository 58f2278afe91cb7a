//! Query vectors cached by space and text: a bounded map evicting the least
//! recently used entry, so a repeated query skips the model.

use std::collections::HashMap;

use super::embedder::Space;

/// Most cached query vectors (384 f32 each: about 1.6 MB at most).
pub const CAPACITY: usize = 1024;
/// Longest text cached (longer queries are embedded every time).
const MAX_TEXT: usize = 1024;

#[derive(Default)]
pub struct QueryCache {
    map: HashMap<(u64, String), (u64, Vec<f32>)>,
    clock: u64,
}

impl QueryCache {
    pub fn get(&mut self, space: Space, text: &str) -> Option<Vec<f32>> {
        self.clock += 1;
        let now = self.clock;
        let entry = self.map.get_mut(&(space.0, text.to_string()))?;
        entry.0 = now;
        Some(entry.1.clone())
    }

    pub fn put(&mut self, space: Space, text: &str, vector: Vec<f32>) {
        if text.len() > MAX_TEXT {
            return;
        }
        self.clock += 1;
        if self.map.len() >= CAPACITY
            && let Some(oldest) = self.map.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| k.clone())
        {
            self.map.remove(&oldest);
        }
        self.map.insert((space.0, text.to_string()), (self.clock, vector));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_keyed_by_space() {
        let mut c = QueryCache::default();
        c.put(Space(1), "q", vec![1.0]);
        assert_eq!(c.get(Space(1), "q"), Some(vec![1.0]));
        assert_eq!(c.get(Space(2), "q"), None);
        for i in 0..CAPACITY + 10 {
            c.put(Space(1), &i.to_string(), vec![0.0]);
        }
        assert!(c.map.len() <= CAPACITY);
    }
}
