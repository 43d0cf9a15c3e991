//! Vigil hub: receives signed clips, chain records, events and status from
//! agents over MQTT (contract: `docs/mqtt.md`), verifies and stores them.
//!
//! # Modules and data flow
//!
//! 0. [`config`]: `hub.toml`; [`broker`]: the embedded MQTT broker (rumqttd) with
//!    per-agent logins from [`enroll`] (keys, MQTT passwords, revocation).
//! 1. [`uplink`]: an MQTT client subscribed to every agent topic; each
//!    publish is handed to the ingest task, and acks go back to
//!    `vigil/v1/{agent}/acks`.
//! 2. [`topic`]: topic segments become typed, validated ids (the only source
//!    of path components).
//! 3. [`ingest`]: manifests open resumable transfers, chunks land on disk, the
//!    last chunk triggers verification with `vigil-evidence`, the chain check,
//!    the durable store and the index row, then the `stored` ack.
//! 4. [`files`]: the data directory layout and the write → fsync → rename →
//!    fsync-dir order (numbered invariants there); [`index`]: SQLite (WAL).
//! 5. [`metrics`]: the Prometheus endpoint (ingest counters + index figures).

pub mod broker;
pub mod config;
pub mod enroll;
pub mod files;
pub mod index;
pub mod ingest;
pub mod metrics;
pub mod pem;
pub mod service;
pub mod topic;
pub mod uplink;
pub mod web;

pub use ingest::{Ack, AckStatus, Ingest, Outcome, Rejection};
