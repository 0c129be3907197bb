//! Argument specs of the builtins, declared once in the spirit of Ansible's `argument_spec`:
//! each argument with its type, default, choices, aliases, required-ness and whether
//! etcd-agent implements it. [`Check`] says which of Ansible's rules applies to a builtin's
//! keys; validating the task's arguments against it is in `params.rs`.

use serde_json::Value;

/// How a value is converted, as Ansible's `check_type_*` functions do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text; other scalars are converted (`str()`).
    Str,
    /// Text only: anything else is refused (`debug: var`).
    StrStrict,
    /// A path: text.
    Path,
    /// A boolean in Ansible's spellings (`yes`/`no`, `1`/`0`, `true`/`false`, ...).
    Bool,
    /// An integer (from text or a float without a fraction).
    Int,
    /// A number, fractions allowed (`pause: seconds`).
    Float,
    /// A list; text is split on commas.
    List,
    /// A list; anything else becomes a one-element list (`assert: that`).
    ListStrict,
    /// Any value, unchanged.
    Raw,
}

/// Ansible's default of an argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    /// No default (`None`).
    None,
    /// A text default.
    Str(&'static str),
    /// A boolean default.
    Bool(bool),
    /// An integer default.
    Int(i64),
    /// A list of text default.
    List(&'static [&'static str]),
}

impl Default {
    /// The default as a value (`None` for no default).
    pub fn value(&self) -> Option<Value> {
        match self {
            Default::None => None,
            Default::Str(s) => Some(Value::String((*s).into())),
            Default::Bool(b) => Some(Value::Bool(*b)),
            Default::Int(i) => Some(Value::from(*i)),
            Default::List(l) => Some(Value::Array(l.iter().map(|s| (*s).into()).collect())),
        }
    }
}

/// How much of an argument etcd-agent implements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Support {
    /// Implemented.
    Full,
    /// Accepted by Ansible but not implemented: only Ansible's default is accepted.
    DefaultOnly,
    /// Only these values (as text) are implemented.
    Only(&'static [&'static str]),
}

/// One argument of a builtin.
#[derive(Debug, Clone, Copy)]
pub struct Arg {
    /// Its name.
    pub name: &'static str,
    /// How its value is converted.
    pub kind: Kind,
    /// Ansible's default.
    pub default: Default,
    /// The values allowed (empty: any).
    pub choices: &'static [&'static str],
    /// Other names for it.
    pub aliases: &'static [&'static str],
    /// Whether it must be given.
    pub required: bool,
    /// How much of it etcd-agent implements.
    pub support: Support,
    /// An option of the action plugin only: not listed in `Supported parameters include`.
    pub hidden: bool,
}

impl Arg {
    /// An optional, implemented argument without default, choices or aliases.
    pub const fn new(name: &'static str, kind: Kind) -> Arg {
        Arg {
            name,
            kind,
            default: Default::None,
            choices: &[],
            aliases: &[],
            required: false,
            support: Support::Full,
            hidden: false,
        }
    }

    /// A text argument.
    pub const fn str(name: &'static str) -> Arg {
        Arg::new(name, Kind::Str)
    }

    /// A path argument.
    pub const fn path(name: &'static str) -> Arg {
        Arg::new(name, Kind::Path)
    }

    /// A boolean argument with its default.
    pub const fn bool(name: &'static str, default: bool) -> Arg {
        Arg::new(name, Kind::Bool).default(Default::Bool(default))
    }

    /// An integer argument.
    pub const fn int(name: &'static str) -> Arg {
        Arg::new(name, Kind::Int)
    }

    /// Any value.
    pub const fn raw(name: &'static str) -> Arg {
        Arg::new(name, Kind::Raw)
    }

    /// With Ansible's default.
    pub const fn default(mut self, default: Default) -> Arg {
        self.default = default;
        self
    }

    /// With a text default.
    pub const fn default_str(self, default: &'static str) -> Arg {
        self.default(Default::Str(default))
    }

    /// With an integer default.
    pub const fn default_int(self, default: i64) -> Arg {
        self.default(Default::Int(default))
    }

    /// Allowed values.
    pub const fn choices(mut self, choices: &'static [&'static str]) -> Arg {
        self.choices = choices;
        self
    }

    /// Other names.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Arg {
        self.aliases = aliases;
        self
    }

    /// Must be given.
    pub const fn required(mut self) -> Arg {
        self.required = true;
        self
    }

    /// Accepted by Ansible, not implemented by etcd-agent: only the default is accepted.
    pub const fn unimplemented(mut self) -> Arg {
        self.support = Support::DefaultOnly;
        self
    }

    /// An option of the action plugin, not of the module its message names.
    pub const fn action_only(mut self) -> Arg {
        self.hidden = true;
        self
    }

    /// Only these values are implemented by etcd-agent.
    pub const fn only(mut self, values: &'static [&'static str]) -> Arg {
        self.support = Support::Only(values);
        self
    }
}

/// The options every file-handling module shares (Ansible's `FILE_COMMON_ARGUMENTS`):
/// ownership and mode are implemented, SELinux context and attributes only at their defaults.
pub const FILE_COMMON: &[Arg] = &[
    Arg::str("group"),
    Arg::raw("mode"),
    Arg::str("owner"),
    Arg::str("selevel").unimplemented(),
    Arg::str("serole").unimplemented(),
    Arg::str("setype").unimplemented(),
    Arg::str("seuser").unimplemented(),
    Arg::bool("unsafe_writes", false).unimplemented(),
    Arg::str("attributes").aliases(&["attr"]).unimplemented(),
];

/// Which of Ansible's rules a builtin's keys follow.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// A module (or action) with an `argument_spec`: `Unsupported parameters for (<name>)
    /// module: ...`. `name` is the module Ansible runs (`ansible.legacy.command` for `shell`);
    /// `None` for the name the task used.
    Spec {
        /// The module name in the message.
        name: Option<&'static str>,
        /// The module's own arguments.
        args: &'static [Arg],
        /// Arguments it shares with other modules ([`FILE_COMMON`], or none).
        common: &'static [Arg],
        /// Groups of which at most one may be given.
        exclusive: &'static [&'static [&'static str]],
    },
    /// An action with `_VALID_ARGS`: `Invalid options for <name>: <keys>`; the arguments are
    /// still typed.
    ValidArgs(&'static [Arg]),
    /// Any key is accepted (`set_fact`, `fetch`, includes).
    Any(&'static [Arg]),
}

impl Check {
    /// Whether the declaration names the argument `name` (its own or shared arguments).
    pub fn declares(&self, name: &str) -> bool {
        let has = |args: &[Arg]| args.iter().any(|a| a.name == name);
        match self {
            Check::Spec { args, common, .. } => has(args) || has(common),
            Check::ValidArgs(args) | Check::Any(args) => has(args),
        }
    }
}

impl Check {
    /// The declared arguments: the builtin's own, then those it shares.
    pub fn args(&self) -> impl Iterator<Item = &'static Arg> + Clone {
        let (own, common): (&'static [Arg], &'static [Arg]) = match *self {
            Check::Spec { args, common, .. } => (args, common),
            Check::ValidArgs(args) | Check::Any(args) => (args, &[]),
        };
        own.iter().chain(common)
    }

    /// The argument named `name` or with the alias `name`.
    pub fn find(&self, name: &str) -> Option<&'static Arg> {
        self.args()
            .find(|a| a.name == name || a.aliases.contains(&name))
    }
}
