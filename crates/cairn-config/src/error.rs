//! Why configuration could not be loaded, and figment's errors turned into
//! messages that name the key.

use std::path::PathBuf;

use crate::ENV_PREFIX;

/// Why configuration could not be loaded. Start-up stops and prints it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file named with `--config` cannot be read.
    #[error("cannot read the configuration file {path}: {cause}")]
    Unreadable { path: PathBuf, cause: std::io::Error },
    /// A value has the wrong type or shape, a key is unknown, or the file is
    /// not valid TOML. The message names the key and where it came from.
    #[error("{0}")]
    Parse(String),
    /// A value parsed but is not acceptable.
    #[error("configuration key `{key}` is invalid: expected {expected}, got `{got}`")]
    Invalid { key: &'static str, expected: &'static str, got: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Refuses the first of `checks` — (key, value, what is expected) — whose
/// value is 0.
pub(crate) fn refuse_zero<const N: usize>(checks: [(&'static str, u64, &'static str); N]) -> Result<()> {
    match checks.into_iter().find(|(_, value, _)| *value == 0) {
        Some((key, value, expected)) => Err(Error::Invalid { key, expected, got: value.to_string() }),
        None => Ok(()),
    }
}

/// Turns figment's errors into one message per problem that names the key in
/// its `section.key` form, the environment variable or file it came from, and
/// what was expected.
pub(crate) fn describe(errors: figment::Error) -> Error {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|error| {
            let key = error.path.join(".");
            let origin = match &error.metadata {
                Some(meta) => match &meta.source {
                    Some(figment::Source::Custom(s)) if meta.name.contains("environment") => {
                        format!(" (from environment variable {ENV_PREFIX}{})", s.to_uppercase())
                    }
                    _ if meta.name.contains("environment") => {
                        let var = error.path.iter().map(|p| p.to_uppercase()).collect::<Vec<_>>();
                        format!(" (from environment variable {ENV_PREFIX}{})", var.join("__"))
                    }
                    _ if meta.name.contains("TOML") => " (from the configuration file)".to_owned(),
                    _ => String::new(),
                },
                None => String::new(),
            };
            let hint = match key.as_str() {
                "server.bind" => "; expected an address such as 127.0.0.1:8080",
                "log.format" => "; expected `json` or `pretty`",
                "server.cors_origins" => "; expected a list of origins such as [\"https://app.example.com\"]",
                _ => "",
            };
            if key.is_empty() {
                format!("configuration{origin}: {}", error.kind)
            } else {
                format!("configuration key `{key}`{origin}: {}{hint}", error.kind)
            }
        })
        .collect();
    Error::Parse(lines.join("; "))
}
