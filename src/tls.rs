//! TLS for every https:// URL loadmatrix contacts (load, readiness, checks,
//! scrapes): rustls with the system's roots plus the plan's own CA, mutual
//! TLS, a server name other than the URL's host, or no verification at all.
//!
//! One `ClientConfig` is built per use and shared by all its connections, so
//! its session cache lets a reconnect resume the previous session the way
//! browsers and k6 do.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use serde::Serialize;

/// `[tls]`, with paths resolved against the plan's folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsSettings {
    /// PEM roots trusted besides the system's.
    pub ca: Option<PathBuf>,
    /// Accept any certificate.
    pub insecure: bool,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// SNI and the name verified, when the URL's host differs.
    pub server_name: Option<String>,
}

/// Why a TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: {reason}", path.display())]
    BadPem { path: PathBuf, reason: String },
    #[error("`client_cert` and `client_key` go together: set both or neither")]
    HalfClientAuth,
    #[error("`server_name` {0:?} is not a DNS name or IP address")]
    ServerName(String),
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// ALPN for HTTP/1.1 only, or for HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    Http1,
    H2,
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let ring = Arc::new(rustls::crypto::ring::default_provider());
            // For any client built without an explicit configuration.
            let _ = (*ring).clone().install_default();
            ring
        })
        .clone()
}

/// The system's trusted roots, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|source| TlsSetupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::BadPem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsSetupError::BadPem {
        path: path.to_path_buf(),
        reason: format!("no private key in PEM ({e})"),
    })
}

impl TlsSettings {
    /// Reads and parses every file the settings name; what `validate` checks.
    pub fn check(&self) -> Result<(), TlsSetupError> {
        self.client_config(Alpn::Http1).map(|_| ())
    }

    /// The name to send as SNI and verify, when it is not the URL's host.
    pub(crate) fn name_override(&self) -> Result<Option<ServerName<'static>>, TlsSetupError> {
        self.server_name
            .as_ref()
            .map(|n| {
                ServerName::try_from(n.clone()).map_err(|_| TlsSetupError::ServerName(n.clone()))
            })
            .transpose()
    }

    /// A client configuration offering `alpn`; its session cache is shared
    /// by every connection made with it.
    pub(crate) fn client_config(&self, alpn: Alpn) -> Result<ClientConfig, TlsSetupError> {
        let provider = provider();
        let rustls_err = |e: Error| TlsSetupError::Rustls(e.to_string());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err)?;
        let mut roots = RootCertStore::empty();
        // Some system bundles hold certificates webpki rejects; skip those.
        roots.add_parsable_certificates(system_roots().iter().cloned());
        if let Some(ca) = &self.ca {
            for c in certificates(ca)? {
                roots.add(c).map_err(|e| TlsSetupError::BadPem {
                    path: ca.clone(),
                    reason: format!("not a usable CA certificate: {e}"),
                })?;
            }
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
        let verifier: Arc<dyn ServerCertVerifier> = if self.insecure {
            Arc::new(AcceptAny(provider))
        } else {
            match self.name_override()? {
                Some(name) => Arc::new(NameOverride {
                    inner: webpki,
                    name,
                }),
                None => webpki,
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(certificates(cert)?, private_key(key)?)
                .map_err(|e| TlsSetupError::BadPem {
                    path: key.clone(),
                    reason: format!("does not match the client certificate: {e}"),
                })?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsSetupError::HalfClientAuth),
        };
        config.alpn_protocols = match alpn {
            Alpn::Http1 => vec![b"http/1.1".to_vec()],
            Alpn::H2 => vec![b"h2".to_vec()],
        };
        Ok(config)
    }

    /// A reqwest client builder that speaks TLS with these settings.
    pub fn http_client(settings: Option<&TlsSettings>) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder();
        let config = settings
            .cloned()
            .unwrap_or_default()
            .client_config(Alpn::Http1);
        match config {
            Ok(c) => builder.tls_backend_preconfigured(c),
            // Validation has read these files already; if they vanished
            // since, https URLs fail with reqwest's own error.
            Err(_) => builder,
        }
    }
}

