//! Jinja2's global helpers that minijinja does not have: `joiner` and `cycler`.

use minijinja::value::{Object, ObjectRepr, Value};
use minijinja::{Environment, Error, ErrorKind, State};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Registers the helpers.
pub fn register(env: &mut Environment<'static>) {
    env.add_function("joiner", |sep: Option<String>| {
        Value::from_object(Joiner {
            sep: sep.unwrap_or_else(|| ", ".into()),
            used: AtomicBool::new(false),
        })
    });
    env.add_function("cycler", |items: minijinja::value::Rest<Value>| {
        Value::from_object(Cycler {
            items: items.0,
            pos: AtomicUsize::new(0),
        })
    });
}

/// Jinja2's `joiner(sep)`: calling it gives `""` the first time and `sep` afterwards.
#[derive(Debug)]
struct Joiner {
    sep: String,
    used: AtomicBool,
}

impl Object for Joiner {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call(self: &Arc<Self>, _: &State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        if !args.is_empty() {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                "joiner takes no arguments",
            ));
        }
        let first = !self.used.swap(true, Ordering::Relaxed);
        Ok(Value::from(if first { "" } else { self.sep.as_str() }))
    }
}

/// Jinja2's `cycler(*items)`: `next()` gives the items in turn, `current` the next one,
/// `reset()` starts again.
#[derive(Debug)]
struct Cycler {
    items: Vec<Value>,
    pos: AtomicUsize,
}

impl Object for Cycler {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "current" => self.items.get(self.pos.load(Ordering::Relaxed)).cloned(),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _: &State<'_, '_>,
        method: &str,
        _: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "next" => {
                if self.items.is_empty() {
                    return Ok(Value::UNDEFINED);
                }
                let at = self.pos.load(Ordering::Relaxed);
                self.pos
                    .store((at + 1) % self.items.len(), Ordering::Relaxed);
                Ok(self.items[at].clone())
            }
            "reset" => {
                self.pos.store(0, Ordering::Relaxed);
                Ok(Value::from(()))
            }
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("cycler has no method named {method}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joiner_and_cycler_as_in_jinja2() {
        let mut env = Environment::new();
        register(&mut env);
        let out = env
            .render_str(
                "{% set j = joiner('|') %}{% for x in [1,2,3] %}{{ j() }}{{ x }}{% endfor %}",
                (),
            )
            .unwrap();
        assert_eq!(out, "1|2|3");
        let out = env
            .render_str(
                "{% set c = cycler('a','b') %}{{ c.next() }}{{ c.next() }}{{ c.current }}{{ c.next() }}",
                (),
            )
            .unwrap();
        assert_eq!(out, "abaa");
    }
}
