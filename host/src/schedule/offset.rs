//! The per-install offset that spreads thousands of agents over a window.

use chrono::Duration;

/// A deterministic offset in `[0, window_len)` derived from `agent_id`, in whole seconds.
///
/// The same id gives the same offset on every start and every version (FNV-1a, not
/// std's hasher, whose algorithm may change); different ids spread uniformly, so a
/// fleet of agents with a 12-hour window does not reach the hub at the same minute.
/// A zero or negative `window_len` gives zero.
pub fn install_offset(agent_id: &str, window_len: Duration) -> Duration {
    let window = window_len.num_seconds();
    if window <= 0 {
        return Duration::zero();
    }
    let hash = mix(fnv1a64(agent_id.as_bytes()));
    // `window` is positive and at most i64::MAX, so the remainder fits in i64.
    Duration::seconds((hash % window as u64) as i64)
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

/// MurmurHash3's finalizer: ids that differ in one character land far apart.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
