//! Debian's `/etc/memcached.conf`: one option per line, `#` comments.
//!
//! Debian never hands this file to memcached. Its scripts
//! (`/usr/share/memcached/scripts/systemd-memcached-wrapper` and `start-memcached`) read it:
//! they cut each line at the first unescaped `#`, trim it, skip empty lines and lines starting
//! with `-d` or `-h`, treat a line not starting with `-` as a `directive argument` pair (only
//! `logfile` exists), and pass every other line to memcached as flags, through the shell.
//! tern reads the file the same way when given `--config-file`:
//! - `-d`/`-h` lines are skipped, as Debian skips them: the file's `-d` is there for the old
//!   init script, which daemonizes by itself; under systemd a `-d` would make the service look
//!   dead. Pass `-d` on the command line to make tern daemonize.
//! - `logfile PATH` is recorded in [`ConfFile::logfile`]. Debian's systemd wrapper ignores it
//!   (the journal captures output); `start-memcached` sends the daemon's output there. tern
//!   does likewise: the log file is used only when tern daemonizes itself (`-d`).
//! - any other directive is an error naming it (`start-memcached` would die on it).

use std::path::{Path, PathBuf};

use super::error::ConfigError;

/// One line of flags, split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfLine {
    /// 1-based line number, for error messages.
    pub number: usize,
    /// The line's words, as the shell would split them.
    pub words: Vec<String>,
}

/// A conf file, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfFile {
    /// The flag lines, in order.
    pub lines: Vec<ConfLine>,
    /// The `logfile` directive's path.
    pub logfile: Option<PathBuf>,
    /// Lines skipped as Debian's scripts skip them (`-d`, `-h`), with their numbers.
    pub skipped: Vec<(usize, String)>,
}

/// Cuts a line at the first `#` not preceded by a backslash, and turns `\#` into `#`.
fn strip_comment(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'#') => {
                out.push('#');
                chars.next();
            }
            '#' => break,
            _ => out.push(c),
        }
    }
    out
}

/// Splits a line into words as `sh` would for the simple cases a conf file has: whitespace
/// separates, `'...'` and `"..."` quote, a backslash escapes the next character.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(q) => word.push(q),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e) => word.push(e),
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(q) => word.push(q),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    word.push(e);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

impl ConfFile {
    /// Reads conf-file text; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<ConfFile, ConfigError> {
        let mut conf = ConfFile::default();
        for (i, raw) in text.lines().enumerate() {
            let number = i + 1;
            let at = |error: ConfigError| ConfigError::ConfFileLine {
                path: path.to_path_buf(),
                line: number,
                error: Box::new(error),
            };
            let line = strip_comment(raw);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with("-d") || line.starts_with("-h") {
                conf.skipped.push((number, line.to_string()));
                continue;
            }
            let words = split_words(line).map_err(|e| at(ConfigError::Usage(e)))?;
            if !line.starts_with('-') {
                match words.as_slice() {
                    [directive, value] if directive == "logfile" => {
                        conf.logfile = Some(PathBuf::from(value));
                    }
                    [directive, ..] if directive == "logfile" => {
                        return Err(at(ConfigError::MissingValue {
                            option: "logfile".into(),
                        }))
                    }
                    _ => {
                        return Err(at(ConfigError::UnknownDirective {
                            directive: words.first().cloned().unwrap_or_default(),
                        }))
                    }
                }
                continue;
            }
            conf.lines.push(ConfLine { number, words });
        }
        Ok(conf)
    }

    /// Reads the file at `path`.
    pub fn read(path: &Path) -> Result<ConfFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ConfFileRead {
            path: path.to_path_buf(),
            error: e.to_string(),
        })?;
        ConfFile::parse(path, &text)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Debian's default /etc/memcached.conf (package memcached 1.6.18-1+deb12u1), verbatim.
    pub(crate) const DEBIAN_DEFAULT: &str = include_str!("testdata/debian-memcached.conf");

    #[test]
    fn debian_default_reads_as_debian_scripts_read_it() {
        let c = ConfFile::parse(Path::new("/etc/memcached.conf"), DEBIAN_DEFAULT).unwrap();
        let words: Vec<Vec<&str>> = c
            .lines
            .iter()
            .map(|l| l.words.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            words,
            vec![
                vec!["-m", "64"],
                vec!["-p", "11211"],
                vec!["-u", "memcache"],
                vec!["-l", "127.0.0.1"],
                vec!["-P", "/var/run/memcached/memcached.pid"],
            ]
        );
        assert_eq!(c.logfile, Some(PathBuf::from("/var/log/memcached.log")));
        assert_eq!(c.skipped.len(), 1);
        assert_eq!(c.skipped[0].1, "-d");
    }

    #[test]
    fn trailing_comment_and_escaped_hash() {
        let c = ConfFile::parse(
            Path::new("x"),
            "  -m 128   # more memory\n-P /run/a\\#b.pid\n",
        )
        .unwrap();
        assert_eq!(c.lines[0].words, vec!["-m", "128"]);
        assert_eq!(c.lines[0].number, 1);
        assert_eq!(c.lines[1].words, vec!["-P", "/run/a#b.pid"]);
    }

    #[test]
    fn quotes_group_words() {
        assert_eq!(
            split_words(r#"-P "/run/my dir/x.pid" -u 'a b' c\ d"#).unwrap(),
            vec!["-P", "/run/my dir/x.pid", "-u", "a b", "c d"]
        );
        assert!(split_words("-P 'x").is_err());
    }

    #[test]
    fn unknown_directive_names_it_and_the_line() {
        let e = ConfFile::parse(Path::new("/etc/m.conf"), "# c\n\nuser memcache\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/m.conf:3: unknown directive \"user\" (only flags and `logfile` are allowed)"
        );
    }

    #[test]
    fn several_flags_on_one_line_are_allowed() {
        let c = ConfFile::parse(Path::new("x"), "-m 64 -c 2048\n").unwrap();
        assert_eq!(c.lines[0].words, vec!["-m", "64", "-c", "2048"]);
    }
}