/// What a failed handshake says to a person.
pub fn reason(err: &Error) -> String {
    match err {
        Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => "certificate signed by an unknown issuer".into(),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "name mismatch: the certificate is not valid for the name verified \
                 (set [tls] server_name if the URL's host differs)"
                    .into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet".into()
            }
            CertificateError::Revoked => "certificate revoked".into(),
            CertificateError::BadSignature => "certificate has a bad signature".into(),
            other => format!("invalid certificate: {other:?}"),
        },
        Error::AlertReceived(alert) => format!("the server refused the handshake ({alert:?})"),
        Error::NoApplicationProtocol => {
            "the server speaks none of the offered protocols (ALPN)".into()
        }
        other => other.to_string(),
    }
}

/// The TLS reason inside an I/O error from a TLS stream, if it is one.
pub(crate) fn io_reason(err: &io::Error) -> Option<String> {
    let inner = err.get_ref()?;
    inner.downcast_ref::<Error>().map(reason)
}

/// The reason of a TLS failure somewhere in an error's chain (reqwest's
/// errors wrap the I/O error that wraps rustls's).
pub(crate) fn chain_reason(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<Error>() {
            return Some(reason(t));
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(r) = io_reason(io)
        {
            return Some(r);
        }
        // Clients that box the error on its way up keep only its text.
        if let Some(r) = text_reason(&e.to_string()) {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

/// The reason in a rustls error's text ("invalid peer certificate: ...").
pub(crate) fn text_reason(text: &str) -> Option<String> {
    let (_, what) = text.split_once("invalid peer certificate: ")?;
    let known = [
        ("UnknownIssuer", CertificateError::UnknownIssuer),
        ("NotValidForName", CertificateError::NotValidForName),
        ("Expired", CertificateError::Expired),
        ("NotValidYet", CertificateError::NotValidYet),
        ("Revoked", CertificateError::Revoked),
    ];
    Some(
        known
            .into_iter()
            .find(|(name, _)| what.starts_with(name))
            .map_or_else(
                || format!("invalid certificate: {what}"),
                |(_, e)| reason(&Error::InvalidCertificate(e)),
            ),
    )
}

/// Verifies against a fixed name rather than the URL's host.
#[derive(Debug)]
struct NameOverride {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure = true`: any certificate, still checking the handshake's
/// signatures so the session itself is sound.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_failures_read_as_people_say_them() {
        let cert = |e| reason(&Error::InvalidCertificate(e));
        assert_eq!(
            cert(CertificateError::UnknownIssuer),
            "certificate signed by an unknown issuer"
        );
        assert_eq!(cert(CertificateError::Expired), "certificate expired");
        assert!(cert(CertificateError::NotValidForName).starts_with("name mismatch"));
        let wrapped = io::Error::new(
            io::ErrorKind::InvalidData,
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert_eq!(
            io_reason(&wrapped).as_deref(),
            Some("certificate signed by an unknown issuer")
        );
        assert_eq!(io_reason(&io::Error::other("x")), None);
        assert_eq!(
            text_reason("error sending request: invalid peer certificate: Expired").as_deref(),
            Some("certificate expired")
        );
        assert_eq!(text_reason("connection refused"), None);
    }

    #[test]
    fn settings_are_checked_file_by_file() {
        assert!(TlsSettings::default().check().is_ok());
        let missing = TlsSettings {
            ca: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        assert!(matches!(missing.check(), Err(TlsSetupError::Read { .. })));
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let junk_ca = TlsSettings {
            ca: Some(junk.clone()),
            ..Default::default()
        };
        assert!(matches!(
            junk_ca.check(),
            Err(TlsSetupError::NoCertificate { .. })
        ));
        let half = TlsSettings {
            client_cert: Some(junk),
            ..Default::default()
        };
        assert!(matches!(half.check(), Err(TlsSetupError::HalfClientAuth)));
        let bad_name = TlsSettings {
            server_name: Some("not a name!".into()),
            ..Default::default()
        };
        assert!(matches!(
            bad_name.check(),
            Err(TlsSetupError::ServerName(_))
        ));
    }
}
