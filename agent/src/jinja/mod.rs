//! The templating engine: a minijinja environment with Ansible's rules ([`template`]), its
//! filters and tests ([`filters`]), lookups ([`lookups`], [`sequence`]), why a value is
//! undefined ([`undefined`]), and the leaf of Python-like values they all use ([`value`]).
//!
//! It reads and tests on its own: nothing here imports the playbook, the executor or the
//! output.

pub mod controller_lookups;
pub mod filters;
pub mod list_lookups;
pub mod lookups;
pub mod sequence;
pub mod template;
pub mod undefined;
pub mod value;

pub use template::{Templar, Untrusted, FAILED_VARS_KEY, UNSAFE_ITEMS_KEY, UNTRUSTED_VARS_KEY};
