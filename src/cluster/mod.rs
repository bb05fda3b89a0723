//! ElastiCache auto-discovery: the cluster config a node serves to clients.
//!
//! Auto-discovery clients (AWS's cluster clients, libmemcached's ElastiCache fork, pymemcache's
//! and elasticache-auto-discovery's helpers, …) connect to one node, ask `config get cluster`
//! (or, for engines before 1.4.14, `get AmazonElastiCache:cluster`), and spread keys over the
//! nodes listed, polling for a higher version. See `docs/cluster.md`.
//!
//! - [`format`]: the data format and its replies, pure functions.
//! - [`local`]: what a node says about itself when nothing is configured.
//! - [`Cluster`]: the current config of this node, shared by every worker. Readers take a read
//!   lock just long enough to clone an `Arc` of the published config, whose replies are
//!   rendered once when it is published; a request then appends a whole reply to the
//!   connection's output buffer in one step, so it leaves in one write.
//!
//! Versions only ever increase (clients ignore a config whose version is not higher than the
//! one they have): a `config set`, or a file re-read on SIGHUP, whose version is not higher than
//! the highest this node has served is refused, even after `config delete`.

pub mod format;
pub mod local;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

pub use format::{ClusterConfig, ConfigError, Node, CONFIG_KEY, FLAGS, LEGACY_KEY, VERSION_MAX};

/// A config as served: the config and its rendered forms.
#[derive(Debug)]
pub struct Published {
    config: ClusterConfig,
    data: Box<[u8]>,
    get_reply: Box<[u8]>,
}

impl Published {
    fn new(config: ClusterConfig) -> Published {
        let data = config.render();
        let mut get_reply = Vec::with_capacity(data.len() + 32);
        format::compose_config_reply(&data, &mut get_reply);
        Published {
            config,
            data: data.into_boxed_slice(),
            get_reply: get_reply.into_boxed_slice(),
        }
    }

    /// The config.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The config version.
    pub fn version(&self) -> u32 {
        self.config.version()
    }

    /// The data every protocol sends: `<version>\n<nodes>\n` (the binary CONFIG_GET value).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The flags every protocol sends (the binary CONFIG_GET extras): always [`FLAGS`].
    pub fn flags(&self) -> u32 {
        FLAGS
    }

    /// The whole text reply to `config get cluster`.
    pub fn text_reply(&self) -> &[u8] {
        &self.get_reply
    }
}

#[derive(Debug)]
struct State {
    /// The config served now; `None` after `config delete`.
    current: Option<Arc<Published>>,
    /// The highest version this node has served: a new config must be above it.
    high: u32,
}

/// Why a `config set` (or a reload) changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    /// The key is not `cluster`.
    UnknownKey,
    /// The data is not a valid config.
    Invalid(ConfigError),
    /// The version is not higher than the highest one served.
    NotNewer {
        /// The version offered.
        offered: u32,
        /// The highest version served.
        current: u32,
    },
}

impl fmt::Display for SetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetError::UnknownKey => f.write_str("unknown config key"),
            SetError::Invalid(e) => write!(f, "bad config data: {e}"),
            SetError::NotNewer { offered, current } => write!(
                f,
                "config version {offered} is not higher than current version {current}"
            ),
        }
    }
}

impl std::error::Error for SetError {}

/// What a successful [`Cluster::reload`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    /// The file's config is now served, at this version.
    Applied(u32),
    /// The file holds exactly the config already served.
    Unchanged(u32),
}

