//! `[tls]`: paths resolved against the plan's folder, every file read and
//! parsed now so a bad certificate is an error at its line, not mid-run.

use minijinja::Value;

use super::resolver::Resolver;
use crate::plan::raw::RawPlan;
use crate::tls::{TlsSettings, TlsSetupError};

pub(super) fn resolve(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Option<TlsSettings> {
    let t = raw.tls.as_ref()?;
    let section = r.key_span(raw, "tls");
    let path = |r: &mut Resolver<'_>, field: &Option<crate::plan::spanned::Text>, what: &str| {
        let f = field.as_ref()?;
        let text = r.text(f, what, ctx)?;
        let p = r.dir.join(&text);
        if !p.is_file() {
            r.error(
                f.span.clone(),
                format!("`{what}` file `{}` does not exist", p.display()),
                Some("paths in a plan are relative to the plan's folder".into()),
            );
            return None;
        }
        Some((p, f.span.clone()))
    };
    let ca = path(r, &t.ca, "tls.ca");
    let client_cert = path(r, &t.client_cert, "tls.client_cert");
    let client_key = path(r, &t.client_key, "tls.client_key");
    let insecure = r
        .opt_typed(&t.insecure, "tls.insecure", ctx)
        .flatten()
        .unwrap_or(false);
    let server_name = t
        .server_name
        .as_ref()
        .and_then(|s| Some((r.text(s, "tls.server_name", ctx)?, s.span.clone())));
    let settings = TlsSettings {
        ca: ca.as_ref().map(|(p, _)| p.clone()),
        insecure,
        client_cert: client_cert.as_ref().map(|(p, _)| p.clone()),
        client_key: client_key.as_ref().map(|(p, _)| p.clone()),
        server_name: server_name.as_ref().map(|(n, _)| n.clone()),
    };
    if let Err(e) = settings.check() {
        // Point at the field the error is about.
        let span_of = |p: &std::path::Path| {
            [&ca, &client_cert, &client_key]
                .into_iter()
                .flatten()
                .find(|(q, _)| q == p)
                .map(|(_, s)| s.clone())
        };
        let (span, hint) = match &e {
            TlsSetupError::Read { path, .. }
            | TlsSetupError::NoCertificate { path }
            | TlsSetupError::BadPem { path, .. } => (
                span_of(path),
                Some("expected PEM text (-----BEGIN CERTIFICATE----- or -----BEGIN PRIVATE KEY-----)".into()),
            ),
            TlsSetupError::ServerName(_) => (
                server_name.as_ref().map(|(_, s)| s.clone()),
                Some("write a host name such as \"api.internal\"".into()),
            ),
            TlsSetupError::HalfClientAuth => (
                None,
                Some("mutual TLS needs `client_cert` and `client_key`".into()),
            ),
            TlsSetupError::Rustls(_) => (None, None),
        };
        r.error(span.unwrap_or(section), format!("[tls]: {e}"), hint);
        return None;
    }
    Some(settings)
}
