//! Gossip (placeholder, being written).
