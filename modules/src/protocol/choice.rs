//! Typed choices: an option restricted to a few strings (`state: present |
//! absent`) declared once as a Rust enum with [`choices!`](crate::choices).
//! The enum's [`Choice::NAMES`] feed the option's documented `choices`, the
//! protocol's choice check and the enum's `Deserialize`, so each string is
//! written once.

use serde::de::{self, Deserialize, Deserializer};

/// An enum whose values are the allowed strings of one option.
pub trait Choice: Sized + Copy + 'static {
    /// Every allowed string, in documentation order.
    const NAMES: &'static [&'static str];

    /// The string of this value.
    fn name(self) -> &'static str;

    /// The value named `name` exactly, if it is one.
    fn from_name(name: &str) -> Option<Self>;
}

/// Deserializes a [`Choice`] from its string; the `Deserialize` of every
/// enum declared with [`choices!`](crate::choices).
pub fn deserialize_choice<'de, D: Deserializer<'de>, C: Choice>(d: D) -> Result<C, D::Error> {
    let text = String::deserialize(d)?;
    C::from_name(&text).ok_or_else(|| {
        de::Error::custom(format!("{text:?} is not one of: {}", C::NAMES.join(", ")))
    })
}

/// Declares an enum of option choices, each variant with its string:
///
/// ```
/// etcd_modules::choices! {
///     /// What the thing should be.
///     pub enum State {
///         /// It exists.
///         Present = "present",
///         /// It does not.
///         Absent = "absent",
///     }
/// }
/// use etcd_modules::protocol::Choice;
/// assert_eq!(State::NAMES, &["present", "absent"]);
/// assert_eq!(serde_json::from_str::<State>("\"absent\"").unwrap(), State::Absent);
/// assert!(serde_json::from_str::<State>("\"gone\"").is_err());
/// ```
///
/// The enum derives `Debug`, `Clone`, `Copy`, `PartialEq`, `Eq`, and gets
/// [`Choice`], `Deserialize` and `Display` (its string).
#[macro_export]
macro_rules! choices {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $crate::protocol::Choice for $name {
            const NAMES: &'static [&'static str] = &[$($text),+];

            fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl<'de> $crate::protocol::serde_for_choices::Deserialize<'de> for $name {
            fn deserialize<D: $crate::protocol::serde_for_choices::Deserializer<'de>>(
                d: D,
            ) -> Result<Self, D::Error> {
                $crate::protocol::deserialize_choice(d)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::protocol::Choice::name(*self))
            }
        }
    };
}
