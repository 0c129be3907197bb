//! The templating engine's parts.

pub mod value;