/// Why a [`Cluster::reload`] left the config as it was.
#[derive(Debug)]
pub enum ReloadError {
    /// No config file was given.
    NoFile,
    /// The file could not be read.
    Read(PathBuf, io::Error),
    /// The file's config was refused.
    Refused(PathBuf, SetError),
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::NoFile => f.write_str("no cluster_config file to reload"),
            ReloadError::Read(p, e) => write!(f, "cluster_config {}: {e}", p.display()),
            ReloadError::Refused(p, e) => write!(f, "cluster_config {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ReloadError {}

/// The cluster config of this node, shared by every thread.
#[derive(Debug)]
pub struct Cluster {
    state: RwLock<State>,
    file: Option<PathBuf>,
}

impl Cluster {
    /// Serves `initial`, unless `file` is given and holds a valid config, which is served
    /// instead (a bad file is logged and `initial` stays).
    pub fn new(initial: ClusterConfig, file: Option<PathBuf>) -> Cluster {
        let high = initial.version();
        let cluster = Cluster {
            state: RwLock::new(State {
                current: Some(Arc::new(Published::new(initial))),
                high,
            }),
            file,
        };
        if let Some(path) = &cluster.file {
            match read_file(path) {
                Ok(config) => {
                    log::info!(
                        "cluster config version {} from {}",
                        config.version(),
                        path.display()
                    );
                    cluster.replace(config);
                }
                Err(e) => log::warn!("{e}; serving the node's own description"),
            }
        }
        cluster
    }

    /// The config a node listening on `listen` serves: `file`'s, or its own description.
    pub fn for_node(listen: std::net::SocketAddr, file: Option<PathBuf>) -> Cluster {
        Cluster::new(local::self_config(listen), file)
    }

    /// The config served now, if any (binary CONFIG_GET needs its data, flags and version).
    pub fn current(&self) -> Option<Arc<Published>> {
        self.state.read().current.clone()
    }

    /// The version served now, 0 when there is none (`stats cluster_config_version`).
    pub fn version(&self) -> u32 {
        self.state
            .read()
            .current
            .as_ref()
            .map_or(0, |p| p.version())
    }

    /// Serves `config` if its version is higher than any served before.
    pub fn set(&self, config: ClusterConfig) -> Result<(), SetError> {
        let mut state = self.state.write();
        if config.version() <= state.high {
            return Err(SetError::NotNewer {
                offered: config.version(),
                current: state.high,
            });
        }
        state.high = config.version();
        state.current = Some(Arc::new(Published::new(config)));
        Ok(())
    }

    /// `config set <key> <flags> <bytes>` with `data`: validates, then [`Cluster::set`].
    pub fn set_data(&self, key: &[u8], data: &[u8]) -> Result<(), SetError> {
        if key != CONFIG_KEY {
            return Err(SetError::UnknownKey);
        }
        let config = ClusterConfig::parse(data).map_err(SetError::Invalid)?;
        self.set(config)
    }

    /// `config delete <key>`: stops serving a config. Whether there was one.
    ///
    /// The highest version is remembered, so a later config must still be above it.
    pub fn delete(&self, key: &[u8]) -> bool {
        key == CONFIG_KEY && self.state.write().current.take().is_some()
    }

    /// Re-reads the config file (on SIGHUP). A bad file, or one whose version is not higher,
    /// is logged and ignored; the old config stays.
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        let result = self.try_reload();
        match &result {
            Ok(Reloaded::Applied(v)) => log::info!("cluster config version {v} loaded"),
            Ok(Reloaded::Unchanged(v)) => log::info!("cluster config version {v} unchanged"),
            Err(e) => log::warn!("{e}; the cluster config stays as it was"),
        }
        result
    }

    fn try_reload(&self) -> Result<Reloaded, ReloadError> {
        let path = self.file.as_ref().ok_or(ReloadError::NoFile)?;
        let config = read_file(path)?;
        if let Some(current) = self.current() {
            if current.config() == &config {
                return Ok(Reloaded::Unchanged(config.version()));
            }
        }
        let version = config.version();
        self.set(config)
            .map_err(|e| ReloadError::Refused(path.clone(), e))?;
        Ok(Reloaded::Applied(version))
    }

    /// Serves `config` whatever its version (the file at start replaces the default).
    fn replace(&self, config: ClusterConfig) {
        let mut state = self.state.write();
        state.high = state.high.max(config.version());
        state.current = Some(Arc::new(Published::new(config)));
    }
}

fn read_file(path: &Path) -> Result<ClusterConfig, ReloadError> {
    let data = std::fs::read(path).map_err(|e| ReloadError::Read(path.to_path_buf(), e))?;
    ClusterConfig::parse(&data)
        .map_err(|e| ReloadError::Refused(path.to_path_buf(), SetError::Invalid(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(version: u32, port: u16) -> ClusterConfig {
        ClusterConfig::new(
            version,
            vec![Node {
                host: "h".into(),
                ip: "127.0.0.1".parse().unwrap(),
                port,
            }],
        )
        .unwrap()
    }

    use tern_protocol::ConfigRequest;

    fn text(cluster: &Cluster, request: ConfigRequest<'_>) -> String {
        let mut out = Vec::new();
        let outcome = crate::server::ops::config_op(request, cluster);
        crate::server::text::compose_config(
            &outcome,
            tern_protocol::Request::Config(request).reply_mode(),
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    fn get(cluster: &Cluster) -> String {
        text(cluster, ConfigRequest::Get { key: b"cluster" })
    }

    fn set(cluster: &Cluster, data: &[u8]) -> String {
        text(
            cluster,
            ConfigRequest::Set {
                key: b"cluster",
                flags: 0,
                data,
                reply: tern_protocol::ReplyMode::Normal,
            },
        )
    }

    #[test]
    fn get_answers_the_whole_reply_in_one_append() {
        let c = Cluster::new(config(1, 11211), None);
        assert_eq!(
            get(&c),
            "CONFIG cluster 0 20\r\n1\nh|127.0.0.1|11211\n\r\nEND\r\n"
        );
    }

    #[test]
    fn set_higher_version_is_stored_and_served() {
        let c = Cluster::new(config(1, 1), None);
        assert_eq!(set(&c, b"2\nh|127.0.0.1|1 h|127.0.0.1|2\n"), "STORED\r\n");
        assert_eq!(
            get(&c),
            "CONFIG cluster 0 30\r\n2\nh|127.0.0.1|1 h|127.0.0.1|2\n\r\nEND\r\n"
        );
        assert_eq!(c.version(), 2);
    }

    #[test]
    fn set_same_or_lower_version_is_refused_and_changes_nothing() {
        let c = Cluster::new(config(5, 1), None);
        let before = get(&c);
        assert_eq!(
            set(&c, b"5\nh|127.0.0.1|9\n"),
            "CLIENT_ERROR config version 5 is not higher than current version 5\r\n"
        );
        assert_eq!(
            set(&c, b"4\nh|127.0.0.1|9\n"),
            "CLIENT_ERROR config version 4 is not higher than current version 5\r\n"
        );
        assert_eq!(get(&c), before);
    }

    #[test]
    fn set_bad_data_is_refused_and_changes_nothing() {
        let c = Cluster::new(config(1, 1), None);
        let before = get(&c);
        assert_eq!(
            set(&c, b"2\nh||1\n"),
            "CLIENT_ERROR bad config data: node \"h||1\" is not host|ip|port: \
             the IP is blank (clients connect to it)\r\n"
        );
        assert_eq!(get(&c), before);
    }

    #[test]
    fn set_unknown_key_is_refused() {
        let c = Cluster::new(config(1, 1), None);
        let reply = text(
            &c,
            ConfigRequest::Set {
                key: b"other",
                flags: 0,
                data: b"2\nh|127.0.0.1|1\n",
                reply: tern_protocol::ReplyMode::Normal,
            },
        );
        assert_eq!(reply, "CLIENT_ERROR unknown config key\r\n");
        assert_eq!(c.version(), 1);
    }

    #[test]
    fn set_flags_are_not_kept_because_clients_match_a_literal_0() {
        let c = Cluster::new(config(1, 1), None);
        let reply = text(
            &c,
            ConfigRequest::Set {
                key: b"cluster",
                flags: 7,
                data: b"2\nh|127.0.0.1|1\n",
                reply: tern_protocol::ReplyMode::Normal,
            },
        );
        assert_eq!(reply, "STORED\r\n");
        assert!(get(&c).starts_with("CONFIG cluster 0 "));
    }

    #[test]
    fn noreply_silences_set_and_delete() {
        let c = Cluster::new(config(1, 1), None);
        let reply = text(
            &c,
            ConfigRequest::Set {
                key: b"cluster",
                flags: 0,
                data: b"2\nh|127.0.0.1|1\n",
                reply: tern_protocol::ReplyMode::Noreply,
            },
        );
        assert_eq!(reply, "");
        assert_eq!(c.version(), 2);
        let reply = text(
            &c,
            ConfigRequest::Delete {
                key: b"cluster",
                reply: tern_protocol::ReplyMode::Noreply,
            },
        );
        assert_eq!(reply, "");
        assert_eq!(c.version(), 0);
    }

    #[test]
    fn delete_then_get_is_end_and_versions_still_only_increase() {
        let c = Cluster::new(config(3, 1), None);
        let del = |c: &Cluster| {
            text(
                c,
                ConfigRequest::Delete {
                    key: b"cluster",
                    reply: tern_protocol::ReplyMode::Normal,
                },
            )
        };
        assert_eq!(del(&c), "DELETED\r\n");
        assert_eq!(del(&c), "NOT_FOUND\r\n");
        assert_eq!(get(&c), "END\r\n");
        assert_eq!(c.version(), 0);
        assert!(set(&c, b"3\nh|127.0.0.1|1\n").starts_with("CLIENT_ERROR"));
        assert_eq!(set(&c, b"4\nh|127.0.0.1|1\n"), "STORED\r\n");
    }

    #[test]
    fn get_of_another_key_is_end() {
        let c = Cluster::new(config(1, 1), None);
        assert_eq!(text(&c, ConfigRequest::Get { key: b"other" }), "END\r\n");
    }

    #[test]
    fn legacy_get_and_gets() {
        let c = Cluster::new(config(9, 1), None);
        let mut out = Vec::new();
        let legacy = crate::server::text::compose_legacy;
        assert!(legacy(&c, false, &mut out));
        assert!(legacy(&c, true, &mut out));
        assert_eq!(
            out,
            &b"VALUE AmazonElastiCache:cluster 0 16\r\n9\nh|127.0.0.1|1\n\r\n\
               VALUE AmazonElastiCache:cluster 0 16 9\r\n9\nh|127.0.0.1|1\n\r\n"[..]
        );
        c.delete(b"cluster");
        assert!(!legacy(&c, false, &mut out));
    }

    #[test]
    fn published_exposes_what_binary_config_get_needs() {
        let c = Cluster::new(config(2, 5), None);
        let p = c.current().unwrap();
        assert_eq!(p.data(), b"2\nh|127.0.0.1|5\n");
        assert_eq!(p.flags(), 0);
        assert_eq!(p.version(), 2);
    }

    struct TempFile(PathBuf);
    impl TempFile {
        fn new(name: &str) -> TempFile {
            let path = std::env::temp_dir().join(format!(
                "tern-cluster-{}-{name}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            TempFile(path)
        }
        fn write(&self, data: &[u8]) {
            std::fs::write(&self.0, data).unwrap();
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn file_at_start_replaces_the_default_even_at_version_1() {
        let f = TempFile::new("start");
        f.write(b"1\nfile|127.0.0.1|7\n");
        let c = Cluster::new(config(1, 1), Some(f.0.clone()));
        assert_eq!(c.current().unwrap().data(), b"1\nfile|127.0.0.1|7\n");
    }

    #[test]
    fn bad_file_at_start_keeps_the_default() {
        let f = TempFile::new("badstart");
        f.write(b"garbage");
        let c = Cluster::new(config(1, 1), Some(f.0.clone()));
        assert_eq!(c.current().unwrap().data(), b"1\nh|127.0.0.1|1\n");
        let missing = Cluster::new(config(1, 1), Some(f.0.with_extension("none")));
        assert_eq!(missing.version(), 1);
    }

    #[test]
    fn reload_applies_a_newer_file_and_ignores_bad_or_older_ones() {
        let f = TempFile::new("reload");
        f.write(b"2\nh|127.0.0.1|2\n");
        let c = Cluster::new(config(1, 1), Some(f.0.clone()));
        assert_eq!(c.version(), 2);
        assert!(matches!(c.reload(), Ok(Reloaded::Unchanged(2))));

        f.write(b"3\nh|127.0.0.1|3\n");
        assert!(matches!(c.reload(), Ok(Reloaded::Applied(3))));
        assert_eq!(c.current().unwrap().data(), b"3\nh|127.0.0.1|3\n");

        f.write(b"2\nh|127.0.0.1|2\n");
        assert!(matches!(
            c.reload(),
            Err(ReloadError::Refused(_, SetError::NotNewer { .. }))
        ));
        f.write(b"4\nh|nonsense|3\n");
        assert!(matches!(
            c.reload(),
            Err(ReloadError::Refused(_, SetError::Invalid(_)))
        ));
        std::fs::remove_file(&f.0).unwrap();
        assert!(matches!(c.reload(), Err(ReloadError::Read(..))));
        assert_eq!(c.current().unwrap().data(), b"3\nh|127.0.0.1|3\n");
    }

    #[test]
    fn reload_without_file_says_so() {
        let c = Cluster::new(config(1, 1), None);
        assert!(matches!(c.reload(), Err(ReloadError::NoFile)));
    }

    #[test]
    fn readers_see_whole_configs_while_a_writer_sets() {
        let c = Arc::new(Cluster::new(config(1, 1), None));
        let writer = {
            let c = c.clone();
            std::thread::spawn(move || {
                for v in 2..200u32 {
                    let data = format!("{v}\nh|127.0.0.1|{v}\n");
                    c.set_data(b"cluster", data.as_bytes()).unwrap();
                }
            })
        };
        for _ in 0..500 {
            let reply = get(&c);
            let (_, reply) = reply.split_once("\r\n").unwrap();
            let (data, _) = reply.rsplit_once("\r\nEND").unwrap();
            let parsed = ClusterConfig::parse(data.as_bytes()).unwrap();
            assert_eq!(u32::from(parsed.nodes()[0].port), parsed.version());
        }
        writer.join().unwrap();
    }
}
