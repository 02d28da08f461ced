//! Uploads (`POST /upload-asset`), oldest first, bounded in count and bytes.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use uuid::Uuid;

/// A stored upload.
pub(crate) struct Asset {
    /// A content type sniffed from the bytes (never the uploader's).
    pub(crate) mime: &'static str,
    pub(crate) bytes: Bytes,
}

/// Uploads, oldest first, bounded in count and bytes.
#[derive(Default)]
pub(crate) struct Assets {
    pub(crate) map: HashMap<Uuid, Asset>,
    pub(crate) order: VecDeque<Uuid>,
    pub(crate) bytes: usize,
}

impl Assets {
    pub(crate) fn get(&self, id: &Uuid) -> Option<&Asset> {
        self.map.get(id)
    }

    /// Stores `asset`, evicting the oldest uploads until both bounds hold.
    pub(crate) fn insert(&mut self, id: Uuid, asset: Asset, max_count: usize, max_bytes: usize) {
        self.bytes = self.bytes.saturating_add(asset.bytes.len());
        self.map.insert(id, asset);
        self.order.push_back(id);
        while self.order.len() > max_count || self.bytes > max_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(a) = self.map.remove(&old) {
                self.bytes = self.bytes.saturating_sub(a.bytes.len());
            }
        }
    }
}
