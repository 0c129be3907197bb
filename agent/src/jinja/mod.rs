//! The templating engine: a minijinja environment with Ansible's rules ([`template`]), its
//! filters and tests ([`filters`]), lookups ([`lookups`], [`sequence`]), why a value is
//! undefined ([`undefined`]), and the leaf of Python-like values they all use ([`value`]).
//!
//! It reads and tests on its own: nothing here imports the playbook, the executor or the
//! output.

pub mod controller_lookups;
pub mod errors;
pub mod file_template;
pub mod filters;
pub mod globals;
pub mod list_lookups;
pub mod lookup_constants;
pub mod lookups;
pub mod python_filters;
pub mod python_lookups;
pub mod sequence;
pub mod template;
pub mod trust;
pub mod undefined;
pub mod undefined_chains;
pub mod value;

pub use template::{
    Templar, Untrusted, FAILED_VARS_KEY, MADE_VARS_KEY, TEMPLATE_LISTS_KEY, UNSAFE_ITEMS_KEY,
};
