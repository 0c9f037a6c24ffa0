//! HTTPS for the viewer port: loads the PEM certificate chain and key, offers
//! `h2` and `http/1.1` by ALPN (so a dashboard of many cameras shares one
//! HTTP/2 connection instead of queueing behind HTTP/1.1's six connections
//! per host), and swaps in a new certificate on SIGHUP or when either file
//! changes, without dropping connected viewers. A certificate that fails to
//! load at start is a configuration error; one that fails on reload is
//! logged and the old one kept.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::TlsFiles;

/// How often the files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Why a certificate or key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The certificate file is the problem.
    Cert(String),
    /// The key file (or its match with the certificate) is the problem.
    Key(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Cert(why) => write!(f, "certificate: {why}"),
            LoadError::Key(why) => write!(f, "key: {why}"),
        }
    }
}

/// Reads and checks the certificate chain and key of `files`.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, LoadError> {
    let pem = std::fs::read(&files.cert)
        .map_err(|e| LoadError::Cert(format!("a readable PEM certificate file ({e})")))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoadError::Cert(format!("a PEM certificate chain ({e:?})")))?;
    if chain.is_empty() {
        return Err(LoadError::Cert(
            "a PEM file with at least one CERTIFICATE block".into(),
        ));
    }
    let pem =
        std::fs::read(&files.key).map_err(|e| LoadError::Key(format!("a readable PEM key file ({e})")))?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| LoadError::Key(format!("a PEM private key, PKCS#8, PKCS#1 or SEC1 ({e:?})")))?;
    let provider = ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| LoadError::Key(format!("the private key of the certificate ({e})")))?;
    Ok(Arc::new(certified))
}

/// The current certificate, replaceable while the server runs.
#[derive(Debug)]
pub struct Reloadable {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl Reloadable {
    /// Loads `files` now.
    pub fn new(files: TlsFiles) -> Result<Arc<Self>, LoadError> {
        let current = RwLock::new(load(&files)?);
        Ok(Arc::new(Self { files, current }))
    }

    /// Loads the files again; on failure the old certificate stays.
    pub fn reload(&self) -> Result<(), LoadError> {
        let fresh = load(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// A TLS acceptor offering HTTP/2 and HTTP/1.1 with the current
    /// certificate (looked up at each handshake).
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, rustls::Error> {
        let provider = Arc::new(ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reloads on SIGHUP and when the files' modification times change,
    /// until `stop` is cancelled.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut seen = self.stamps();
        let mut ticks = tokio::time::interval(WATCH_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(hup) => hup.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            let why = tokio::select! {
                () = stop.cancelled() => return,
                _ = hangup => "SIGHUP",
                _ = ticks.tick() => {
                    let now = self.stamps();
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    "file change"
                }
            };
            match self.reload() {
                Ok(()) => tracing::info!("reloaded TLS certificate {} ({why})", self.files.cert.display()),
                Err(e) => {
                    tracing::warn!("cannot reload TLS {e} ({why}); still serving the previous certificate")
                }
            }
        }
    }

    fn stamps(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        (modified(&self.files.cert), modified(&self.files.key))
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Loads `files`, starts watching them until `stop`, and returns the
/// acceptor for the viewer listener.
pub fn start(files: TlsFiles, stop: CancellationToken) -> anyhow::Result<TlsAcceptor> {
    let certs = Reloadable::new(files).map_err(|e| anyhow::anyhow!("cannot load the TLS {e}"))?;
    let acceptor = certs
        .acceptor()
        .map_err(|e| anyhow::anyhow!("cannot set up TLS: {e}"))?;
    tokio::spawn(certs.watch(stop));
    Ok(acceptor)
}
