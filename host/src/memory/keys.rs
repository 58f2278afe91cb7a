//! Key encodings of the fjall keyspaces (layout in `episode_store.rs`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::TaskType;

/// Key of an episode in the keyspaces keyed by episode: its UUID's 16 bytes.
pub fn id_key(id: &Uuid) -> [u8; 16] {
    *id.as_bytes()
}

/// Key of step `n` of episode `id`: the id, then `n` big-endian, so an episode's steps sort in order after its id.
pub fn step_key(id: &Uuid, n: u32) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..16].copy_from_slice(id.as_bytes());
    k[16..].copy_from_slice(&n.to_be_bytes());
    k
}

/// Key in the domain index: the domain's bytes, a 0 byte, then the episode id, so a prefix scan lists a domain's episodes.
pub fn domain_key(domain: &str, id: &Uuid) -> Vec<u8> {
    let mut k = Vec::with_capacity(domain.len() + 17);
    k.extend_from_slice(domain.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key in the task-type index: the type's one-byte code, then the episode id.
pub fn type_key(t: TaskType, id: &Uuid) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = t.code();
    k[1..].copy_from_slice(id.as_bytes());
    k
}

/// What a vector or an embedding-queue entry belongs to: the first byte
/// of its key.
pub const EPISODE_ITEM: u8 = 0;
/// The first key byte of a pattern's vector or embedding-queue entry.
pub const PATTERN_ITEM: u8 = 1;

/// `kind` then the id: the key of `vectors` and `embed_queue`.
pub fn item_key(kind: u8, id: &Uuid) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = kind;
    k[1..].copy_from_slice(id.as_bytes());
    k
}

/// The UUID in the last 16 bytes of an index key, or `None` if the key is shorter or they are not a valid UUID.
pub fn id_from_suffix(key: &[u8]) -> Option<Uuid> {
    let start = key.len().checked_sub(16)?;
    Uuid::from_slice(&key[start..]).ok()
}

/// The smallest UUIDv7 for a time: range scans by creation time.
pub fn uuid_floor(t: DateTime<Utc>) -> Uuid {
    let ms = t.timestamp_millis().max(0) as u64;
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = 0x70;
    b[8] = 0x80;
    Uuid::from_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_and_decode() {
        let id = Uuid::now_v7();
        assert!(step_key(&id, 2) < step_key(&id, 10));
        assert_eq!(id_from_suffix(&domain_key("web", &id)), Some(id));
        assert_eq!(id_from_suffix(&type_key(TaskType::Testing, &id)), Some(id));
        let now = Utc::now();
        assert!(uuid_floor(now - chrono::Duration::seconds(1)) < Uuid::now_v7());
    }
}
