//! `GET /status`: the shape the network's dashboards poll from every
//! plcbundle mirror, so that a plc-serve mirror can be listed next to the
//! others: the archive's length, first and last chain hashes, its end and
//! sizes, and the server's version and uptime.

use super::archive::Loaded;
use std::time::Duration;

/// The `/status` document for `index`, after the server has run for
/// `uptime`.
pub fn status_json(index: &Loaded, uptime: Duration) -> Vec<u8> {
    let idx = &index.index;
    let first = idx.bundles.first();
    let last = idx.bundles.last();
    let doc = serde_json::json!({
        "bundles": {
            "count": idx.bundles.len(),
            "last_bundle": idx.last_bundle,
            "root_hash": first.map(|b| b.hash.as_str()),
            "head_hash": last.map(|b| b.hash.as_str()),
            "start_time": first.map(|b| b.start_time.as_str()),
            "end_time": last.map(|b| b.end_time.as_str()),
            "total_size": idx.total_size_bytes,
            "uncompressed_size": idx.total_uncompressed_size_bytes,
            "origin": idx.origin,
            "updated_at": idx.updated_at,
        },
        "server": {
            "name": "plc-serve",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": uptime.as_secs(),
        },
    });
    doc.to_string().into_bytes()
}
