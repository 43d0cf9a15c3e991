//! Per-camera hash chains: the signed records that open segments and anchor
//! heads ([`records`]) and the crash-safe state store the agent signs through
//! ([`store`]).

pub mod records;
pub mod store;

pub use records::{
    ChainHead, ChainRecord, ChainReset, Checkpoint, DeletedPiece, Deletion, DeletionReason,
    ResetReason, SignedChainReset, SignedCheckpoint, SignedDeletion, MAX_DELETED_PIECES,
};
pub use store::ChainStore;
