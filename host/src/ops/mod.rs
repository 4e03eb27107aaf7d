//! The operations services around a store: what the client's dispatch reports and guards with
//! ([`metrics`], [`resilience`]), and what runs on top of the client ([`health`], [`serve`],
//! [`admin`], the owner's admin socket). New services (ingest, shipping, backup) belong here.

pub mod admin;
pub mod health;
pub mod metrics;
pub mod resilience;
pub mod serve;
