//! The operations services, built on the client: [`health`], [`diag`], [`serve`], [`admin`] (the owner's
//! admin socket), [`ingest`], [`ship`] (segments to object storage), [`backup`] (the databases,
//! continuously, with point-in-time restore).
//!
//! What the client's dispatch reports and guards with ([`crate::metrics`],
//! [`crate::resilience`]) sits below the client, at the crate's top, so the client never
//! depends on this module.

pub mod admin;
pub mod backup;
pub mod diag;
pub mod health;
pub mod ingest;
pub mod serve;
pub mod ship;
pub mod tls;
