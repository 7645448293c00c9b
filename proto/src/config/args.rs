//! The flags and environment variables of a daemon's keys, as clap
//! arguments, and the values a command line and an environment gave.

use clap::{Arg, ArgAction, ArgMatches, builder::BoolishValueParser, parser::ValueSource};

use super::{ConfigError, Given, Key, Kind, Reason, Source};

/// One clap argument per key: `--flag` with `env = VAR`.
pub fn args(keys: &'static [Key]) -> Vec<Arg> {
    keys.iter().map(arg).collect()
}

fn arg(key: &'static Key) -> Arg {
    let help = if key.default.is_empty() {
        key.help.to_owned()
    } else {
        format!("{} [default: {}]", key.help, key.default)
    };
    let arg = Arg::new(key.name).long(key.flag).env(key.env).help(help);
    match key.kind {
        Kind::Bool => arg
            .action(ArgAction::SetTrue)
            .value_parser(BoolishValueParser::new()),
        Kind::List => arg
            .action(ArgAction::Append)
            .value_delimiter(',')
            .value_name("VALUE"),
        Kind::Text | Kind::Number => arg.value_name(value_name(key)),
    }
}

fn value_name(key: &Key) -> &'static str {
    match key.kind {
        Kind::Number => "N",
        _ if key.name.ends_with("listen") => "ADDR",
        _ if key.name.ends_with("dir") => "DIR",
        _ => "VALUE",
    }
}

/// The values the command line and the environment gave, each with its
/// source. A value that is not of its key's kind names the flag or the
/// variable.
pub fn given(keys: &'static [Key], matches: &ArgMatches) -> Result<Vec<Given>, ConfigError> {
    let mut given = Vec::new();
    for key in keys {
        let source = match matches.value_source(key.name) {
            Some(ValueSource::CommandLine) => Source::Flag(key.flag),
            Some(ValueSource::EnvVariable) => Source::Env(key.env),
            _ => continue,
        };
        let value = value(key, matches).map_err(|reason| ConfigError::Key {
            origin: source.to_string(),
            key: key.shown(),
            source: Box::new(Reason(reason)),
        })?;
        given.push(Given {
            key: key.name,
            value,
            source,
        });
    }
    Ok(given)
}

fn value(key: &Key, matches: &ArgMatches) -> Result<toml::Value, String> {
    let text = || {
        matches
            .get_one::<String>(key.name)
            .cloned()
            .unwrap_or_default()
    };
    Ok(match key.kind {
        Kind::Bool => toml::Value::Boolean(matches.get_flag(key.name)),
        Kind::List => toml::Value::Array(
            matches
                .get_many::<String>(key.name)
                .into_iter()
                .flatten()
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.clone()))
                .collect(),
        ),
        Kind::Number => {
            let text = text();
            let number: i64 = text
                .trim()
                .parse()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("{text:?} is not a non-negative whole number"))?;
            toml::Value::Integer(number)
        }
        Kind::Text => toml::Value::String(text()),
    })
}
