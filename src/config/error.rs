//! Why a command line or conf file cannot be turned into [`Settings`](super::Settings).

use std::fmt;
use std::path::PathBuf;

/// memcached's exit status for a usage error (`EX_USAGE` from sysexits.h).
pub const EX_USAGE: i32 = 64;

/// Why a configuration was refused (or, for [`ConfigError::Info`], why start-up stops early).
///
/// Every variant's `Display` names the option and, where there is one, the value, so the
/// operator can find the offending word in a unit file or conf file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Not an error: `-h`, `-V` or `-i` asked for text on stdout and a clean exit.
    Info(String),
    /// A flag memcached does not know (`-x`, `--bogus`).
    UnknownFlag {
        /// The flag as written.
        flag: String,
    },
    /// A flag that needs a value was given none.
    MissingValue {
        /// The flag as written (`-p`, `--port`).
        option: String,
    },
    /// A value that is not of the expected form (`-m abc`).
    Malformed {
        /// The flag (`-m`) or extended option (`-o hashpower`).
        option: String,
        /// The value as written.
        value: String,
        /// What was expected ("a whole number of megabytes").
        expected: &'static str,
    },
    /// A well-formed value that memcached refuses; `message` is memcached's own wording.
    Invalid {
        /// The flag or extended option.
        option: String,
        /// The value as written (or the values involved, for a rule that spans flags).
        value: String,
        /// memcached 1.6.18's message for this rejection, verbatim.
        message: String,
        /// The exit status memcached uses for this rejection (1 or [`EX_USAGE`]).
        exit_code: i32,
    },
    /// An `-o` option memcached does not know.
    UnknownExtended {
        /// The `key` or `key=value` as written.
        option: String,
    },
    /// A flag or `-o` option memcached has but tern cannot honour (yet).
    Unsupported {
        /// The flag or extended option.
        option: String,
        /// Why tern refuses it (see [`UNSUPPORTED_FLAGS`](super::UNSUPPORTED_FLAGS) and
        /// [`UNSUPPORTED_EXTENDED`](super::UNSUPPORTED_EXTENDED)).
        reason: &'static str,
    },
    /// Any other command-line syntax error, as clap words it.
    Usage(String),
    /// The conf file could not be read.
    ConfFileRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: String,
    },
    /// A line of the conf file is wrong.
    ConfFileLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        error: Box<ConfigError>,
    },
    /// A conf-file line that is neither a flag nor a directive tern knows.
    UnknownDirective {
        /// The first word of the line.
        directive: String,
    },
}

impl ConfigError {
    /// The process exit status for this error, as memcached would exit (0 for
    /// [`ConfigError::Info`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Info(_) => 0,
            ConfigError::Invalid { exit_code, .. } => *exit_code,
            ConfigError::ConfFileLine { error, .. } => error.exit_code(),
            ConfigError::Unsupported { .. } => EX_USAGE,
            _ => 1,
        }
    }

    /// Whether this is [`ConfigError::Info`]: print to stdout and exit 0.
    pub fn is_info(&self) -> bool {
        matches!(self, ConfigError::Info(_))
    }

    /// Shorthand for [`ConfigError::Invalid`].
    pub(crate) fn invalid(
        option: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
        exit_code: i32,
    ) -> ConfigError {
        ConfigError::Invalid {
            option: option.into(),
            value: value.into(),
            message: message.into(),
            exit_code,
        }
    }

    /// Shorthand for [`ConfigError::Malformed`].
    pub(crate) fn malformed(
        option: impl Into<String>,
        value: impl Into<String>,
        expected: &'static str,
    ) -> ConfigError {
        ConfigError::Malformed {
            option: option.into(),
            value: value.into(),
            expected,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Info(text) => f.write_str(text),
            ConfigError::UnknownFlag { flag } => write!(f, "unknown option {flag}"),
            ConfigError::MissingValue { option } => write!(f, "option {option} needs a value"),
            ConfigError::Malformed {
                option,
                value,
                expected,
            } => write!(
                f,
                "invalid value '{value}' for {option}: expected {expected}"
            ),
            ConfigError::Invalid {
                option,
                value,
                message,
                ..
            } => write!(f, "invalid value '{value}' for {option}: {message}"),
            ConfigError::UnknownExtended { option } => {
                write!(f, "unknown -o option \"{option}\" (Illegal suboption)")
            }
            ConfigError::Unsupported { option, reason } => {
                write!(f, "option {option} is not supported by tern: {reason}")
            }
            ConfigError::Usage(text) => f.write_str(text),
            ConfigError::ConfFileRead { path, error } => {
                write!(f, "cannot read config file {}: {error}", path.display())
            }
            ConfigError::ConfFileLine { path, line, error } => {
                write!(f, "{}:{line}: {error}", path.display())
            }
            ConfigError::UnknownDirective { directive } => {
                write!(
                    f,
                    "unknown directive \"{directive}\" (only flags and `logfile` are allowed)"
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_option_value_and_memcached_message() {
        let e = ConfigError::invalid("-t", "0", "Number of threads must be greater than 0", 1);
        assert_eq!(
            e.to_string(),
            "invalid value '0' for -t: Number of threads must be greater than 0"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn conf_file_line_keeps_inner_exit_code() {
        let e = ConfigError::ConfFileLine {
            path: "/etc/memcached.conf".into(),
            line: 3,
            error: Box::new(ConfigError::invalid("-p", "70000", "x", EX_USAGE)),
        };
        assert_eq!(e.exit_code(), EX_USAGE);
        assert!(e.to_string().starts_with("/etc/memcached.conf:3: "));
    }

    #[test]
    fn info_exits_zero() {
        assert_eq!(ConfigError::Info("x".into()).exit_code(), 0);
        assert!(ConfigError::Info("x".into()).is_info());
    }
}
